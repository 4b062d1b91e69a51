# SPDX-License-Identifier: GPL-2.0-or-later
"""``show``: what an image holds, as data (the CLI formats it)."""

from __future__ import annotations

import dataclasses
import os
import signal as _signal

from . import signals as _signals
from ._layout import REG_NAMES, C
from .image import Fd, Image, ProcState

# sa_flags bits (asm/signal.h), for display.
_SA_FLAGS = (
    (0x00000001, "NOCLDSTOP"),
    (0x00000002, "NOCLDWAIT"),
    (0x00000004, "SIGINFO"),
    (0x04000000, "RESTORER"),
    (0x08000000, "ONSTACK"),
    (0x10000000, "RESTART"),
    (0x40000000, "NODEFER"),
    (0x80000000, "RESETHAND"),
)


def sa_flag_names(flags: int) -> list[str]:
    return [name for bit, name in _SA_FLAGS if flags & bit]


# fcntl(F_GETFL) status bits of x86-64 Linux (asm-generic/fcntl.h), the only
# architecture an image can come from. O_LARGEFILE is left out: the kernel
# sets it on every file a 64-bit program opens, so it says nothing.
_ACCESS_MODES = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR", 3: "O_ACCMODE"}
_O_LARGEFILE = 0o100000
_O_SYNC = 0o4010000  # __O_SYNC | O_DSYNC
_OPEN_FLAGS = (
    (0o2000, "O_APPEND"),
    (0o4000, "O_NONBLOCK"),
    (_O_SYNC, "O_SYNC"),
    (0o10000, "O_DSYNC"),
    (0o20000, "O_ASYNC"),
    (0o40000, "O_DIRECT"),
    (0o200000, "O_DIRECTORY"),
    (0o400000, "O_NOFOLLOW"),
    (0o1000000, "O_NOATIME"),
    (0o10000000, "O_PATH"),
    (0o20000000, "O_TMPFILE"),
)


def open_flag_names(flags: int) -> list[str]:
    """F_GETFL flags as names: the access mode first, then the status flags
    (O_SYNC, which includes O_DSYNC's bit, is named alone); bits without a
    name come last in hex."""
    names = [_ACCESS_MODES[flags & 3]]
    rest = flags & ~3 & ~_O_LARGEFILE
    for bit, name in _OPEN_FLAGS:
        if rest & bit == bit:
            names.append(name)
            rest &= ~bit
    if rest:
        names.append(f"{rest:#o}")
    return names


# getrlimit(2) resources in RLIMIT_* order (asm-generic/resource.h), and
# which of them are sizes in bytes (for display).
RLIMIT_NAMES = (
    "CPU", "FSIZE", "DATA", "STACK", "CORE", "RSS", "NPROC", "NOFILE",
    "MEMLOCK", "AS", "LOCKS", "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO", "RTTIME",
)  # fmt: skip
RLIMIT_UNITS = {
    "CPU": "s", "FSIZE": "bytes", "DATA": "bytes", "STACK": "bytes", "CORE": "bytes",
    "RSS": "bytes", "MEMLOCK": "bytes", "AS": "bytes", "MSGQUEUE": "bytes", "RTTIME": "us",
}  # fmt: skip
RLIM_INFINITY = (1 << 64) - 1
ITIMER_NAMES = ("REAL", "VIRTUAL", "PROF")


@dataclasses.dataclass
class RegionInfo:
    start: int
    end: int
    perms: str
    kind: str
    name: str
    flags: list[str]
    mapped_bytes: int
    stored_bytes: int
    runs: int
    checksum: str  # "ok", "BAD" or "unchecked"
    vmflags: list[str]  # CKPT_VM_* as words: "noreserve", "locked", "dontfork"...


@dataclasses.dataclass
class TimerInfo:
    """A POSIX timer (timer_create) that the restart creates again."""

    id: int
    clock: str
    notify: str  # "signal", "none" or "thread"
    signal: str
    sigval: int
    interval_ns: int
    value_ns: int  # time left at the checkpoint; 0: disarmed


@dataclasses.dataclass
class PendingInfo:
    """A signal pending at the checkpoint: queued again at restart."""

    signal: str
    code: int  # si_code
    value: int  # si_value


@dataclasses.dataclass
class FdInfo:
    """One saved file descriptor."""

    fd: int
    type: str  # file, dir, ghost (deleted while open), char, pipe, socket, other
    path: str  # readlink of /proc/PID/fd/N at the checkpoint
    flags: int  # fcntl(F_GETFL), as saved
    flag_names: list[str]  # "O_RDWR", "O_APPEND"... (O_LARGEFILE left out)
    offset: int
    cloexec: bool
    deleted: bool  # a ghost: the file was unlinked; its contents are saved
    saved_bytes: int  # ghosts: the file's size, stored in the image; else 0
    checksum: str  # ghosts: "ok", "BAD" or "unchecked"; else "-"
    size: int
    mode: int
    dev: int
    ino: int
    rdev: int


@dataclasses.dataclass
class RlimitInfo:
    resource: str  # "NOFILE", "STACK"... (RLIMIT_ without its prefix)
    number: int  # RLIMIT_* value
    unit: str  # "bytes", "s", "us" or "" (a count)
    soft: int | None  # None: unlimited (RLIM_INFINITY)
    hard: int | None


@dataclasses.dataclass
class ItimerInfo:
    timer: str  # REAL, VIRTUAL, PROF
    armed: bool
    value_us: int  # time left at the checkpoint
    interval_us: int  # period after that; 0: one-shot


@dataclasses.dataclass
class ProcInfo:
    """The process's kernel state besides memory (format 2)."""

    cwd: str
    umask: int
    umask_octal: str  # "0022"
    comm: str  # the process name (PR_GET_NAME)
    rlimits: list[RlimitInfo]  # all 16, in RLIMIT_* order
    itimers: list[ItimerInfo]  # REAL, VIRTUAL, PROF
    thp_disable: int
    no_new_privs: int
    dumpable: int
    child_subreaper: int
    timerslack_ns: int
    oom_score_adj: int
    membarrier: int  # MEMBARRIER_CMD_REGISTER_* bits, made again at restart

    @property
    def limited(self) -> list[RlimitInfo]:
        """The rlimits that are not unlimited."""
        return [r for r in self.rlimits if r.soft is not None or r.hard is not None]

    @property
    def armed_itimers(self) -> list[ItimerInfo]:
        return [t for t in self.itimers if t.armed]


@dataclasses.dataclass
class HandlerInfo:
    signal: str
    signo: int
    handler: str  # "ignore" or an address
    flags: list[str]
    mask: int


@dataclasses.dataclass
class ImageInfo:
    path: str
    size: int
    format_version: int
    created_ns: int
    pid: int
    exe: str
    signal: str
    registers: dict[str, int]
    fs_base: int
    gs_base: int
    sigmask: int
    handlers: list[HandlerInfo]
    rseq: dict[str, int]
    brk: dict[str, int]
    stored_bytes: int
    mapped_bytes: int
    regions: list[RegionInfo]
    checked: bool
    proc: ProcInfo | None  # None for an image without struct ckpt_proc
    fds: list[FdInfo]
    timers: list[TimerInfo] = dataclasses.field(default_factory=list)
    pending_signals: list[PendingInfo] = dataclasses.field(default_factory=list)

    @property
    def bad_regions(self) -> list[RegionInfo]:
        return [r for r in self.regions if r.checksum == "BAD"]

    @property
    def bad_fds(self) -> list[FdInfo]:
        return [f for f in self.fds if f.checksum == "BAD"]


def _limit(v: int) -> int | None:
    return None if v == RLIM_INFINITY else v


_CLOCKS = {0: "REALTIME", 1: "MONOTONIC", 2: "PROCESS_CPUTIME", 3: "THREAD_CPUTIME", 7: "BOOTTIME"}


def proc_info(p: ProcState, cwd: str, comm: str) -> ProcInfo:
    rlimits = [
        RlimitInfo(
            RLIMIT_NAMES[i] if i < len(RLIMIT_NAMES) else str(i),
            i,
            RLIMIT_UNITS.get(RLIMIT_NAMES[i], "") if i < len(RLIMIT_NAMES) else "",
            _limit(soft),
            _limit(hard),
        )
        for i, (soft, hard) in enumerate(p.rlimits)
    ]
    itimers = [
        ItimerInfo(ITIMER_NAMES[i], t.value_us != 0, t.value_us, t.interval_us)
        for i, t in enumerate(p.itimers)
    ]
    return ProcInfo(
        cwd=cwd,
        umask=p.umask,
        umask_octal=f"{p.umask:04o}",
        comm=comm,
        rlimits=rlimits,
        itimers=itimers,
        thp_disable=p.thp_disable,
        no_new_privs=p.no_new_privs,
        dumpable=p.dumpable,
        child_subreaper=p.child_subreaper,
        timerslack_ns=p.timerslack_ns,
        oom_score_adj=p.oom_score_adj,
        membarrier=p.membarrier,
    )


def fd_info(img: Image, f: Fd, check: bool) -> FdInfo:
    if not f.is_ghost:
        state = "-"
    elif not check:
        state = "unchecked"
    else:
        state = "ok" if img.fd_checksum_ok(f) else "BAD"
    return FdInfo(
        fd=f.fd,
        type=f.type_name,
        path=f.path,
        flags=f.flags,
        flag_names=open_flag_names(f.flags),
        offset=f.pos,
        cloexec=bool(f.cloexec),
        deleted=f.is_ghost,
        saved_bytes=f.size if f.is_ghost else 0,
        checksum=state,
        size=f.size,
        mode=f.mode,
        dev=f.dev,
        ino=f.ino,
        rdev=f.rdev,
    )


def show(image: str | os.PathLike[str], *, check: bool = True) -> ImageInfo:
    """Read an image (header and tables validated; with check, every
    region's checksum too, reported per region rather than raised)."""
    with Image.open(image) as img:
        h = img.header
        handlers = []
        for a in h.sigactions:
            if a.handler == 0 or a.signo in (_signal.SIGKILL, _signal.SIGSTOP):
                continue
            handlers.append(
                HandlerInfo(
                    _signals.name(a.signo),
                    a.signo,
                    "ignore" if a.handler == 1 else f"{a.handler:#x}",
                    sa_flag_names(a.flags),
                    a.mask,
                )
            )
        regions = []
        for r in img.regions:
            if not check or r.kind >= C.CKPT_KIND_VDSO:
                state = "unchecked" if not check else "ok"
            else:
                state = "ok" if img.region_checksum_ok(r) else "BAD"
            regions.append(
                RegionInfo(
                    r.start,
                    r.end,
                    r.perms,
                    r.kind_name,
                    r.display_name,
                    r.flag_names,
                    r.size,
                    r.stored_bytes,
                    r.nr_runs,
                    state,
                    r.vmflag_names,
                )
            )
        return ImageInfo(
            path=str(img.path),
            size=img.size,
            format_version=h.version,
            created_ns=h.created_ns,
            pid=h.pid,
            exe=h.exe,
            signal=_signals.name(h.signo),
            registers={name: h.gregs[i] for i, name in enumerate(REG_NAMES)},
            fs_base=h.fs_base,
            gs_base=h.gs_base,
            sigmask=h.sigmask,
            handlers=handlers,
            rseq={"addr": h.rseq_addr, "len": h.rseq_len, "sig": h.rseq_sig},
            brk={"start_brk": h.mm["start_brk"], "brk": h.mm["brk"]},
            stored_bytes=h.data_size,
            mapped_bytes=sum(r.size for r in img.regions),
            regions=regions,
            checked=check,
            proc=proc_info(h.proc, h.cwd, h.comm) if h.proc is not None else None,
            fds=[fd_info(img, f, check) for f in img.fds],
            timers=[
                TimerInfo(
                    id=t.id,
                    clock=_CLOCKS.get(t.clock, str(t.clock)),
                    notify={0: "signal", 1: "none", 4: "thread"}.get(t.notify, str(t.notify)),
                    signal=_signals.name(t.signo) if t.signo else "-",
                    sigval=t.sigval,
                    interval_ns=t.interval_ns,
                    value_ns=t.value_ns,
                )
                for t in img.timers
            ],
            pending_signals=[PendingInfo(_signals.name(s.signo), s.code, s.value) for s in img.signals],
        )

# SPDX-License-Identifier: GPL-2.0-or-later
"""Checkpoint a running, preloaded process from outside, and know when the
image is complete.

At the very end of its signal handler libckpt.so calls ``ckpt_image_done(long
err, const char *path, long writer, u64 stamp)``, which makes one marker
system call: getpid() with two magic words in r8 and r9 and the arguments in
rdi, rsi, rdx and r10. We seize the process (no stray SIGSTOP, and never
PTRACE_O_EXITKILL), send the trigger signal and run it with PTRACE_SYSCALL
until the marker's syscall-entry stop: rdi is the error (0 or an errno), rsi
the image's path, rdx the pid of a forked image writer (CKPT_FORK=1) or 0,
r10 the image's created_ns, and the process is held inside the handler,
its memory as in the image, while we look at (and optionally verify) it.

Nothing of ours is left in the process at any instant: no breakpoint, no
changed byte. If extckpt dies at any point - SIGKILL, a crash - the kernel
detaches the process and it runs on (the marker call then simply runs).
The cost is a stop at each system call of the checkpoint, a few per MiB
written (the writer makes 1 MiB writes).

Whatever happens - an error, a deadline, Ctrl-C, SIGTERM, SIGHUP -
``finally`` detaches, so the process is never left stopped or traced by us.
A process that was stopped (state T) before we came goes back to being
stopped: the kernel re-instates a group-stop in effect when the tracer
detaches.

The image is accepted only if its header's created_ns is this checkpoint's
stamp (and its pid the process's): an older image left at the path, by a
forked writer that failed (disk full) or by anyone, is never taken for the
new one, and with --kill the image's every checksum is checked before the
process is killed.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import select
import signal
import time
from pathlib import Path

from . import _proc
from . import signals as _signals
from ._elf import ElfError, dynsym_address
from ._native import libckpt_path
from ._ptrace import Stop, Tracee, describe_process, ensure_gone_ok
from .errors import (
    AlreadyTracedError,
    CheckpointFailedError,
    DeadlineError,
    MultiThreadedError,
    NoSuchProcessError,
    NotPreloadedError,
    ProcessError,
    SelfCheckFailedError,
    UsageError,
)
from .image import Image
from .verify import VerifyResult, compare

DONE_SYMBOL = "ckpt_image_done"
# ckpt_image_done's marker call (native/libckpt.h: CKPT_DONE_MARK1/2).
DONE_SYSCALL = 39  # getpid
DONE_MARK1 = 0x6578746370745F64
DONE_MARK2 = 0x6F6E655F6D61726B
_ENOSYS = (-errno.ENOSYS) & 0xFFFFFFFFFFFFFFFF  # rax at a syscall-entry stop
CLEANUP_WAIT = 5.0


@dataclasses.dataclass(frozen=True)
class Target:
    """What the pre-flight checks learnt about the process."""

    pid: int
    signo: int
    image_guess: str  # from CKPT_IMAGE and the process's cwd
    library: str  # path of the mapped libckpt.so
    done_addr: int  # run-time address of ckpt_image_done
    was_stopped: bool


@dataclasses.dataclass
class AttachResult:
    pid: int
    image: str
    image_size: int
    regions: int
    stored_bytes: int
    signal: str
    seconds: float
    verify: VerifyResult | None
    killed: bool
    was_stopped: bool


def _preload_hint() -> str:
    try:
        lib = str(libckpt_path())
    except Exception:  # noqa: BLE001 - only a hint; the path may be missing
        lib = "/path/to/libckpt.so"
    return (
        "Start the program with `extckpt run -- PROG [ARGS...]`, or with "
        f"LD_PRELOAD={lib} PROG; a running process cannot load it later."
    )


def _sigset_has(mask_hex: str, signo: int) -> bool:
    try:
        return bool(int(mask_hex, 16) >> (signo - 1) & 1)
    except ValueError:
        return False


def inspect_target(pid: int) -> Target:
    """Everything that can be checked before touching the process."""
    if pid <= 0:
        raise UsageError(f"{pid} is not a process id", "Give the pid of a running process.")
    if not _proc.exists(pid):
        raise NoSuchProcessError(f"no process with pid {pid}")
    st = _proc.status(pid)
    if st.get("State", "").startswith("Z"):
        raise NoSuchProcessError(f"process {pid} has exited (it is a zombie)")
    threads = int(st.get("Threads", "1") or 1)
    if threads > 1:
        raise MultiThreadedError(f"process {pid} has {threads} threads")
    tracer = int(st.get("TracerPid", "0") or 0)
    if tracer:
        raise AlreadyTracedError(
            f"process {pid} is already traced by {describe_process(tracer)}",
            "Detach the other tracer (a debugger, strace) and try again.",
        )
    libs = [m for m in _proc.maps(pid) if os.path.basename(m.path) == "libckpt.so"]
    if not libs:
        raise NotPreloadedError(f"process {pid} does not have libckpt.so loaded", _preload_hint())
    env = _proc.environ(pid)
    signame = env.get("CKPT_SIGNAL", "")
    signo = _signals.parse(signame) if signame else int(_signals.DEFAULT)
    if signo is None:
        raise NotPreloadedError(
            f"libckpt.so in process {pid} is not armed: CKPT_SIGNAL={signame!r} is not a signal",
            "Restart the program with a valid CKPT_SIGNAL such as USR2 or RTMIN+3.",
        )
    if not _sigset_has(st.get("SigCgt", "0"), signo):
        # Sending it would run the default action: most likely kill it.
        raise NotPreloadedError(
            f"process {pid} does not catch {_signals.name(signo)}: libckpt.so is not armed",
            "See the `libckpt:` line on the program's stderr from its start; " + _preload_hint(),
        )
    image = env.get("CKPT_IMAGE") or "myckpt"
    if not os.path.isabs(image):
        image = os.path.join(_proc.cwd(pid), image)
    lib = libs[0].path
    base_maps = [m for m in libs if m.path == lib and m.offset == 0]
    try:
        data = _read_library(pid, libs[0])
        value, first_vaddr = dynsym_address(data, DONE_SYMBOL)
    except (OSError, ElfError) as e:
        raise NotPreloadedError(
            f"cannot find {DONE_SYMBOL} in {lib} mapped by process {pid}: {e}",
            "Use the libckpt.so bundled with this extckpt: " + _preload_hint(),
        ) from None
    if not base_maps:
        raise NotPreloadedError(f"cannot find the load address of {lib} in process {pid}")
    addr = min(m.start for m in base_maps) - first_vaddr + value
    if not any(m.start <= addr < m.end and "x" in m.perms for m in libs):
        raise NotPreloadedError(
            f"{DONE_SYMBOL} at {addr:#x} is not in the code of {lib} in process {pid}",
            "Use the libckpt.so bundled with this extckpt: " + _preload_hint(),
        )
    return Target(
        pid=pid,
        signo=signo,
        image_guess=image,
        library=lib,
        done_addr=addr,
        was_stopped=_proc.state(pid) == "T",
    )


def _read_library(pid: int, m: _proc.Mapping) -> bytes:
    # The path as the process sees it; map_files/ reaches the very file even
    # if it was replaced or lives in another mount namespace.
    try:
        with open(f"/proc/{pid}/root{m.path}", "rb") as f:
            return f.read()
    except OSError:
        with open(f"/proc/{pid}/map_files/{m.start:x}-{m.end:x}", "rb") as f:
            return f.read()


class _Session:
    """The tracing state that ``finally`` must undo."""

    def __init__(self, tracee: Tracee) -> None:
        self.t = tracee
        self.deliver = 0  # signal to hand back when we detach

    def at_marker(self, st: Stop) -> bool:
        """At the syscall-entry stop of ckpt_image_done's marker call."""
        if st.kind != "syscall":
            return False
        r = self.t.regs()
        return r.orig_rax == DONE_SYSCALL and r.rax == _ENOSYS and r.r8 == DONE_MARK1 and r.r9 == DONE_MARK2

    def release(self) -> None:
        """Detach. Safe at any point; Ctrl-C, SIGTERM and SIGHUP wait until
        it is done (they are blocked meanwhile and arrive afterwards)."""
        t = self.t
        if not t.attached:
            return
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
        try:
            if not t.stopped and _in_ptrace_stop(t.pid):
                # A stop that waitpid() took but poll() could not record (a
                # SIGTERM's exception came in between): held all the same.
                t.stopped = True
            if not t.stopped:
                t.interrupt()
                st = t.wait(time.monotonic() + CLEANUP_WAIT, "the process to stop for detaching")
                if st.gone:
                    return
                self.deliver = st.signo if st.kind == "signal" else 0
            if t.last is not None and t.last.kind != "signal":
                self.deliver = 0  # a syscall- or event-stop has no signal to give
            t.detach(self.deliver)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


_HELD = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def _in_ptrace_stop(pid: int) -> bool:
    try:
        return _proc.state(pid) == "t"
    except ProcessError:
        return False


def _wait_writer(writer: int, deadline: float) -> None:
    """CKPT_FORK=1: a copy of the process writes the image; it is complete
    when that writer has exited (it is not our child: a pidfd tells)."""
    try:
        fd = os.pidfd_open(writer)
    except ProcessLookupError:
        return  # already gone
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeadlineError(f"gave up waiting for the image writer (pid {writer})")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                return
    finally:
        os.close(fd)


def attach(
    pid: int,
    *,
    image_wait: float = 60.0,
    verify: bool = True,
    kill: bool = False,
    progress=None,
) -> AttachResult:
    """Checkpoint process pid (preloaded with libckpt.so) and wait until its
    image is complete. Optionally verify the image while the process is still
    held at the end of the checkpoint, and optionally kill it afterwards."""
    t0 = time.monotonic()
    deadline = t0 + image_wait
    target = inspect_target(pid)
    tracee = Tracee.seize(pid, sysgood=True)
    s = _Session(tracee)
    verdict: VerifyResult | None = None
    was_stopped = target.was_stopped
    killed = False
    try:
        tracee.interrupt()
        while True:
            st = tracee.wait(deadline)
            ensure_gone_ok(tracee)
            if st.kind == "signal":
                s.deliver = st.signo  # not ours: pass it through
                tracee.cont(st.signo)
                s.deliver = 0
                continue
            was_stopped = was_stopped or st.kind == "group"
            break
        os.kill(pid, target.signo)
        tracee.syscall(0)
        while True:
            st = tracee.wait(deadline, f"the image of process {pid} to be written")
            ensure_gone_ok(tracee)
            if st.kind == "syscall":
                if s.at_marker(st):
                    break
                tracee.syscall(0)
            elif st.kind == "signal":
                s.deliver = st.signo  # ours, or another one: pass it through
                tracee.syscall(st.signo)
                s.deliver = 0
            else:
                # Interrupt or group-stop (someone sent SIGSTOP): keep going;
                # the kernel stops it again when we detach.
                was_stopped = was_stopped or st.kind == "group"
                tracee.syscall(0)
        regs = tracee.regs()
        err = regs.rdi & 0xFFFFFFFFFFFFFFFF
        writer = regs.rdx & 0xFFFFFFFF
        stamp = regs.r10 & 0xFFFFFFFFFFFFFFFF
        raw_path = tracee.read_cstring(regs.rsi) if regs.rsi else b""
        path = os.fsdecode(raw_path) or target.image_guess
        if not os.path.isabs(path):
            path = os.path.join(_proc.cwd(pid), path)
        if err:
            raise _failed(pid, err, path)
        if writer:
            _wait_writer(writer, deadline)
        with Image.open(path) as img:
            _check_stamp(img, pid, stamp, path, writer)
            if verify:
                verdict = compare(img, pid, progress=progress)
            if kill:
                img.check_data()  # complete and valid, or the process lives
            size, nregions, stored = img.size, len(img.regions), img.stored_bytes
        if kill:
            tracee.kill(time.monotonic() + CLEANUP_WAIT)
            killed = True
    except DeadlineError as e:
        e.hint = deadline_hint(target.signo)
        raise
    finally:
        s.release()
    return AttachResult(
        pid=pid,
        image=str(Path(path)),
        image_size=size,
        regions=nregions,
        stored_bytes=stored,
        signal=_signals.name(target.signo),
        seconds=time.monotonic() - t0,
        verify=verdict,
        killed=killed,
        was_stopped=was_stopped,
    )


def _failed(pid: int, err: int, path: str) -> CheckpointFailedError:
    if err == errno.EBADMSG:
        return SelfCheckFailedError(
            f"the checkpoint of process {pid} wrote an image that failed its own check; "
            f"it was not published at {path}"
        )
    name = errno.errorcode.get(err, str(err))
    e = CheckpointFailedError(
        f"the checkpoint of process {pid} failed: {os.strerror(err)} ({name}) writing {path}"
    )
    cause = _proc.fd_exhaustion(pid)
    if cause:
        e.message = f"the checkpoint of process {pid} failed: {cause}"
        e.hint = fd_limit_hint(pid)
    return e


def _check_stamp(img: Image, pid: int, stamp: int, path: str, writer: int) -> None:
    """The image at path must be the one this checkpoint wrote."""
    h = img.header
    if h.created_ns == stamp and h.pid == pid:
        return
    who = f"the forked image writer (pid {writer})" if writer else "the checkpoint"
    raise CheckpointFailedError(
        f"{who} of process {pid} did not complete {path}: the file there is another image "
        f"(pid {h.pid}, created {_utc(h.created_ns)})",
        "The `libckpt:` line on the program's stderr says why (a full disk, for one); "
        "the program was left running.",
    )


def _utc(ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ns / 1e9))


def fd_limit_hint(pid: int) -> str:
    return (
        f"libckpt needs a few free file descriptors to checkpoint; raise the limit, e.g. "
        f"`prlimit --pid {pid} --nofile=SOFT:HARD` with a larger SOFT, or close some files."
    )


def deadline_hint(signo: int) -> str:
    return (
        f"The process did not finish a checkpoint in time; if it blocks "
        f"{_signals.name(signo)} the checkpoint waits until it unblocks it. "
        "Give it longer with --image-wait."
    )


__all__ = ["AttachResult", "DeadlineError", "Target", "attach", "inspect_target"]

# SPDX-License-Identifier: GPL-2.0-or-later
"""A validated, read-only view of an extckpt image.

``Image.open(path)`` maps the file and checks it the way myrestart does
(native/ckpt_validate.c), in the same order and with the same statuses, so
that the Python tools refuse exactly what the restarter would refuse, with
a sentence saying what to do. Every offset and count read from the file is
bounds-checked before it is used; malformed input only ever raises an
``ImageError`` subclass. ``check_data()`` then verifies each region's XXH64.

The layout comes from cffi (``_layout``), never from hand-written offsets.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import stat
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import xxhash

from ._layout import (
    HEADER_SIZE,
    MAGIC,
    PAGE,
    REG_RIP,
    REG_RSP,
    REGION_SIZE,
    RUN_SIZE,
    USER_TOP,
    C,
    ffi,
)
from .errors import (
    ArchError,
    BadMagicError,
    CorruptError,
    DataCorruptError,
    ImageEmptyError,
    ImageError,
    ImageNotFileError,
    ImageOpenError,
    TruncatedError,
    VersionError,
)

_PAGE_MASK = PAGE - 1
_KNOWN_FLAGS = (
    C.CKPT_REGION_SHARED
    | C.CKPT_REGION_GROWSDOWN
    | C.CKPT_REGION_HEAP
    | C.CKPT_REGION_CKPTLIB
    | C.CKPT_REGION_UNREADABLE
    | C.CKPT_REGION_CONTENT_HASH
)
KIND_NAMES = {
    C.CKPT_KIND_ANON: "anon",
    C.CKPT_KIND_FILE: "file",
    C.CKPT_KIND_VDSO: "vdso",
    C.CKPT_KIND_VVAR: "vvar",
    C.CKPT_KIND_VVAR_VCLOCK: "vvar_vclock",
}
_INT_CODES = {
    ("int", 1): "b", ("int", 2): "h", ("int", 4): "i", ("int", 8): "q",
    ("uint", 1): "B", ("uint", 2): "H", ("uint", 4): "I", ("uint", 8): "Q",
}  # fmt: skip


def _struct_format(cdecl: str) -> tuple[struct.Struct, tuple[str, ...]]:
    """A struct.Struct for a flat struct of integers, built from cffi's own
    type information (offsets, sizes, signedness), so nothing is restated."""
    t = ffi.typeof(cdecl)
    fmt, names, pos = "<", [], 0
    for name, field in t.fields:
        ft = field.type
        if ft.kind != "primitive":
            raise TypeError(f"{cdecl}.{name} is not a plain integer")
        signed = ft.cname.startswith("int")
        size = ffi.sizeof(ft)
        fmt += "x" * (field.offset - pos) + _INT_CODES[("int" if signed else "uint", size)]
        pos = field.offset + size
        names.append(name)
    fmt += "x" * (ffi.sizeof(t) - pos)
    s = struct.Struct(fmt)
    assert s.size == ffi.sizeof(t), cdecl
    return s, tuple(names)


FD_SIZE = ffi.sizeof("struct ckpt_fd")
TIMER_SIZE = ffi.sizeof("struct ckpt_timer")
SIGNAL_SIZE = ffi.sizeof("struct ckpt_signal")
_KNOWN_VMFLAGS = 0
for _name in vars(C):
    if _name.startswith("CKPT_VM_"):
        _KNOWN_VMFLAGS |= getattr(C, _name)

# CKPT_VM_NORESERVE -> "noreserve", ..., in bit order, from the header.
VM_FLAG_NAMES = tuple(
    sorted((getattr(C, n), n[len("CKPT_VM_") :].lower()) for n in vars(C) if n.startswith("CKPT_VM_"))
)

_REGION_STRUCT, _REGION_FIELDS = _struct_format("struct ckpt_region")
_RUN_STRUCT, _RUN_FIELDS = _struct_format("struct ckpt_run")
assert _RUN_FIELDS == ("start", "len", "data_offset"), _RUN_FIELDS
_FD_STRUCT, _FD_FIELDS = _struct_format("struct ckpt_fd")
_TIMER_STRUCT, _TIMER_FIELDS = _struct_format("struct ckpt_timer")


class Timer(NamedTuple):
    """A POSIX timer (timer_create) to create again under its id."""

    id: int
    clock: int
    notify: int  # SIGEV_SIGNAL 0, SIGEV_NONE 1, SIGEV_THREAD_ID 4
    signo: int
    sigval: int
    interval_ns: int
    value_ns: int  # time left; 0: disarmed


class PendingSignal(NamedTuple):
    """A signal pending at the checkpoint, queued again at restart."""

    signo: int
    code: int  # si_code
    value: int  # si_value (for sigqueue and timer signals)


class Run(NamedTuple):
    """Pages [start, start + len) stored at file offset data_offset."""

    start: int
    len: int
    data_offset: int


def perms_string(prot: int, shared: bool) -> str:
    return (
        ("r" if prot & 1 else "-")
        + ("w" if prot & 2 else "-")
        + ("x" if prot & 4 else "-")
        + ("s" if shared else "p")
    )


@dataclasses.dataclass(frozen=True)
class Region:
    """One entry of the region table, with its name resolved."""

    index: int
    start: int
    end: int
    file_offset: int
    dev: int
    ino: int
    file_size: int
    mtime_ns: int
    first_run: int
    nr_runs: int
    stored_bytes: int
    checksum: int
    prot: int
    kind: int
    flags: int
    name: str
    vmflags: int = 0
    content_hash: int = 0  # file mappings: what identifies the mapped bytes

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def shared(self) -> bool:
        return bool(self.flags & C.CKPT_REGION_SHARED)

    @property
    def perms(self) -> str:
        return perms_string(self.prot, self.shared)

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, str(self.kind))

    @property
    def is_ckptlib(self) -> bool:
        return bool(self.flags & C.CKPT_REGION_CKPTLIB)

    @property
    def flag_names(self) -> list[str]:
        names = []
        for bit, label in (
            (C.CKPT_REGION_SHARED, "shared"),
            (C.CKPT_REGION_GROWSDOWN, "stack"),
            (C.CKPT_REGION_HEAP, "heap"),
            (C.CKPT_REGION_CKPTLIB, "libckpt"),
            (C.CKPT_REGION_UNREADABLE, "unreadable"),
        ):
            if self.flags & bit:
                names.append(label)
        return names

    @property
    def vmflag_names(self) -> list[str]:
        """CKPT_VM_* bits as words (noreserve, locked, dontfork...), in bit order."""
        return [name for bit, name in VM_FLAG_NAMES if self.vmflags & bit]

    @property
    def display_name(self) -> str:
        return self.name or "[anon]"


FD_TYPE_NAMES = {getattr(C, n): n[len("CKPT_FD_") :].lower() for n in vars(C) if n.startswith("CKPT_FD_")}


@dataclasses.dataclass(frozen=True)
class Fd:
    """One open file descriptor (format 2)."""

    fd: int
    type: int
    flags: int
    cloexec: int
    pos: int
    dev: int
    ino: int
    size: int
    rdev: int
    mode: int
    path: str
    data_offset: int
    data_len: int
    checksum: int

    @property
    def type_name(self) -> str:
        return FD_TYPE_NAMES.get(self.type, str(self.type))

    @property
    def is_ghost(self) -> bool:
        """A regular file deleted while open: its contents are in the image."""
        return self.type == getattr(C, "CKPT_FD_GHOST", -1)


@dataclasses.dataclass(frozen=True)
class Itimer:
    """setitimer(2) state of one timer; value_us 0 means disarmed."""

    interval_us: int
    value_us: int


@dataclasses.dataclass(frozen=True)
class ProcState:
    """struct ckpt_proc (format 2): the process's kernel state besides memory.

    ``rlimits[i]`` is (soft, hard) for resource i (RLIMIT_* order);
    ``itimers`` is ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF.
    """

    umask: int
    thp_disable: int
    dumpable: int
    no_new_privs: int
    child_subreaper: int
    timerslack_ns: int
    rlimits: tuple[tuple[int, int], ...]
    itimers: tuple[Itimer, ...]
    oom_score_adj: int = 0
    membarrier: int = 0  # MEMBARRIER_CMD_REGISTER_* bits the program had made


@dataclasses.dataclass(frozen=True)
class SigAction:
    signo: int
    handler: int  # 0 SIG_DFL, 1 SIG_IGN, else an address
    flags: int
    restorer: int
    mask: int


@dataclasses.dataclass(frozen=True)
class Header:
    """The header's fields, copied out of the mapping."""

    version: int
    header_size: int
    arch: int
    page_size: int
    image_size: int
    header_checksum: int
    tables_checksum: int
    data_offset: int
    data_size: int
    regions_offset: int
    nr_regions: int
    runs_offset: int
    nr_runs: int
    strings_offset: int
    strings_size: int
    created_ns: int
    pid: int
    signo: int
    exe: str
    resume_entry: int
    resume_stack: int
    fs_base: int
    gs_base: int
    sigmask: int
    gregs: tuple[int, ...]
    rseq_addr: int
    rseq_len: int
    rseq_sig: int
    mm: dict[str, int]
    auxv: tuple[int, ...]
    sigactions: tuple[SigAction, ...]
    fds_offset: int = 0
    nr_fds: int = 0
    timers_offset: int = 0
    nr_timers: int = 0
    signals_offset: int = 0
    nr_signals: int = 0
    cwd: str = ""
    comm: str = ""
    proc: ProcState | None = None

    @property
    def rip(self) -> int:
        return self.gregs[REG_RIP]

    @property
    def rsp(self) -> int:
        return self.gregs[REG_RSP]


def _decode(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _read_proc(p) -> ProcState:
    return ProcState(
        umask=int(p.umask),
        thp_disable=int(p.thp_disable),
        dumpable=int(p.dumpable),
        no_new_privs=int(p.no_new_privs),
        child_subreaper=int(p.child_subreaper),
        timerslack_ns=int(p.timerslack_ns),
        rlimits=tuple((int(p.rlimits[i][0]), int(p.rlimits[i][1])) for i in range(C.CKPT_NRLIMITS)),
        itimers=tuple(Itimer(int(t.interval_us), int(t.value_us)) for t in p.itimers),
        oom_score_adj=int(p.oom_score_adj),
        membarrier=int(p.membarrier),
    )


def _read_header(buf) -> Header:
    h = ffi.cast("struct ckpt_header *", buf)
    mm = {
        name: int(getattr(h.mm, name))
        for name, f in ffi.typeof("struct ckpt_mm").fields
        if f.type.kind == "primitive"
    }
    acts = tuple(
        SigAction(
            i + 1,
            int(h.sigactions[i].handler),
            int(h.sigactions[i].flags),
            int(h.sigactions[i].restorer),
            int(h.sigactions[i].mask),
        )
        for i in range(C.CKPT_NSIG)
    )
    return Header(
        version=h.version,
        header_size=h.header_size,
        arch=h.arch,
        page_size=h.page_size,
        image_size=h.image_size,
        header_checksum=h.header_checksum,
        tables_checksum=h.tables_checksum,
        data_offset=h.data_offset,
        data_size=h.data_size,
        regions_offset=h.regions_offset,
        nr_regions=h.nr_regions,
        runs_offset=h.runs_offset,
        nr_runs=h.nr_runs,
        strings_offset=h.strings_offset,
        strings_size=h.strings_size,
        created_ns=h.created_ns,
        pid=h.pid,
        signo=h.signo,
        exe="",
        resume_entry=h.resume_entry,
        resume_stack=h.resume_stack,
        fs_base=h.fs_base,
        gs_base=h.gs_base,
        sigmask=h.sigmask,
        gregs=tuple(h.gregs[i] for i in range(C.CKPT_NGREGS)),
        rseq_addr=h.rseq.addr,
        rseq_len=h.rseq.len,
        rseq_sig=h.rseq.sig,
        mm=mm,
        auxv=tuple(h.mm.auxv[i] for i in range(C.CKPT_AUXV_WORDS)),
        sigactions=acts,
        fds_offset=h.fds_offset,
        nr_fds=h.nr_fds,
        timers_offset=h.timers_offset,
        nr_timers=h.nr_timers,
        signals_offset=h.signals_offset,
        nr_signals=h.nr_signals,
        comm=_decode(ffi.string(h.proc.comm, 16)),
        proc=_read_proc(h.proc),
    )


def _span(a: int, b: int, c: int, limit: int) -> int | None:
    """a + b * c if it is <= limit, else None (Python ints cannot overflow;
    any sum the C code would see wrap is far above limit anyway)."""
    v = a + b * c
    return v if v <= limit else None


class Image:
    """A validated image. Use as a context manager or call close()."""

    path: Path
    size: int
    header: Header
    regions: list[Region]
    runs: list[Run]

    def __init__(self, path: Path, mm: mmap.mmap) -> None:
        self.path = path
        self._mm = mm
        self._view = memoryview(mm)
        self.size = len(mm)

    # ---- opening --------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Image:
        """Map and validate the header and tables (not the data checksums)."""
        p = Path(path)
        try:
            # O_NONBLOCK: a FIFO must not hang us until a writer comes.
            fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            raise ImageOpenError(f"cannot open the image {p}: no such file") from None
        except IsADirectoryError:
            raise ImageNotFileError(f"the image path {p} is a directory") from None
        except OSError as e:
            raise ImageOpenError(
                f"cannot open the image {p}: {e.strerror}",
                "Check the path and that you may read the file.",
            ) from None
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise ImageNotFileError(f"the image path {p} is a directory")
            if not stat.S_ISREG(st.st_mode):
                raise ImageNotFileError(
                    f"the image path {p} is not a regular file",
                    "Give the path of an image file (not a pipe or a device).",
                )
            if st.st_size == 0:
                raise ImageEmptyError(f"the image file {p} is empty")
            try:
                mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError) as e:
                raise ImageOpenError(f"cannot map the image {p}: {e}") from None
        finally:
            os.close(fd)
        img = cls(p, mm)
        try:
            img._validate()
        except BaseException:
            img.close()
            raise
        return img

    def close(self) -> None:
        if self._mm is not None:
            try:
                self._view.release()
                self._mm.close()
            except BufferError:
                # Slices of the map are still alive (in a traceback being
                # raised, say): the map closes when the last one goes, and
                # the error that brought us here must not be hidden.
                pass
            self._mm = None

    def __enter__(self) -> Image:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- validation (mirrors native/ckpt_validate.c) --------------------

    def _validate(self) -> None:
        self._check_header()
        self._load_tables()
        self._check_regions()

    def _check_header(self) -> None:
        v, n, p = self._view, self.size, self.path
        if n < len(MAGIC) or bytes(v[: len(MAGIC)]) != MAGIC:
            raise BadMagicError(f"{p} is not an extckpt image (no EXTCKPT magic at its start)")
        if n < HEADER_SIZE:
            raise TruncatedError(
                f"the image {p} is truncated: {n} bytes, shorter than its {HEADER_SIZE}-byte header"
            )
        raw = bytearray(v[:HEADER_SIZE])
        buf = ffi.from_buffer(raw)
        h = ffi.cast("struct ckpt_header *", buf)
        if h.version != C.CKPT_FORMAT_VERSION:
            raise VersionError(
                f"the image {p} has format version {h.version}; this extckpt "
                f"reads version {C.CKPT_FORMAT_VERSION} only"
            )
        if h.arch != C.CKPT_ARCH_X86_64 or h.page_size != C.CKPT_PAGE_SIZE:
            raise ArchError(
                f"the image {p} is for machine type {h.arch} with {h.page_size}-byte "
                f"pages; this is x86-64 ({C.CKPT_ARCH_X86_64}) with "
                f"{C.CKPT_PAGE_SIZE}-byte pages"
            )
        if h.header_size != HEADER_SIZE:
            raise CorruptError(
                f"the image {p}'s header is corrupted (size {h.header_size}, expected {HEADER_SIZE})"
            )
        want = int(h.header_checksum)
        h.header_checksum = 0
        if xxhash.xxh64_intdigest(bytes(raw)) != want:
            raise CorruptError(f"the image {p}'s header is corrupted (checksum mismatch)")
        h.header_checksum = want
        if h.image_size != n:
            what = "truncated" if n < h.image_size else "longer than written"
            raise TruncatedError(f"the image {p} is {what}: {n} bytes, its header says {h.image_size}")
        # header | data | regions | runs | fds | timers | signals | strings.
        tables = [
            (h.regions_offset, h.nr_regions, REGION_SIZE),
            (h.runs_offset, h.nr_runs, RUN_SIZE),
            (h.fds_offset, h.nr_fds, FD_SIZE),
            (h.timers_offset, h.nr_timers, TIMER_SIZE),
            (h.signals_offset, h.nr_signals, SIGNAL_SIZE),
            (h.strings_offset, h.strings_size, 1),
        ]
        aligned = h.data_offset == PAGE and not h.data_size & _PAGE_MASK
        end = _span(h.data_offset, h.data_size, 1, n) if aligned else None
        for off, count, size in tables:
            if end is None or off != end:
                end = None
                break
            end = _span(off, count, size, n)
        if end != n:
            raise CorruptError(f"the image {p}'s table of contents is corrupted")
        if xxhash.xxh64_intdigest(v[h.regions_offset :]) != h.tables_checksum:
            raise CorruptError(f"the image {p}'s region tables are corrupted (checksum mismatch)")
        spans = [(h.exe_name_offset, h.exe_name_len), (h.proc.cwd_offset, h.proc.cwd_len)]
        if any(o > h.strings_size or ln > h.strings_size - o for o, ln in spans):
            raise CorruptError(f"the image {p}'s program name or directory is out of bounds")
        hdr = _read_header(buf)
        names = [_decode(bytes(v[h.strings_offset + o : h.strings_offset + o + ln])) for o, ln in spans]
        self.header = dataclasses.replace(hdr, exe=names[0], cwd=names[1])
        ffi.release(buf)

    def _load_tables(self) -> None:
        h, v = self.header, self._view
        # Counts were bounded by the file size above: these lists are at
        # most size/REGION_SIZE and size/RUN_SIZE entries long.
        strings = bytes(v[h.strings_offset : h.strings_offset + h.strings_size])
        self._strings = strings
        self.runs = [
            Run._make(t)
            for t in _RUN_STRUCT.iter_unpack(v[h.runs_offset : h.runs_offset + h.nr_runs * RUN_SIZE])
        ]
        regions = []
        rv = v[h.regions_offset : h.regions_offset + h.nr_regions * REGION_SIZE]
        for i, t in enumerate(_REGION_STRUCT.iter_unpack(rv)):
            f = dict(zip(_REGION_FIELDS, t, strict=True))
            no, nl = f.pop("name_offset"), f.pop("name_len")
            f.pop("reserved", None)
            ok = no <= len(strings) and nl <= len(strings) - no
            name = _decode(strings[no : no + nl]) if ok else ""
            first = strings[no] if ok and nl else None
            regions.append((Region(index=i, name=name, **f), ok, first))
        self._checked = regions
        self.regions = [r for r, _, _ in regions]
        self._fd_raw: list[tuple[Fd, bool]] = []
        fv = v[h.fds_offset : h.fds_offset + h.nr_fds * FD_SIZE]
        for t in _FD_STRUCT.iter_unpack(fv):
            f = dict(zip(_FD_FIELDS, t, strict=True))
            po, pl = f.pop("path_offset"), f.pop("path_len")
            f.pop("pad", None)
            ok = po <= len(strings) and pl <= len(strings) - po
            fd = Fd(path=_decode(strings[po : po + pl]) if ok else "", **f)
            self._fd_raw.append((fd, ok))
        self.fds: list[Fd] = [fd for fd, _ in self._fd_raw]
        tv = v[h.timers_offset : h.timers_offset + h.nr_timers * TIMER_SIZE]
        self.timers: list[Timer] = [Timer(*t) for t in _TIMER_STRUCT.iter_unpack(tv)]
        self.signals: list[PendingSignal] = []
        for i in range(h.nr_signals):
            at = h.signals_offset + i * SIGNAL_SIZE
            # struct ckpt_signal: signo, pad, then a siginfo_t: si_signo,
            # si_errno, si_code, the union 16 bytes in; si_value sits
            # 24 bytes in for sigqueue and timer signals.
            (signo,) = struct.unpack_from("<i", v, at)
            (code,) = struct.unpack_from("<i", v, at + 8 + 8)
            (value,) = struct.unpack_from("<Q", v, at + 8 + 24)
            self.signals.append(PendingSignal(signo, code, value))

    def _check_regions(self) -> None:
        h, p = self.header, self.path
        prev_end, next_run, next_data = 0, 0, h.data_offset
        special_seen = 0
        for r, name_ok, first in self._checked:
            i = r.index
            if (
                r.start >= r.end
                or r.start & _PAGE_MASK
                or r.end & _PAGE_MASK
                or r.end > USER_TOP
                or r.start < prev_end
            ):
                raise CorruptError(
                    f"the image {p}: region {i} has a bad address range {r.start:#x}-{r.end:#x}"
                )
            prev_end = r.end
            if (
                r.kind > C.CKPT_KIND_VVAR_VCLOCK
                or r.flags & ~_KNOWN_FLAGS
                or r.prot & ~7
                or r.vmflags & ~_KNOWN_VMFLAGS
                or not name_ok
            ):
                raise CorruptError(f"the image {p}: region {i} at {r.start:#x} has bad fields")
            if r.kind >= C.CKPT_KIND_VDSO:
                bit = 1 << r.kind
                if special_seen & bit or r.nr_runs:
                    raise CorruptError(f"the image {p}: region {i} is a second or non-empty vDSO/vvar region")
                special_seen |= bit
            if r.kind == C.CKPT_KIND_FILE and (first != ord("/") or r.file_offset & _PAGE_MASK):
                raise CorruptError(f"the image {p}: region {i} is a file mapping without a path")
            if r.first_run != next_run or r.nr_runs > h.nr_runs - next_run:
                raise CorruptError(f"the image {p}: region {i}'s runs are out of order")
            stored = 0
            prev_run_end = 0
            for j in range(r.nr_runs):
                run = self.runs[next_run + j]
                run_end = run.start + run.len
                if (
                    not run.len
                    or run.start & _PAGE_MASK
                    or run.len & _PAGE_MASK
                    or run.start < r.start
                    or run_end > r.end
                    or (j and run.start < prev_run_end)
                    or run.data_offset != next_data
                ):
                    raise CorruptError(f"the image {p}: region {i}'s run {j} is out of bounds")
                prev_run_end = run_end
                next_data += run.len
                stored += run.len
            if stored != r.stored_bytes:
                raise CorruptError(f"the image {p}: region {i}'s stored size does not add up")
            next_run += r.nr_runs
        if next_run != h.nr_runs:
            raise CorruptError(f"the image {p}'s runs do not match its regions")
        next_data = self._check_fds(next_data)
        if next_data != h.data_offset + h.data_size:
            raise CorruptError(f"the image {p}'s runs do not cover its data")
        for i, t in enumerate(self.timers):
            if t.id < 0 or not 0 <= t.signo <= C.CKPT_NSIG or t.notify not in (0, 1, 4):
                raise CorruptError(f"the image {p}'s POSIX timer {i} is corrupted")
        for i, sg in enumerate(self.signals):
            if not 1 <= sg.signo <= C.CKPT_NSIG:
                raise CorruptError(f"the image {p}'s pending signal {i} is corrupted")
        del self._checked
        r = self.find_region(h.resume_entry)
        if r is None or not r.prot & 4 or not r.is_ckptlib:
            raise CorruptError(
                f"the image {p}'s resume address {h.resume_entry:#x} is not in libckpt.so's code"
            )
        r = self.find_region(h.resume_stack - 8)
        if r is None or not r.prot & 2:
            raise CorruptError(f"the image {p}'s resume stack {h.resume_stack:#x} is not writable memory")
        if h.rseq_addr:
            r = self.find_region(h.rseq_addr)
            if r is None or not r.prot & 2:
                raise CorruptError(f"the image {p}'s rseq area {h.rseq_addr:#x} is not writable memory")
        if h.mm["auxv_size"] > C.CKPT_AUXV_WORDS * 8 or h.mm["auxv_size"] & 15:
            raise CorruptError(f"the image {p}'s auxv is corrupted")

    def _check_fds(self, next_data: int) -> int:
        """fds sorted, distinct, known types; ghost data follows the runs'."""
        p = self.path
        prev = -1
        for f, path_ok in self._fd_raw:
            if f.fd < 0 or f.fd <= prev or f.type > C.CKPT_FD_OTHER or not path_ok:
                raise CorruptError(f"the image {p}'s entry for fd {f.fd} is corrupted")
            prev = f.fd
            if f.type == C.CKPT_FD_GHOST:
                if (
                    f.data_offset != next_data
                    or f.data_len != (f.size + PAGE - 1) & ~_PAGE_MASK
                    or f.size > f.data_len
                ):
                    raise CorruptError(f"the image {p}'s saved contents of fd {f.fd} are out of bounds")
                next_data += f.data_len
            elif f.data_len:
                raise CorruptError(f"the image {p}'s entry for fd {f.fd} is corrupted")
        if next_data != self.header.data_offset + self.header.data_size:
            raise CorruptError(f"the image {p}'s runs and files do not cover its data")
        del self._fd_raw
        return next_data

    # ---- access ----------------------------------------------------------

    def find_region(self, addr: int) -> Region | None:
        lo, hi = 0, len(self.regions)
        while lo < hi:
            mid = (lo + hi) // 2
            r = self.regions[mid]
            if addr < r.start:
                hi = mid
            elif addr >= r.end:
                lo = mid + 1
            else:
                return r
        return None

    def region_runs(self, region: Region) -> list[Run]:
        return self.runs[region.first_run : region.first_run + region.nr_runs]

    def run_data(self, run: Run) -> memoryview:
        """The stored bytes of one run, without copying."""
        if self._mm is None:
            raise ValueError("the image is closed")
        return self._view[run.data_offset : run.data_offset + run.len]

    def iter_run_data(self, region: Region) -> Iterator[tuple[Run, memoryview]]:
        for run in self.region_runs(region):
            yield run, self.run_data(run)

    @property
    def stored_bytes(self) -> int:
        return self.header.data_size

    def region_checksum_ok(self, region: Region) -> bool:
        """The XXH64 of the XXH64s of the region's pieces: each run cut from
        its start into CKPT_HASH_PIECE bytes (ckpt_image.h, Integrity)."""
        piece = C.CKPT_HASH_PIECE
        x = xxhash.xxh64()
        for _, data in self.iter_run_data(region):
            for off in range(0, len(data), piece):
                x.update(xxhash.xxh64_intdigest(data[off : off + piece]).to_bytes(8, "little"))
        return x.intdigest() == region.checksum

    def bad_regions(self) -> list[Region]:
        """Regions whose stored bytes fail their checksum."""
        return [r for r in self.regions if not self.region_checksum_ok(r)]

    def fd_checksum_ok(self, f: Fd) -> bool:
        if f.type != getattr(C, "CKPT_FD_GHOST", -1):
            return True
        return xxhash.xxh64_intdigest(self._view[f.data_offset : f.data_offset + f.size]) == f.checksum

    def check_data(self) -> None:
        """Verify every region's checksum, as myrestart does before restarting."""
        for r in self.regions:
            if not self.region_checksum_ok(r):
                raise DataCorruptError(
                    f"the image {self.path}'s data is corrupted: region "
                    f"{r.start:#x}-{r.end:#x} ({r.name or 'anonymous'}) fails its checksum"
                )
        for f in self.fds:
            if not self.fd_checksum_ok(f):
                raise DataCorruptError(
                    f"the image {self.path}'s data is corrupted: the saved contents of "
                    f"deleted file fd {f.fd} fail their checksum"
                )


__all__ = [
    "Fd",
    "Header",
    "Image",
    "ImageError",
    "Itimer",
    "ProcState",
    "Region",
    "Run",
    "SigAction",
    "perms_string",
]

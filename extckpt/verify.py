# SPDX-License-Identifier: GPL-2.0-or-later
"""Compare an image with the live memory of a process.

Stored runs are read in 16 MiB chunks with process_vm_readv (what it
cannot read, pages without PROT_READ, through /proc/PID/mem), each worker
thread into a buffer of its own that it reuses, and compared with the
image's mapped bytes by libc's memcmp; both calls go through cffi, which
releases the GIL, so the two workers read and compare on both cores at
once. Only a chunk that differs is walked page by page. Pages the image
does not hold are checked through PAGEMAP_SCAN: any
page that libckpt *would* store now (present or swapped, not a page-cache
page of the file, not the zero page) but that the image lacks must read as
zeros (anonymous memory) or equal the file (private file mappings). A huge
sparse reservation therefore costs one ioctl, never a byte-by-byte read.

Differences that are expected by design are reported apart, with a reason:
writable regions of libckpt.so (its own bookkeeping) and the stack below
the interrupted stack pointer (signal frame and handler frames).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import itertools
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cffi

from . import _pagemap, _proc
from ._layout import PAGE, USER_TOP, C
from ._ptrace import Tracee, ensure_gone_ok
from .errors import AlreadyTracedError
from .image import Image, Region

CHUNK = 16 << 20
WORKERS = 2
MAX_OFFSETS = 5
HOLD_WAIT = 10.0

# libc's memcmp and process_vm_readv: cffi drops the GIL around each call.
_ffi = cffi.FFI()
_ffi.cdef(
    """
    int memcmp(const void *a, const void *b, size_t n);
    struct iovec { void *iov_base; size_t iov_len; };
    ssize_t process_vm_readv(int pid, const struct iovec *local, unsigned long nlocal,
                             const struct iovec *remote, unsigned long nremote, unsigned long flags);
    """
)
_libc = _ffi.dlopen(None)


def _same(a, b) -> bool:
    """a == b for two buffers of one length, without holding the GIL."""
    n = len(a)
    return n == len(b) and _libc.memcmp(_ffi.from_buffer(a), _ffi.from_buffer(b), n) == 0


REASON_CKPTLIB = "libckpt.so's writable data (its bookkeeping during the checkpoint)"
REASON_STACK = "stack below the interrupted rsp (signal frame and handler frames)"


@dataclasses.dataclass
class RegionVerdict:
    """How one image region compares with the process now.

    status: "match", "differ", "missing" (in the image, not mapped now),
    "expected" (only differences that are expected by design, see reason) or
    "not-stored" (vDSO/vvar and shared file mappings: no bytes to compare).
    """

    start: int
    end: int
    perms: str
    name: str
    status: str = "match"
    pages_differ: int = 0
    first_offsets: list[int] = dataclasses.field(default_factory=list)
    expected_pages: int = 0
    reason: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    compared_bytes: int = 0

    def _differ(self, offset: int) -> None:
        self.pages_differ += 1
        if len(self.first_offsets) < MAX_OFFSETS:
            self.first_offsets.append(offset)


@dataclasses.dataclass(frozen=True)
class ExtraRange:
    """Mapped in the process now, not in the image."""

    start: int
    end: int
    perms: str
    name: str


@dataclasses.dataclass
class VerifyResult:
    image: str
    pid: int
    regions: list[RegionVerdict]
    extra: list[ExtraRange]
    compared_bytes: int
    seconds: float

    @property
    def agrees(self) -> bool:
        return not self.extra and all(v.status in ("match", "expected", "not-stored") for v in self.regions)

    @property
    def differing(self) -> list[RegionVerdict]:
        return [v for v in self.regions if v.status in ("differ", "missing")]

    @property
    def expected(self) -> list[RegionVerdict]:
        return [v for v in self.regions if v.expected_pages or v.status == "expected"]


Progress = Callable[[int, int], None]  # (bytes done, bytes in all)


def verify(
    image: str | os.PathLike[str] | Image,
    pid: int,
    *,
    hold: bool = True,
    progress: Progress | None = None,
) -> VerifyResult:
    """Compare image with process pid. With hold (the default) the process is
    stopped with PTRACE_SEIZE + PTRACE_INTERRUPT for the comparison and let go
    in ``finally``; pass hold=False when the caller already holds it."""
    own = not isinstance(image, Image)
    img = Image.open(image) if own else image
    try:
        if not hold:
            return compare(img, pid, progress=progress)
        with Held(pid):
            return compare(img, pid, progress=progress)
    finally:
        if own:
            img.close()


class Held:
    """Stop a process for as long as the ``with`` block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.tracee: Tracee | None = None
        self.deliver = 0

    def __enter__(self) -> Held:
        if not _proc.exists(self.pid):
            _proc.status(self.pid)  # raises NoSuchProcessError
        tracer = int(_proc.status(self.pid).get("TracerPid", "0") or 0)
        if tracer and tracer != os.getpid():
            from ._ptrace import describe_process

            raise AlreadyTracedError(
                f"process {self.pid} is already traced by {describe_process(tracer)}",
                "Detach the other tracer (a debugger, strace) and try again.",
            )
        t = Tracee.seize(self.pid)
        self.tracee = t
        try:
            t.interrupt()
            st = t.wait(time.monotonic() + HOLD_WAIT)
            ensure_gone_ok(t)
            # A signal-delivery-stop came first: we hold it there and hand
            # the signal back when we let go.
            if st.kind == "signal":
                self.deliver = st.signo
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        t = self.tracee
        if t is None or not t.attached:
            return
        if not t.stopped:
            t.interrupt()
            st = t.wait(time.monotonic() + HOLD_WAIT)
            if st.gone:
                return
            if st.kind == "signal":
                self.deliver = st.signo
        t.detach(self.deliver)


# ---- the comparison ------------------------------------------------------


def _overlaps(maps: list[_proc.Mapping], start: int, end: int) -> list[_proc.Mapping]:
    return [m for m in maps if m.start < end and m.end > start]


def _subtract(ranges: list[tuple[int, int]], holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """ranges minus holes; both sorted and disjoint."""
    out = []
    for a0, b in ranges:
        a = a0
        for h0, h1 in holes:
            if h1 <= a or h0 >= b:
                continue
            if h0 > a:
                out.append((a, h0))
            a = max(a, h1)
            if a >= b:
                break
        if a < b:
            out.append((a, b))
    return out


def _vm_read(pid: int, buf: bytearray | memoryview, addr: int) -> int:
    """Bytes of buf filled from pid's memory at addr with process_vm_readv
    (one copy, no page-by-page walk as /proc/PID/mem does); it stops at
    the first page it cannot read, such as a PROT_NONE one. 0 if refused."""
    n = len(buf)
    local = _ffi.new("struct iovec *", {"iov_base": _ffi.from_buffer(buf), "iov_len": n})
    remote = _ffi.new("struct iovec *", {"iov_base": _ffi.cast("void *", addr), "iov_len": n})
    got = _libc.process_vm_readv(pid, local, 1, remote, 1, 0)
    return max(got, 0)


def _read_into(fd: int, buf: bytearray | memoryview, addr: int, pid: int = 0) -> bytearray | memoryview:
    """Fill buf from the target's memory at addr: with process_vm_readv when
    pid is given, the rest through /proc/PID/mem (fd), which also reads
    pages without PROT_READ. An unreadable or unmapped tail is zeroed, so
    it compares as absent."""
    n = len(buf)
    got = _vm_read(pid, buf, addr) if pid else 0
    if got < n:
        view = memoryview(buf)[got:]
        with contextlib.suppress(OSError):
            got += os.preadv(fd, [view], addr + got)
    if got < n:
        buf[got:n] = bytes(n - got)
    return buf


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


class _Comparer:
    def __init__(self, img: Image, pid: int, progress: Progress | None) -> None:
        self.img = img
        self.pid = pid
        self.progress = progress
        self.rsp = img.header.rsp
        self.compared = 0
        self.local = threading.local()  # each worker's reused chunk buffer

    def expected_page(self, r: Region, addr: int) -> str | None:
        if r.is_ckptlib and r.prot & 2:
            return REASON_CKPTLIB
        if r.start <= self.rsp < r.end and addr + PAGE <= self.rsp:
            return REASON_STACK
        return None

    def read(self, fd: int, addr: int, n: int) -> bytearray:
        return _read_into(fd, bytearray(n), addr)

    def compare_bytes(self, v: RegionVerdict, r: Region, addr: int, live, want) -> None:
        if live == want:
            return
        for off in range(0, len(want), PAGE):
            a = addr + off
            lp = live[off : off + PAGE]
            wp = want[off : off + PAGE]
            if lp == wp:
                continue
            reason = self.expected_page(r, a)
            if reason is None and a <= self.rsp < a + PAGE and r.start <= self.rsp < r.end:
                # The page holding rsp: only the bytes at and above it count.
                k = self.rsp - a
                if lp[k:] == wp[k:]:
                    reason = REASON_STACK
            if reason:
                v.expected_pages += 1
                v.reason = reason
            else:
                v._differ(a - r.start)

    def _read_compare(self, fd: int, addr: int, want: memoryview) -> bytearray | None:
        """Read len(want) bytes at addr and compare: None if equal, else a
        copy of the live bytes. Runs in worker threads: preadv and memcmp
        release the GIL, so two workers keep both cores busy."""
        buf = getattr(self.local, "buf", None)
        if buf is None or len(buf) < len(want):
            # Grown as needed: a small image never pays for 16 MiB of zeros.
            buf = self.local.buf = bytearray(len(want))
        live = memoryview(buf)[: len(want)]
        _read_into(fd, live, addr, self.pid)
        return None if _same(live, want) else bytearray(live)

    def compare_runs(self, fd: int, regions: list[tuple[Region, RegionVerdict]]) -> None:
        chunks = []
        for r, v in regions:
            for run, data in self.img.iter_run_data(r):
                for off in range(0, run.len, CHUNK):
                    n = min(CHUNK, run.len - off)
                    chunks.append((r, v, run.start + off, data[off : off + n]))
        # Bounded look-ahead keeps at most WORKERS + 2 chunks in memory.
        with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
            pending: collections.deque = collections.deque()
            it = iter(chunks)
            for c in itertools.islice(it, WORKERS + 1):
                pending.append((c, pool.submit(self._read_compare, fd, c[2], c[3])))
            while pending:
                (r, v, addr, want), fut = pending.popleft()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append((nxt, pool.submit(self._read_compare, fd, nxt[2], nxt[3])))
                live = fut.result()
                if live is not None:
                    self.compare_bytes(v, r, addr, live, want)
                n = len(want)
                self.compared += n
                v.compared_bytes += n
                if self.progress:
                    self.progress(self.compared, self.img.stored_bytes)

    def check_unstored(self, fd: int, pm_fd: int, r: Region, v: RegionVerdict, mapped) -> None:
        """Pages libckpt would store now but the image lacks."""
        stored = [(run.start, run.start + run.len) for run in self.img.region_runs(r)]
        private = not r.shared
        populated: list[tuple[int, int]] = []
        try:
            for a, b in mapped:
                populated += _pagemap.scan(pm_fd, a, b, private=private)
        except _pagemap.Unsupported:
            v.notes.append("pages not stored were not checked (no PAGEMAP_SCAN in this kernel)")
            return
        except OSError as e:
            v.notes.append(f"pages not stored were not checked ({e.strerror})")
            return
        extra = _subtract(populated, stored)
        if not extra:
            return
        file_fd = None
        if r.kind == C.CKPT_KIND_FILE:
            try:
                file_fd = os.open(r.name, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                v.notes.append(f"cannot read {r.name} to check modified pages ({e.strerror})")
        try:
            for a, b in extra:
                for addr in range(a, b, PAGE):
                    live = self.read(fd, addr, PAGE)
                    if r.kind == C.CKPT_KIND_FILE:
                        if file_fd is None:
                            continue
                        want = os.pread(file_fd, PAGE, r.file_offset + addr - r.start)
                        want = want + bytes(PAGE - len(want))
                    else:
                        want = bytes(PAGE)
                    self.compare_bytes(v, r, addr, live, memoryview(want))
        finally:
            if file_fd is not None:
                os.close(file_fd)

    def region(self, fd: int, pm_fd: int, r: Region, maps: list[_proc.Mapping]) -> RegionVerdict:
        """Everything but the stored runs (compared for all regions at once)."""
        v = RegionVerdict(r.start, r.end, r.perms, r.display_name)
        live = _overlaps(maps, r.start, r.end)
        if not live:
            v.status = "missing"
            v.notes.append("not mapped in the process now")
            return v
        mapped = _merge([(max(m.start, r.start), min(m.end, r.end)) for m in live])
        holes = _subtract([(r.start, r.end)], mapped)
        for a, b in holes:
            for addr in range(a, b, PAGE):
                v._differ(addr - r.start)
            v.notes.append(f"{(b - a) // PAGE} pages at {a:#x} not mapped now")
        perms = {m.perms for m in live}
        if perms != {r.perms}:
            v.notes.append(f"permissions now {'/'.join(sorted(perms))}, image {r.perms}")
        if r.kind >= C.CKPT_KIND_VDSO or (r.kind == C.CKPT_KIND_FILE and r.shared):
            v.status = "not-stored" if not v.pages_differ else "differ"
            return v
        self.check_unstored(fd, pm_fd, r, v, mapped)
        return v


def compare(img: Image, pid: int, *, progress: Progress | None = None) -> VerifyResult:
    """Compare without holding: the caller holds the process (or accepts a
    moving target)."""
    t0 = time.monotonic()
    maps = [m for m in _proc.maps(pid) if m.end <= USER_TOP]
    c = _Comparer(img, pid, progress)
    fd = _proc.open_mem(pid)
    pm_fd = _proc.open_mem(pid, "pagemap")
    try:
        verdicts = [c.region(fd, pm_fd, r, maps) for r in img.regions]
        c.compare_runs(
            fd,
            [(r, v) for r, v in zip(img.regions, verdicts, strict=True) if v.status == "match"],
        )
        for v in verdicts:
            if v.status == "match" and v.pages_differ:
                v.status = "differ"
            elif v.status == "match" and v.expected_pages:
                v.status = "expected"
    finally:
        os.close(fd)
        os.close(pm_fd)
    image_ranges = [(r.start, r.end) for r in img.regions]
    extra = []
    for m in maps:
        for a, b in _subtract([(m.start, m.end)], image_ranges):
            extra.append(ExtraRange(a, b, m.perms, m.path or "[anon]"))
    return VerifyResult(
        image=str(Path(img.path)),
        pid=pid,
        regions=verdicts,
        extra=extra,
        compared_bytes=c.compared,
        seconds=time.monotonic() - t0,
    )

# SPDX-License-Identifier: GPL-2.0-or-later
"""Checkpoint a running, preloaded process from outside, and know when the
image is complete.

libckpt.so calls the exported no-op ``ckpt_image_done(long err, const char
*path, long writer)`` at the very end of its signal handler. We seize the
process (no stray SIGSTOP), put a breakpoint on that function, send the
trigger signal, and wait for the breakpoint's SIGTRAP: rdi is the error (0 or
an errno), rsi the image's path, rdx the pid of a forked image writer
(CKPT_FORK=1) or 0, and the process is held inside the handler while we look
at (and optionally verify) the image.

The breakpoint is a hardware one (debug register 0), not an int3: writing an
int3 into libckpt.so's code makes that page a private modified copy, which
the checkpoint then stores - trap included - so the image would hold an
int3 and verify would see it differ. A debug register changes no memory.

Whatever happens - an error, a deadline, Ctrl-C - ``finally`` clears the
breakpoint and detaches,
so the process is never left stopped or traced by us. A process that was
stopped (state T) before we came goes back to being stopped: the kernel
re-instates a group-stop in effect when the tracer detaches.
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
    UsageError,
)
from .image import Image
from .verify import VerifyResult, compare

DONE_SYMBOL = "ckpt_image_done"
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

    def __init__(self, tracee: Tracee, bp: int) -> None:
        self.t = tracee
        self.bp = bp
        self.armed = False  # debug register 0 holds our breakpoint
        self.deliver = 0  # signal to hand back when we detach

    def at_breakpoint(self, st: Stop) -> bool:
        return (
            st.kind == "signal"
            and st.signo == signal.SIGTRAP
            and self.t.regs().rip == self.bp
            and self.t.hw_breakpoint_hit()
        )

    def set_breakpoint(self) -> None:
        self.armed = True
        self.t.set_hw_breakpoint(self.bp)

    def clear_breakpoint(self) -> None:
        if self.armed:
            self.t.clear_hw_breakpoint()
            self.armed = False

    def release(self) -> None:
        """Clear the breakpoint and detach. Safe at any point."""
        t = self.t
        if not t.attached:
            return
        if not t.stopped:
            t.interrupt()
            st = t.wait(time.monotonic() + CLEANUP_WAIT, "the process to stop for detaching")
            if st.gone:
                return
            self.deliver = st.signo if st.kind == "signal" else 0
        st = t.last
        if self.armed and st is not None and self.at_breakpoint(st):
            self.deliver = 0  # the SIGTRAP was ours
        self.clear_breakpoint()
        t.detach(self.deliver)


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
    started_ns = time.time_ns()
    deadline = t0 + image_wait
    target = inspect_target(pid)
    tracee = Tracee.seize(pid)
    s = _Session(tracee, target.done_addr)
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
        s.set_breakpoint()
        os.kill(pid, target.signo)
        tracee.cont(0)
        while True:
            st = tracee.wait(deadline, f"the image of process {pid} to be written")
            ensure_gone_ok(tracee)
            if st.kind == "signal":
                if st.signo == signal.SIGTRAP and s.at_breakpoint(st):
                    break
                s.deliver = st.signo  # ours, or another one: pass it through
                tracee.cont(st.signo)
                s.deliver = 0
            else:
                # Interrupt or group-stop (someone sent SIGSTOP): keep going;
                # the kernel stops it again when we detach.
                was_stopped = was_stopped or st.kind == "group"
                tracee.cont(0)
        regs = tracee.regs()
        s.clear_breakpoint()
        s.deliver = 0  # the SIGTRAP was ours
        err = regs.rdi & 0xFFFFFFFFFFFFFFFF
        writer = regs.rdx & 0xFFFFFFFF
        raw_path = tracee.read_cstring(regs.rsi) if regs.rsi else b""
        path = os.fsdecode(raw_path) or target.image_guess
        if not os.path.isabs(path):
            path = os.path.join(_proc.cwd(pid), path)
        if err:
            name = errno.errorcode.get(err, str(err))
            raise CheckpointFailedError(
                f"the checkpoint of process {pid} failed: {os.strerror(err)} ({name}) writing {path}"
            )
        if writer:
            _wait_writer(writer, deadline)
        with Image.open(path) as img:
            if img.header.created_ns < started_ns - 1_000_000_000 or img.header.pid != pid:
                raise CheckpointFailedError(
                    f"the checkpoint of process {pid} did not write {path} (the file there is an older image)"
                )
            if verify:
                verdict = compare(img, pid, progress=progress)
            size, nregions, stored = img.size, len(img.regions), img.stored_bytes
        if kill:
            s.clear_breakpoint()
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


def deadline_hint(signo: int) -> str:
    return (
        f"The process did not finish a checkpoint in time; if it blocks "
        f"{_signals.name(signo)} the checkpoint waits until it unblocks it. "
        "Give it longer with --image-wait."
    )


__all__ = ["AttachResult", "DeadlineError", "Target", "attach", "inspect_target"]

# SPDX-License-Identifier: GPL-2.0-or-later
"""The only module that talks to python-ptrace.

python-ptrace's high-level debugger (PtraceDebugger/PtraceProcess) attaches
with PTRACE_ATTACH, which sends a SIGSTOP that the target may see, and turns
stops into exceptions. We want PTRACE_SEIZE (no stray SIGSTOP), PTRACE_INTERRUPT
and PTRACE_LISTEN, which it does not offer, and a wait with a deadline. So we
use its low-level ``ptrace.binding`` layer (the raw ptrace(2) call with errno,
GETREGS/SETREGS, PEEK/POKE) and build a small typed API on top of it: nothing
camelCase and no PtraceError leaves this module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import signal
import time

from ptrace import PtraceError
from ptrace.binding import func as _pt

from . import _proc
from .errors import (
    AlreadyTracedError,
    DeadlineError,
    NoSuchProcessError,
    PermissionDeniedError,
    TargetExitedError,
)

# Not in python-ptrace: values from <linux/ptrace.h>.
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_LISTEN = 0x4208
PTRACE_EVENT_STOP = 128
PTRACE_SYSCALL = 24
PTRACE_O_TRACESYSGOOD = 1  # syscall-stops report SIGTRAP | 0x80
_SYSGOOD_TRAP = signal.SIGTRAP | 0x80
_WALL = 0x40000000
_STOP_SIGNALS = {signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU}


class TraceError(OSError):
    """A ptrace call failed for a reason that is not the user's (a bug or a
    race we did not foresee); carries errno."""


@dataclasses.dataclass(frozen=True)
class Stop:
    """What one waitpid() reported about the tracee.

    kind: "signal" (signal-delivery-stop; signo is the signal), "group"
    (group-stop; signo the stop signal), "event" (PTRACE_INTERRUPT or other
    PTRACE_EVENT stop), "syscall" (syscall-entry or -exit stop, after
    PTRACE_SYSCALL; signo is SIGTRAP), "exited" (signo = exit status) or
    "killed" (signo = the fatal signal).
    """

    kind: str
    signo: int
    event: int = 0

    @property
    def gone(self) -> bool:
        return self.kind in ("exited", "killed")


@dataclasses.dataclass(frozen=True)
class Regs:
    rip: int
    rsp: int
    rdi: int
    rsi: int
    rdx: int
    r10: int = 0
    r8: int = 0
    r9: int = 0
    rax: int = 0
    orig_rax: int = 0  # the system call's number at a syscall-stop


def _raise(e: PtraceError, pid: int, what: str) -> None:
    if e.errno == errno.ESRCH:
        raise NoSuchProcessError(f"process {pid} is gone or not stopped ({what})") from None
    if e.errno == errno.EPERM:
        raise PermissionDeniedError(
            f"not allowed to trace process {pid} ({what})", _proc.ptrace_permission_hint()
        ) from None
    raise TraceError(e.errno or 0, f"{what} on pid {pid}: {e}") from None


class Tracee:
    """A process we hold with PTRACE_SEIZE. Not a context manager on purpose:
    the callers decide how to undo (detach with which signal, or kill)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.attached = False
        self.stopped = False  # in a ptrace-stop: may be read, written, detached
        self.last: Stop | None = None

    # ---- attach / detach -------------------------------------------------

    @classmethod
    def seize(cls, pid: int, *, sysgood: bool = False) -> Tracee:
        """PTRACE_SEIZE; sysgood: syscall-stops are told apart from
        SIGTRAPs. Never PTRACE_O_EXITKILL: if we die, the process lives on."""
        t = cls(pid)
        try:
            _pt.ptrace(PTRACE_SEIZE, pid, 0, PTRACE_O_TRACESYSGOOD if sysgood else 0)
        except PtraceError as e:
            if e.errno == errno.EPERM:
                tracer = _tracer_of(pid)
                if tracer:
                    raise AlreadyTracedError(
                        f"process {pid} is already traced by {_describe(tracer)}",
                        "Detach the other tracer (a debugger, strace) and try again.",
                    ) from None
            _raise(e, pid, "PTRACE_SEIZE")
        t.attached = True
        return t

    def detach(self, sig: int = 0) -> None:
        """Detach; must be in a ptrace-stop. sig is delivered if we are at a
        signal-delivery-stop (0 suppresses the stop's signal)."""
        if not self.attached:
            return
        try:
            _pt.ptrace_detach(self.pid, sig)
        except PtraceError as e:
            if e.errno != errno.ESRCH:
                _raise(e, self.pid, "PTRACE_DETACH")
        self.attached = False
        self.stopped = False

    def kill(self, deadline: float) -> None:
        """SIGKILL the tracee and wait until it is gone."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        while self.attached:
            st = self.wait(deadline)
            if not st.gone:
                # Stops reported on the way to death: let it go on dying.
                self._resume_quietly()

    # ---- stopping and resuming ------------------------------------------

    def interrupt(self) -> None:
        try:
            _pt.ptrace(PTRACE_INTERRUPT, self.pid, 0, 0)
        except PtraceError as e:
            _raise(e, self.pid, "PTRACE_INTERRUPT")

    def cont(self, sig: int = 0) -> None:
        try:
            _pt.ptrace_cont(self.pid, sig)
        except PtraceError as e:
            _raise(e, self.pid, "PTRACE_CONT")
        self.stopped = False

    def syscall(self, sig: int = 0) -> None:
        """Resume until the next syscall-entry or -exit stop (or signal)."""
        try:
            _pt.ptrace(PTRACE_SYSCALL, self.pid, 0, sig)
        except PtraceError as e:
            _raise(e, self.pid, "PTRACE_SYSCALL")
        self.stopped = False

    def _resume_quietly(self) -> None:
        with contextlib.suppress(PtraceError):
            _pt.ptrace_cont(self.pid, 0)
        self.stopped = False

    def poll(self) -> Stop | None:
        """One non-blocking waitpid()."""
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG | _WALL)
        except ChildProcessError:
            # Not our tracee any more (it died and was reaped elsewhere).
            self.attached = self.stopped = False
            self.last = Stop("exited", 0)
            return self.last
        if pid == 0:
            return None
        if os.WIFEXITED(status):
            st = Stop("exited", os.WEXITSTATUS(status))
        elif os.WIFSIGNALED(status):
            st = Stop("killed", os.WTERMSIG(status))
        else:
            sig, event = os.WSTOPSIG(status), status >> 16
            if event == PTRACE_EVENT_STOP:
                st = Stop("group" if sig in _STOP_SIGNALS else "event", sig, event)
            elif event:
                st = Stop("event", sig, event)
            elif sig == _SYSGOOD_TRAP:
                st = Stop("syscall", signal.SIGTRAP)
            else:
                st = Stop("signal", sig)
        if st.gone:
            self.attached = self.stopped = False
        else:
            self.stopped = True
        self.last = st
        return st

    def wait(self, deadline: float, what: str = "the process to stop") -> Stop:
        """Wait for the next stop or the exit, until the monotonic deadline.

        Every ptrace-stop sends us SIGCHLD: with it blocked in this thread,
        sigtimedwait() wakes as soon as one comes (a syscall-stop every few
        hundred microseconds during a checkpoint must not cost a sleep
        each). Another thread of ours may take the signal instead, so each
        wait is capped at 2 ms and waitpid() asked again: never slower than
        polling. The caller's mask is restored before returning; a SIGCHLD
        still pending then is what it would have had anyway.
        """
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        try:
            while True:
                st = self.poll()
                if st is not None:
                    return st
                now = time.monotonic()
                if now >= deadline:
                    raise DeadlineError(
                        f"gave up waiting for {what} (process {self.pid})",
                        "Give it more time with --image-wait, or check what the process is doing.",
                    )
                signal.sigtimedwait({signal.SIGCHLD}, min(0.002, deadline - now))
        finally:
            if signal.SIGCHLD not in old:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})

    # ---- registers and memory (tracee must be stopped) ------------------

    def regs(self) -> Regs:
        r = self._getregs()
        return Regs(
            rip=r.rip,
            rsp=r.rsp,
            rdi=r.rdi,
            rsi=r.rsi,
            rdx=r.rdx,
            r10=r.r10,
            r8=r.r8,
            r9=r.r9,
            rax=r.rax,
            orig_rax=r.orig_rax,
        )

    def _getregs(self):
        try:
            return _pt.ptrace_getregs(self.pid)
        except PtraceError as e:
            _raise(e, self.pid, "PTRACE_GETREGS")

    def peek(self, addr: int) -> int:
        """The 8-byte word at addr (aligned down by the caller)."""
        try:
            return _pt.ptrace_peektext(self.pid, addr) & 0xFFFFFFFFFFFFFFFF
        except PtraceError as e:
            _raise(e, self.pid, f"PTRACE_PEEKTEXT {addr:#x}")

    def poke(self, addr: int, word: int) -> None:
        try:
            _pt.ptrace_poketext(self.pid, addr, word)
        except PtraceError as e:
            _raise(e, self.pid, f"PTRACE_POKETEXT {addr:#x}")

    def write_mem(self, addr: int, data: bytes) -> None:
        """Write through /proc/PID/mem (works while the tracee runs)."""
        fd = _proc.open_mem(self.pid, write=True)
        try:
            os.pwrite(fd, data, addr)
        finally:
            os.close(fd)

    def read_cstring(self, addr: int, limit: int = 4096) -> bytes:
        """A NUL-terminated string from the tracee's memory, via /proc/PID/mem
        (page by page, so a string ending near an unmapped page still reads)."""
        fd = _proc.open_mem(self.pid)
        try:
            out = b""
            while len(out) < limit:
                n = 4096 - (addr + len(out)) % 4096
                try:
                    chunk = os.pread(fd, n, addr + len(out))
                except OSError:
                    break
                if not chunk:
                    break
                nul = chunk.find(b"\0")
                if nul >= 0:
                    return out + chunk[:nul]
                out += chunk
            return out[:limit]
        finally:
            os.close(fd)


def _tracer_of(pid: int) -> int:
    try:
        return int(_proc.status(pid).get("TracerPid", "0"))
    except (ValueError, NoSuchProcessError, PermissionDeniedError):
        return 0


def _describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f"{f.read().strip()} (pid {pid})"
    except OSError:
        return f"pid {pid}"


def describe_process(pid: int) -> str:
    return _describe(pid)


def ensure_gone_ok(t: Tracee) -> None:
    if t.last is not None and t.last.gone:
        how = (
            f"exited with status {t.last.signo}"
            if t.last.kind == "exited"
            else (
                f"was killed by {signal.Signals(t.last.signo).name}"
                if t.last.signo in signal.Signals._value2member_map_
                else f"was killed by signal {t.last.signo}"
            )
        )
        raise TargetExitedError(f"process {t.pid} {how}")


__all__ = ["Regs", "Stop", "TraceError", "Tracee", "describe_process", "ensure_gone_ok"]

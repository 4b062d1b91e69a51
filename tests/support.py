# SPDX-License-Identifier: GPL-2.0-or-later
"""Helpers for the native round-trip tests: start a self-judging target under
libckpt.so, checkpoint it, restart it with myrestart, and collect its verdict.

Every process is started through a ProcTracker (the ``procs`` fixture), which
kills what is still alive by pid and reaps it when the test ends. Every wait
has a deadline; nothing here can block without one: pipes are read with
select() on non-blocking descriptors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# EXTCKPT_NATIVE_DIR: test another build of native/ (e.g. an export of HEAD
# while native/ is being edited); its ckpt_image.h is the one used too.
NATIVE = Path(os.environ.get("EXTCKPT_NATIVE_DIR") or ROOT / "native").resolve()
LIBCKPT = NATIVE / "libckpt.so"
MYRESTART = NATIVE / "myrestart"
HEADER = NATIVE / "ckpt_image.h"
TARGETS_DIR = ROOT / "tests" / "targets"
TARGETS_BUILD = TARGETS_DIR / "build"

# {pie,nopie} x {-O0, -O3 -march=native}; see tests/targets/Makefile.
VARIANTS = ("pie-O0", "pie-O3", "nopie-O0", "nopie-O3")
DEFAULT_VARIANT = "pie-O0"

DEADLINE = 30.0  # seconds, for any single wait
POLL_INTERVAL = 0.002


class HarnessError(AssertionError):
    """A target or the tools did not do what the protocol says."""


# ---- the image format header, read from its one home -----------------------


def header_defines() -> dict[str, int]:
    """Every ``#define CKPT_NAME <integer>`` of native/ckpt_image.h."""
    pattern = re.compile(r"^#define\s+(CKPT_\w+)\s+(0x[0-9a-fA-F]+|\d+)\b", re.M)
    return {m[1]: int(m[2], 0) for m in pattern.finditer(HEADER.read_text())}


def header_cdef() -> str:
    """The cffi-parseable section of the header (between CFFI-BEGIN/END)."""
    lines = HEADER.read_text().splitlines()
    # The marker lines themselves, not mentions of them in the comments.
    begin = next(i for i, line in enumerate(lines) if line.startswith("/* CFFI-BEGIN"))
    end = next(i for i, line in enumerate(lines) if line.startswith("/* CFFI-END"))
    return "\n".join(lines[begin + 1 : end])


def header_ffi():
    """A cffi FFI that knows the image structs (for field offsets)."""
    import cffi

    ffi = cffi.FFI()
    ffi.cdef(header_cdef())
    return ffi


# ---- processes ---------------------------------------------------------------


def describe_status(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exited with status {returncode}"


class Proc:
    """A child with pipes on stdin, stdout and stderr, read without blocking."""

    def __init__(
        self,
        argv: Sequence[str | os.PathLike],
        *,
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike | None = None,
        preexec_fn: Callable[[], None] | None = None,
        name: str | None = None,
    ):
        self.argv = [str(a) for a in argv]
        self.name = name or Path(self.argv[0]).name
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            preexec_fn=preexec_fn,  # noqa: PLW1509 - the harness has no threads
            close_fds=True,
        )
        self.pid = self.popen.pid
        self.out = bytearray()
        self.err = bytearray()
        self._out_pos = 0  # stdout lines before this offset are consumed
        self._open = {self.popen.stdout.fileno(): self.out, self.popen.stderr.fileno(): self.err}
        for fd in self._open:
            os.set_blocking(fd, False)

    # -- reading --
    def pump(self, timeout: float = 0.0) -> bool:
        """Read what is available, waiting at most timeout; False at EOF on both."""
        if not self._open:
            if timeout:
                time.sleep(min(timeout, POLL_INTERVAL))
            return False
        ready, _, _ = select.select(list(self._open), [], [], max(timeout, 0.0))
        for fd in ready:
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                continue
            if data:
                self._open[fd].extend(data)
            else:
                del self._open[fd]
        return bool(self._open)

    @property
    def stdout(self) -> str:
        return self.out.decode(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err.decode(errors="replace")

    def transcript(self) -> str:
        """Everything seen so far, for assertion messages."""
        return (
            f"{self.name} (pid {self.pid}, {describe_status(self.popen.poll())})\n"
            f"--- stdout ---\n{self.stdout}--- stderr ---\n{self.stderr}--- end ---"
        )

    def _next_line(self) -> str | None:
        nl = self.out.find(b"\n", self._out_pos)
        if nl < 0:
            return None
        line = self.out[self._out_pos : nl].decode(errors="replace")
        self._out_pos = nl + 1
        return line

    def wait_line(self, match: str | Callable[[str], bool], timeout: float = DEADLINE) -> str:
        """The next stdout line equal to match (or for which match is true)."""
        pred = match if callable(match) else (lambda line: line == match)
        deadline = time.monotonic() + timeout
        while True:
            line = self._next_line()
            while line is not None:
                if pred(line):
                    return line
                line = self._next_line()
            if not self._open and self.popen.poll() is not None:
                raise HarnessError(f"no line {match!r} before the end:\n{self.transcript()}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise HarnessError(f"no line {match!r} within {timeout} s:\n{self.transcript()}")
            self.pump(min(left, 0.1))

    def wait_stderr(self, prefix: str, timeout: float = DEADLINE, start: int = 0) -> str:
        """The first stderr line (from byte offset start) beginning with prefix."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.err[start:].decode(errors="replace").splitlines(keepends=True):
                if line.startswith(prefix) and line.endswith("\n"):
                    return line.rstrip("\n")
            if not self._open and self.popen.poll() is not None:
                raise HarnessError(f"no stderr line {prefix!r}:\n{self.transcript()}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise HarnessError(f"no stderr line {prefix!r} within {timeout} s:\n{self.transcript()}")
            self.pump(min(left, 0.1))

    def wait_verdict(self, timeout: float = DEADLINE) -> str:
        """The target's PASS or FAIL line, or a description of why none came."""
        try:
            return self.wait_line(lambda s: s == "PASS" or s.startswith("FAIL"), timeout)
        except HarnessError:
            self.wait_exit(2.0, kill=True)
            return f"no verdict: {describe_status(self.popen.returncode)}"

    # -- writing, ending --
    def send(self, text: str) -> None:
        try:
            self.popen.stdin.write(text.encode())
            self.popen.stdin.flush()
        except BrokenPipeError as e:
            raise HarnessError(f"cannot write {text!r}:\n{self.transcript()}") from e

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_exit(self, timeout: float = DEADLINE, kill: bool = False) -> int:
        """Wait for the exit, reading all output; SIGKILL at the deadline if kill."""
        deadline = time.monotonic() + timeout
        while self.popen.poll() is None or self._open:
            left = deadline - time.monotonic()
            if left <= 0:
                if self.popen.poll() is None:
                    if not kill:
                        raise HarnessError(f"still running after {timeout} s:\n{self.transcript()}")
                    self.kill()
                break
            self.pump(min(left, 0.05))
        return self.popen.returncode

    def kill(self) -> None:
        """SIGKILL by pid (if not reaped yet) and reap; then drain the pipes."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            try:
                self.popen.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired as e:  # pragma: no cover - D state
                raise HarnessError(f"pid {self.pid} survives SIGKILL") from e
        end = time.monotonic() + 2.0
        while self._open and time.monotonic() < end:
            self.pump(0.05)

    def close(self) -> None:
        self.kill()
        for f in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            with contextlib.suppress(OSError):
                f.close()


class ProcTracker:
    """Starts processes and, at the end of the test, kills them by pid."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []

    def start(self, argv, **kw) -> Proc:
        p = Proc(argv, **kw)
        self.procs.append(p)
        return p

    def cleanup(self) -> None:
        errors = []
        for p in reversed(self.procs):
            try:
                p.close()
            except Exception as e:  # noqa: BLE001 - keep killing the others
                errors.append(e)
        self.procs.clear()
        if errors:
            raise errors[0]


# ---- the checkpoint / restart protocol ---------------------------------------


def target_path(name: str, variant: str = DEFAULT_VARIANT) -> Path:
    return TARGETS_BUILD / variant / name


def ckpt_env(image: Path | str, extra: dict[str, str | None] | None = None) -> dict[str, str]:
    """The environment for a target: libckpt preloaded, CKPT_IMAGE=image;
    extra adds variables (a value None removes one)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CKPT_")}
    env["LD_PRELOAD"] = str(LIBCKPT)
    env["CKPT_IMAGE"] = str(image)
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def start_target(
    procs: ProcTracker,
    exe: Path,
    image: Path | str,
    args: Sequence[str] = (),
    *,
    env: dict[str, str | None] | None = None,
    preexec_fn: Callable[[], None] | None = None,
    wait_ready: bool = True,
    cwd: str | os.PathLike | None = None,
) -> Proc:
    """Start exe under libckpt.so with CKPT_IMAGE=image; wait for ready."""
    p = procs.start(
        [exe, *args],
        env=ckpt_env(image, env),
        preexec_fn=preexec_fn,
        name=exe.name,
        cwd=cwd,
    )
    if wait_ready:
        p.wait_line("ready")
    return p


def run_cli(*args: str, timeout: float = DEADLINE, **kw) -> subprocess.CompletedProcess[str]:
    """`python -m extckpt.cli ARGS`, captured, stdin from /dev/null unless given."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(
        [sys.executable, "-m", "extckpt.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kw,
    )


def refused_checkpoint(proc: Proc) -> str:
    """Send the checkpoint signal; return the `libckpt:` line it must log,
    after a round trip of "check" (answered "ok" by targets that wait for
    it) that proves the program runs on."""
    start = len(proc.err)
    proc.popen.send_signal(signal.SIGUSR2)
    line = proc.wait_stderr("libckpt:", start=start, timeout=15)
    proc.send("check\n")
    proc.wait_line("ok")
    return line


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns)


def checkpoint(
    proc: Proc,
    image: Path,
    *,
    sig: int = signal.SIGUSR2,
    timeout: float = DEADLINE,
) -> Path:
    """Send the checkpoint signal and wait for a new image to be renamed in.

    Fails early if the target logs a ``libckpt:`` line or dies.
    """
    # Hold the old image open: its inode cannot be reused by the new one,
    # so a new (inode, mtime) means a new file even within one clock tick.
    try:
        old = os.open(image, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        old = -1
    try:
        before = _identity(image)
        return _wait_new_image(proc, image, before, sig, timeout)
    finally:
        if old >= 0:
            os.close(old)


def _wait_new_image(proc: Proc, image: Path, before, sig: int, timeout: float) -> Path:
    err_start = len(proc.err)
    os.kill(proc.pid, sig)
    deadline = time.monotonic() + timeout
    while True:
        now = _identity(image)
        if now is not None and now != before:
            return image
        proc.pump(0)
        logged = proc.err[err_start:].decode(errors="replace")
        if "libckpt:" in logged:
            # Give the line time to be complete, then report it.
            proc.pump(0.05)
            raise HarnessError(f"checkpoint failed:\n{proc.transcript()}")
        if not proc.alive():
            raise HarnessError(f"died during the checkpoint:\n{proc.transcript()}")
        if time.monotonic() > deadline:
            raise HarnessError(f"no image at {image} within {timeout} s:\n{proc.transcript()}")
        time.sleep(POLL_INTERVAL)


def restart(
    procs: ProcTracker,
    image: Path,
    *,
    env: dict[str, str] | None = None,
    pid_mode: str = "never",
    options: Sequence[str] = (),
) -> Proc:
    """Run myrestart --pid=pid_mode [options] IMAGE with pipes (not yet
    waiting for anything). By default the program keeps myrestart's pid, so
    that the returned Proc is the program itself (tests/test_native_pid.py
    covers the other modes, where myrestart stays as the program's parent)."""
    run_env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    if env:
        run_env.update(env)
    return procs.start(
        [MYRESTART, f"--pid={pid_mode}", *options, image], env=run_env, name=f"myrestart {image.name}"
    )


def _maps_paths(pid: int) -> list[str] | None:
    """The file names of a process's mappings that start at offset 0 of
    their file, or None if it is gone. That is myrestart's own first
    segment and the whole image that the restore maps, never one of the
    image's runs that the restored program keeps mapped (its data lies
    after the header)."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            return [
                parts[5].strip()
                for parts in (line.split(maxsplit=5) for line in f)
                if len(parts) == 6 and int(parts[2], 16) == 0
            ]
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError as e:
        if e.errno == errno.ESRCH:
            return None
        raise


def _read_proc(pid: int, name: str) -> str:
    try:
        with open(f"/proc/{pid}/{name}") as f:
            return f.read()
    except OSError as e:
        return f"({e})"


def _caught_signals(pid: int) -> int | None:
    """The SigCgt mask of /proc/PID/status (bit n-1 for signal n)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return int(line.split()[1], 16)
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def wait_restored(
    proc: Proc,
    image: Path | None = None,
    timeout: float = DEADLINE,
    sig: int = signal.SIGUSR2,
) -> None:
    """Wait until the restore is over and the program runs again.

    Until then a signal (SIGUSR1 for the spinning targets, the checkpoint
    signal for the next generation) reaches myrestart or its restore blob,
    not the program. Seen from outside, the restore is over when no mapping
    of myrestart or of the image is left and the program's handler for the
    checkpoint signal (sig) is installed again. (myrestart does not block signals
    while it restores: a signal in that window kills it or runs the
    program's handler half-restored - reported as a native bug.)
    """
    own = str(MYRESTART)
    image_name = str(Path(image).resolve()) if image else None
    if image_name is None and proc.argv[0] == own and len(proc.argv) > 1:
        image_name = str(Path(proc.argv[-1]).resolve())
    bit = 1 << (sig - 1)
    deadline = time.monotonic() + timeout
    settled = 0
    while True:
        paths = _maps_paths(proc.pid)
        caught = _caught_signals(proc.pid)
        if paths is None or caught is None or not proc.alive():
            proc.wait_exit(2.0, kill=True)
            raise HarnessError(f"myrestart ended before the program was back:\n{proc.transcript()}")
        done = own not in paths and image_name not in paths and caught & bit
        settled = settled + 1 if done else 0
        if settled >= 3:  # the last steps (TLS, mask) take microseconds
            return
        if time.monotonic() > deadline:
            why = []
            if own in paths:
                why.append("myrestart is still mapped")
            if image_name in paths:
                why.append("the image is still mapped")
            if not caught & bit:
                why.append(f"no handler for signal {sig} (SigCgt {caught:#x})")
            raise HarnessError(
                f"not restored within {timeout} s ({'; '.join(why)}); "
                f"/proc/{proc.pid}/syscall: {_read_proc(proc.pid, 'syscall')}"
                f"maps:\n{_read_proc(proc.pid, 'maps')}\n{proc.transcript()}"
            )
        proc.pump(POLL_INTERVAL)


# ---- what a round trip does with each target ----------------------------------


@dataclasses.dataclass(frozen=True)
class Target:
    """How the harness drives one self-judging target."""

    name: str
    args: tuple[str, ...] = ()
    resume: str = "stdin"  # "stdin": write "go"; "sigusr1": send SIGUSR1
    max_image: int | None = None  # bytes
    xfail: str | None = None
    restartable: bool = True  # False: state that a restart cannot carry yet
    check: Callable[[Proc, Proc], None] | None = None  # (original, restarted)
    before_go: Callable[[Proc], None] | None = None  # e.g. let it run a bit
    scratch_dir: bool = False  # pass a fresh directory as the first argument

    @property
    def id(self) -> str:
        return "-".join((self.name, *self.args))


def check_counter(original: Proc, restarted: Proc) -> None:
    """The restarted counter continues where the checkpoint caught it."""

    def counts(p: Proc) -> list[int]:
        return [int(s.split()[1]) for s in p.stdout.splitlines() if s.startswith("count ")]

    before, after = counts(original), counts(restarted)
    assert before and after, f"no counts:\n{original.transcript()}\n{restarted.transcript()}"
    assert 3 < after[0] <= before[-1] + 1, (
        f"restarted counter starts at {after[0]}, the original was at {before[-1]} when killed (ready at 3)"
    )
    assert after == list(range(after[0], after[0] + len(after))), f"counts skip: {after}"


def counter_runs_on(proc: Proc) -> None:
    """Let the restarted counter print two counts before "go"."""
    for _ in range(2):
        proc.wait_line(lambda s: s.startswith("count "))


def check_quiet(original: Proc, restarted: Proc) -> None:
    """No stray output from the checkpoint or the restart."""
    assert original.stdout == "ready\n", original.transcript()
    assert original.stderr == "", original.transcript()
    assert restarted.stdout == "PASS\n", restarted.transcript()
    assert restarted.stderr == "", restarted.transcript()


ITIMER_XFAIL = "itimers are restored in issue 6"

TARGETS = (
    Target("counter", check=check_counter, before_go=counter_runs_on),
    Target("heap"),
    Target("sparse", max_image=16 << 20),
    Target("prot"),
    Target("regs", resume="sigusr1"),
    Target("vdso"),
    Target("tls"),
    Target("deep"),
    Target("signals"),
    Target("altstack"),
    Target("procself", ("first arg", "second")),
    Target("itimer"),  # if it fails: xfail=ITIMER_XFAIL
    Target("blocked", ("read",)),
    Target("blocked", ("poll",)),
    Target("blocked", ("ppoll",)),
    Target("blocked", ("select",)),
    Target("blocked", ("pselect",)),
    Target("blocked", ("nanosleep",)),
    Target("blocked", ("sleep",)),
    Target("blocked", ("epoll",), restartable=False),  # epoll fds are not restored (documented)
    # System V IPC objects are not part of an image: checked without a restart.
    Target("blocked", ("semop",), restartable=False),
    Target("blocked", ("semtimedop",), restartable=False),
    Target("blocked", ("msgrcv",), restartable=False),
    Target("blocked", ("msgsnd",), restartable=False),
    Target("own_sigusr2"),
    Target("cxx"),
    Target("rseq"),
    Target("generations"),
    Target("quiet", check=check_quiet),
    Target("filemap"),
    Target("kstate", scratch_dir=True),  # the lead's: fds, cwd, limits, timers
    # 0x5000000 taken, 2 TiB reservation, 10,000 mappings, VmFlags: the image
    # holds the touched pages only (16 MiB + 5 pages + 10,000 pages + a few).
    Target("corners", max_image=64 << 20),
    Target("sigstate"),  # pending signals and POSIX timers
    Target("rseq_own"),  # an rseq area of the program's own, not glibc's
    Target("procset", ("settings",)),  # subreaper, oom_score_adj, membarrier
    # Many runs in one mapping, where PAGEMAP_SCAN's answers went backwards.
    Target("scanpat", ("alternate",), max_image=48 << 20),
    Target("scanpat", ("third",), max_image=32 << 20),
    Target("scanpat", ("churn",)),
)
RESTARTABLE = tuple(t for t in TARGETS if t.restartable)


def target_args(target: Target, tmp: Path) -> list[str]:
    """The target's arguments, with a fresh scratch directory if it wants one."""
    if not target.scratch_dir:
        return list(target.args)
    scratch = tmp / f"{target.id}.scratch"
    scratch.mkdir()
    return [str(scratch), *target.args]


def resume(proc: Proc, target: Target) -> None:
    """Tell a restored target to go on and check itself."""
    if target.resume == "sigusr1":
        wait_restored(proc)
        os.kill(proc.pid, signal.SIGUSR1)
    else:
        proc.send("go\n")


def finish(proc: Proc, target: Target) -> None:
    """Resume, and assert PASS and exit status 0."""
    if target.before_go:
        target.before_go(proc)
    resume(proc, target)
    verdict = proc.wait_verdict()
    status = proc.wait_exit(kill=True)
    assert verdict == "PASS", f"{target.id}: {verdict}\n{proc.transcript()}"
    assert status == 0, f"{target.id}: PASS but {describe_status(status)}\n{proc.transcript()}"


def round_trip(
    procs: ProcTracker,
    tmp: Path,
    target: Target,
    variant: str = DEFAULT_VARIANT,
    generations: int = 1,
) -> tuple[Proc, Proc, list[int]]:
    """checkpoint -> kill -> restart, generations times, then go -> PASS.

    A restarted process checkpoints to the path its original was given
    (CKPT_IMAGE lives in libckpt's restored memory): every generation
    replaces the image at the same path. Returns the image sizes.
    """
    image = tmp / f"{target.id}.{variant}.img"
    original = start_target(procs, target_path(target.name, variant), image, target_args(target, tmp))
    checkpoint(original, image)
    original.kill()
    sizes = [image.stat().st_size]
    proc = restart(procs, image)
    for _ in range(2, generations + 1):
        wait_restored(proc)
        checkpoint(proc, image)
        proc.kill()
        sizes.append(image.stat().st_size)
        proc = restart(procs, image)
    finish(proc, target)
    if target.max_image is not None:
        for gen, size in enumerate(sizes, 1):
            assert size < target.max_image, f"image {gen}: {size} bytes, limit {target.max_image}"
    if target.check:
        target.check(original, proc)
    return original, proc, sizes

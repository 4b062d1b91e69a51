# SPDX-License-Identifier: GPL-2.0-or-later
"""``check``: can this machine checkpoint and restart? (like ``criu check``)

Each probe asks the kernel itself (an ioctl, a prctl, /proc), never a
version table, and says what is missing and what to do about it. The last
probe is a real round trip: /bin/sh is started with libckpt.so preloaded,
checkpointed while it waits in ``read``, killed, restarted by myrestart and
must then print the line it reads.

``required`` probes are what the default path (``extckpt run``, a signal,
``extckpt restart``) needs; the others enable a feature (original pid,
``extckpt attach``) and only warn.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import os
import platform
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from . import _pagemap
from ._native import libckpt_path, myrestart_path
from .errors import InstallError
from .launch import run_environment

CAP_SYS_ADMIN = 21
CAP_SYS_PTRACE = 19
CAP_CHECKPOINT_RESTORE = 40
PR_SET_MM = 35
PR_SET_MM_MAP_SIZE = 15
PR_TIMER_CREATE_RESTORE_IDS = 77
PR_TIMER_CREATE_RESTORE_IDS_GET = 2
MIN_KERNEL = (6, 7)  # PAGEMAP_SCAN


@dataclasses.dataclass(frozen=True)
class Probe:
    name: str
    ok: bool
    required: bool
    detail: str  # what was found
    hint: str = ""  # what to do when not ok


@dataclasses.dataclass(frozen=True)
class CheckResult:
    probes: list[Probe]

    @property
    def ok(self) -> bool:
        """Everything the default path needs is there."""
        return all(p.ok for p in self.probes if p.required)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _prctl(*args: int) -> tuple[int, int]:
    libc = _libc()
    libc.prctl.restype = ctypes.c_int
    ret = libc.prctl(*[ctypes.c_ulong(a) for a in args])
    return ret, ctypes.get_errno()


def _cap_effective() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def _has_cap(cap: int) -> bool:
    return bool(_cap_effective() >> cap & 1)


def probe_kernel() -> Probe:
    release = platform.release()
    nums = []
    for part in release.split("-")[0].split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        nums.append(int(digits) if digits else 0)
    version = (*nums, 0, 0)[:2]
    machine = platform.machine()
    ok = version >= MIN_KERNEL and machine == "x86_64"
    return Probe(
        "kernel",
        ok,
        True,
        f"Linux {release} on {machine}",
        "" if ok else "extckpt needs Linux 6.7 or newer (PAGEMAP_SCAN) on x86-64.",
    )


def probe_pagemap_scan() -> Probe:
    hint = "The kernel lacks PAGEMAP_SCAN (Linux 6.7): libckpt cannot find the pages to store."
    stack = next(
        (line.split()[0] for line in Path("/proc/self/maps").read_text().splitlines() if "[stack]" in line),
        None,
    )
    if stack is None:
        return Probe("PAGEMAP_SCAN", False, True, "no [stack] mapping to scan", hint)
    lo, hi = (int(x, 16) for x in stack.split("-"))
    fd = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
    try:
        runs = _pagemap.scan(fd, lo, hi, private=True)
    except _pagemap.Unsupported as e:
        return Probe("PAGEMAP_SCAN", False, True, f"ioctl failed: {e}", hint)
    finally:
        os.close(fd)
    ok = bool(runs) and all(lo <= a < b <= hi for a, b in runs)
    detail = f"works ({len(runs)} runs of touched pages in this process's stack)"
    if ok:
        return Probe("PAGEMAP_SCAN", True, True, detail)
    return Probe("PAGEMAP_SCAN", False, True, "answered nonsense for this process's stack", hint)


def probe_mm_map() -> Probe:
    size = ctypes.c_uint(0)
    libc = _libc()
    ret = libc.prctl(ctypes.c_int(PR_SET_MM), ctypes.c_ulong(PR_SET_MM_MAP_SIZE), ctypes.byref(size), 0, 0)
    err = ctypes.get_errno()
    ok = ret == 0 and size.value > 0
    return Probe(
        "PR_SET_MM_MAP",
        ok,
        True,
        f"available (struct of {size.value} bytes)" if ok else f"prctl failed: {os.strerror(err)}",
        ""
        if ok
        else "The kernel was built without CONFIG_CHECKPOINT_RESTORE: the program break "
        "and arg/env layout cannot be restored.",
    )


def probe_original_pid() -> Probe:
    ok = _has_cap(CAP_CHECKPOINT_RESTORE) or _has_cap(CAP_SYS_ADMIN)
    return Probe(
        "original pid (clone3 set_tid)",
        ok,
        False,
        "CAP_CHECKPOINT_RESTORE held: restarts get their original pid when it is free"
        if ok
        else "no CAP_CHECKPOINT_RESTORE: restarted programs get myrestart's pid",
        ""
        if ok
        else "Grant it to myrestart (setcap cap_checkpoint_restore+ep) or restart as root, "
        "if the program needs its pid.",
    )


def probe_rseq() -> Probe:
    try:
        size = ctypes.c_uint.in_dll(_libc(), "__rseq_size").value
    except ValueError:
        size = 0
    return Probe(
        "rseq",
        True,
        False,
        f"glibc registers an rseq area of {size} bytes: restored at restart"
        if size
        else "glibc registers no rseq area (nothing to restore)",
    )


def probe_timer_ids() -> Probe:
    ret, err = _prctl(PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_GET, 0, 0, 0)
    ok = ret >= 0
    return Probe(
        "POSIX timer ids",
        ok,
        False,
        "PR_TIMER_CREATE_RESTORE_IDS available: POSIX timers keep their ids"
        if ok
        else f"PR_TIMER_CREATE_RESTORE_IDS unavailable ({errno.errorcode.get(err, err)})",
        ""
        if ok
        else "Linux 6.17 or newer restores POSIX timers under their own ids; "
        "here a program's timers are not restored.",
    )


def probe_ptrace() -> Probe:
    scope_file = Path("/proc/sys/kernel/yama/ptrace_scope")
    try:
        scope = int(scope_file.read_text())
    except (OSError, ValueError):
        scope = 0
    privileged = _has_cap(CAP_SYS_PTRACE)
    ok = scope == 0 or (scope in (1, 2) and privileged)
    detail = f"{scope_file} is {scope}" + (", CAP_SYS_PTRACE held" if privileged else "")
    if scope == 3:
        hint = "ptrace is disabled until reboot (scope 3): `extckpt attach` cannot work; use kill -USR2."
    elif not ok:
        hint = (
            "`extckpt attach` needs root or CAP_SYS_PTRACE here, or "
            "`sysctl kernel.yama.ptrace_scope=0`; kill -USR2 works regardless."
        )
    else:
        hint = ""
    return Probe("ptrace (extckpt attach)", ok, False, detail, hint)


def probe_max_map_count() -> Probe:
    try:
        value = int(Path("/proc/sys/vm/max_map_count").read_text())
    except (OSError, ValueError):
        return Probe("vm.max_map_count", True, False, "unknown")
    return Probe(
        "vm.max_map_count",
        True,
        False,
        f"{value}: a program with up to that many mappings can be restarted",
    )


def probe_vdso() -> Probe:
    sizes = {}
    for line in Path("/proc/self/maps").read_text().splitlines():
        for name in ("[vdso]", "[vvar]", "[vvar_vclock]"):
            if line.endswith(name):
                lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                sizes[name] = hi - lo
    ok = "[vdso]" in sizes
    layout = ", ".join(f"{n} {s >> 10} KiB" for n, s in sizes.items())
    return Probe(
        "vDSO",
        ok,
        True,
        f"{layout}; images restart on kernels with this same layout",
        "" if ok else "No vDSO found: this kernel is not one extckpt knows.",
    )


def probe_native() -> Probe:
    try:
        lib, rst = libckpt_path(), myrestart_path()
    except InstallError as e:
        return Probe("bundled native files", False, True, e.message, e.hint)
    return Probe("bundled native files", True, True, f"{lib}, {rst}")


def _read_until(fd: int, want: bytes, deadline: float) -> bytes:
    got = b""
    while want not in got:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        got += chunk
    return got


def probe_round_trip(timeout: float = 20.0) -> Probe:
    """Checkpoint /bin/sh waiting in `read`, kill it, restart it."""
    name = "checkpoint and restart"
    sh = shutil.which("sh") or "/bin/sh"
    work = Path(tempfile.mkdtemp(prefix="extckpt-check-"))
    image = work / "sh.ckpt"
    procs: list[subprocess.Popen[bytes]] = []
    deadline = time.monotonic() + timeout

    def fail(detail: str, hint: str = "Run the test suite to see which part fails.") -> Probe:
        return Probe(name, False, True, detail, hint)

    try:
        env = run_environment(str(image), "USR2")
        orig = subprocess.Popen(
            [sh, "-c", 'echo ready; read line; echo "restored: $line"'],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=work,
        )
        procs.append(orig)
        if b"ready" not in _read_until(orig.stdout.fileno(), b"ready", deadline):
            return fail("the preloaded shell did not start")
        os.kill(orig.pid, signal.SIGUSR2)
        while not image.exists():
            if orig.poll() is not None or time.monotonic() > deadline:
                err = orig.stderr.read1(4096).decode(errors="replace").strip() if orig.poll() else ""
                return fail(f"no image was written{': ' + err if err else ''}")
            time.sleep(0.005)
        size = image.stat().st_size
        orig.kill()
        orig.wait()
        restarted = subprocess.Popen(
            [str(myrestart_path()), "--pid=never", str(image)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=work,
        )
        procs.append(restarted)
        restarted.stdin.write(b"ok\n")
        restarted.stdin.flush()
        out = _read_until(restarted.stdout.fileno(), b"restored: ok", deadline)
        if b"restored: ok" not in out:
            restarted.kill()
            err = restarted.stderr.read1(4096).decode(errors="replace").strip()
            return fail(f"the restarted shell did not go on ({err or 'no output'})")
        status = restarted.wait(max(0.1, deadline - time.monotonic()))
        if status != 0:
            return fail(f"the restarted shell exited with status {status}")
        return Probe(name, True, True, f"{sh} checkpointed ({size >> 10} KiB image) and restarted")
    except subprocess.TimeoutExpired:
        return fail(f"no answer within {timeout:.0f} s")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            for stream in (p.stdin, p.stdout, p.stderr):
                if stream:
                    stream.close()
        shutil.rmtree(work, ignore_errors=True)


PROBES: tuple[Callable[[], Probe], ...] = (
    probe_kernel,
    probe_pagemap_scan,
    probe_mm_map,
    probe_vdso,
    probe_native,
    probe_original_pid,
    probe_rseq,
    probe_timer_ids,
    probe_ptrace,
    probe_max_map_count,
)


def check(*, round_trip: bool = True) -> CheckResult:
    """Run every probe; the round trip last, and only if the others that
    it needs passed."""
    probes = [p() for p in PROBES]
    if round_trip:
        if all(p.ok for p in probes if p.required):
            probes.append(probe_round_trip())
        else:
            probes.append(Probe("checkpoint and restart", False, True, "not tried: see above"))
    return CheckResult(probes)

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Benchmark extckpt against the machine's own baselines, in one run.

    python3 benchmarks/run.py [--quick] [--reps N] [--dir DIR] [--out DIR]

For each workload (benchmarks/workload.c: touch 64 MiB, 512 MiB, 2 GiB; map
2 GiB and touch 64 MiB; a tiny program) and each repetition it measures:

- checkpoint time: from kill(SIGUSR2) to the image appearing at its path
  (libckpt renames it into place only when complete; watched with inotify);
- the program's pause, measured by the program itself (longest gap between
  two iterations of its CLOCK_MONOTONIC loop), synchronous and forked
  (CKPT_FORK=1);
- image size;
- restart time: from spawning ``native/myrestart IMAGE`` to the restored
  program's first line (it prints one as soon as it sees its clock jump);
- ``extckpt verify IMAGE PID`` against the original process, stopped with
  SIGSTOP right after its checkpoint (wall time, and the compare time that
  verify reports itself);
- baselines in the same run: dd of the same number of bytes into the same
  directory (bs=1M from /dev/zero, without and with conv=fdatasync), and
  ``cat IMAGE > /dev/null``.

Every timed write (ours and dd's) is preceded by the same warm-up: a file of
the same size is written into the same directory and deleted. On this VM
the first write into page-cache memory the kernel has not used recently is
several times slower (the guest's memory is faulted in from the host); the
warm-up makes ours and dd's see the same, recycled memory. The order of
ours and the baseline alternates across repetitions. Figures are medians
with min-max; ratios are taken within each repetition, then summarised.

Writes results.md, results.json and (when matplotlib is installed)
results.png into --out. Every process started here has a deadline and is
killed by pid in ``finally``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import dataclasses
import datetime
import json
import os
import platform
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
# EXTCKPT_NATIVE_DIR or --native: benchmark another build of native/ (e.g. an
# export of HEAD while native/ is being edited), as tests/support.py does.
NATIVE = Path(os.environ.get("EXTCKPT_NATIVE_DIR") or ROOT / "native").resolve()
MIB = 1 << 20
GIB = 1 << 30

DEADLINE = 60.0  # seconds, for any one wait or command
RESTART_SLACK = 0.020  # the target: restart <= 1.25 x cat + 20 ms


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    map_mib: int
    touch_mib: int

    @property
    def touched(self) -> int:
        return self.touch_mib * MIB


WORKLOADS = [
    Workload("tiny", 0, 0),
    Workload("64M", 64, 64),
    Workload("512M", 512, 512),
    Workload("2G", 2048, 2048),
    Workload("sparse-2G/64M", 2048, 64),
]
QUICK = ["tiny", "64M", "sparse-2G/64M"]


class BenchError(RuntimeError):
    """A process or the tools did not do what the protocol says."""


# ---- processes -----------------------------------------------------------------


class Procs:
    """Whatever was started here; kill_all() SIGKILLs it by pid and reaps it."""

    def __init__(self) -> None:
        self.popens: dict[int, subprocess.Popen] = {}
        self.others: set[int] = set()  # forked writers, reparented to us

    def spawn(self, argv, **kw) -> subprocess.Popen:
        p = subprocess.Popen([str(a) for a in argv], close_fds=True, **kw)
        self.popens[p.pid] = p
        return p

    def kill(self, p: subprocess.Popen) -> None:
        if p.poll() is None:
            with _ignore_esrch():
                os.kill(p.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=DEADLINE)
        for f in (p.stdin, p.stdout, p.stderr):
            if f:
                f.close()
        self.popens.pop(p.pid, None)

    def kill_other(self, pid: int) -> None:
        with _ignore_esrch():
            os.kill(pid, signal.SIGKILL)
        _waitpid_deadline(pid, DEADLINE)
        self.others.discard(pid)

    def reap_strays(self) -> None:
        """Kill and reap children we did not spawn: a program that myrestart
        restarted under its original pid (a child of myrestart, killed with
        it by PR_SET_PDEATHSIG) is reparented to us, the subreaper."""
        for pid in _children() - set(self.popens):
            self.kill_other(pid)

    def kill_all(self) -> None:
        for p in list(self.popens.values()):
            self.kill(p)
        for pid in list(self.others):
            self.kill_other(pid)
        self.reap_strays()


class _ignore_esrch:
    def __enter__(self):
        return self

    def __exit__(self, typ, val, tb):
        return isinstance(val, ProcessLookupError)


def _waitpid_deadline(pid: int, seconds: float) -> bool:
    """Reap a child that is not a Popen (a forked writer); True if it ended."""
    end = time.monotonic() + seconds
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return True
        if done:
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.001)


def _children() -> set[int]:
    pids: set[int] = set()
    for task in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):
            pids.update(int(x) for x in Path(f"/proc/self/task/{task}/children").read_text().split())
    return pids


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def become_subreaper() -> None:
    """Forked checkpointing's writer is orphaned on purpose (its go-between
    exits at once); as a subreaper we inherit it, so we can wait for it and
    kill it by pid."""
    PR_SET_CHILD_SUBREAPER = 36
    if _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


class Lines:
    """The stdout of a child, read without blocking, line by line."""

    def __init__(self, p: subprocess.Popen) -> None:
        self.p = p
        self.fd = p.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.buf = b""
        self.eof = False

    def next(self, deadline: float, prefix: str = "") -> tuple[str, float]:
        """The next line starting with prefix, and when it was read."""
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                text = line.decode(errors="replace")
                if text.startswith(prefix):
                    return text, time.monotonic()
            left = deadline - time.monotonic()
            if self.eof or left <= 0:
                err = b""
                if self.p.stderr:
                    os.set_blocking(self.p.stderr.fileno(), False)
                    with contextlib.suppress(OSError):
                        err = self.p.stderr.read() or b""
                state = "exited" if self.p.poll() is not None else "no output"
                raise BenchError(
                    f"{self.p.args[0]} (pid {self.p.pid}): {state} while waiting for {prefix or 'a line'!r};"
                    f" stderr: {err.decode(errors='replace').strip()[:300]!r}"
                )
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    chunk = os.read(self.fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    self.eof = True
                self.buf += chunk


# ---- the image appearing: inotify ------------------------------------------------

IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000


class DirWatch:
    """inotify on a directory: wait for a name to appear (rename or create)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        wd = _libc.inotify_add_watch(self.fd, str(directory).encode(), IN_MOVED_TO | IN_CREATE)
        if wd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {directory}")

    def drain(self) -> None:
        while True:
            try:
                if not os.read(self.fd, 65536):
                    return
            except BlockingIOError:
                return

    def wait_for(self, name: str, deadline: float) -> float:
        """When `name` appeared in the directory (monotonic seconds)."""
        target = name.encode()
        while True:
            if (self.dir / name).exists():
                return time.monotonic()
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"{self.dir / name} did not appear in time")
            r, _, _ = select.select([self.fd], [], [], left)
            if not r:
                continue
            now = time.monotonic()
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            off = 0
            while off + 16 <= len(data):
                _wd, _mask, _cookie, length = struct.unpack_from("iIII", data, off)
                ev_name = data[off + 16 : off + 16 + length].rstrip(b"\0")
                off += 16 + length
                if ev_name == target:
                    return now

    def close(self) -> None:
        os.close(self.fd)


# ---- commands and baselines ------------------------------------------------------


def run_timed(
    argv, *, stdout=subprocess.DEVNULL, timeout: float = DEADLINE
) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.monotonic()
    r = subprocess.run(
        [str(a) for a in argv],
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        timeout=timeout,
        check=False,
    )
    dt = time.monotonic() - t0
    if r.returncode not in (0, 1):  # verify exits 1 when it finds differences
        raise BenchError(
            f"{argv[0]} failed ({r.returncode}): {r.stderr.decode(errors='replace').strip()[:300]}"
        )
    return dt, r


def dd_write(path: Path, nbytes: int, fsync: bool = False) -> float:
    argv = [
        "dd",
        "if=/dev/zero",
        f"of={path}",
        "bs=1M",
        f"count={max(nbytes, 1)}",
        "iflag=count_bytes",
        "status=none",
    ]
    if fsync:
        argv.append("conv=fdatasync")
    try:
        dt, _ = run_timed(argv)
    finally:
        with_unlink(path)
    return dt


def with_unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def warm_up(directory: Path, nbytes: int) -> None:
    """Write and delete a file of nbytes in directory: the next write of that
    size gets page-cache memory the guest has used recently."""
    dd_write(directory / "warmup.bin", nbytes)


def cat_time(path: Path) -> float:
    dt, _ = run_timed(["cat", path])
    return dt


# ---- one workload, one repetition --------------------------------------------------


class Bench:
    def __init__(self, args, workdir: Path, workload_bin: Path, procs: Procs) -> None:
        self.args = args
        self.libckpt = args.native / "libckpt.so"
        self.myrestart = args.native / "myrestart"
        self.dir = workdir
        self.bin = workload_bin
        self.procs = procs
        self.watch = DirWatch(workdir)
        self.image_size: dict[str, int] = {}
        # The installed command, as a user runs it; else the same through python.
        exe = shutil.which("extckpt")
        self.extckpt = [exe] if exe else [sys.executable, "-c", "from extckpt.cli import main; main()"]

    def start(self, w: Workload, image: Path, fork: bool) -> tuple[subprocess.Popen, Lines]:
        env = dict(os.environ)
        env.update(
            LD_PRELOAD=str(self.libckpt),
            CKPT_IMAGE=str(image),
            CKPT_SIGNAL="SIGUSR2",
            WORKLOAD_DUMP=str(self.dir / "dump.bin"),
        )
        env.pop("CKPT_FSYNC", None)
        env.pop("CKPT_VERBOSE", None)
        if fork:
            env["CKPT_FORK"] = "1"
        else:
            env.pop("CKPT_FORK", None)
        p = self.procs.spawn(
            [self.bin, w.map_mib, w.touch_mib],
            env=env,
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        lines = Lines(p)
        lines.next(time.monotonic() + DEADLINE, "ready")
        return p, lines

    def gaps(self, p: subprocess.Popen, lines: Lines) -> tuple[int, list[tuple[int, int]]]:
        """Ask the program for its longest gap and its recorded gaps (ns) since
        the last time; it resets them."""
        os.kill(p.pid, signal.SIGUSR1)
        text, _ = lines.next(time.monotonic() + DEADLINE, "maxgap ")
        fields = text.split()
        recorded = [tuple(int(x) for x in f.split(":")) for f in fields[3:]]
        return int(fields[1]), recorded

    def rewrite(self, pid: int, lines: Lines) -> float:
        """Ask the program to write all its touched memory once more; the
        seconds that took, as the program measured them."""
        os.kill(pid, signal.SIGHUP)
        text, _ = lines.next(time.monotonic() + DEADLINE, "rewrote ")
        return int(text.split()[1]) / 1e9

    def bare_fork(self, pid: int, lines: Lines) -> float:
        """Have the program time a bare fork() of itself: the page tables a
        forked checkpoint copies, and nothing else."""
        os.kill(pid, signal.SIGALRM)
        text, _ = lines.next(time.monotonic() + DEADLINE, "forked ")
        ns = int(text.split()[1])
        if ns < 0:
            raise BenchError("the workload could not fork")
        return ns / 1e9

    def dump(self, pid: int, lines: Lines) -> float:
        """Have the program write() its touched memory into a file, as a
        plain program would: the same bytes from the same memory as its
        checkpoint, without the checkpoint (the program's own clock)."""
        os.kill(pid, signal.SIGURG)
        text, _ = lines.next(time.monotonic() + DEADLINE, "dumped ")
        with_unlink(self.dir / "dump.bin")
        ns = int(text.split()[1])
        if ns < 0:
            raise BenchError("the workload could not write its memory to a file")
        return ns / 1e9

    def checkpoint(
        self, p: subprocess.Popen, lines: Lines, image: Path, after=None
    ) -> tuple[float, float, float]:
        """Signal p, wait for its image; (seconds until the image appeared,
        the program's pause for this checkpoint, its longest gap in the
        window). The pause is the recorded gap that the signal fell into:
        the first one that ends after kill()."""
        self.gaps(p, lines)  # reset the program's record
        self.watch.drain()
        t0_ns = time.monotonic_ns()
        t0 = t0_ns / 1e9
        os.kill(p.pid, signal.SIGUSR2)
        t1 = self.watch.wait_for(image.name, t0 + DEADLINE)
        if after:
            after()
        max_gap, recorded = self.gaps(p, lines)
        ours = [length for start, length in recorded if start + length >= t0_ns]
        if not ours:
            raise BenchError(f"the program recorded no gap after the checkpoint signal: {recorded[:5]}")
        return t1 - t0, ours[0] / 1e9, max_gap / 1e9

    def expected_size(self, w: Workload) -> int:
        return self.image_size.get(w.name, w.touched + MIB)

    def rep(self, w: Workload, rep: int) -> dict:
        out: dict = {}
        image = self.dir / f"{w.name.replace('/', '_')}.img"
        ours_first = rep % 2 == 0
        with_unlink(image)

        # -- synchronous checkpoint, dd baselines, verify, restart, cat
        p, lines = self.start(w, image, fork=False)
        try:
            out["rewrite_s"] = self.rewrite(p.pid, lines)

            def ours() -> None:
                warm_up(self.dir, self.expected_size(w))
                out["ckpt_s"], out["pause_sync_s"], out["window_max_gap_sync_s"] = self.checkpoint(
                    p, lines, image
                )
                out["image_bytes"] = image.stat().st_size
                self.image_size[w.name] = out["image_bytes"]

            def baseline() -> None:
                n = self.expected_size(w)
                warm_up(self.dir, n)
                out["dd_s"] = dd_write(self.dir / "dd.bin", n)
                warm_up(self.dir, n)
                out["write_mem_s"] = self.dump(p.pid, lines)
                warm_up(self.dir, n)
                out["dd_fsync_s"] = dd_write(self.dir / "dd.bin", n, fsync=True)
                out["dd_bytes"] = n

            for step in (ours, baseline) if ours_first else (baseline, ours):
                step()
            os.kill(p.pid, signal.SIGSTOP)  # hold it still for verify

            dt, r = run_timed([*self.extckpt, "verify", "--json", image, p.pid], stdout=subprocess.PIPE)
            v = json.loads(r.stdout)
            out["verify_s"] = dt
            out["verify_compare_s"] = v["seconds"]
            out["verify_bytes"] = v["compared_bytes"]
            out["verify_agrees"] = v["agrees"]
            out["verify_differ_pages"] = sum(x["pages_differ"] for x in v["regions"])
        finally:
            self.procs.kill(p)

        def restart(options: list[str], key: str) -> None:
            """Restart; then have the program rewrite all its memory, which
            shows what the restart left for later (faults of pages not yet
            in place; nothing since issue 18)."""
            t0 = time.monotonic()
            q = self.procs.spawn(
                [self.myrestart, *options, image],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            try:
                lines = Lines(q)
                _, t1 = lines.next(t0 + DEADLINE, "gap ")
                out[f"{key}_s"] = t1 - t0
                out[f"rewrite_after_{key}_s"] = self.rewrite(q.pid, lines)
            finally:
                self.procs.kill(q)
                self.procs.reap_strays()

        def cat() -> None:
            out["cat_s"] = cat_time(image)

        steps = [lambda: restart([], "restart"), cat]
        for step in steps if ours_first else steps[::-1]:
            step()
        with_unlink(image)

        # -- forked checkpoint
        p, lines = self.start(w, image, fork=True)
        try:
            out["bare_fork_s"] = self.bare_fork(p.pid, lines)
            before = _children()
            warm_up(self.dir, self.expected_size(w))

            def reap_writer() -> None:
                # The image is complete; its writer exits next. The pause
                # is read after that, so it covers the whole write.
                writers = _children() - before - set(self.procs.popens)
                self.procs.others |= writers
                for pid in writers:
                    if not _waitpid_deadline(pid, DEADLINE):
                        raise BenchError(f"the forked writer {pid} did not exit")
                    self.procs.others.discard(pid)
                out["fork_writers"] = len(writers)

            out["ckpt_fork_s"], out["pause_fork_s"], out["window_max_gap_fork_s"] = self.checkpoint(
                p, lines, image, after=reap_writer
            )
            out["fork_image_bytes"] = image.stat().st_size
        finally:
            self.procs.kill(p)
            with_unlink(image)
        return out


# ---- summary ---------------------------------------------------------------------


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def derive(reps: list[dict]) -> dict:
    """Per-repetition ratios, then medians with min-max of everything."""
    keys = [k for k in reps[0] if isinstance(reps[0][k], (int, float)) and not isinstance(reps[0][k], bool)]
    series = {k: [r[k] for r in reps] for k in keys}
    series["ckpt_over_dd"] = [r["ckpt_s"] / r["dd_s"] for r in reps]
    series["ckpt_over_dd_fsync"] = [r["ckpt_s"] / r["dd_fsync_s"] for r in reps]
    series["ckpt_over_write_mem"] = [r["ckpt_s"] / r["write_mem_s"] for r in reps]
    series["write_mem_over_dd"] = [r["write_mem_s"] / r["dd_s"] for r in reps]
    series["restart_over_cat20"] = [r["restart_s"] / (r["cat_s"] + RESTART_SLACK) for r in reps]
    # What the restart leaves for later: the first rewrite of all memory
    # after it, less the same rewrite in the original process.
    series["deferred_s"] = [r["rewrite_after_restart_s"] - r["rewrite_s"] for r in reps]
    series["rewrite_after_over_original"] = [r["rewrite_after_restart_s"] / r["rewrite_s"] for r in reps]
    series["fork_over_sync_pause"] = [r["pause_fork_s"] / r["pause_sync_s"] for r in reps]
    series["fork_pause_over_bare_fork"] = [r["pause_fork_s"] / r["bare_fork_s"] for r in reps]
    series["verify_gibps"] = [r["verify_bytes"] / GIB / r["verify_compare_s"] for r in reps]
    series["verify_wall_gibps"] = [r["verify_bytes"] / GIB / r["verify_s"] for r in reps]
    return {k: summary(v) for k, v in series.items()}


def fmt_t(s: dict) -> str:
    def one(x: float) -> str:
        if x < 0.001:
            return f"{x * 1e6:.0f} µs"
        if x < 1:
            return f"{x * 1e3:.1f} ms" if x < 0.1 else f"{x * 1e3:.0f} ms"
        return f"{x:.2f} s"

    if s["n"] == 1 or s["min"] == s["max"]:
        return one(s["median"])
    return f"{one(s['median'])} ({one(s['min'])}–{one(s['max'])})"


def fmt_r(s: dict, digits: int = 2) -> str:
    if s["n"] == 1:
        return f"{s['median']:.{digits}f}"
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def fmt_b(n: float) -> str:
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}" if n % size else f"{n / size:.0f} {unit}"
    return f"{n:.0f} B"


def targets(results: dict[str, dict]) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for each target the run can judge."""
    rows = []

    def get(name):
        return results.get(name, {}).get("stats")

    for name in ("512M", "2G"):
        s = get(name)
        if s:
            m = s["ckpt_over_dd"]["median"]
            rows.append(
                (f"checkpoint ≤ 1.25 × dd at {name}", f"{m:.2f} × dd", "met" if m <= 1.25 else "missed")
            )
    s = get("2G")
    if s:
        m = s["pause_fork_s"]["median"]
        rows.append(
            (
                "forked pause ≤ 50 ms at 2 GiB",
                f"{m * 1e3:.1f} ms (max {s['pause_fork_s']['max'] * 1e3:.1f})",
                "met" if m <= 0.050 else "missed",
            )
        )
    s = get("sparse-2G/64M")
    if s:
        m = s["image_bytes"]["max"]
        lim = 64 * MIB + 2 * MIB
        rows.append(
            (
                "sparse image ≤ touched + 2 MiB",
                f"64 MiB + {fmt_b(m - 64 * MIB)}",
                "met" if m <= lim else "missed",
            )
        )
    s = get("tiny")
    if s:
        m = s["image_bytes"]["max"]
        rows.append(("tiny program image ≤ 1 MiB", fmt_b(m), "met" if m <= MIB else "missed"))
    for name, s in ((n, get(n)) for n in ("64M", "512M", "2G", "sparse-2G/64M", "tiny")):
        if s:
            m = s["restart_over_cat20"]["median"]
            rows.append(
                (
                    f"restart ≤ 1.25 × cat + 20 ms ({name})",
                    f"{m:.2f} × (cat + 20 ms)",
                    "met" if m <= 1.25 else "missed",
                )
            )
    big = [n for n in ("2G", "512M") if get(n)]
    if big:
        s = get(big[0])
        compare = 1 / s["verify_gibps"]["median"]
        wall = 1 / s["verify_wall_gibps"]["median"]
        rows.append(
            (
                "verify of 1 GiB ≤ 0.5 s",
                f"{compare:.2f} s compare, {wall:.2f} s wall (scaled from {big[0]})",
                ("met" if wall <= 0.5 else "met for the compare, missed wall")
                if compare <= 0.5
                else "missed",
            )
        )
    return rows


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _touched(fmt):
    """A column that means nothing for a workload that touched nothing."""
    return lambda w, s: fmt(w, s) if w["touched"] else "–"


# (header, cell of one workload given its workload dict and its stats)
CHECKPOINT_COLUMNS = [
    ("touched", lambda w, s: f"{fmt_b(w['touched'])} of {fmt_b(w['map_mib'] * MIB)}"),
    ("image", lambda w, s: fmt_b(s["image_bytes"]["median"])),
    ("image/touched", _touched(lambda w, s: f"{s['image_bytes']['median'] / w['touched']:.3f}")),
    ("checkpoint", lambda w, s: fmt_t(s["ckpt_s"])),
    ("dd", lambda w, s: fmt_t(s["dd_s"])),
    ("ckpt/dd", lambda w, s: fmt_r(s["ckpt_over_dd"])),
    ("write() of its memory", _touched(lambda w, s: fmt_t(s["write_mem_s"]))),
    ("ckpt/write()", _touched(lambda w, s: fmt_r(s["ckpt_over_write_mem"]))),
    ("dd fdatasync", lambda w, s: fmt_t(s["dd_fsync_s"])),
    ("ckpt/dd fdatasync", lambda w, s: fmt_r(s["ckpt_over_dd_fsync"])),
    ("forked: image appears", lambda w, s: fmt_t(s["ckpt_fork_s"])),
]
PAUSE_RESTART_VERIFY_COLUMNS = [
    ("pause sync", lambda w, s: fmt_t(s["pause_sync_s"])),
    ("pause forked", lambda w, s: fmt_t(s["pause_fork_s"])),
    ("forked/sync", lambda w, s: fmt_r(s["fork_over_sync_pause"], 3)),
    ("bare fork()", lambda w, s: fmt_t(s["bare_fork_s"])),
    ("forked/fork()", lambda w, s: fmt_r(s["fork_pause_over_bare_fork"])),
    ("restart", lambda w, s: fmt_t(s["restart_s"])),
    ("cat image", lambda w, s: fmt_t(s["cat_s"])),
    ("restart/(cat+20 ms)", lambda w, s: fmt_r(s["restart_over_cat20"])),
    ("verify (wall)", lambda w, s: fmt_t(s["verify_s"])),
    ("verify compare", lambda w, s: fmt_t(s["verify_compare_s"])),
    (
        "compare GiB/s",
        lambda w, s: fmt_r(s["verify_gibps"]) if s["verify_bytes"]["median"] >= 16 * MIB else "–",
    ),
]
RESTART_COLUMNS = [
    ("restart", lambda w, s: fmt_t(s["restart_s"])),
    ("cat image", lambda w, s: fmt_t(s["cat_s"])),
    ("/(cat+20 ms)", lambda w, s: fmt_r(s["restart_over_cat20"])),
    ("rewrite, original", lambda w, s: fmt_t(s["rewrite_s"])),
    ("rewrite after restart", lambda w, s: fmt_t(s["rewrite_after_restart_s"])),
    ("after/original", lambda w, s: fmt_r(s["rewrite_after_over_original"])),
]


def table(results: dict[str, dict], columns) -> list[str]:
    """One row per workload, one column per (header, cell) of columns."""
    rows = [[name, *(cell(r["workload"], r["stats"]) for _, cell in columns)] for name, r in results.items()]
    return md_table(["workload", *(h for h, _ in columns)], rows)


def markdown(meta: dict, results: dict[str, dict]) -> str:
    L = [
        f"Run {meta['date']} on {meta['host']} (git {meta['git']}): {meta['cpus']} CPUs, {meta['kernel']},"
        f" {meta['fs']}; {meta['reps']} repetitions per workload, median (min–max);"
        f" {meta['seconds']} s in all.",
        f"Page cache drop: {meta['drop_caches']}. Before each timed write (ours and dd's) a file of the same"
        " size is written and deleted in the same directory; ours and the baseline alternate in order.",
        "",
        "Checkpoint (synchronous: from kill() to the image at its path) against dd of the same number"
        " of bytes into the same directory (bs=1M from /dev/zero), against the program itself writing"
        " its touched memory into a file there (1 MiB write() calls, timed by the program: the same bytes"
        " from the same memory, which dd does not read), and the forked checkpoint's image:",
        "",
    ]
    L += table(results, CHECKPOINT_COLUMNS)
    L += [
        "",
        "The program's pause (the gap in its own CLOCK_MONOTONIC loop that the signal fell into), a bare"
        " fork() of the program timed by itself (the page tables a forked checkpoint copies), restart"
        " (from spawning myrestart to the program's first line) against cat IMAGE > /dev/null, and"
        " `extckpt verify` of the original process, stopped (wall time of the command, and the compare"
        " time it reports):",
        "",
    ]
    L += table(results, PAUSE_RESTART_VERIFY_COLUMNS)
    L += [
        "",
        "Restart (every page copied into place and checked before the program runs) against cat of the"
        " image, and what it leaves for later: the program's first rewrite of all its memory after the"
        " restart, against the same rewrite in the original process before the checkpoint (the"
        " program's own clock):",
        "",
    ]
    L += table(results, RESTART_COLUMNS)
    L += ["", "Targets:", ""]
    L += md_table(["target", "measured (median)", "verdict"], [list(t) for t in targets(results)])
    L.append("")
    return "\n".join(L)


def chart(results: dict[str, dict], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = list(results)
    series = [
        ("checkpoint", "ckpt_s"),
        ("dd", "dd_s"),
        ("dd fdatasync", "dd_fsync_s"),
        ("restart", "restart_s"),
        ("cat", "cat_s"),
        ("verify (wall)", "verify_s"),
        ("pause forked", "pause_fork_s"),
    ]
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=80)
    width = 0.8 / len(series)
    for i, (label, key) in enumerate(series):
        med = [results[n]["stats"][key]["median"] for n in names]
        lo = [m - results[n]["stats"][key]["min"] for m, n in zip(med, names, strict=False)]
        hi = [results[n]["stats"][key]["max"] - m for m, n in zip(med, names, strict=False)]
        xs = [j + (i - len(series) / 2 + 0.5) * width for j in range(len(names))]
        ax.bar(xs, med, width, yerr=[lo, hi], label=label, capsize=2)
    ax.set_yscale("log")
    ax.set_ylabel("seconds (median, min–max)")
    ax.set_xticks(range(len(names)), names)
    ax.legend(fontsize=8, ncol=4)
    ax.set_title("extckpt: checkpoint, restart, verify vs dd and cat")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


# ---- setup -----------------------------------------------------------------------


def build(workdir: Path, native: Path) -> Path:
    subprocess.run(["make", "-s", "-C", native], check=True, timeout=600, stdin=subprocess.DEVNULL)
    exe = workdir / "workload"
    subprocess.run(
        ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", exe, BENCH / "workload.c"],
        check=True,
        timeout=120,
    )
    return exe


def drop_caches_state() -> str:
    """Whether this run could drop the page cache, found without doing it
    (it would slow down everyone else on the machine): CAP_SYS_ADMIN and
    /proc/sys/vm/drop_caches writable."""
    cap_eff = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                cap_eff = int(line.split()[1], 16)
    CAP_SYS_ADMIN = 21
    if cap_eff >> CAP_SYS_ADMIN & 1 and os.access("/proc/sys/vm/drop_caches", os.W_OK):
        return "possible here (CAP_SYS_ADMIN), not used: the warm-up is what makes ours and dd comparable"
    return "not possible here (no CAP_SYS_ADMIN or /proc/sys/vm/drop_caches read-only)"


def fs_type(path: Path) -> str:
    best, fstype = "", "?"
    real = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            mnt = parts[1].replace("\\040", " ")
            if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                best, fstype = mnt, f"{parts[2]} ({parts[0]})"
    return f"{fstype} at {real}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="tiny, 64M and sparse only, 2 repetitions (< 30 s)")
    ap.add_argument("--reps", type=int, help="repetitions per workload (default 3, --quick 2)")
    ap.add_argument(
        "--dir", type=Path, help="directory for images and dd files (default: a new one in $TMPDIR or /tmp)"
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=BENCH / "results",
        help="where results.md/.json/.png go (default benchmarks/results)",
    )
    ap.add_argument(
        "--native",
        type=Path,
        default=NATIVE,
        help="the native/ directory to build and use (default $EXTCKPT_NATIVE_DIR or native/)",
    )
    ap.add_argument("--workloads", help="comma-separated subset of: " + ", ".join(w.name for w in WORKLOADS))
    args = ap.parse_args(argv)
    args.native = args.native.resolve()

    names = (
        args.workloads.split(",")
        if args.workloads
        else (QUICK if args.quick else [w.name for w in WORKLOADS])
    )
    chosen = [w for w in WORKLOADS if w.name in names]
    if len(chosen) != len(names):
        ap.error(f"unknown workload in {names}")
    reps = args.reps or (2 if args.quick else 3)

    base = args.dir or Path(os.environ.get("TMPDIR", "/tmp"))
    base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="extckpt-bench-", dir=base))
    procs = Procs()
    t_start = time.monotonic()
    try:
        need = 2 * max(w.touched + MIB for w in chosen) + 512 * MIB
        st = os.statvfs(workdir)
        free = st.f_bavail * st.f_frsize
        if free < need:
            print(f"run.py: {workdir} has {fmt_b(free)} free, needs {fmt_b(need)}", file=sys.stderr)
            return 1
        exe = build(workdir, args.native)
        become_subreaper()
        meta = {
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "kernel": "Linux " + platform.release(),
            "fs": fs_type(workdir),
            "free_bytes": free,
            "reps": reps,
            "drop_caches": drop_caches_state(),
            "native": str(args.native),
            # The package `extckpt verify` runs (PYTHONPATH can point at another tree).
            "extckpt_package": subprocess.run(
                [sys.executable, "-c", "import extckpt; print(extckpt.__file__)"],
                capture_output=True,
                text=True,
                check=False,
                cwd="/",
            ).stdout.strip(),
            "git": subprocess.run(
                ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip(),
        }
        bench = Bench(args, workdir, exe, procs)
        results: dict[str, dict] = {}
        for w in chosen:
            runs = []
            for i in range(reps):
                t = time.monotonic()
                runs.append(bench.rep(w, i))
                r = runs[-1]
                print(
                    f"{w.name:>14} rep {i + 1}/{reps}: ckpt {r['ckpt_s']:.3f} s, dd {r['dd_s']:.3f} s,"
                    f" restart {r['restart_s']:.3f} s ({time.monotonic() - t:.1f} s)",
                    file=sys.stderr,
                )
            results[w.name] = {
                "workload": {**dataclasses.asdict(w), "touched": w.touched},
                "reps": runs,
                "stats": derive(runs),
            }
        meta["seconds"] = round(time.monotonic() - t_start, 1)
        args.out.mkdir(parents=True, exist_ok=True)
        md = markdown(meta, results)
        (args.out / "results.md").write_text(md)
        (args.out / "results.json").write_text(
            json.dumps({"meta": meta, "results": results, "targets": targets(results)}, indent=1) + "\n"
        )
        png = chart(results, args.out / "results.png")
        print(md)
        names = "results.md, results.json" + (", results.png" if png else "")
        print(f"{names} in {args.out} ({meta['seconds']} s)")
        return 0
    finally:
        procs.kill_all()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

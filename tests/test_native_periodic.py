# SPDX-License-Identifier: GPL-2.0-or-later
"""CKPT_INTERVAL: periodic checkpoints by a timer of libckpt's own (issue 13).

The program must not notice: its own POSIX timers keep their ids and keep
firing, the library's timer is in no image, and a restarted program goes
on checkpointing itself without being asked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import (
    DEADLINE,
    HarnessError,
    Target,
    finish,
    restart,
    start_target,
    target_path,
    wait_restored,
)

from extckpt.show import show

SIGSTATE = Target("sigstate")


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def wait_new_images(proc, image: Path, count: int, timeout: float = DEADLINE) -> None:
    """Wait, sending nothing, until count new images have been renamed in."""
    seen = [_identity(image)]
    deadline = time.monotonic() + timeout
    while len(seen) <= count:
        now = _identity(image)
        if now is not None and now != seen[-1]:
            seen.append(now)
        proc.pump(0)
        if b"libckpt:" in proc.err:
            raise HarnessError(f"a checkpoint failed:\n{proc.transcript()}")
        if not proc.alive():
            raise HarnessError(f"died:\n{proc.transcript()}")
        if time.monotonic() > deadline:
            raise HarnessError(f"{len(seen) - 1} of {count} images within {timeout} s:\n{proc.transcript()}")
        time.sleep(0.002)


def _timers(pid: int) -> list[tuple[int, int]]:
    """(id, signal) of each POSIX timer of the process."""
    out, tid = [], None
    for line in Path(f"/proc/{pid}/timers").read_text().splitlines():
        if line.startswith("ID: "):
            tid = int(line[4:])
        elif line.startswith("signal: ") and tid is not None:
            out.append((tid, int(line[8:].split("/")[0])))
    return sorted(out)


@pytest.mark.usefixtures("built")
def test_periodic_images_and_the_program_runs_on(procs, tmp_path):
    image = tmp_path / "quiet.img"
    proc = start_target(procs, target_path("quiet"), image, env={"CKPT_INTERVAL": "0.1"})
    wait_new_images(proc, image, 4)
    finish(proc, Target("quiet"))


@pytest.mark.usefixtures("built")
def test_the_library_timer_is_in_no_image_and_comes_back(procs, tmp_path):
    image = tmp_path / "sigstate.img"
    proc = start_target(procs, target_path("sigstate"), image, env={"CKPT_INTERVAL": "0.2"})
    # The program's three timers got ids 0, 1, 2, as without libckpt; ours
    # sends the checkpoint signal.
    before = _timers(proc.pid)
    program = [t for t in before if t[1] != signal.SIGUSR2]
    assert [t[0] for t in program] == [0, 1, 2], before
    assert len(before) == 4, before
    wait_new_images(proc, image, 1)
    assert all(t.signal != "SIGUSR2" for t in show(image).timers), show(image).timers
    proc.kill()
    restarted = restart(procs, image)
    wait_restored(restarted, image)
    after = _timers(restarted.pid)
    assert [t for t in after if t[1] != signal.SIGUSR2] == program, after
    assert len(after) == 4, after  # ours again, once
    # It checkpoints itself again, unasked.
    wait_new_images(restarted, image, 2)
    finish(restarted, SIGSTATE)


@pytest.mark.usefixtures("built")
def test_a_bad_interval_costs_only_the_periodic_checkpoints(procs, tmp_path):
    image = tmp_path / "quiet.img"
    proc = start_target(procs, target_path("quiet"), image, env={"CKPT_INTERVAL": "ten"}, wait_ready=False)
    proc.wait_line("ready")
    assert "CKPT_INTERVAL is not a number of seconds" in proc.stderr
    os.kill(proc.pid, signal.SIGUSR2)  # still checkpointable by signal
    deadline = time.monotonic() + DEADLINE
    while not image.exists():
        assert proc.alive() and time.monotonic() < deadline, proc.transcript()
        time.sleep(0.002)


@pytest.mark.usefixtures("built")
def test_extckpt_run_every(procs, tmp_path):
    image = tmp_path / "quiet.img"
    argv = [sys.executable, "-m", "extckpt.cli", "run", "--every", "0.1s", "--image", str(image), "--"]
    proc = procs.start([*argv, target_path("quiet")])
    proc.wait_line("ready")
    wait_new_images(proc, image, 3)
    finish(proc, Target("quiet"))


def test_extckpt_run_every_refuses_a_bad_duration(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "extckpt.cli", "run", "--every", "soon", "--", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 2, r
    assert "'soon' is not a duration" in r.stderr


def test_children_take_no_periodic_checkpoints(procs, tmp_path):
    """A child that the program execs inherits CKPT_INTERVAL but is not the
    process the image is of: it must not arm a timer of its own (it would
    log, every interval, that it does not checkpoint)."""
    image = tmp_path / "sh.img"
    script = "sleep 0.6; echo done"
    proc = start_target(
        procs, Path("/bin/sh"), image, ["-c", script], env={"CKPT_INTERVAL": "0.1"}, wait_ready=False
    )
    proc.wait_line("done")
    assert proc.wait_exit() == 0, proc.transcript()
    assert "not checkpointing" not in proc.stderr, proc.transcript()
    assert image.exists()  # the shell itself was checkpointed

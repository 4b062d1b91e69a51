# SPDX-License-Identifier: GPL-2.0-or-later
"""Restarting under the original pid (myrestart --pid=try|never|require).

With the original pid, the program runs as a child of myrestart, which
passes on the signals sent to it and exits as the program does. When the
pid is taken, try says so in one line and goes on with myrestart's own,
require refuses with CKPT_EXIT_PID, never does not try.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import support
from support import DEADLINE, HarnessError, checkpoint, header_defines, start_target, target_path

pytestmark = pytest.mark.usefixtures("built")


def ppid_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None


def wait_program_under(pid: int, parent: support.Proc, image) -> None:
    """Wait until pid is the restored program, child of parent, with the
    checkpoint signal's handler back (the restore is over)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        if ppid_of(pid) == parent.pid:
            try:
                with open(f"/proc/{pid}/maps") as f:
                    maps = f.read()
                with open(f"/proc/{pid}/status") as f:
                    caught = next(int(x.split()[1], 16) for x in f if x.startswith("SigCgt:"))
            except (FileNotFoundError, ProcessLookupError, StopIteration):
                maps, caught = "", 0
            if "libckpt.so" in maps and str(image) not in maps and caught & (1 << (signal.SIGUSR2 - 1)):
                return
        if not parent.alive():
            raise HarnessError(f"myrestart ended early:\n{parent.transcript()}")
        if time.monotonic() > deadline:
            raise HarnessError(f"pid {pid} did not come back under {parent.pid}:\n{parent.transcript()}")
        time.sleep(0.02)


def checkpointed(procs, tmp_path, name="tls"):
    image = tmp_path / f"{name}.img"
    proc = start_target(procs, target_path(name), image)
    checkpoint(proc, image)
    return proc, image


def restarted_under_pid(procs, tmp_path, pid_mode="require", name="tls"):
    """Checkpoint a target, kill it (the pid is free), restart it under its
    pid; returns (pid, myrestart's Proc, image) once it is back."""
    original, image = checkpointed(procs, tmp_path, name)
    pid = original.pid
    original.kill()
    restarted = support.restart(procs, image, pid_mode=pid_mode)
    wait_program_under(pid, restarted, image)
    return pid, restarted, image


def test_restart_under_original_pid(procs, tmp_path):
    _pid, restarted, _image = restarted_under_pid(procs, tmp_path, "try")
    restarted.send("go\n")  # stdin is shared with the child
    assert restarted.wait_verdict() == "PASS", restarted.transcript()
    assert restarted.wait_exit() == 0, restarted.transcript()
    assert "cannot restart as pid" not in restarted.stderr, restarted.transcript()


def test_signals_and_exit_status_are_passed_on(procs, tmp_path):
    """SIGUSR1 to myrestart reaches the spinning regs target; a SIGTERM
    sent to myrestart kills the program, and myrestart dies the same way."""
    pid, restarted, _image = restarted_under_pid(procs, tmp_path, name="regs")
    os.kill(restarted.pid, signal.SIGUSR1)
    assert restarted.wait_verdict() == "PASS", restarted.transcript()
    assert restarted.wait_exit() == 0

    pid, restarted, _image = restarted_under_pid(procs, tmp_path)
    os.kill(restarted.pid, signal.SIGTERM)
    assert restarted.wait_exit() == -signal.SIGTERM, restarted.transcript()
    assert ppid_of(pid) is None, "the program outlived myrestart"


def test_killing_myrestart_kills_the_program(procs, tmp_path):
    """SIGKILL cannot be passed on: the program must not be left behind."""
    pid, restarted, _image = restarted_under_pid(procs, tmp_path)
    os.kill(restarted.pid, signal.SIGKILL)
    restarted.wait_exit()
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                break  # dead, waiting for init to reap it
        time.sleep(0.02)
    else:
        if os.path.exists(f"/proc/{pid}"):
            os.kill(pid, signal.SIGKILL)
            pytest.fail("the program outlived a SIGKILLed myrestart")


def test_pid_taken_try_goes_on_with_one_line(procs, tmp_path):
    original, image = checkpointed(procs, tmp_path)  # still running: pid taken
    restarted = support.restart(procs, image, pid_mode="try")
    support.wait_restored(restarted, image)
    restarted.send("go\n")
    assert restarted.wait_verdict() == "PASS", restarted.transcript()
    lines = [s for s in restarted.stderr.splitlines() if "cannot restart as pid" in s]
    assert lines == [
        f"myrestart: cannot restart as pid {original.pid} (it is in use); "
        f"the program goes on as pid {restarted.pid}"
    ], restarted.transcript()


def test_pid_taken_require_refuses(procs, tmp_path):
    original, image = checkpointed(procs, tmp_path)
    restarted = support.restart(procs, image, pid_mode="require")
    status = restarted.wait_exit()
    assert status == header_defines()["CKPT_EXIT_PID"], restarted.transcript()
    assert restarted.stderr.strip().splitlines() == [
        f"myrestart: cannot restart as pid {original.pid}: it is in use (--pid=require)"
    ], restarted.transcript()
    assert original.alive()


def test_never_keeps_myrestarts_pid(procs, tmp_path):
    original, image = checkpointed(procs, tmp_path)
    original.kill()
    restarted = support.restart(procs, image, pid_mode="never")
    support.wait_restored(restarted, image)
    assert not os.path.exists(f"/proc/{original.pid}")
    restarted.send("go\n")
    assert restarted.wait_verdict() == "PASS", restarted.transcript()


def test_two_generations_under_the_original_pid(procs, tmp_path):
    """Restarted under its pid, checkpointed again (through myrestart,
    which passes the signal on), restarted again: still the same pid."""
    pid, restarted, image = restarted_under_pid(procs, tmp_path)
    before = image.stat().st_mtime_ns
    os.kill(restarted.pid, signal.SIGUSR2)  # forwarded to the program
    deadline = time.monotonic() + DEADLINE
    while not (image.exists() and image.stat().st_mtime_ns != before):
        if time.monotonic() > deadline:
            raise HarnessError(f"no second image:\n{restarted.transcript()}")
        time.sleep(0.02)
    # SIGTERM is passed on: the program dies of it, and myrestart reaps it
    # (so the pid is free again) and dies the same way.
    os.kill(restarted.pid, signal.SIGTERM)
    assert restarted.wait_exit() == -signal.SIGTERM, restarted.transcript()
    assert not os.path.exists(f"/proc/{pid}")
    again = support.restart(procs, image, pid_mode="require")
    wait_program_under(pid, again, image)
    again.send("go\n")
    assert again.wait_verdict() == "PASS", again.transcript()
    assert again.wait_exit() == 0, again.transcript()

# SPDX-License-Identifier: GPL-2.0-or-later
"""Children of a checkpointed program (issue 15, item 6).

Children inherit LD_PRELOAD and CKPT_IMAGE; a checkpoint signal sent to the
process group (`kill -USR2 -PGID`, what `kill %1` and some schedulers do)
reaches them too. Only the process libckpt was started for writes the
image; its children, exec'd (system()) or merely forked, log one line,
write nothing and are not killed. A restart under another pid is still the
owner. A program checkpointed inside system() gets, after a restart,
system() == -1 with errno ECHILD (its child is not its child any more).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest
import support
from support import DEADLINE, Proc, Target, checkpoint, finish, start_target, target_path, wait_restored

from extckpt.image import Image

pytestmark = pytest.mark.usefixtures("built")

CHILDREN = Target("children")


def children_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


def armed(pid: int, comm: str) -> bool:
    """pid runs comm and catches SIGUSR2 (libckpt's constructor has run)."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            if f.read().strip() != comm:
                return False
        with open(f"/proc/{pid}/status") as f:
            caught = next(int(s.split()[1], 16) for s in f if s.startswith("SigCgt:"))
    except (FileNotFoundError, ProcessLookupError):
        return False
    return bool(caught & (1 << (signal.SIGUSR2 - 1)))


def wait_for(what: str, cond, proc: Proc) -> None:
    deadline = time.monotonic() + DEADLINE
    while not cond():
        assert time.monotonic() < deadline, f"{what} within {DEADLINE} s:\n{proc.transcript()}"
        proc.pump(0.005)


def wait_image_of(proc: Proc, image: Path, owner: int) -> None:
    """Until an image of process owner is at image (whoever else writes)."""

    def written() -> bool:
        try:
            with Image.open(image) as img:
                return img.header.pid == owner
        except Exception:  # noqa: BLE001 - not there yet, or being replaced
            return False

    wait_for(f"no image of process {owner}", written, proc)


@pytest.fixture
def kill_later():
    """Children of a target (not started by the test itself, but part of
    what it started): SIGKILLed by pid at the end, pass or fail."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def child_line(pid: int, owner: int) -> str:
    return f"libckpt: not checkpointing process {pid}: it is a child of process {owner}"


def test_checkpoint_during_system(procs, tmp_path, kill_later):
    """kill -USR2 to the group while the program sits in system(): the
    shell's exec'd `sleep` says it is not checkpointed and lives on; the
    image is the program's. Restarted (under another pid), system() returns
    -1/ECHILD, and the restarted program checkpoints again as the owner."""
    image = tmp_path / "img"
    proc = start_target(procs, target_path("children"), image, ["system"], preexec_fn=os.setpgrp)
    proc.send("run\n")
    proc.wait_line("child running")
    wait_for("no armed child `sleep`", lambda: any(armed(c, "sleep") for c in children_of(proc.pid)), proc)
    (child,) = children_of(proc.pid)
    kill_later.append(child)
    os.killpg(proc.pid, signal.SIGUSR2)
    wait_image_of(proc, image, proc.pid)
    proc.wait_stderr(child_line(child, proc.pid))
    with Image.open(image) as img:
        assert img.header.exe == str(target_path("children")), img.header.exe
    assert armed(child, "sleep"), "the child died of the checkpoint signal"
    assert proc.alive(), proc.transcript()
    assert proc.stderr.count("\n") == 1, proc.transcript()

    os.kill(child, signal.SIGKILL)  # part of the target we started
    proc.wait_line("system returned 9 errno -")  # status: killed by SIGKILL
    proc.kill()

    restarted = support.restart(procs, image)
    restarted.wait_line("system returned -1 errno ECHILD")
    wait_restored(restarted, image)
    checkpoint(restarted, image)
    with Image.open(image) as img:
        assert img.header.pid == restarted.pid, (img.header.pid, restarted.pid)
    finish(restarted, CHILDREN)


def test_forked_child_ignores_the_signal(procs, tmp_path, kill_later):
    """A child forked without exec, signalled alone: one line, no image, it
    lives on; then the parent checkpoints as usual."""
    image = tmp_path / "img"
    proc = start_target(procs, target_path("children"), image, ["fork"])
    proc.send("run\n")
    child = int(proc.wait_line(lambda s: s.startswith("child ")).split()[1])
    kill_later.append(child)
    os.kill(child, signal.SIGUSR2)
    proc.wait_stderr(child_line(child, proc.pid))
    assert not image.exists(), "the child wrote an image"
    assert armed(child, "children"), "the child died of the checkpoint signal"
    checkpoint(proc, image)
    with Image.open(image) as img:
        assert img.header.pid == proc.pid
    os.kill(child, signal.SIGKILL)  # part of the target we started
    finish(proc, CHILDREN)

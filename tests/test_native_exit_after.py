# SPDX-License-Identifier: GPL-2.0-or-later
"""CKPT_EXIT_AFTER=1, "checkpoint, then exit": the program ends with
CKPT_EXIT_CHECKPOINTED once its image is complete; a failed checkpoint leaves
it running; a restarted program does not exit for the checkpoint it resumes
from, only after its own next one.
"""

from __future__ import annotations

import signal

import pytest
import support
from support import (
    DEADLINE,
    Target,
    describe_status,
    finish,
    header_defines,
    start_target,
    target_path,
    wait_restored,
)

pytestmark = pytest.mark.usefixtures("built")

QUIET = Target("quiet")
EXIT_AFTER = {"CKPT_EXIT_AFTER": "1"}


def checkpointed_status() -> int:
    return header_defines()["CKPT_EXIT_CHECKPOINTED"]


def checkpoint_and_exit(proc: support.Proc, image) -> None:
    """Send the checkpoint signal; the program must exit with
    CKPT_EXIT_CHECKPOINTED, and the image then be complete (renamed in)."""
    before = support._identity(image)
    proc.popen.send_signal(signal.SIGUSR2)
    status = proc.wait_exit(DEADLINE, kill=True)
    assert status == checkpointed_status(), f"{describe_status(status)}\n{proc.transcript()}"
    assert support._identity(image) not in (None, before), "exited before its image was renamed in"
    assert not list(image.parent.glob(image.name + ".tmp.*"))
    assert "libckpt:" not in proc.stderr, proc.transcript()


@pytest.mark.parametrize("fork", [False, True], ids=["sync", "forked"])
def test_exit_after_checkpoint(procs, tmp_path, fork):
    """Two generations: each checkpoint ends the program with the distinct
    status; each restart runs on (its resume does not exit) and passes.
    With CKPT_FORK=1 the checkpoint is synchronous: the image is whole at
    the exit."""
    image = tmp_path / "img"
    env = dict(EXIT_AFTER, **({"CKPT_FORK": "1"} if fork else {}))
    proc = start_target(procs, target_path("quiet"), image, env=env)
    checkpoint_and_exit(proc, image)
    for last in (False, True):
        proc = support.restart(procs, image)
        wait_restored(proc)
        assert proc.alive(), proc.transcript()
        if last:
            finish(proc, QUIET)
            assert proc.stderr == "", proc.transcript()
        else:
            checkpoint_and_exit(proc, image)


def test_failed_checkpoint_does_not_exit(procs, tmp_path):
    """A checkpoint that fails (its directory is missing) logs one line and
    the program runs on and passes: it must not end without an image."""
    image = tmp_path / "missing" / "img"
    proc = start_target(procs, target_path("quiet"), image, env=EXIT_AFTER)
    start = len(proc.err)
    proc.popen.send_signal(signal.SIGUSR2)
    proc.wait_stderr("libckpt:", start=start)
    assert proc.alive(), proc.transcript()
    proc.send("go\n")
    assert proc.wait_verdict() == "PASS", proc.transcript()
    assert proc.wait_exit(kill=True) == 0, proc.transcript()
    assert not image.exists()


def test_without_exit_after_runs_on(procs, tmp_path):
    """The default is unchanged: the program runs on after its checkpoint."""
    image = tmp_path / "img"
    proc = start_target(procs, target_path("quiet"), image)
    support.checkpoint(proc, image)
    assert proc.alive(), proc.transcript()
    finish(proc, QUIET)

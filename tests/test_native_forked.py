# SPDX-License-Identifier: GPL-2.0-or-later
"""Forked checkpointing (CKPT_FORK=1) where a forked copy is blind.

A writer forked from the program does not have its MADV_DONTFORK memory at
all and sees its MADV_WIPEONFORK memory as zeros: such a program must be
checkpointed synchronously, never from a copy that lacks them. (corners
has a DONTFORK region: from a forked writer its image restarted into
SIGSEGV.)
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import support
from support import DEADLINE, Target, finish, start_target, target_path

pytestmark = pytest.mark.usefixtures("built")


def test_dontfork_memory_makes_the_checkpoint_synchronous(procs, tmp_path):
    image = tmp_path / "corners.img"
    proc = start_target(procs, target_path("corners"), image, env={"CKPT_FORK": "1"})
    os.kill(proc.pid, signal.SIGUSR2)
    line = proc.wait_stderr("libckpt: ")
    assert "MADV_DONTFORK" in line and "synchronous" in line, line
    deadline = time.monotonic() + DEADLINE
    while not image.exists():
        assert proc.alive() and time.monotonic() < deadline, proc.transcript()
        time.sleep(0.005)
    proc.kill()
    finish(support.restart(procs, image), Target("corners"))

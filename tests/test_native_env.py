# SPDX-License-Identifier: GPL-2.0-or-later
"""libckpt's environment: CKPT_SIGNAL (names, numbers, real-time signals, bad
values) and CKPT_IMAGE (absolute, relative to the cwd at checkpoint time,
unset: ``myckpt``), each through a checkpoint and a restart.
"""

from __future__ import annotations

import signal

import pytest
import support
from support import Target, checkpoint, finish, start_target, target_path, wait_restored

pytestmark = pytest.mark.usefixtures("built")

QUIET = Target("quiet")


@pytest.mark.parametrize(
    "value,signo",
    [
        ("USR1", signal.SIGUSR1),
        ("SIGUSR2", signal.SIGUSR2),
        ("RTMIN+3", signal.SIGRTMIN + 3),
        ("SIGRTMIN", signal.SIGRTMIN),
        (str(int(signal.SIGPWR)), signal.SIGPWR),
    ],
)
def test_ckpt_signal(procs, tmp_path, value, signo):
    """The chosen signal checkpoints, through two generations."""
    image = tmp_path / "img"
    proc = start_target(procs, target_path("quiet"), image, env={"CKPT_SIGNAL": value})
    checkpoint(proc, image, sig=signo)
    proc.kill()
    proc = support.restart(procs, image)
    wait_restored(proc, sig=signo)
    checkpoint(proc, image, sig=signo)
    proc.kill()
    proc = support.restart(procs, image)
    finish(proc, QUIET)
    assert proc.stderr == "", proc.transcript()


@pytest.mark.parametrize("value", ["NOPE", "0", "9", "SIGKILL", "RTMIN+999", "12x"])
def test_bad_ckpt_signal(procs, tmp_path, value):
    """A bad CKPT_SIGNAL: one `libckpt:` line at startup, the program runs
    unharmed (unarmed), and no image is ever written."""
    image = tmp_path / "img"
    proc = start_target(procs, target_path("quiet"), image, env={"CKPT_SIGNAL": value})
    line = proc.wait_stderr("libckpt:")
    assert "CKPT_SIGNAL" in line, line
    finish(proc, QUIET)
    assert proc.stderr.count("\n") == 1, proc.transcript()
    assert not image.exists()


def test_relative_image_path(procs, tmp_path):
    """A relative CKPT_IMAGE is resolved against the cwd at checkpoint time."""
    proc = start_target(procs, target_path("quiet"), "rel.img", cwd=tmp_path)
    checkpoint(proc, tmp_path / "rel.img")
    proc.kill()
    finish(support.restart(procs, tmp_path / "rel.img"), QUIET)


def test_default_image_name(procs, tmp_path):
    """Without CKPT_IMAGE the image is `myckpt` in the cwd."""
    proc = start_target(procs, target_path("quiet"), "", env={"CKPT_IMAGE": None}, cwd=tmp_path)
    checkpoint(proc, tmp_path / "myckpt")
    proc.kill()
    finish(support.restart(procs, tmp_path / "myckpt"), QUIET)

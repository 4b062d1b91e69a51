# SPDX-License-Identifier: GPL-2.0-or-later
"""Process settings that must survive a checkpoint (issue 17, part 4).

A non-dumpable process owns none of its /proc files: unless it is root it
cannot read its own pagemap. These tests run the target as an unprivileged
user (nobody), where that matters; as root the kernel lets everything
through and the test would prove nothing.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import tempfile
from pathlib import Path

import pytest
from support import MYRESTART, Target, checkpoint, finish, restart, start_target, target_path

NODUMP = Target("nodump")


def _nobody() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("needs root to run the target as another user (nobody)")
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' on this machine")


@pytest.fixture
def nobody_dir():
    """A directory that nobody owns, outside pytest's root-only tmp_path."""
    user = _nobody()
    path = Path(tempfile.mkdtemp(prefix="extckpt-nobody-"))
    try:
        os.chmod(path, 0o755)
        os.chown(path, user.pw_uid, user.pw_gid)
        yield user, path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _as(user: pwd.struct_passwd):
    def drop() -> None:
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)

    return drop


@pytest.mark.usefixtures("built")
def test_non_dumpable_process_checkpoints_and_restarts(procs, nobody_dir):
    user, work = nobody_dir
    image = work / "nodump.img"
    exe = target_path("nodump")
    original = start_target(procs, exe, image, preexec_fn=_as(user), cwd=work)
    checkpoint(original, image)
    assert image.stat().st_uid == user.pw_uid
    # The original goes on non-dumpable, then is killed.
    original.kill()
    restarted = procs.start(
        [MYRESTART, "--pid=never", image],
        env={k: v for k, v in os.environ.items() if k != "LD_PRELOAD"},
        preexec_fn=_as(user),
        cwd=work,
    )
    finish(restarted, NODUMP)


@pytest.mark.usefixtures("built")
def test_non_dumpable_again_after_checkpoint(procs, nobody_dir):
    user, work = nobody_dir
    image = work / "nodump.img"
    original = start_target(procs, target_path("nodump"), image, preexec_fn=_as(user), cwd=work)
    checkpoint(original, image)
    finish(original, NODUMP)


PROCSET = Target("procset", ("settings",))


@pytest.mark.usefixtures("built")
def test_settings_under_the_original_pid(procs, tmp_path):
    """A fork does not inherit the subreaper flag or membarrier
    registrations: they must be set in the process that gets the pid."""
    image = tmp_path / "procset.img"
    original = start_target(procs, target_path("procset"), image, ["settings"])
    checkpoint(original, image)
    original.kill()
    # myrestart stays as the parent of the program, which has the pid
    # (exit 16 if it cannot); stdin and stdout are shared with it.
    finish(restart(procs, image, pid_mode="require"), PROCSET)


@pytest.mark.usefixtures("built")
def test_a_program_with_its_own_seccomp_filter_is_refused(procs, tmp_path):
    image = tmp_path / "seccomp.img"
    proc = start_target(procs, target_path("procset"), image, ["seccomp"])
    os.kill(proc.pid, signal.SIGUSR2)
    line = proc.wait_stderr("libckpt: ")
    assert "seccomp filter" in line, proc.transcript()
    assert not image.exists()
    assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())
    finish(proc, Target("procset", ("seccomp",)))

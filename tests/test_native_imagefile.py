# SPDX-License-Identifier: GPL-2.0-or-later
"""The image file is always a new file of ours (issue 15, item 1).

Another user who shares the image's directory (a sticky, world-writable
one, like /tmp) plants a file or a hard link at the temporary name libckpt
once used (IMAGE.tmp.PID), or a symbolic link or a file of their own at the
final path. The checkpoint must never write into what they planted: it
writes a new file of its own, or fails with a line that says what is in the
way, and the program runs on.

The second user is created by the test (useradd) and removed after; the
tests need root for that and skip, saying so, otherwise. The program being
checkpointed runs as root, the victim.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
import support
from support import Target, checkpoint, finish, refused_checkpoint, start_target, target_path

pytestmark = pytest.mark.usefixtures("built")

BIGMEM = Target("bigmem")


@pytest.fixture(scope="module")
def other_user():
    """(uid, gid) of a throwaway unprivileged user, removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("NOT TESTED: creating a second user for the attacks needs root")
    if not shutil.which("useradd"):
        pytest.skip("NOT TESTED: useradd is missing, so no second user can be created")
    name = "ckpt" + secrets.token_hex(4)
    r = subprocess.run(
        ["useradd", "--no-create-home", "--user-group", "--shell", "/bin/sh", name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if r.returncode != 0:
        pytest.skip(f"NOT TESTED: useradd failed: {r.stderr.strip()}")
    try:
        import pwd

        pw = pwd.getpwnam(name)
        yield pw.pw_uid, pw.pw_gid
    finally:
        subprocess.run(["userdel", name], capture_output=True, timeout=60, check=False)


@pytest.fixture
def shared_dir():
    """A directory like /tmp: world-writable and sticky, reachable by all."""
    d = Path(tempfile.mkdtemp(prefix="extckpt-shared-", dir="/tmp"))
    d.chmod(0o1777)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def as_user(user: tuple[int, int], script: str) -> None:
    """Run a shell script as the other user."""
    uid, gid = user
    r = subprocess.run(
        ["sh", "-c", script],
        user=uid,
        group=gid,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 0, f"as uid {uid}: {script}: {r.stderr}"


def assert_image_is_ours(image: Path) -> None:
    st = image.lstat()
    assert stat.S_ISREG(st.st_mode), oct(st.st_mode)
    assert (st.st_uid, st.st_nlink, stat.S_IMODE(st.st_mode)) == (0, 1, 0o600), (
        f"image: uid {st.st_uid}, {st.st_nlink} links, mode {oct(st.st_mode)}"
    )


@pytest.mark.parametrize("fork", ["0", "1"], ids=["sync", "forked"])
def test_planted_temporary_name(procs, other_user, shared_dir, fork):
    """A file of another user at IMAGE.tmp.PID, open for reading, gets none
    of the image; the image is a new root-owned 0600 file that restarts."""
    image = shared_dir / "img"
    proc = start_target(procs, target_path("bigmem"), image, ["1"], env={"CKPT_FORK": fork})
    planted = shared_dir / f"img.tmp.{proc.pid}"
    as_user(other_user, f": > {planted}; chmod 666 {planted}")
    with open(planted, "rb") as reader:  # the other user would keep it open
        checkpoint(proc, image)
        assert reader.read() == b"", "the image was written into the planted file"
    assert planted.stat().st_uid == other_user[0] and planted.stat().st_size == 0
    assert_image_is_ours(image)
    proc.kill()
    restarted = support.restart(procs, image)
    restarted.send("check\n")
    restarted.wait_line("ok")
    finish(restarted, BIGMEM)


def test_planted_hard_link(procs, other_user, shared_dir):
    """A hard link at IMAGE.tmp.PID to a file of root's that the other user
    may link (world-writable: fs.protected_hardlinks allows that link too)
    is not written through: that file keeps its content."""
    image = shared_dir / "img"
    precious = shared_dir / "precious"
    precious.write_bytes(b"root's own data\n")
    precious.chmod(0o666)
    proc = start_target(procs, target_path("bigmem"), image, ["1"])
    link = shared_dir / f"img.tmp.{proc.pid}"
    as_user(other_user, f"ln {precious} {link}")
    assert link.stat().st_ino == precious.stat().st_ino
    checkpoint(proc, image)
    assert precious.read_bytes() == b"root's own data\n", "the checkpoint wrote through the hard link"
    assert_image_is_ours(image)
    finish(proc, BIGMEM)


def test_symlink_at_final_path(procs, other_user, shared_dir):
    """A symbolic link at IMAGE: the checkpoint fails, saying so, and the
    program runs on; the link and what it points to stay as they were."""
    image = shared_dir / "img"
    precious = shared_dir / "precious"
    precious.write_bytes(b"root's own data\n")
    as_user(other_user, f"ln -s {precious} {image}")
    proc = start_target(procs, target_path("bigmem"), image, ["1"])
    line = refused_checkpoint(proc)
    assert "symbolic link" in line and str(image) in line, line
    assert "Permission denied" not in line, line
    assert image.is_symlink() and os.readlink(image) == str(precious)
    assert precious.read_bytes() == b"root's own data\n"
    assert sorted(p.name for p in shared_dir.iterdir()) == ["img", "precious"]
    finish(proc, BIGMEM)
    assert proc.stderr.count("\n") == 1, proc.transcript()


def test_foreign_file_at_final_path(procs, other_user, shared_dir):
    """A file of another user at IMAGE (say, an image they made for us to
    restart): the checkpoint fails, naming its owner, and leaves it alone."""
    image = shared_dir / "img"
    as_user(other_user, f"echo planted > {image}")
    proc = start_target(procs, target_path("bigmem"), image, ["1"])
    line = refused_checkpoint(proc)
    assert f"belongs to user {other_user[0]}" in line and str(image) in line, line
    assert image.read_bytes() == b"planted\n"
    assert image.stat().st_uid == other_user[0]
    assert sorted(p.name for p in shared_dir.iterdir()) == ["img"]
    finish(proc, BIGMEM)
    assert proc.stderr.count("\n") == 1, proc.transcript()

# SPDX-License-Identifier: GPL-2.0-or-later
"""Restart where the program's files are copies: another machine (issue 13).

Without a second machine, a second mount namespace stands in for one: the
program, its libraries and libckpt.so are bind-mounted, at their own paths,
from copies on another filesystem (tmpfs): the same bytes under another
device, inode and time, as on a node that has the same software installed.
The image must restart there; and must be refused, naming the file, where
one of those files differs by one byte.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from pathlib import Path

import pytest
import support
from support import MYRESTART, Target, checkpoint, finish, start_target, target_path

from extckpt.image import Image

pytestmark = pytest.mark.usefixtures("built")


def _need_mount_namespace() -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) to make a second mount namespace")


def _mapped_files(image: Path) -> list[str]:
    with Image.open(image) as img:
        names = {r.name for r in img.regions if r.kind == 1}  # CKPT_KIND_FILE
    return sorted(names)


@pytest.fixture
def copies():
    """A directory on another filesystem (tmpfs) for the copies."""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    path = Path(tempfile.mkdtemp(prefix="extckpt-elsewhere-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _restart_elsewhere(procs, image: Path, files: list[str], copies: Path, spoil: str | None = None):
    """myrestart in a new mount namespace where each of files is a copy."""
    binds = []
    for i, name in enumerate(files):
        copy = copies / f"{i}-{Path(name).name}"
        shutil.copyfile(name, copy)  # new inode, new time, same bytes
        if name == spoil:
            with open(copy, "r+b") as f:  # one byte of the ELF header
                f.seek(200)
                byte = f.read(1)
                f.seek(200)
                f.write(bytes([byte[0] ^ 0x01]))
        os.chmod(copy, 0o755)
        binds.append(f"mount --bind {shlex.quote(str(copy))} {shlex.quote(name)}")
    script = " && ".join(
        [*binds, f"exec {shlex.quote(str(MYRESTART))} --pid=never -v {shlex.quote(str(image))}"]
    )
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    return procs.start(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], env=env)


def _checkpointed(procs, tmp_path) -> tuple[Path, list[str]]:
    image = tmp_path / "quiet.img"
    proc = start_target(procs, target_path("quiet"), image)
    checkpoint(proc, image)
    proc.kill()
    files = _mapped_files(image)
    # The program, libckpt.so and glibc's files at least.
    assert str(target_path("quiet")) in files, files
    assert any(f.endswith("/libckpt.so") for f in files), files
    assert any("libc.so" in f for f in files), files
    return image, files


def test_restart_with_copies_of_every_mapped_file(procs, tmp_path, copies):
    _need_mount_namespace()
    image, files = _checkpointed(procs, tmp_path)
    restarted = _restart_elsewhere(procs, image, files, copies)
    finish(restarted, Target("quiet"))
    # myrestart -v said that it accepted each copy for its bytes.
    for name in files:
        assert f"{name}: another copy of the same bytes" in restarted.stderr, restarted.transcript()


@pytest.mark.parametrize("which", ["libc", "program"])
def test_restart_refuses_a_copy_that_differs_by_one_byte(procs, tmp_path, copies, which):
    _need_mount_namespace()
    image, files = _checkpointed(procs, tmp_path)
    spoil = next(f for f in files if "libc.so" in f) if which == "libc" else str(target_path("quiet"))
    restarted = _restart_elsewhere(procs, image, files, copies, spoil=spoil)
    status = restarted.wait_exit()
    assert status == support.header_defines()["CKPT_EXIT_MISMATCH"], restarted.transcript()
    last = restarted.stderr.strip().splitlines()[-1]
    assert last.startswith(f"myrestart: {spoil} is not the file the program had mapped"), last

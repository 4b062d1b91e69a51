# SPDX-License-Identifier: GPL-2.0-or-later
"""A checkpoint that fails must not hurt: the program keeps running, an older
image at the same path stays intact and restartable, and no file is left at
the final path. Faults: the process SIGKILLed while it writes, an image
directory that cannot be written, a full disk (RLIMIT_FSIZE, a tiny tmpfs).

The tests run as root (no CAP_SYS_RESOURCE); each way of making a directory
unwritable or a disk full is probed first and skipped with a reason where
this machine does not allow it.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest
import support
import xxhash
from support import (
    DEADLINE,
    Proc,
    Target,
    checkpoint,
    finish,
    start_target,
    target_path,
    wait_restored,
)

pytestmark = pytest.mark.usefixtures("built")

MiB = 1 << 20


def file_digest(path: Path) -> tuple[int, int, int]:
    """(inode, size, xxh64 of the content) of a file."""
    h = xxhash.xxh64()
    with open(path, "rb") as f:
        while chunk := f.read(8 * MiB):
            h.update(chunk)
    st = path.stat()
    return st.st_ino, st.st_size, h.intdigest()


def tmp_files(image: Path) -> list[Path]:
    return sorted(image.parent.glob(image.name + ".tmp.*"))


def failed_checkpoint(proc: Proc, image: Path) -> str:
    """Trigger a checkpoint that must fail; return its `libckpt:` line.

    The line is logged before the temporary file is removed; the round trip
    of a "check" command proves the handler has returned.
    """
    start = len(proc.err)
    proc.popen.send_signal(signal.SIGUSR2)
    line = proc.wait_stderr("libckpt:", start=start)
    proc.send("check\n")
    proc.wait_line("ok")
    assert proc.alive(), proc.transcript()
    return line


def make_older_image(procs, image: Path, mib: int = 1) -> tuple[int, int, int]:
    """A complete image of bigmem at `image`, from a process now killed."""
    older = start_target(procs, target_path("bigmem"), image, [str(mib)])
    checkpoint(older, image)
    older.kill()
    return file_digest(image)


def restart_and_pass(procs, image: Path) -> None:
    proc = support.restart(procs, image)
    proc.send("check\n")
    proc.wait_line("ok")
    finish(proc, Target("bigmem"))


# ---- SIGKILL in the middle of writing --------------------------------------------


def unnamed_image_size(pid: int, directory: Path) -> int | None:
    """The size of the unnamed (O_TMPFILE) image file that process pid is
    writing in directory, or None if it has none open."""
    fds = Path(f"/proc/{pid}/fd")
    for fd in fds.iterdir():
        with contextlib.suppress(FileNotFoundError):
            target = os.readlink(fd)
            if target.startswith(f"{directory}/#") and target.endswith(" (deleted)"):
                return fd.stat().st_size
    return None


@pytest.mark.slow
def test_killed_while_writing(procs, tmp_path):
    image = tmp_path / "img"
    proc = start_target(procs, target_path("bigmem"), image, ["512"])
    checkpoint(proc, image, timeout=120)
    before = file_digest(image)

    # Second checkpoint to the same path; kill it once its (unnamed)
    # temporary file has grown past 1 MiB.
    proc.popen.send_signal(signal.SIGUSR2)
    deadline = time.monotonic() + DEADLINE
    while (unnamed_image_size(proc.pid, tmp_path) or 0) <= MiB:
        if image.stat().st_ino != before[0]:
            pytest.skip("the 512 MiB checkpoint finished before it could be killed")
        assert time.monotonic() < deadline, f"no growing unnamed image file:\n{proc.transcript()}"
        time.sleep(0.001)
    proc.kill()
    assert file_digest(image) == before, "the older image changed"
    assert list(tmp_path.iterdir()) == [image], "the killed checkpoint left a file behind"

    # The older image restarts; a checkpoint of the restarted process to the
    # same path succeeds and leaves a file planted at the old temporary name
    # (IMAGE.tmp.PID) alone.
    restarted = support.restart(procs, image)
    restarted.send("check\n")
    restarted.wait_line("ok")
    wait_restored(restarted)
    stale = image.parent / f"{image.name}.tmp.{restarted.pid}"
    stale.write_bytes(b"stale garbage\n" * 100_000)
    checkpoint(restarted, image, timeout=120)
    assert file_digest(image)[0] != before[0]
    assert stale.read_bytes() == b"stale garbage\n" * 100_000, "the checkpoint wrote into a planted file"
    assert tmp_files(image) == [stale], tmp_files(image)
    restarted.kill()
    restart_and_pass(procs, image)


# ---- an image directory that cannot be written ------------------------------------


def _chattr(flag: str, path: Path) -> bool:
    r = subprocess.run(["chattr", flag, str(path)], check=False, capture_output=True, timeout=30)
    return r.returncode == 0


def _mount(*args: str) -> bool:
    try:
        r = subprocess.run(["mount", *args], check=False, capture_output=True, timeout=30)
    except FileNotFoundError:
        return False
    return r.returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True, timeout=30)


def _writable(directory: Path) -> bool:
    probe = directory / ".probe"
    try:
        probe.write_bytes(b"")
    except OSError:
        return False
    probe.unlink()
    return True


@contextlib.contextmanager
def unwritable_dir(tmp_path: Path, how: str):
    """Yield a path for CKPT_IMAGE whose directory cannot be written."""
    d = tmp_path / "dir"
    d.mkdir()
    if how == "missing-directory":
        yield tmp_path / "missing" / "img"
    elif how == "file-as-directory":
        (tmp_path / "file").write_bytes(b"")
        yield tmp_path / "file" / "img"
    elif how == "immutable-directory":
        if not _chattr("+i", d):
            pytest.skip("chattr +i is not possible here (filesystem or CAP_LINUX_IMMUTABLE)")
        try:
            if _writable(d):
                pytest.skip("an immutable directory is still writable here")
            yield d / "img"
        finally:
            _chattr("-i", d)
    elif how == "read-only-mount":
        if not _mount("--bind", str(d), str(d)):
            pytest.skip("bind mounts are not permitted here")
        try:
            if not _mount("-o", "remount,bind,ro", str(d)) or _writable(d):
                pytest.skip("cannot make a read-only bind mount here")
            yield d / "img"
        finally:
            _umount(d)
    else:
        raise ValueError(how)


@pytest.mark.parametrize(
    "how", ["missing-directory", "file-as-directory", "immutable-directory", "read-only-mount"]
)
def test_unwritable_directory(procs, tmp_path, how):
    with unwritable_dir(tmp_path, how) as image:
        proc = start_target(procs, target_path("bigmem"), image, ["1"])
        line = failed_checkpoint(proc, image)
        assert str(image.parent) in line, line
        assert not image.exists()
        if image.parent.is_dir():
            assert not list(image.parent.iterdir()), list(image.parent.iterdir())
        finish(proc, Target("bigmem"))
        assert proc.stderr.count("\n") == 1, proc.transcript()


# ---- a full disk ----------------------------------------------------------------------


def _limit_fsize(limit: int):
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


@contextlib.contextmanager
def full_disk(tmp_path: Path, how: str):
    """Yield (image path, preexec_fn) such that a 64 MiB image cannot fit."""
    if how == "rlimit-fsize":
        yield tmp_path / "img", _limit_fsize(8 * MiB)
    elif how == "tiny-tmpfs":
        d = tmp_path / "tmpfs"
        d.mkdir()
        if not _mount("-t", "tmpfs", "-o", "size=8m", "tmpfs", str(d)):
            pytest.skip("mounting a tmpfs is not permitted here")
        try:
            yield d / "img", None
        finally:
            _umount(d)
    else:
        raise ValueError(how)


@pytest.mark.parametrize("older", [True, False], ids=["older-image", "no-older-image"])
@pytest.mark.parametrize("how", ["rlimit-fsize", "tiny-tmpfs"])
def test_disk_full(procs, tmp_path, how, older):
    with full_disk(tmp_path, how) as (image, preexec):
        before = make_older_image(procs, image) if older else None
        proc = start_target(procs, target_path("bigmem"), image, ["64"], preexec_fn=preexec)
        line = failed_checkpoint(proc, image)
        assert "libckpt: " in line
        assert not tmp_files(image), tmp_files(image)
        if older:
            assert file_digest(image) == before, "the older image changed"
        else:
            assert not image.exists()
        finish(proc, Target("bigmem"))  # not killed by SIGXFSZ either
        assert proc.stderr.count("\n") == 1, proc.transcript()
        if older:
            restart_and_pass(procs, image)

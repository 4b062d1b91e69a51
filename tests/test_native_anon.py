# SPDX-License-Identifier: GPL-2.0-or-later
"""Restored anonymous memory is anonymous memory again (issue 18).

myrestart maps the program's private anonymous regions at their addresses
and copies their data in before its point of no return; nothing of the
restored program refers to the image. The anon target checks what only
anonymous memory does (realloc growth through mremap, MADV_DONTNEED giving
zeros, MADV_FREE, mremap, munmap of part, fork) and that its maps show no
image and no userfaultfd or huge page flag; the harness overwrites,
truncates or deletes the image right after the restart while the program
goes on reading its memory. A real python3 grows a bytearray and a list
after its restart and must print what an uninterrupted run prints.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import support
from support import (
    VARIANTS,
    Target,
    checkpoint,
    describe_status,
    finish,
    header_defines,
    start_target,
    target_path,
    wait_restored,
)

pytestmark = pytest.mark.usefixtures("built")

MIB = 1 << 20
EXIT = header_defines()


def image_mapped_bytes(pid: int, image: Path) -> int:
    """Bytes of pid's memory mapped from image."""
    total = 0
    name = str(image.resolve())
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5].strip() in (name, f"{name} (deleted)"):
                start, end = (int(x, 16) for x in parts[0].split("-"))
                total += end - start
    return total


def tamper(image: Path, how: str) -> None:
    """Do to the image what a user may do once the restart is over."""
    if how == "overwrite":  # in place: same inode, other bytes
        size = image.stat().st_size
        with open(image, "r+b") as f:
            for offset in range(0, size, MIB):
                f.seek(offset)
                f.write(b"\xa5" * min(MIB, size - offset))
    elif how == "truncate":
        os.truncate(image, 0)
    elif how == "delete":
        image.unlink()


def restart_generations(procs, image: Path, generations: int, env=None) -> support.Proc:
    """Restart from image; generations > 1: checkpoint the restarted
    program to the same path, kill it and restart that, and so on."""
    proc = support.restart(procs, image, env=env)
    for _ in range(2, generations + 1):
        wait_restored(proc, image)
        checkpoint(proc, image)
        proc.kill()
        proc = support.restart(procs, image, env=env)
    wait_restored(proc, image)
    return proc


@pytest.mark.parametrize("how", ["kept", "overwrite", "truncate", "delete"])
@pytest.mark.parametrize("generations", [1, 2])
@pytest.mark.parametrize("variant", VARIANTS)
def test_anonymous_again(procs, tmp_path, variant, generations, how):
    """After the restart the anon target's memory behaves as anonymous
    memory, whatever is done to the image meanwhile."""
    image = tmp_path / "anon.img"
    proc = start_target(procs, target_path("anon", variant), image)
    checkpoint(proc, image)
    proc.kill()
    proc = restart_generations(procs, image, generations)
    assert image_mapped_bytes(proc.pid, image) == 0, support._read_proc(proc.pid, "maps")
    tamper(image, how)
    proc.send("check\n")
    proc.wait_line("ok")
    finish(proc, Target("anon"))


@pytest.mark.parametrize("copy", ["userfaultfd", "pread"])
def test_both_ways_of_copying(procs, tmp_path, copy):
    """UFFDIO_COPY and its fallback, pread() into place (-v says which),
    give the same memory; --copy is still accepted and changes nothing."""
    image = tmp_path / "anon.img"
    proc = start_target(procs, target_path("anon"), image)
    checkpoint(proc, image)
    proc.kill()
    env = {"MYRESTART_NO_UFFD": "1"} if copy == "pread" else {"MYRESTART_NO_UFFD": "0"}
    proc = support.restart(procs, image, env=env, options=["-v", "--copy"])
    proc.wait_stderr("myrestart: ")
    wait_restored(proc, image)
    tamper(image, "truncate")
    finish(proc, Target("anon"))
    assert f"before the point of no return ({copy})" in proc.stderr, proc.transcript()


def test_bigmem_with_holes(procs, tmp_path):
    """bigmem with holes: 128 runs of 64 KiB in a 16 MiB mapping, every
    other 64 KiB untouched and zero; rewritten after the restart, then
    checkpointed again: the new image stands alone (the first one is
    deleted before the second restart)."""
    image = tmp_path / "holes.img"
    proc = start_target(procs, target_path("bigmem"), image, ["16", "holes"])
    checkpoint(proc, image)
    proc.kill()
    copy = tmp_path / "copy.img"
    shutil.copyfile(image, copy)
    proc = support.restart(procs, copy)
    wait_restored(proc, copy)
    assert image_mapped_bytes(proc.pid, copy) == 0
    proc.send("bump\n")
    proc.wait_line("bumped 1")
    checkpoint(proc, image)  # its CKPT_IMAGE: the original path
    proc.kill()
    copy.unlink()
    proc = support.restart(procs, image)
    wait_restored(proc, image)
    proc.send("check\n")
    proc.wait_line("ok")
    finish(proc, Target("bigmem"))


@pytest.mark.parametrize("pid_mode", ["never", "try"])
def test_corrupt_memory_refused_before_anything(procs, tmp_path, pid_mode):
    """A flipped byte in a region that is copied into place before the
    point of no return: exit 11 and one line, also when the program was to
    be a child under its own pid (myrestart passes on its status)."""
    image = tmp_path / "big.img"
    proc = start_target(procs, target_path("bigmem"), image, ["8"])
    checkpoint(proc, image)
    proc.kill()
    data = bytearray(image.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside bigmem's 8 MiB: the bulk of the image
    image.write_bytes(bytes(data))
    r = subprocess.run(
        [str(support.MYRESTART), f"--pid={pid_mode}", str(image)],
        check=False,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=30,
    )
    err = r.stderr.decode(errors="replace")
    detail = f"{describe_status(r.returncode)}; stdout {r.stdout!r}; stderr {err!r}"
    assert r.returncode == EXIT["CKPT_EXIT_DATA_CORRUPT"], detail
    assert len(err.splitlines()) == 1 and err.startswith("myrestart: "), detail
    assert "checksum" in err, detail
    assert r.stdout == b"", detail


PYTHON_PROGRAM = r"""
import hashlib, sys
data = bytearray(b"x" * (2 << 20))
items = list(range(100_000))
print("ready", flush=True)
sys.stdin.readline()
data.extend(b"y" * (200 << 20))
data[5] = 7
items.extend(range(3_000_000))
items[7] = "seven"
print(hashlib.sha256(data).hexdigest(), len(data), len(items), sum(items[8:]), items[:10], flush=True)
"""


@pytest.mark.parametrize("generations", [1, 2])
def test_python_grows_its_memory(procs, tmp_path, generations):
    """python3 extends a 2 MiB bytearray by 200 MiB (realloc, glibc
    mremap) and a list by 3 million items after its restart: the same
    output, byte for byte, as a run that was never interrupted."""
    script = tmp_path / "grow.py"
    script.write_text(PYTHON_PROGRAM)
    argv = [sys.executable, "-I", str(script)]
    plain = procs.start(argv, name="python3")
    plain.wait_line("ready")
    plain.send("go\n")
    assert plain.wait_exit() == 0, plain.transcript()
    image = tmp_path / "py.img"
    proc = procs.start(argv, env=support.ckpt_env(image), name="python3")
    proc.wait_line("ready")
    checkpoint(proc, image)
    proc.kill()
    proc = restart_generations(procs, image, generations)
    proc.send("go\n")
    status = proc.wait_exit()
    assert status == 0, proc.transcript()
    assert proc.stdout == plain.stdout.split("ready\n", 1)[1], proc.transcript()
    assert proc.stderr == "", proc.transcript()

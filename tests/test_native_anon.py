# SPDX-License-Identifier: GPL-2.0-or-later
"""Memory mapped from the image at restart.

myrestart maps the image's longer runs of private anonymous memory straight
from the image file (copy-on-write) instead of copying them; --copy copies
everything. These tests look at the restored process's memory map to see
which was done, rewrite every mapped page after the restart, and check that
a later checkpoint of the restarted process stands on its own: it must not
point back at the image the process was restarted from.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import support
from support import Target, checkpoint, finish, start_target, target_path, wait_restored

pytestmark = pytest.mark.usefixtures("built")

MIB = 1 << 20


def image_mapped_bytes(pid: int, image: Path) -> int:
    """Bytes of pid's memory mapped from image (its runs, not the header)."""
    total = 0
    name = str(image.resolve())
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5].strip() in (name, f"{name} (deleted)"):
                start, end = (int(x, 16) for x in parts[0].split("-"))
                assert int(parts[2], 16) > 0, f"the image's header is mapped:\n{line}"
                total += end - start
    return total


def bigmem_image(procs, tmp_path: Path, mib: int) -> Path:
    image = tmp_path / "big.img"
    proc = start_target(procs, target_path("bigmem"), image, [str(mib)])
    checkpoint(proc, image)
    proc.kill()
    return image


@pytest.mark.parametrize("copy", [False, True], ids=["mapped", "copied"])
def test_restore_maps_or_copies(procs, tmp_path, copy):
    """By default the 32 MiB of bigmem come from the image file; with
    --copy none does. Either way every page holds its value, and
    rewriting all of them (copy-on-write faults when mapped) works."""
    image = bigmem_image(procs, tmp_path, 32)
    proc = support.restart(procs, image, options=["--copy"] if copy else [])
    wait_restored(proc, image)
    mapped = image_mapped_bytes(proc.pid, image)
    if copy:
        assert mapped == 0, f"--copy left {mapped} bytes mapped from the image"
    else:
        assert mapped >= 32 * MIB, f"only {mapped} bytes mapped from the image"
    proc.send("check\n")
    proc.wait_line("ok")
    proc.send("bump\n")
    proc.wait_line("bumped 1")
    proc.send("check\n")
    proc.wait_line("ok")
    finish(proc, Target("bigmem"))


def test_next_image_does_not_need_the_old_one(procs, tmp_path):
    """Restart from a copy of the image (which stays where it is), rewrite
    the memory, checkpoint: the new image holds the mapped memory itself.
    With the copy deleted, it still restarts and every value is right."""
    first = bigmem_image(procs, tmp_path, 16)
    copy = tmp_path / "copy.img"
    shutil.copyfile(first, copy)
    proc = support.restart(procs, copy)
    wait_restored(proc, copy)
    assert image_mapped_bytes(proc.pid, copy) >= 16 * MIB
    proc.send("bump\n")
    proc.wait_line("bumped 1")
    checkpoint(proc, first)  # its CKPT_IMAGE: the original path
    proc.kill()
    copy.unlink()
    proc = support.restart(procs, first)
    wait_restored(proc, first)
    proc.send("check\n")
    proc.wait_line("ok")
    # Restored from an image written by a restored process, a third time.
    proc.send("bump\n")
    proc.wait_line("bumped 2")
    checkpoint(proc, first)
    proc.kill()
    proc = support.restart(procs, first)
    wait_restored(proc, first)
    finish(proc, Target("bigmem"))


def test_each_long_run_mapped_short_runs_copied(procs, tmp_path):
    """bigmem with holes leaves 128 separate runs of 64 KiB: each becomes a
    mapping of the image; the sparse target's single pages are copied."""
    image = tmp_path / "holes.img"
    proc = start_target(procs, target_path("bigmem"), image, ["16", "holes"])
    checkpoint(proc, image)
    proc.kill()
    proc = support.restart(procs, image)
    wait_restored(proc, image)
    assert image_mapped_bytes(proc.pid, image) == 8 * MIB
    with open(f"/proc/{proc.pid}/maps") as f:
        runs = sum(1 for line in f if line.rstrip().endswith(str(image.resolve())))
    assert runs == 128, f"{runs} mappings of the image, not 128"
    proc.send("bump\n")
    proc.wait_line("bumped 1")
    finish(proc, Target("bigmem"))

    image = tmp_path / "sparse.img"
    proc = start_target(procs, target_path("sparse"), image)
    checkpoint(proc, image)
    proc.kill()
    proc = support.restart(procs, image)
    wait_restored(proc, image)
    assert image_mapped_bytes(proc.pid, image) == 0
    finish(proc, Target("sparse"))

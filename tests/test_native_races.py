# SPDX-License-Identifier: GPL-2.0-or-later
"""Memory that changes while the checkpoint hashes and writes it.

The checksum of each piece is computed on the second core while write()
copies the same bytes: any byte that changes in between makes an image
that myrestart rejects as corrupted. Besides the handler's own stack, the
kernel changes memory by itself: the cpu fields of the thread's rseq area
whenever the thread moves to another CPU. This test moves the thread
between the CPUs during checkpoints of a program whose rseq area sits in a
large TLS mapping, and checks every image's checksums.
"""

from __future__ import annotations

import os
import threading

import pytest
import support
from support import Target, checkpoint, finish, start_target, target_path, wait_restored

from extckpt.image import DataCorruptError, Image

pytestmark = pytest.mark.usefixtures("built")

CHECKPOINTS = 25


def test_checksums_hold_while_the_thread_moves(procs, tmp_path):
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs to move the thread between")
    image = tmp_path / "tls.img"
    proc = start_target(procs, target_path("tlsbig"), image)
    stop = threading.Event()

    def move_it() -> None:
        i = 0
        while not stop.is_set():
            try:
                os.sched_setaffinity(proc.pid, {cpus[i % 2]})
            except (ProcessLookupError, PermissionError):
                return
            i += 1

    mover = threading.Thread(target=move_it, daemon=True)
    mover.start()
    bad = []
    try:
        for n in range(CHECKPOINTS):
            checkpoint(proc, image)
            with Image.open(image) as img:
                try:
                    img.check_data()
                except DataCorruptError as e:
                    bad.append(f"checkpoint {n + 1}: {e}")
    finally:
        stop.set()
        mover.join(5)
        os.sched_setaffinity(proc.pid, set(cpus))
    assert not bad, "\n".join(bad)
    proc.kill()
    proc = support.restart(procs, image)
    wait_restored(proc, image)
    finish(proc, Target("tlsbig"))

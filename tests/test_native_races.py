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


# ---- forked checkpoints that overlap (issue 15, item 4) ------------------------


def _writers(image: os.PathLike, program: int) -> list[int]:
    """Forked writers of this image still alive: processes other than the
    program with its CKPT_IMAGE in their environment (they are nobody's
    children of ours, in sessions of their own)."""
    mark = f"CKPT_IMAGE={image}".encode() + b"\0"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == program:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if mark in f.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_overlapping_forked_checkpoints(procs, tmp_path):
    """CKPT_FORK=1, 256 MiB, bursts of six signals 30 ms apart: the writers
    overlap, yet after each burst the image in place is whole (every
    checksum) and is the newest (made after the last signal was sent), and
    no writer complained. Repeated for about 40 s; the last image restarts."""
    import signal
    import time

    image = tmp_path / "big.img"
    proc = start_target(procs, target_path("bigmem"), image, ["256"], env={"CKPT_FORK": "1"})
    end = time.monotonic() + 40
    bursts = 0
    while bursts < 3 or (time.monotonic() < end and bursts < 12):
        for _ in range(6):
            last_sent = time.time_ns()
            os.kill(proc.pid, signal.SIGUSR2)
            time.sleep(0.03)
        deadline = time.monotonic() + support.DEADLINE * 2
        newest = False
        while not newest or _writers(image, proc.pid):
            assert time.monotonic() < deadline, (
                f"burst {bursts + 1}: no image newer than the last signal, or writers "
                f"{_writers(image, proc.pid)} still running after {support.DEADLINE * 2} s:\n"
                f"{proc.transcript()}"
            )
            if not newest and image.exists():
                try:
                    with Image.open(image) as img:
                        newest = img.header.created_ns > last_sent
                except Exception:  # noqa: BLE001 - judged below, once quiet
                    pass
            proc.pump(0.01)
        assert "libckpt:" not in proc.stderr, f"burst {bursts + 1}:\n{proc.transcript()}"
        with Image.open(image) as img:
            older = f"burst {bursts + 1}: an older image replaced the newest"
            assert img.header.created_ns > last_sent, older
            try:
                img.check_data()
            except DataCorruptError as e:
                pytest.fail(f"burst {bursts + 1}: the image in place is corrupt: {e}")
        bursts += 1
    proc.send("check\n")
    proc.wait_line("ok")
    proc.kill()
    restarted = support.restart(procs, image)
    restarted.send("check\n")
    restarted.wait_line("ok")
    finish(restarted, Target("bigmem"))

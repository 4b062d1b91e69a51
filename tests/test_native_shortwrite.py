# SPDX-License-Identifier: GPL-2.0-or-later
"""A checkpoint during a large blocking write to a pipe (issue 15, item 12).

The kernel ends a pipe write that a signal interrupts after some bytes with
that short count, SA_RESTART or not. The program must not notice the
checkpoint: its 8 MiB write() (or writev()) returns 8 MiB, and the reader
gets every byte in order.
"""

from __future__ import annotations

import os
import select
import time

import pytest
from support import DEADLINE, Target, checkpoint, finish, start_target, target_path

pytestmark = pytest.mark.usefixtures("built")

LEN = 8 << 20


def blocked_in_write(pid: int) -> bool:
    """The process sleeps in write (1) or writev (20), per /proc/PID/syscall."""
    try:
        with open(f"/proc/{pid}/syscall") as f:
            nr = f.read().split()[0]
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return nr in ("1", "20") and state == "S"


@pytest.mark.parametrize("how", ["write", "writev"])
def test_checkpoint_during_pipe_write(procs, tmp_path, how):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    image = tmp_path / "img"
    proc = start_target(procs, target_path("pipewrite"), image, [str(fifo), how])
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        deadline = time.monotonic() + DEADLINE
        while not blocked_in_write(proc.pid):
            assert time.monotonic() < deadline, f"not blocked in {how}:\n{proc.transcript()}"
            proc.pump(0.005)
        checkpoint(proc, image)
        got = bytearray()
        while True:
            assert time.monotonic() < deadline + DEADLINE, f"{len(got)} bytes read:\n{proc.transcript()}"
            ready, _, _ = select.select([reader], [], [], 0.1)
            if not ready:
                continue
            data = os.read(reader, 1 << 20)
            if not data:
                break
            got.extend(data)
    finally:
        os.close(reader)
    proc.wait_line(lambda s: s.startswith("wrote "))
    assert len(got) == LEN, f"the reader got {len(got)} of {LEN} bytes:\n{proc.transcript()}"
    assert got == (bytes(range(251)) * (LEN // 251 + 1))[:LEN], "the bytes differ"
    finish(proc, Target("pipewrite"))

# SPDX-License-Identifier: GPL-2.0-or-later
"""Checkpoints under resource limits (issue 15, item 11, libckpt's half).

- Every fd RLIMIT_NOFILE allows in use: the checkpoint cannot open what it
  needs; its one line names the limit to raise (not "more than one
  thread"), and the program runs on.
- A program near its RLIMIT_AS: libckpt's buffers are sized to the process
  (not a 64 MiB strings buffer and a 65,536-entry fd table), so a few MiB
  of headroom are enough to checkpoint; with less, the line names
  RLIMIT_AS.
"""

from __future__ import annotations

import os
import resource

import pytest
import support
from support import Target, checkpoint, finish, refused_checkpoint, start_target, target_path

pytestmark = pytest.mark.usefixtures("built")

BIGMEM = Target("bigmem")


def vm_size(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        kib = next(int(s.split()[1]) for s in f if s.startswith("VmSize:"))
    return kib << 10


def test_every_fd_in_use(procs, tmp_path):
    image = tmp_path / "img"
    proc = start_target(procs, target_path("bigmem"), image, ["1"])
    nfds = len(os.listdir(f"/proc/{proc.pid}/fd"))
    hard = resource.prlimit(proc.pid, resource.RLIMIT_NOFILE)[1]
    resource.prlimit(proc.pid, resource.RLIMIT_NOFILE, (nfds, hard))
    line = refused_checkpoint(proc)
    assert "thread" not in line, line
    assert "RLIMIT_NOFILE" in line and f"all {nfds} file descriptors" in line, line
    assert not image.exists()
    resource.prlimit(proc.pid, resource.RLIMIT_NOFILE, (hard, hard))
    checkpoint(proc, image)  # the program is unharmed: it checkpoints now
    finish(proc, BIGMEM)


def test_near_rlimit_as(procs, tmp_path):
    """8 MiB of address space left: the checkpoint succeeds and restarts
    (before, libckpt reserved about 75 MiB for its buffers)."""
    image = tmp_path / "img"
    proc = start_target(procs, target_path("bigmem"), image, ["64"])
    limit = vm_size(proc.pid) + (8 << 20)
    resource.prlimit(proc.pid, resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
    checkpoint(proc, image)
    proc.send("check\n")
    proc.wait_line("ok")
    assert proc.stderr == "", proc.transcript()
    proc.kill()
    restarted = support.restart(procs, image)
    restarted.send("check\n")
    restarted.wait_line("ok")
    finish(restarted, BIGMEM)


def test_out_of_address_space(procs, tmp_path):
    """128 KiB of address space left: the checkpoint fails, its line names
    RLIMIT_AS, and the program runs on."""
    image = tmp_path / "img"
    proc = start_target(procs, target_path("bigmem"), image, ["1"])
    limit = vm_size(proc.pid) + (128 << 10)
    resource.prlimit(proc.pid, resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
    line = refused_checkpoint(proc)
    assert "RLIMIT_AS" in line, line
    assert not image.exists()
    assert not list(tmp_path.iterdir()), list(tmp_path.iterdir())
    resource.prlimit(proc.pid, resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    checkpoint(proc, image)
    finish(proc, BIGMEM)
    assert proc.stderr.count("\n") == 1, proc.transcript()

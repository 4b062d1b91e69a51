# SPDX-License-Identifier: GPL-2.0-or-later
"""The tools in hostile and careless hands (issue 15): a tracer that dies at
any instant, a forked writer that fails, images planted by another user,
FIFOs where files were, exhausted limits.

Every process a test starts has a deadline and is SIGKILLed by pid in
``finally``; a test that needs root (a second user, a tmpfs) says so when
it skips.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_extckpt_cli import TIMEOUT, assert_released, cli, started, status

import extckpt
from extckpt.attach import DONE_MARK1, DONE_MARK2

HERE = Path(__file__).resolve().parent
NATIVE = HERE.parent / "native"


@pytest.fixture(scope="module")
def spin(tmp_path_factory) -> Path:
    exe = tmp_path_factory.mktemp("hostile_bins") / "cli_spin"
    subprocess.run(
        ["gcc", "-O1", "-Wall", "-Wextra", "-o", str(exe), str(HERE / "targets" / "cli_spin.c")],
        check=True,
        timeout=60,
    )
    return exe


def _attach_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "extckpt.cli", "attach", *args]


def _wait_traced_by(pid: int, tracer: subprocess.Popen, deadline: float) -> bool:
    """True once tracer holds pid; False if the tracer ended first."""
    while time.monotonic() < deadline:
        if status(pid)["TracerPid"] == str(tracer.pid):
            return True
        if tracer.poll() is not None:
            return False
        time.sleep(0.001)
    raise AssertionError(f"attach (pid {tracer.pid}) never traced {pid}")


# ---- item 7: a tracer that dies ------------------------------------------


def test_done_marker_matches_libckpt() -> None:
    """attach.py's marker words are libckpt's (native/libckpt.h)."""
    text = (NATIVE / "libckpt.h").read_text()
    for name, value in (("CKPT_DONE_MARK1", DONE_MARK1), ("CKPT_DONE_MARK2", DONE_MARK2)):
        m = re.search(rf"#define {name} (0x[0-9a-fA-F]+)ULL", text)
        assert m and int(m[1], 16) == value, name


@pytest.mark.slow
def test_attach_killed_at_any_instant(spin, tmp_path: Path) -> None:
    """SIGKILL, SIGTERM or SIGHUP to attach at random instants while it
    holds the process, many times (40 s in all): the process lives on,
    untraced and running every time, and a later checkpoint and restart of
    it still work. Before the marker call, a killed attach left a hardware
    breakpoint armed and the process died of SIGTRAP."""
    image = tmp_path / "k.ckpt"
    rng = random.Random(int.from_bytes(os.urandom(4)))
    held = by_signal = 0
    seen: dict[int, int] = {}
    with started([str(spin), "64"], image=image) as p:
        end = time.monotonic() + 40
        while time.monotonic() < end:
            sig = rng.choice((signal.SIGKILL, signal.SIGTERM, signal.SIGHUP))
            a = subprocess.Popen(
                _attach_argv("--no-verify", str(p.pid)), stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            try:
                if _wait_traced_by(p.pid, a, time.monotonic() + TIMEOUT):
                    held += 1
                    # Somewhere in the checkpoint of 64 MiB (tens of ms traced).
                    time.sleep(rng.uniform(0, 0.12))
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(a.pid, sig)
                _, err = a.communicate(timeout=TIMEOUT)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(a.pid, signal.SIGKILL)
                a.wait(timeout=TIMEOUT)
            seen[a.returncode] = seen.get(a.returncode, 0) + 1
            if a.returncode == 128 + sig:  # handled: released before exiting
                by_signal += 1
                assert b"interrupted by" in err, err
            assert p.poll() is None, f"the target died ({p.returncode}) after attach got {sig!r}"
            assert_released(p.pid)
        assert held >= 20, f"only {held} attaches were caught holding the process: {seen}"
        assert -signal.SIGKILL in seen and by_signal, seen
        r = cli("attach", "--kill", "--no-verify", str(p.pid))
        assert r.returncode == 0, r.stderr
        assert p.wait(timeout=TIMEOUT) == -signal.SIGKILL
    # The restarted spinner runs: a checkpoint of it (its CKPT_IMAGE is
    # image again) completes with a new stamp.
    first = extckpt.Image.open(image).header.created_ns
    rp = subprocess.Popen(
        [sys.executable, "-m", "extckpt.cli", "restart", "--pid=never", str(image)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while "libckpt.so" not in Path(f"/proc/{rp.pid}/maps").read_text():
            assert rp.poll() is None and time.monotonic() < deadline, rp.stderr.read()
            time.sleep(0.01)
        r = cli("attach", "--no-verify", str(rp.pid))
        assert r.returncode == 0, r.stderr
        assert extckpt.Image.open(image).header.created_ns > first
        assert rp.poll() is None
        assert_released(rp.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(rp.pid, signal.SIGKILL)
        rp.wait(timeout=TIMEOUT)


def test_attach_sigterm_releases(spin, tmp_path: Path) -> None:
    """SIGTERM to attach while it holds the process is handled as Ctrl-C:
    exit 143, the process released and running."""
    with started([str(spin), "256"], image=tmp_path / "t.ckpt") as p:
        a = subprocess.Popen(_attach_argv(str(p.pid)), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert _wait_traced_by(p.pid, a, time.monotonic() + TIMEOUT)
            a.send_signal(signal.SIGTERM)
            _, err = a.communicate(timeout=TIMEOUT)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(a.pid, signal.SIGKILL)
            a.wait(timeout=TIMEOUT)
        assert a.returncode == 128 + signal.SIGTERM, err
        assert b"interrupted by SIGTERM" in err
        assert p.poll() is None
        assert_released(p.pid)

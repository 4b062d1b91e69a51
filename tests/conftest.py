# SPDX-License-Identifier: GPL-2.0-or-later
"""Fixtures shared by the test suite.

- ``native_build`` (session): ``make -C native`` once; the tests use
  native/libckpt.so and native/myrestart by absolute path.
- ``targets_build`` (session): the self-judging targets of tests/targets/,
  every variant, into tests/targets/build/ (git-ignored).
- ``procs``: a ProcTracker; whatever a test started is SIGKILLed by pid and
  reaped when it ends, pass or fail.

Slow tests carry ``@pytest.mark.slow``; ``-m "not slow"`` leaves them out.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from support import NATIVE, TARGETS_DIR, ProcTracker

TESTS = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than a few seconds (deselect with -m 'not slow')")


def _make(directory, *args: str, timeout: float = 600) -> None:
    jobs = str(max(2, os.cpu_count() or 2))
    try:
        r = subprocess.run(
            ["make", "-C", str(directory), "-j", jobs, *args],
            check=False,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"make -C {directory} took more than {timeout} s: {e}")
    if r.returncode != 0:
        pytest.fail(f"make -C {directory} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}", pytrace=False)


@pytest.fixture(scope="session")
def native_build() -> None:
    _make(NATIVE)


@pytest.fixture(scope="session")
def targets_build() -> None:
    _make(TARGETS_DIR)


@pytest.fixture
def procs():
    tracker = ProcTracker()
    try:
        yield tracker
    finally:
        tracker.cleanup()


@pytest.fixture
def built(native_build, targets_build) -> None:
    """Both the tools and the targets are built."""


@pytest.fixture(scope="session")
def digest(tmp_path_factory) -> Path:
    """tests/slurm/digest.c built: a program that computes in steps and
    prints a digest per step (the job of the scheduler tests)."""
    exe = tmp_path_factory.mktemp("digest") / "digest"
    subprocess.run(
        ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(exe), str(TESTS / "slurm" / "digest.c")],
        check=True,
        timeout=60,
    )
    return exe

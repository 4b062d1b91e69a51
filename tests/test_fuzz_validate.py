# SPDX-License-Identifier: GPL-2.0-or-later
"""Fuzz ckpt_validate with the gcc-only driver, replay the crash reproducers.

The driver (tests/fuzz/drive_validate.c) is built with gcc under
-fsanitize=address,undefined -fno-sanitize-recover=all, so any out-of-bounds
read or undefined behaviour in native/ckpt_validate.c ends the run with a
report and a non-zero status. The long libFuzzer campaign is described in
tests/fuzz/README.md; it needs clang and is not run here.

Reproducers are replayed one by one with full sanitizers, with gcc and (when
installed) clang: those `seedgen repro` builds for the current image format
(they are code, so a format change does not turn them into mere bad-magic
files) and any *.bin file committed under tests/fuzz/crashes/. KNOWN_OPEN
lists those whose
bug in native/ is reported but not fixed yet: they are strict xfails where
the compiler's sanitizers see the bug, so fixing native/ turns them into
failures that say to remove the entry. While an entry is open, the flag
named there also keeps the fuzzing run itself from stopping on that bug.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NATIVE = ROOT / "native"
FUZZ = ROOT / "tests" / "fuzz"
CRASHES = FUZZ / "crashes"

SAN = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
WARN = ["-Wall", "-Wextra", "-Werror"]
# Sanitizer reports must fail the run, whatever the environment says.
SAN_ENV = {
    "ASAN_OPTIONS": "abort_on_error=1:detect_leaks=1:allocator_may_return_null=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:abort_on_error=1",
}
REPORT_MARKERS = ("runtime error:", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "SUMMARY: ")


class Open:
    """A reported, unfixed finding in native/ with its reproducer."""

    def __init__(self, why: str, seen_by: tuple[str, ...], gcc_suppress: str | None):
        self.why = why
        self.seen_by = seen_by  # compilers whose sanitizers report it
        self.gcc_suppress = gcc_suppress  # flag that lets the fuzzing run go past it


KNOWN_OPEN: dict[str, Open] = {}

# What a clean verdict on each generated reproducer is, once native/ is fixed;
# a committed crashes/*.bin must be rejected (non-zero) unless listed here.
EXPECTED_STATUS = {
    "misaligned-region-table.bin": 10,  # CKPT_EXIT_CORRUPT
    "null-tail-checksum.bin": 0,  # a valid (minimal) image
    "ghost-size-wrap.bin": 10,  # CKPT_EXIT_CORRUPT
}

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")


def run_bounded(
    cmd: list[str], timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run cmd with a deadline; whatever happens, kill it by pid."""
    full_env = dict(os.environ, **SAN_ENV, **(env or {}))
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{cmd[0]} did not finish within {timeout} s (a hang?)")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def compile_(cmd: list[str]) -> None:
    r = subprocess.run(
        cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, check=False
    )
    if r.returncode != 0:
        pytest.fail(f"build failed: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}", pytrace=False)


def build_driver(cc: str, out: Path, coverage: bool, extra: list[str]) -> Path:
    """drive_validate with ckpt_validate.c (optionally coverage-instrumented)."""
    out.mkdir(parents=True, exist_ok=True)
    obj = out / "ckpt_validate.o"
    exe = out / "drive_validate"
    cov = ["-fsanitize-coverage=trace-pc"] if coverage else []
    compile_(
        [
            cc,
            *SAN,
            *extra,
            *WARN,
            *cov,
            "-I",
            str(NATIVE),
            "-c",
            "-o",
            str(obj),
            str(NATIVE / "ckpt_validate.c"),
        ]
    )
    compile_(
        [
            cc,
            *SAN,
            *extra,
            *WARN,
            "-I",
            str(NATIVE),
            "-I",
            str(FUZZ),
            "-o",
            str(exe),
            str(FUZZ / "drive_validate.c"),
            str(obj),
        ]
    )
    return exe


def assert_clean(r: subprocess.CompletedProcess, what: str) -> None:
    reports = [m for m in REPORT_MARKERS if m in r.stderr]
    assert r.returncode == 0 and not reports, (
        f"{what}: exit {r.returncode}, sanitizer reports {reports}\n"
        f"stdout:\n{r.stdout[-4000:]}\nstderr:\n{r.stderr[-8000:]}"
    )


@pytest.fixture(scope="module")
def fuzz_driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    suppress = sorted({o.gcc_suppress for o in KNOWN_OPEN.values() if o.gcc_suppress and "gcc" in o.seen_by})
    return build_driver("gcc", tmp_path_factory.mktemp("fuzz-gcc"), coverage=True, extra=suppress)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fuzz-seeds")
    r = subprocess.run(
        [sys.executable, str(FUZZ / "make_seeds.py"), str(out)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if r.returncode != 0:
        pytest.fail(f"make_seeds.py failed ({r.returncode}):\n{r.stdout}\n{r.stderr}", pytrace=False)
    return out


def replay_drivers() -> list:
    params = []
    for cc in ("gcc", "clang"):
        marks = [] if shutil.which(cc) else [pytest.mark.skip(reason=f"{cc} is not installed")]
        params.append(pytest.param(cc, marks=marks, id=cc))
    return params


@pytest.fixture(scope="module", params=replay_drivers())
def replay_driver(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    cc = request.param
    return cc, build_driver(cc, tmp_path_factory.mktemp(f"replay-{cc}"), coverage=False, extra=[])


def fuzz(driver: Path, seeds: Path, seconds: int, seed: int, tmp_path: Path) -> subprocess.CompletedProcess:
    crash_dir = tmp_path / "crashes"
    crash_dir.mkdir(parents=True)
    inputs = [seeds / "synth.img", seeds / "real-small.img", seeds / "mutants"]
    r = run_bounded(
        [
            str(driver),
            "-t",
            str(seconds),
            "-s",
            str(seed),
            "-o",
            str(crash_dir),
            *(str(p) for p in inputs if p.exists()),
        ],
        timeout=seconds + 120,
    )
    saved = sorted(p.name for p in crash_dir.iterdir())
    assert_clean(r, f"fuzzing ckpt_validate (seed {seed}, saved inputs {saved})")
    assert "no contract or sanitizer failure" in r.stdout, r.stdout
    return r


def test_seeds_are_valid_images(replay_driver: tuple[str, Path], seeds: Path) -> None:
    _cc, driver = replay_driver
    images = [p for p in (seeds / "synth.img", seeds / "real-small.img") if p.exists()]
    r = run_bounded([str(driver), "-r", *map(str, images)], timeout=60)
    assert_clean(r, "replaying the seeds")
    for img in images:
        assert f"{img}: status 0\n" in r.stdout, r.stdout


def test_fuzz_validate_short(fuzz_driver: Path, seeds: Path, tmp_path: Path) -> None:
    """What CI runs: ~20 s of mutations, fixed random seed."""
    r = fuzz(fuzz_driver, seeds, seconds=20, seed=1, tmp_path=tmp_path)
    print(r.stdout)


@pytest.mark.slow
def test_fuzz_validate_long(fuzz_driver: Path, seeds: Path, tmp_path: Path) -> None:
    """Two more minutes with other random seeds."""
    for seed in (2, 3):
        r = fuzz(fuzz_driver, seeds, seconds=60, seed=seed, tmp_path=tmp_path / str(seed))
        print(r.stdout)


def committed_reproducers() -> list[str]:
    return sorted(p.name for p in CRASHES.glob("*.bin")) if CRASHES.is_dir() else []


# Generated per format: ghost files (format 2) have their own reproducer.
GENERATED = ["misaligned-region-table.bin", "null-tail-checksum.bin", "ghost-size-wrap.bin"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    build = tmp_path_factory.mktemp("repro")
    seedgen = build / "seedgen"
    compile_(
        [
            "gcc",
            *SAN,
            *WARN,
            "-I",
            str(NATIVE),
            "-I",
            str(FUZZ),
            "-o",
            str(seedgen),
            str(FUZZ / "seedgen.c"),
            str(NATIVE / "ckpt_validate.c"),
        ]
    )
    out = build / "out"
    out.mkdir()
    r = run_bounded([str(seedgen), "repro", str(out)], timeout=60)
    assert_clean(r, "seedgen repro")
    return out


@pytest.mark.parametrize("name", GENERATED + committed_reproducers())
def test_crash_reproducer(
    replay_driver: tuple[str, Path], generated: Path, name: str, request: pytest.FixtureRequest
) -> None:
    cc, driver = replay_driver
    path = CRASHES / name if (CRASHES / name).exists() else generated / name
    if not path.exists():
        pytest.skip(f"{name} does not apply to this image format")
    known = KNOWN_OPEN.get(name)
    if known and cc in known.seen_by:
        request.applymarker(
            pytest.mark.xfail(
                reason=f"open in native/: {known.why}. If this passes, the bug is fixed: "
                f"remove {name!r} from KNOWN_OPEN in {Path(__file__).name}",
                strict=True,
            )
        )
    r = run_bounded([str(driver), "-r", str(path)], timeout=60)
    assert_clean(r, f"replaying {name} ({cc})")
    if name in EXPECTED_STATUS:
        assert f": status {EXPECTED_STATUS[name]}" in r.stdout, r.stdout
    else:
        assert ": status 0" not in r.stdout, f"{name} is accepted as a valid image: {r.stdout}"

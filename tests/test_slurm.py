# SPDX-License-Identifier: GPL-2.0-or-later
"""The Slurm recipe (examples/slurm/job.sh) on a real one-node Slurm.

tests/slurm/slurm-up.sh starts munged, slurmctld and slurmd on this machine
(installing Debian's slurm-wlm and munge if they are missing); the module
fixture stops them in ``finally``. Each test submits job.sh with a real
program - tests/slurm/digest.c (about 10 s of work) and python3 running
tests/slurm/digest.py - preempts it twice with ``scancel --signal=USR2
--batch`` (the second time with the signal twice in a row), and checks that
the job completes after exactly two requeues with output byte-identical to
an uninterrupted run. Skipped, with the reason, only when Slurm's packages
cannot be installed.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import extckpt

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
JOB_SH = ROOT / "examples" / "slurm" / "job.sh"
PKG_ROOT = str(Path(extckpt.__file__).resolve().parent.parent)
DEADLINE = 90.0


def _two_free_ports() -> int:
    """A port p with p and p + 1 free (slurmctld's and slurmd's)."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            p = a.getsockname()[1]
            if p >= 65535:
                continue
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", p + 1))
                except OSError:
                    continue
            return p
    raise RuntimeError("no two consecutive free ports")


@pytest.fixture(scope="module")
def slurm(tmp_path_factory, request):
    """A one-node Slurm; yields the environment for its commands."""
    d = tmp_path_factory.mktemp("slurm")
    env = dict(os.environ, SLURM_TEST_PORT=str(_two_free_ports()))
    try:
        r = subprocess.run(
            [str(HERE / "slurm" / "slurm-up.sh"), str(d)],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if r.returncode == 3:
            reason = f"no Slurm here: {r.stderr.strip()}"
            # Loudly: on the terminal even with -q, not only in the summary.
            capture = request.config.pluginmanager.get_plugin("capturemanager")
            with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
                print(f"\nSKIPPED tests/test_slurm.py: {reason}", file=sys.stderr, flush=True)
            pytest.skip(reason)
        logs = "".join(f"\n--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted((d / "log").glob("*.log")))
        assert r.returncode == 0, f"slurm-up.sh failed ({r.returncode}):\n{r.stderr}{logs}"
        env["SLURM_CONF"] = str(d / "slurm.conf")
        yield env
    finally:
        subprocess.run([str(HERE / "slurm" / "slurm-down.sh"), str(d)], timeout=60, check=False)


def slurm_cmd(env: dict[str, str], *argv: str) -> str:
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 0, f"{' '.join(argv)}: {r.returncode}\n{r.stderr}"
    return r.stdout


def job_field(env: dict[str, str], job: str, field: str) -> str:
    out = slurm_cmd(env, "scontrol", "show", "job", job)
    m = re.search(rf"\b{field}=(\S*)", out)
    assert m, out
    return m[1]


def wait_for(what: str, cond, timeout: float = DEADLINE, show=lambda: ""):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s\n{show()}")
        time.sleep(0.01)


def since_resume(err: Path) -> float:
    """Seconds from job.sh's last "resuming from" line (its wall-clock
    time, to the millisecond) to now: an upper bound of the time from the
    job's start to the program running again (a step's output included)."""
    stamps = re.findall(r"job.sh: (\d\d):(\d\d):(\d\d\.\d+): resuming from", err.read_text())
    assert stamps, err.read_text()
    h, m, sec = stamps[-1]
    now = time.time()
    midnight = now - now % 86400
    return now - (midnight + int(h) * 3600 + int(m) * 60 + float(sec))


def lines(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


@pytest.mark.parametrize(
    "program,second",
    [("c", "computing"), ("python3", "computing"), ("c", "restarting")],
    ids=["c", "python3", "c-signal-during-restart"],
)
def test_preempted_twice(slurm, tmp_path, digest, program, second):
    """Two preemptions: the first while the program computes; the second,
    two signals in a row, while it computes or while job.sh restarts it."""
    if program == "c":
        argv = [str(digest), "150"]
    else:
        argv = [sys.executable, str(HERE / "slurm" / "digest.py"), "250"]
    # The uninterrupted run, meanwhile.
    ref = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        _preempted_twice(slurm, tmp_path, argv, ref, second == "restarting")
    finally:
        ref.kill()
        ref.wait()


def _preempted_twice(
    env, tmp_path: Path, argv: list[str], ref: subprocess.Popen, during_restart: bool
) -> None:
    out, err, image = tmp_path / "job.out", tmp_path / "job.err", tmp_path / "job.ckpt"
    job_env = (
        f"ALL,PYTHONPATH={PKG_ROOT},JOB_IMAGE={image},JOB_GRACE=60,EXTCKPT={sys.executable} -m extckpt.cli"
    )
    job = slurm_cmd(
        env,
        "sbatch",
        "--parsable",
        f"--chdir={tmp_path}",
        f"--output={out}",
        f"--error={err}",
        f"--export={job_env}",
        str(JOB_SH),
        *argv,
    ).strip()

    def show() -> str:
        text = err.read_text() if err.exists() else "(no job.err)"
        return f"{slurm_cmd(env, 'scontrol', 'show', 'job', job)}\njob.err:\n{text}"

    try:
        figures = []
        for n, (at, signals) in enumerate(((30, 1), (60, 2)), 1):
            if n == 2 and during_restart:
                wait_for("job.sh resuming", lambda: "resuming from" in err.read_text(), show=show)
            else:
                wait_for(f"{at} lines of output", lambda at=at: lines(out) >= at, show=show)
            t_signal = time.monotonic()
            for _ in range(signals):
                slurm_cmd(env, "scancel", "--signal=USR2", "--batch", job)
            wait_for(f"requeue {n}", lambda n=n: job_field(env, job, "Restarts") == str(n), show=show)
            t_requeued = time.monotonic()
            before = lines(out)
            if n == 1 and during_restart:
                continue
            # A requeued job starts again once the credentials of its last
            # run have expired: cred_expire=5 in slurm-up.sh. (Starting it
            # sooner, scontrol update StartTime=now, races with slurmd,
            # which refuses a job it killed: "already killed".)
            wait_for("the program running again", lambda before=before: lines(out) > before, show=show)
            figures.append((t_requeued - t_signal, time.monotonic() - t_requeued, since_resume(err)))
        wait_for(
            "the job to complete",
            lambda: job_field(env, job, "JobState") in ("COMPLETED", "FAILED", "CANCELLED"),
            timeout=120,
            show=show,
        )
        assert job_field(env, job, "JobState") == "COMPLETED", show()
        assert job_field(env, job, "Restarts") == "2", show()
        expected, _ = ref.communicate(timeout=120)
        assert ref.returncode == 0
        assert out.read_bytes() == expected, show()
        log = err.read_text()
        # During a restart the signal waits for the program (an image) or,
        # in extckpt's first instants, ends the restart (the same image).
        during = log.count("image complete") == 2 or "was still starting" in log
        assert during if during_restart else log.count("image complete") == 2, show()
        assert "libckpt:" not in log and "Traceback" not in log, show()
        assert not image.exists()
        for requeue, back, script in figures:
            print(
                f"{Path(argv[-2]).name}: signal to requeued {requeue:.2f} s, "
                f"to running again {back:.2f} s, of which job.sh start to running {script:.2f} s"
            )
        print(*(line for line in log.splitlines() if "requeueing" in line), sep="\n")
    finally:
        subprocess.run(["scancel", job], env=env, capture_output=True, timeout=30, check=False)

# SPDX-License-Identifier: GPL-2.0-or-later
"""`extckpt run --resume` (start or resume) and examples/slurm/job.sh, the
Slurm recipe, without Slurm: the job script runs under bash with a fake
`scontrol` that records the requeue. The faults of issue #13: the signal
during a restart and twice in a row, SIGKILL in the middle of writing, a file
at --image that is not this program's image; none loses the last complete
image. tests/test_slurm.py runs the recipe on a real Slurm.

The program is tests/slurm/digest.c: steps of fixed work, a flushed line
after each, a digest at the end; its output depends only on its arguments,
so a run interrupted and resumed must print exactly what an uninterrupted
one prints.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xxhash

import extckpt
from extckpt._layout import C

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
JOB_SH = ROOT / "examples" / "slurm" / "job.sh"
PKG_ROOT = str(Path(extckpt.__file__).resolve().parent.parent)
DEADLINE = 30.0
CHECKPOINTED = C.CKPT_EXIT_CHECKPOINTED
STEPS = 60


@pytest.fixture(scope="module")
def reference(digest) -> list[str]:
    """digest's output, uninterrupted, for STEPS steps."""
    return run_digest(digest, str(STEPS)).splitlines(keepends=True)


def run_digest(digest: Path, *args: str) -> str:
    """digest's output, uninterrupted."""
    r = subprocess.run([str(digest), *args], check=True, capture_output=True, text=True, timeout=120)
    return r.stdout


class Job:
    """One process (`extckpt run --resume` or job.sh) with stdout appended to
    a file, as Slurm's --open-mode=append does; killed by pid at the end."""

    def __init__(self, argv: list[str], out: Path, env: dict[str, str], cwd: Path) -> None:
        self.out = out
        self.err = out.with_suffix(".err")
        with open(out, "ab") as o, open(self.err, "ab") as e:
            self.popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=o, stderr=e, env=env, cwd=cwd
            )
        self.pid = self.popen.pid

    def lines(self) -> list[str]:
        return self.out.read_text().splitlines(keepends=True)

    def stderr(self) -> str:
        return self.err.read_text()

    def wait_lines(self, n: int, timeout: float = DEADLINE) -> None:
        deadline = time.monotonic() + timeout
        while len(self.lines()) < n:
            ended = self.popen.poll()
            assert ended is None, f"ended ({ended}) before {n} lines:\n{self.stderr()}"
            assert time.monotonic() < deadline, f"fewer than {n} lines after {timeout} s:\n{self.stderr()}"
            time.sleep(0.005)

    def wait(self, timeout: float = DEADLINE) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running after {timeout} s:\n{self.stderr()}")

    def kill(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.popen.wait(10)


@pytest.fixture
def jobs():
    started: list[Job] = []
    try:
        yield started
    finally:
        for j in started:
            j.kill()


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CKPT_", "SLURM_", "JOB_"))}
    env.pop("LD_PRELOAD", None)
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    scontrol = fake / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/scontrol.log\n')
    scontrol.chmod(0o755)
    env["PATH"] = f"{fake}:{env.get('PATH', '/usr/bin:/bin')}"
    env["PYTHONPATH"] = PKG_ROOT
    env.update(extra)
    return env


def resume_argv(image: Path, *prog: str) -> list[str]:
    return [sys.executable, "-m", "extckpt.cli", "run", "--resume", "--image", str(image), "--", *prog]


def start(jobs: list[Job], argv: list[str], tmp_path: Path, **extra: str) -> Job:
    job = Job(argv, tmp_path / "out", env_for(tmp_path, **extra), tmp_path)
    jobs.append(job)
    return job


def file_id(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_ino, st.st_size, xxhash.xxh64(path.read_bytes()).intdigest()


def requeues(tmp_path: Path) -> int:
    log = tmp_path / "scontrol.log"
    return log.read_text().count("requeue") if log.exists() else 0


# ---- extckpt run --resume ----------------------------------------------------


def test_resume_starts_then_resumes(jobs, tmp_path, digest, reference):
    """No file: the program starts (preloaded); the signal ends it with
    CKPT_EXIT_CHECKPOINTED; --resume then restarts it, twice; the output is
    the uninterrupted run's."""
    image = tmp_path / "job.ckpt"
    argv = resume_argv(image, str(digest), str(STEPS))
    for wait_for in (5, 20):
        job = start(jobs, argv, tmp_path, CKPT_EXIT_AFTER="1")
        job.wait_lines(wait_for)
        job.popen.send_signal(signal.SIGUSR2)
        assert job.wait() == CHECKPOINTED, job.stderr()
        assert image.exists()
    job = start(jobs, argv, tmp_path, CKPT_EXIT_AFTER="1")
    assert job.wait() == 0, job.stderr()
    assert job.lines() == reference


@pytest.mark.parametrize("kind", ["garbage", "empty", "truncated", "directory", "other-program"])
def test_resume_refuses(jobs, tmp_path, digest, kind):
    """A file at --image that cannot be resumed: exit 2 with a message that
    says so; the program is not started and the file is left as it was."""
    image = tmp_path / "job.ckpt"
    if kind == "garbage":
        image.write_bytes(b"not an image\n" * 100)
    elif kind == "empty":
        image.write_bytes(b"")
    elif kind == "directory":
        image.mkdir()
    else:
        job = start(jobs, resume_argv(image, str(digest), str(STEPS)), tmp_path, CKPT_EXIT_AFTER="1")
        job.wait_lines(2)
        job.popen.send_signal(signal.SIGUSR2)
        assert job.wait() == CHECKPOINTED, job.stderr()
        if kind == "truncated":
            with open(image, "r+b") as f:
                f.truncate(image.stat().st_size - 4096)
    before = None if kind == "directory" else file_id(image)
    (tmp_path / "out").unlink(missing_ok=True)
    prog = ["/bin/sh", "-c", "echo started"] if kind == "other-program" else [str(digest), str(STEPS)]
    job = start(jobs, resume_argv(image, *prog), tmp_path)
    assert job.wait() == 2, job.stderr()
    err = job.stderr()
    assert "cannot resume from" in err, err
    if kind == "other-program":
        assert f"image of {digest}" in err, err
    else:
        assert "does not start the program from scratch" in err, err
    assert job.lines() == [], "the program ran"
    if before is not None:
        assert file_id(image) == before


def test_resume_removes_stale_temporaries(jobs, tmp_path, digest):
    """IMAGE.tmp.PID whose writer is gone is removed (with a line saying
    so) and never taken for an image; one whose pid is alive is kept."""
    image = tmp_path / "job.ckpt"
    dead = tmp_path / "job.ckpt.tmp.4000001"  # above pid_max: no such process
    alive = tmp_path / f"job.ckpt.tmp.{os.getpid()}"
    for f in (dead, alive):
        f.write_bytes(b"half an image")
    job = start(jobs, resume_argv(image, str(digest), "3"), tmp_path)
    assert job.wait() == 0, job.stderr()
    assert not dead.exists() and alive.exists()
    assert f"removed {dead}, left by an interrupted checkpoint" in job.stderr()
    assert len(job.lines()) == 4  # started afresh: 3 steps and the digest


def sig_blocked(pid: int, sig: int) -> bool:
    """Whether `extckpt run --resume` (pid) has blocked sig: its mask is that
    one signal. (Python blocks every signal for an instant at start-up, and
    subprocess's child between fork and exec: those do not count.)"""
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        if b"--resume" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return False
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigBlk:"):
                return int(line.split()[1], 16) == 1 << (sig - 1)
    return False


def test_signal_during_restart(jobs, tmp_path, digest):
    """The checkpoint signal comes while `run --resume` checks the image and
    myrestart restores it: it waits (blocked) and the restored program
    checkpoints at once and exits; the image is then a new one, and resumes
    to the right end."""
    image = tmp_path / "job.ckpt"
    argv = resume_argv(image, str(digest), str(STEPS), "512")
    job = start(jobs, argv, tmp_path, CKPT_EXIT_AFTER="1")
    job.wait_lines(3, timeout=60)
    job.popen.send_signal(signal.SIGUSR2)
    assert job.wait(60) == CHECKPOINTED, job.stderr()
    first = file_id(image)
    printed = len(job.lines())

    job = start(jobs, argv, tmp_path, CKPT_EXIT_AFTER="1")
    deadline = time.monotonic() + DEADLINE
    while not sig_blocked(job.pid, signal.SIGUSR2):
        assert job.popen.poll() is None, job.stderr()
        assert time.monotonic() < deadline
        time.sleep(0.0005)
    job.popen.send_signal(signal.SIGUSR2)
    assert job.wait(60) == CHECKPOINTED, job.stderr()
    assert file_id(image) != first
    assert len(job.lines()) <= printed + 1, "the signal waited for a whole step or more"

    ref = run_digest(digest, str(STEPS), "512")
    job = start(jobs, argv, tmp_path, CKPT_EXIT_AFTER="1")
    assert job.wait(120) == 0, job.stderr()
    assert "".join(job.lines()) == ref


# ---- the job script ------------------------------------------------------------


def job_argv(digest: Path, *args: str) -> list[str]:
    return ["bash", str(JOB_SH), str(digest), *args]


def job_env(image: Path, **extra: str) -> dict[str, str]:
    return {
        "SLURM_JOB_ID": "4242",
        "JOB_IMAGE": str(image),
        "JOB_GRACE": "20",
        "EXTCKPT": f"{sys.executable} -m extckpt.cli",
        **extra,
    }


def test_job_script_requeues_and_resumes(jobs, tmp_path, digest, reference):
    """Two preemptions, the second a double signal: each ends with one
    requeue; the third run completes, the output is the uninterrupted
    run's and the image is removed."""
    image = tmp_path / "job.ckpt"
    for n, signals in ((1, 1), (2, 2)):
        job = start(jobs, job_argv(digest, str(STEPS)), tmp_path, **job_env(image))
        job.wait_lines(10 * n)
        for _ in range(signals):
            job.popen.send_signal(signal.SIGUSR2)
        assert job.wait() == 0, job.stderr()
        assert requeues(tmp_path) == n, job.stderr()
        assert "image complete" in job.stderr()
    job = start(jobs, job_argv(digest, str(STEPS)), tmp_path, **job_env(image))
    assert job.wait() == 0, job.stderr()
    assert requeues(tmp_path) == 2
    assert job.lines() == reference
    assert not image.exists()
    assert "libckpt:" not in job.stderr() and "Traceback" not in job.stderr()


def test_job_script_killed_while_writing(jobs, tmp_path, digest):
    """SIGKILL of the job in the middle of writing its image: the previous
    image is intact; the next run removes the leftover, resumes from it and
    prints, after what was printed, the rest from that image's step on."""
    image = tmp_path / "job.ckpt"
    argv = job_argv(digest, str(STEPS), "1024")
    job = start(jobs, argv, tmp_path, **job_env(image))
    job.wait_lines(3, timeout=60)
    job.popen.send_signal(signal.SIGUSR2)
    assert job.wait(60) == 0, job.stderr()
    older = file_id(image)
    at_older = len(job.lines())

    job = start(jobs, argv, tmp_path, **job_env(image))
    job.wait_lines(at_older + 2, timeout=60)
    pids = [int(p) for p in Path(f"/proc/{job.pid}/task/{job.pid}/children").read_text().split()]
    job.popen.send_signal(signal.SIGUSR2)
    deadline = time.monotonic() + 60
    # libckpt writes into an unnamed file (O_TMPFILE) in the image's
    # directory: wait until one of the job's processes has 1 MiB in it.
    while max((_unnamed_image_size(p, tmp_path) for p in pids + _all_descendants(pids)), default=0) < (
        1 << 20
    ):
        assert image.stat().st_ino == older[0], "the checkpoint was complete before it could be killed"
        assert time.monotonic() < deadline, "no half-written image to kill"
        time.sleep(0.0005)
    # The job's processes, each by pid: the script, extckpt/myrestart and
    # (with the pid restored) the program under it.
    for pid in pids:
        for child in _descendants(pid):
            os.kill(child, signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    assert file_id(image) == older, "the older image changed"
    printed = job.lines()

    job = start(jobs, argv, tmp_path, **job_env(image))
    assert job.wait(120) == 0, job.stderr()
    assert not list(tmp_path.glob("job.ckpt.*")), "a killed checkpoint left a file behind"
    lines = run_digest(digest, str(STEPS), "1024").splitlines(keepends=True)
    assert job.lines() == printed + lines[at_older:]


def _unnamed_image_size(pid: int, directory: Path) -> int:
    """Bytes in the unnamed image file process pid writes in directory."""
    with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(FileNotFoundError):
                target = os.readlink(fd)
                if target.startswith(f"{directory}/#") and target.endswith(" (deleted)"):
                    return fd.stat().st_size
    return 0


def _all_descendants(pids: list[int]) -> list[int]:
    return [d for p in pids for d in _descendants(p)]


def _descendants(pid: int) -> list[int]:
    out = []
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            out += [*_descendants(int(c)), int(c)]
    return out


def test_job_script_failed_checkpoint_requeues_from_previous(jobs, tmp_path, digest):
    """The checkpoint fails (the disk is full: the image's directory is a
    small tmpfs that a filler file then fills): the program goes on; after
    JOB_GRACE the script ends it and requeues, and the next run resumes
    from the previous image, which the failure left as it was."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs (a disk that fills up)")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], check=True, timeout=30)
    try:
        image = disk / "job.ckpt"
        steps = "100"
        job = start(jobs, job_argv(digest, steps), tmp_path, **job_env(image))
        job.wait_lines(3)
        job.popen.send_signal(signal.SIGUSR2)
        assert job.wait() == 0, job.stderr()
        older = file_id(image)
        at_older = len(job.lines())

        job = start(jobs, job_argv(digest, steps), tmp_path, **job_env(image, JOB_GRACE="1"))
        job.wait_lines(at_older + 2)
        filler = disk / "filler"
        # Every byte left, then some: the next write gets ENOSPC.
        with open(filler, "wb") as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * (1 << 20))
        job.popen.send_signal(signal.SIGUSR2)
        assert job.wait() == 0, job.stderr()
        err = job.stderr()
        assert "libckpt: cannot write the image" in err and "no image 1 s after the signal" in err, err
        assert requeues(tmp_path) == 2
        assert file_id(image) == older
        printed = job.lines()
        assert len(printed) < int(steps) + 1, "the program ended before the grace period did"

        filler.unlink()
        job = start(jobs, job_argv(digest, steps), tmp_path, **job_env(image))
        assert job.wait(60) == 0, job.stderr()
        ref = run_digest(digest, steps)
        assert job.lines() == printed + ref.splitlines(keepends=True)[at_older:]
    finally:  # lazily: the jobs fixture kills what may still run there
        subprocess.run(["umount", "-l", str(disk)], check=False, timeout=30)


def test_job_script_bad_image_fails_the_job(jobs, tmp_path, digest):
    """A file at JOB_IMAGE that is not this program's image: the job fails
    with extckpt's exit 2 and its message, and is not requeued."""
    image = tmp_path / "job.ckpt"
    image.write_bytes(b"something else")
    job = start(jobs, job_argv(digest, "3"), tmp_path, **job_env(image))
    assert job.wait() == 2, job.stderr()
    assert "cannot resume from" in job.stderr()
    assert requeues(tmp_path) == 0
    assert image.read_bytes() == b"something else"


@pytest.mark.parametrize("exit_after", [True, False])
def test_signal_before_a_fresh_start(tmp_path, exit_after):
    """The checkpoint signal pending (blocked) when there is no image and
    no program yet: with CKPT_EXIT_AFTER, end with CKPT_EXIT_CHECKPOINTED
    (nothing new to save); without, take it and go on. Never die of it."""
    code = (
        "import os, signal, sys\n"
        "from extckpt import launch\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR2])\n"
        "os.kill(os.getpid(), signal.SIGUSR2)\n"
        "launch._signal_before_start(signal.SIGUSR2, os.environ)\n"
        "assert signal.SIGUSR2 not in signal.sigpending()\n"
        "print('went on')\n"
    )
    env = env_for(tmp_path, **({"CKPT_EXIT_AFTER": "1"} if exit_after else {}))
    argv = [sys.executable, "-c", code]
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=DEADLINE, check=False)
    if exit_after:
        assert r.returncode == CHECKPOINTED, r.stderr
        assert "nothing new to save" in r.stderr and r.stdout == ""
    else:
        assert r.returncode == 0, r.stderr
        assert "ignored" in r.stderr and r.stdout == "went on\n"

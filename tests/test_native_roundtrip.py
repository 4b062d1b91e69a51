# SPDX-License-Identifier: GPL-2.0-or-later
"""Round trips of every self-judging target: checkpoint -> kill -> restart ->
PASS, in each build variant; two- and three-generation chains; a checkpoint
the running program must not notice; and the refusal of a multi-threaded
program.
"""

from __future__ import annotations

import signal
import time

import pytest
import support
from support import (
    DEFAULT_VARIANT,
    RESTARTABLE,
    TARGETS,
    VARIANTS,
    Target,
    checkpoint,
    finish,
    round_trip,
    start_target,
    target_path,
    wait_restored,
)

pytestmark = pytest.mark.usefixtures("built")


def image_created_ns(image) -> int:
    ffi = support.header_ffi()
    data = image.read_bytes()[: ffi.sizeof("struct ckpt_header")]
    header = ffi.from_buffer("struct ckpt_header *", bytearray(data))
    return header.created_ns


def _param(target: Target, *marks):
    marks = list(marks)
    if target.xfail:
        marks.append(pytest.mark.xfail(reason=target.xfail, strict=False))
    return pytest.param(target, id=target.id, marks=marks)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("target", [_param(t) for t in RESTARTABLE])
def test_round_trip(procs, tmp_path, target, variant):
    round_trip(procs, tmp_path, target, variant)


@pytest.mark.parametrize("target", [_param(t) for t in RESTARTABLE])
def test_two_generations(procs, tmp_path, target):
    """checkpoint -> restart -> checkpoint the restarted -> restart -> PASS."""
    round_trip(procs, tmp_path, target, DEFAULT_VARIANT, generations=2)


@pytest.mark.slow
@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != DEFAULT_VARIANT])
@pytest.mark.parametrize("target", [_param(t) for t in RESTARTABLE])
def test_two_generations_variants(procs, tmp_path, target, variant):
    round_trip(procs, tmp_path, target, variant, generations=2)


@pytest.mark.parametrize("variant", ["pie-O0", "nopie-O3"])
def test_three_generations_with_steps(procs, tmp_path, variant):
    """The generations target grows its state in each generation (the
    restarted process checkpoints to its original's CKPT_IMAGE)."""
    exe = target_path("generations", variant)
    image = tmp_path / "gen1.img"
    proc = start_target(procs, exe, image)
    for gen in range(1, 3):
        checkpoint(proc, image)
        proc.kill()
        proc = support.restart(procs, image)
        proc.send("step\n")
        proc.wait_line(f"step {gen} ok")
    checkpoint(proc, image)
    proc.kill()
    proc = support.restart(procs, image)
    finish(proc, Target("generations"))
    assert "generations 3" in proc.stdout, proc.transcript()


@pytest.mark.parametrize("target", [pytest.param(t, id=t.id) for t in TARGETS])
def test_checkpoint_unnoticed(procs, tmp_path, target):
    """After a checkpoint the original program goes on and passes."""
    image = tmp_path / "img"
    proc = start_target(procs, target_path(target.name), image, support.target_args(target, tmp_path))
    checkpoint(proc, image)
    finish(proc, target)
    if target.name == "quiet":  # nothing stray on either stream
        assert (proc.stdout, proc.stderr) == ("ready\nPASS\n", ""), proc.transcript()


def test_restarted_program_can_be_checkpointed_twice(procs, tmp_path):
    """Two checkpoints of one restarted process, to the same path."""
    target = Target("generations")
    image = tmp_path / "img"
    proc = start_target(procs, target_path(target.name), image)
    checkpoint(proc, image)
    proc.kill()
    proc = support.restart(procs, image)
    wait_restored(proc)
    created = [image_created_ns(image)]
    for _ in range(2):
        checkpoint(proc, image)
        created.append(image_created_ns(image))
    assert created == sorted(set(created)), created
    assert not list(tmp_path.glob("img.tmp.*"))
    finish(proc, target)


def test_multithread_refused(procs, tmp_path):
    """Two threads: one `libckpt:` line, no image, the program runs on."""
    image = tmp_path / "img"
    proc = start_target(procs, target_path("multithread"), image)
    proc.popen.send_signal(signal.SIGUSR2)
    line = proc.wait_stderr("libckpt:")
    assert "thread" in line, line
    assert not image.exists()
    assert not list(tmp_path.iterdir()), list(tmp_path.iterdir())
    finish(proc, Target("multithread"))
    assert proc.stderr.count("\n") == 1, proc.transcript()


def test_image_is_mode_0600(procs, tmp_path):
    image = tmp_path / "img"
    proc = start_target(procs, target_path("quiet"), image)
    checkpoint(proc, image)
    assert image.stat().st_mode & 0o777 == 0o600
    finish(proc, Target("quiet"))


def test_signal_during_restore(procs, tmp_path):
    """The checkpoint signal arriving while myrestart restores memory.

    The window is after myrestart has unmapped itself and before the
    program's handlers are back (256 MiB to restore makes it long). The
    process must survive it: the signal should wait (blocked) until the
    program runs again, not kill it or run a half-restored handler.
    """
    image = tmp_path / "img"
    proc = start_target(procs, target_path("bigmem"), image, ["256"])
    checkpoint(proc, image, timeout=120)
    proc.kill()
    proc = support.restart(procs, image)
    own = str(support.MYRESTART)
    deadline = time.monotonic() + support.DEADLINE
    seen = False  # before exec, the child is a copy of us: no myrestart yet
    while True:
        paths = support._maps_paths(proc.pid)
        assert paths is not None, proc.transcript()
        if own in paths:
            seen = True
        elif seen:
            break
        assert time.monotonic() < deadline, proc.transcript()
    proc.popen.send_signal(signal.SIGUSR2)
    proc.send("check\n")
    try:
        proc.wait_line("ok")
    except support.HarnessError as e:
        raise AssertionError(f"a signal during the restore was fatal: {e}") from None
    finish(proc, Target("bigmem"))

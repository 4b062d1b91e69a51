# SPDX-License-Identifier: GPL-2.0-or-later
"""``run``, ``run --resume`` and ``restart``: each replaces this process
(os.exec*) so that the program keeps our pid and our terminal."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal as _signal
import stat
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from . import signals as _signals
from ._layout import C
from ._native import libckpt_path, myrestart_path
from .errors import (
    ImageError,
    ImageOwnerError,
    ProgramNotExecutableError,
    ProgramNotFoundError,
    UsageError,
)
from .image import Image

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in "30s", "10m", "2h", "1d" or a plain number ("0.5")."""
    s = text.strip().lower()
    unit = _UNITS.get(s[-1:]) if s else None
    number = s[:-1] if unit else s
    try:
        value = float(number) * (unit or 1.0)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1e9:  # NaN fails too
        raise UsageError(
            f"{text!r} is not a duration",
            "Give a number with an optional unit: 30s, 10m, 2h, 1d (or 0.5, in seconds).",
        )
    return value


def run_environment(
    image: str | None = None,
    signal: str | None = None,
    env: Mapping[str, str] | None = None,
    every: float | None = None,
) -> dict[str, str]:
    """The environment `extckpt run` gives the program: LD_PRELOAD with the
    bundled libckpt.so first, CKPT_IMAGE absolute, CKPT_SIGNAL checked,
    CKPT_INTERVAL (seconds) when it is to checkpoint periodically."""
    env = dict(os.environ if env is None else env)
    lib = str(libckpt_path())
    old = env.get("LD_PRELOAD", "")
    rest = [p for p in old.replace(":", " ").split() if p and p != lib]
    env["LD_PRELOAD"] = " ".join([lib, *rest])
    img = image or env.get("CKPT_IMAGE") or "myckpt"
    env["CKPT_IMAGE"] = os.path.abspath(img)
    sig = signal or env.get("CKPT_SIGNAL") or "USR2"
    _signals.parse_or_raise(sig)
    env["CKPT_SIGNAL"] = sig
    if every is not None:
        env["CKPT_INTERVAL"] = repr(float(every))
    return env


def run(
    argv: Sequence[str],
    *,
    image: str | None = None,
    signal: str | None = None,
    every: float | None = None,
) -> NoReturn:
    """Exec argv with libckpt.so preloaded (checkpointing itself every
    `every` seconds if given). Does not return."""
    if not argv:
        raise UsageError("no program to run", "Example: extckpt run -- ./myprog arg1")
    env = run_environment(image, signal, every=every)
    prog = argv[0]
    if "/" not in prog and shutil.which(prog, path=env.get("PATH")) is None:
        raise ProgramNotFoundError(f"{prog}: command not found")
    try:
        os.execvpe(prog, list(argv), env)
    except FileNotFoundError:
        raise ProgramNotFoundError(f"{prog}: no such file") from None
    except PermissionError:
        raise ProgramNotExecutableError(f"{prog}: permission denied") from None
    except OSError as e:
        raise ProgramNotExecutableError(f"{prog}: cannot execute: {e.strerror}") from None


def check_owner(image: str | os.PathLike[str]) -> None:
    """An image runs as whoever restarts it: refuse one that is not the
    caller's (root's, for root) or that group or others may write, as
    myrestart does (CKPT_EXIT_OWNER) unless --any-owner."""
    try:
        st = os.stat(image)
    except OSError:
        return  # Image.open says what is wrong with the path
    me = os.geteuid()
    if st.st_uid != me:
        raise ImageOwnerError(
            f"{image} belongs to {_user(st.st_uid)}, not to you (uid {me}): "
            "restarting it runs its code as you",
            "If you trust its owner, restart with --any-owner.",
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = "others" if st.st_mode & stat.S_IWOTH else "its group"
        raise ImageOwnerError(
            f"{image} is writable by {who} (mode {stat.S_IMODE(st.st_mode):04o}): "
            "anyone who could write it may have changed the program",
            "If you trust it, `chmod go-w` it or restart with --any-owner.",
        )


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def restart_argv(
    image: str | os.PathLike[str], options: Sequence[str] = (), *, any_owner: bool = False
) -> list[str]:
    """Validate the image (owner, all checksums) and return myrestart's argv."""
    if any_owner:
        options = [*options, "--any-owner"]
    else:
        check_owner(image)
    with Image.open(image) as img:
        img.check_data()
    exe = str(myrestart_path())
    path = str(Path(image))
    if path.startswith("-"):
        path = "./" + path  # not an option to myrestart
    return [exe, *options, path]


def restart(
    image: str | os.PathLike[str], options: Sequence[str] = (), *, any_owner: bool = False
) -> NoReturn:
    """Exec the bundled myrestart on image. Does not return. myrestart checks
    the image again; the restored program gets this pid and terminal."""
    argv = restart_argv(image, options, any_owner=any_owner)
    os.execv(argv[0], argv)


# ---- run --resume: start or resume ----------------------------------------


class ResumeMismatchError(ImageError):
    """The image at --image is valid but was made from another program."""

    default_hint = (
        "Give --image a path of this job's own, or the program that made the "
        "image; remove the file to start from scratch."
    )


_NOT_RESUMABLE_HINT = (
    "extckpt does not start the program from scratch over it: that would "
    "lose the job's progress. Look at it with `extckpt show`; remove or move "
    "it away to start afresh."
)


def _which(prog: str, env: Mapping[str, str]) -> str | None:
    found = prog if "/" in prog else shutil.which(prog, path=env.get("PATH"))
    return os.path.realpath(found) if found and os.path.exists(found) else None


def _is_elf(path: str) -> bool:
    """A program, not a script: a script (a pyenv shim, a wrapper that
    sets up and execs the real program) never is the process's exe, so
    there is nothing to compare it with."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def _check_resumable(path: str, prog: str, env: Mapping[str, str]) -> None:
    """Validate every checksum of the image at path and that it was made
    from prog; raise an ImageError that says the image is kept."""
    try:
        with Image.open(path) as img:
            img.check_data()
            exe = img.header.exe
    except ImageError as e:
        raise type(e)(f"cannot resume from {path}: {e.message}", _NOT_RESUMABLE_HINT) from None
    want = _which(prog, env)
    if want is not None and _is_elf(want) and os.path.realpath(exe) != want:
        raise ResumeMismatchError(
            f"cannot resume from {path}: it is an image of {exe}, not of {prog} ({want})"
        )


def stale_temporaries(path: str) -> list[str]:
    """PATH.tmp.PID files beside the image whose writer (PID) is gone: what
    a checkpoint killed while writing leaves. Never an image (libckpt renames
    a temporary file into place only once it is complete)."""
    directory, name = os.path.split(path)
    pattern = re.compile(re.escape(name) + r"\.tmp\.(\d+)")
    try:
        entries = os.listdir(directory or ".")
    except OSError:
        return []
    stale = []
    for entry in entries:
        m = pattern.fullmatch(entry)
        if m and not _alive(int(m[1])):
            stale.append(os.path.join(directory, entry))
    return sorted(stale)


def _alive(pid: int) -> bool:
    """A process with this pid exists and is not a zombie (a killed job's
    program can stay one a while, until whoever inherited it reaps it)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rpartition(b")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def _remove_stale_temporaries(path: str) -> None:
    for tmp in stale_temporaries(path):
        try:
            os.unlink(tmp)
        except OSError as e:
            print(
                f"extckpt: cannot remove {tmp}, left by an interrupted checkpoint: {e.strerror}",
                file=sys.stderr,
            )
        else:
            print(f"extckpt: removed {tmp}, left by an interrupted checkpoint", file=sys.stderr)


def _signal_before_start(signo: int, env: Mapping[str, str]) -> None:
    """The checkpoint signal came while there was no program to checkpoint
    yet. With CKPT_EXIT_AFTER set, end as the program would have after its
    checkpoint: the job's state is what PATH holds (or its absence)."""
    if signo not in _signal.sigpending():
        return
    _signal.sigtimedwait([signo], 0)
    flag = env.get("CKPT_EXIT_AFTER", "")
    if flag and not flag.startswith("0"):
        print(
            "extckpt: the checkpoint signal came before the program started: nothing new to save",
            file=sys.stderr,
        )
        sys.stdout.flush()
        os._exit(C.CKPT_EXIT_CHECKPOINTED)
    print("extckpt: the checkpoint signal came before the program started; ignored", file=sys.stderr)


def resume(
    argv: Sequence[str],
    *,
    image: str | None = None,
    signal: str | None = None,
    every: float | None = None,
) -> NoReturn:
    """Start or resume: restart the image at `image` if there is one (every
    checksum checked, and made from argv[0]); when there is no file there,
    start argv with libckpt.so preloaded. A file there that is not such an
    image is an error (ImageError), never a fresh start. Does not return.

    The checkpoint signal is blocked from here on: one that comes during a
    restart waits and reaches the restored program (execve keeps it
    pending, and myrestart passes it on); before a fresh start there is
    nothing to checkpoint (see _signal_before_start).
    """
    if not argv:
        raise UsageError("no program to run", "Example: extckpt run --resume --image job.ckpt -- ./myprog")
    img = image or os.environ.get("CKPT_IMAGE")
    if not img:
        raise UsageError(
            "--resume needs the image's path", "Example: extckpt run --resume --image job.ckpt -- ./myprog"
        )
    env = run_environment(img, signal)
    signo = _signals.parse_or_raise(env["CKPT_SIGNAL"])
    _signal.pthread_sigmask(_signal.SIG_BLOCK, [signo])
    path = env["CKPT_IMAGE"]
    _remove_stale_temporaries(path)
    if os.path.lexists(path):
        _check_resumable(path, argv[0], env)
        exe = str(myrestart_path())
        os.execv(exe, [exe, path])
    _signal_before_start(signo, env)
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, [signo])
    run(argv, image=path, signal=env["CKPT_SIGNAL"], every=every)

# SPDX-License-Identifier: GPL-2.0-or-later
"""``run`` and ``restart``: both replace this process (os.exec*) so that the
program keeps our pid and our terminal."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from . import signals as _signals
from ._native import libckpt_path, myrestart_path
from .errors import ImageOwnerError, ProgramNotExecutableError, ProgramNotFoundError, UsageError
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

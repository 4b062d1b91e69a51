# SPDX-License-Identifier: GPL-2.0-or-later
"""``ps``: the running processes that can be checkpointed.

A process is listed when libckpt.so is mapped into it (/proc/PID/maps).
Its image path and trigger signal come from its environment (CKPT_IMAGE,
CKPT_SIGNAL: what libckpt read when the program started; a relative image
path is relative to the program's current directory), and the image's time
and size from the file, if there is one. Processes whose /proc files this
user may not read are counted, not listed.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from . import _proc
from .errors import ExitCode, ProcessError

LIBRARY = "libckpt.so"


@dataclasses.dataclass(frozen=True)
class CheckpointableProcess:
    pid: int
    program: str  # /proc/PID/exe, or the process name if that is unreadable
    image: str  # absolute path the next checkpoint writes to
    signal: str  # the trigger signal, as CKPT_SIGNAL names it
    library: str  # the libckpt.so mapped into it
    image_mtime: float | None  # the image's modification time, if it exists
    image_size: int | None


@dataclasses.dataclass(frozen=True)
class PsResult:
    processes: list[CheckpointableProcess]
    unreadable: int  # processes whose /proc/PID/maps this user may not read


def _library(pid: int) -> str | None:
    for m in _proc.maps(pid):
        if os.path.basename(m.path) == LIBRARY:
            return m.path
    return None


def _program(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return _proc.status(pid).get("Name", "?")


def describe(pid: int) -> CheckpointableProcess | None:
    """The process, if libckpt.so is loaded into it; None otherwise."""
    lib = _library(pid)
    if lib is None:
        return None
    env = _proc.environ(pid)
    image = env.get("CKPT_IMAGE") or "myckpt"
    if not os.path.isabs(image):
        image = os.path.join(_proc.cwd(pid), image)
    try:
        st = Path(image).stat()
        mtime, size = st.st_mtime, st.st_size
    except OSError:
        mtime = size = None
    return CheckpointableProcess(
        pid=pid,
        program=_program(pid),
        image=image,
        signal=env.get("CKPT_SIGNAL") or "USR2",
        library=lib,
        image_mtime=mtime,
        image_size=size,
    )


def ps() -> PsResult:
    found, unreadable = [], 0
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            p = describe(int(entry))
        except ProcessError as e:
            # Gone meanwhile: not counted. Not ours to read: counted.
            unreadable += e.exit_code == ExitCode.PERMISSION
            continue
        if p is not None:
            found.append(p)
    found.sort(key=lambda p: p.pid)
    return PsResult(found, unreadable)

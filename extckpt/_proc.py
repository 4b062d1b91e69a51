# SPDX-License-Identifier: GPL-2.0-or-later
"""Reading /proc/PID: status, maps, environ, cwd, stat. Errors are turned
into the project's ProcessError subclasses with a next-step sentence."""

from __future__ import annotations

import dataclasses
import errno
import os
from pathlib import Path

from .errors import NoSuchProcessError, PermissionDeniedError


def ptrace_permission_hint() -> str:
    hint = (
        "Run extckpt as the same user as the process, or as root; tracing "
        "needs CAP_SYS_PTRACE over the process."
    )
    scope = Path("/proc/sys/kernel/yama/ptrace_scope")
    try:
        value = scope.read_text().strip()
    except OSError:
        return hint
    return f"{hint} {scope} is {value}" + (
        " (0 lets a user trace their own processes)." if value != "0" else "."
    )


def _read(pid: int, name: str, binary: bool = False):
    path = f"/proc/{pid}/{name}"
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise NoSuchProcessError(f"no process with pid {pid}") from None
    except PermissionError:
        raise PermissionDeniedError(f"permission denied reading {path}", ptrace_permission_hint()) from None
    except ProcessLookupError:
        raise NoSuchProcessError(f"no process with pid {pid}") from None
    return data if binary else data.decode("utf-8", "surrogateescape")


def exists(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def status(pid: int) -> dict[str, str]:
    out = {}
    for line in _read(pid, "status").splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def state(pid: int) -> str:
    """The one-letter state from /proc/PID/stat (R, S, D, T, t, Z, ...)."""
    data = _read(pid, "stat")
    # The command name is in parentheses and may itself contain ') '.
    return data[data.rindex(")") + 2]


def environ(pid: int) -> dict[str, str]:
    env = {}
    for item in _read(pid, "environ", binary=True).split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
    return env


def cwd(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except FileNotFoundError:
        raise NoSuchProcessError(f"no process with pid {pid}") from None
    except PermissionError:
        raise PermissionDeniedError(
            f"permission denied reading /proc/{pid}/cwd", ptrace_permission_hint()
        ) from None


@dataclasses.dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    perms: str  # "rw-p"
    offset: int
    dev: str
    inode: int
    path: str

    @property
    def prot(self) -> int:
        p = self.perms
        return (p[0] == "r") | (p[1] == "w") << 1 | (p[2] == "x") << 2

    @property
    def shared(self) -> bool:
        return self.perms[3] == "s"


def maps(pid: int) -> list[Mapping]:
    out = []
    for line in _read(pid, "maps").splitlines():
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        lo, hi = parts[0].split("-")
        out.append(
            Mapping(
                int(lo, 16),
                int(hi, 16),
                parts[1],
                int(parts[2], 16),
                parts[3],
                int(parts[4]),
                parts[5] if len(parts) > 5 else "",
            )
        )
    return out


def open_mem(pid: int, name: str = "mem", write: bool = False) -> int:
    path = f"/proc/{pid}/{name}"
    try:
        return os.open(path, (os.O_RDWR if write else os.O_RDONLY) | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NoSuchProcessError(f"no process with pid {pid}") from None
    except PermissionError:
        raise PermissionDeniedError(f"permission denied opening {path}", ptrace_permission_hint()) from None
    except OSError as e:
        if e.errno == errno.ESRCH:
            raise NoSuchProcessError(f"no process with pid {pid}") from None
        raise


# libckpt opens a handful of files while it checkpoints (/proc/self/status,
# smaps, pagemap, the image): a process with fewer free descriptors than
# this under its RLIMIT_NOFILE cannot be checkpointed.
FDS_NEEDED = 8


def fd_exhaustion(pid: int) -> str | None:
    """A sentence if pid's open files leave too few free descriptors under
    its soft RLIMIT_NOFILE, else None (also when it cannot be told)."""
    try:
        soft = None
        for line in _read(pid, "limits").splitlines():
            if line.startswith("Max open files"):
                field = line.split()[3]
                soft = None if field == "unlimited" else int(field)
        if soft is None:
            return None
        used = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError, IndexError, NoSuchProcessError, PermissionDeniedError):
        return None
    if soft - used >= FDS_NEEDED:
        return None
    return (
        f"the process has {used} files open and its RLIMIT_NOFILE soft limit is {soft}: "
        f"libckpt had too few descriptors left to read the process's state and write the image"
    )

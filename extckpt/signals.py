# SPDX-License-Identifier: GPL-2.0-or-later
"""Signal names as libckpt.so reads CKPT_SIGNAL (native/libckpt.c,
parse_signal): "12", "USR2", "SIGUSR2", "RTMIN+3". Same names, same limits,
so that what extckpt accepts is what the library arms."""

from __future__ import annotations

import signal

from .errors import UsageError

DEFAULT = signal.SIGUSR2
_NAMES = {
    "HUP": signal.SIGHUP,
    "INT": signal.SIGINT,
    "QUIT": signal.SIGQUIT,
    "USR1": signal.SIGUSR1,
    "USR2": signal.SIGUSR2,
    "ALRM": signal.SIGALRM,
    "TERM": signal.SIGTERM,
    "PWR": signal.SIGPWR,
    "URG": signal.SIGURG,
    "XCPU": signal.SIGXCPU,
    "WINCH": signal.SIGWINCH,
}


def parse(text: str) -> int | None:
    """The signal number for a CKPT_SIGNAL value, or None if libckpt would
    refuse it (and stay unarmed)."""
    s = text[3:] if text.startswith("SIG") else text
    if s.startswith("RTMIN"):
        rest = s[5:]
        if rest == "":
            v = 0
        elif rest.startswith("+") and rest[1:].isdigit():
            v = int(rest[1:])
        else:
            return None
        v += signal.SIGRTMIN
        return v if v <= signal.SIGRTMAX else None
    if s in _NAMES:
        return int(_NAMES[s])
    try:
        v = int(s, 10)
    except ValueError:
        return None
    if 0 < v <= signal.SIGRTMAX and v not in (signal.SIGKILL, signal.SIGSTOP):
        return v
    return None


def parse_or_raise(text: str) -> int:
    signo = parse(text)
    if signo is None:
        raise UsageError(
            f"{text!r} is not a signal libckpt accepts",
            "Use a number or one of HUP INT QUIT USR1 USR2 ALRM TERM PWR URG "
            "XCPU WINCH, with or without SIG, or RTMIN+N.",
        )
    return signo


def name(signo: int) -> str:
    if signal.SIGRTMIN <= signo <= signal.SIGRTMAX:
        off = signo - signal.SIGRTMIN
        return "SIGRTMIN" + (f"+{off}" if off else "")
    try:
        return signal.Signals(signo).name
    except ValueError:
        return f"signal {signo}"

# SPDX-License-Identifier: GPL-2.0-or-later
"""extckpt: checkpoint and restart unmodified single-threaded Linux x86-64
programs.

The API (the ``extckpt`` command is a thin layer over it):

- ``run(argv, image=..., signal=...)``: exec a program with libckpt.so preloaded.
- ``attach(pid, ...)``: checkpoint a preloaded process, wait for its image.
- ``verify(image, pid)``: compare an image with a live process.
- ``restart(image)``: exec the bundled myrestart on a validated image.
- ``show(image)``: what an image holds.
- ``check()``: can this machine checkpoint and restart (each feature probed).
- ``ps()``: the running processes that have libckpt.so loaded.
- ``Image.open(path)``: a validated view of an image.

Every user-facing error is an ``ExtckptError`` with a ``hint`` and an
``exit_code``.
"""

from __future__ import annotations

from .attach import AttachResult, attach
from .check import CheckResult, check
from .errors import ExitCode, ExtckptError, ImageError
from .image import Image
from .launch import restart, run
from .ps import PsResult, ps
from .show import ImageInfo, show
from .verify import VerifyResult, verify

__version__ = "0.1.0"

__all__ = [
    "AttachResult",
    "CheckResult",
    "ExitCode",
    "ExtckptError",
    "Image",
    "ImageError",
    "ImageInfo",
    "PsResult",
    "VerifyResult",
    "attach",
    "check",
    "ps",
    "restart",
    "run",
    "show",
    "verify",
]

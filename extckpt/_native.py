# SPDX-License-Identifier: GPL-2.0-or-later
"""Where the bundled native files are: libckpt.so, myrestart, ckpt_image.h.

The build (setup.py) runs ``make -C native`` and copies them into
``extckpt/_native/``; an editable install copies them into the source tree
so the same lookup works. They are found by path through importlib.resources
and never loaded into this process: libckpt.so's constructor would arm the
checkpoint handler inside the tool itself.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

from .errors import InstallError

LIBCKPT = "libckpt.so"
MYRESTART = "myrestart"
HEADER = "ckpt_image.h"


def native_path(name: str) -> Path:
    """Absolute filesystem path of one bundled native file."""
    res = importlib.resources.files("extckpt") / "_native" / name
    # A zip import would give a Traversable that is no Path: LD_PRELOAD and
    # execv need a real file, so such installs are refused.
    if not isinstance(res, Path) or not res.is_file():
        raise InstallError(f"extckpt's bundled {name} is missing ({res})")
    return Path(os.path.abspath(res))


def libckpt_path() -> Path:
    return native_path(LIBCKPT)


def myrestart_path() -> Path:
    return native_path(MYRESTART)


def header_path() -> Path:
    return native_path(HEADER)

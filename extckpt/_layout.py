# SPDX-License-Identifier: GPL-2.0-or-later
"""The image layout, read by cffi from the bundled ckpt_image.h.

Python never restates the format: the section of native/ckpt_image.h between
the lines ``/* CFFI-BEGIN`` and ``/* CFFI-END`` is handed to ``ffi.cdef`` (ABI
mode: no compiler at import or install). ``C`` holds its integer #defines.
"""

from __future__ import annotations

import re
import types

import cffi

from ._native import header_path
from .errors import InstallError

_SECTION = re.compile(r"^/\* CFFI-BEGIN[^\n]*\n(.*?)^/\* CFFI-END", re.M | re.S)
_DEFINE = re.compile(r"^#define\s+([A-Za-z_]\w*)\s", re.M)

STRUCTS = (
    "struct ckpt_sigaction",
    "struct ckpt_rseq",
    "struct ckpt_mm",
    "struct ckpt_itimer",
    "struct ckpt_proc",
    "struct ckpt_header",
    "struct ckpt_region",
    "struct ckpt_run",
    "struct ckpt_fd",
)


def cffi_section(text: str) -> str:
    """The cdef-able part of ckpt_image.h's text."""
    m = _SECTION.search(text)
    if not m:
        raise InstallError("ckpt_image.h has no CFFI-BEGIN..CFFI-END section")
    return m.group(1)


def _load() -> tuple[cffi.FFI, types.SimpleNamespace]:
    section = cffi_section(header_path().read_text())
    ffi = cffi.FFI()
    ffi.cdef(section)
    # dlopen(None) is the running interpreter itself: it only gives access
    # to the #define constants, no library is loaded.
    lib = ffi.dlopen(None)
    consts = {name: getattr(lib, name) for name in _DEFINE.findall(section)}
    return ffi, types.SimpleNamespace(**consts)


ffi, C = _load()

HEADER_SIZE: int = ffi.sizeof("struct ckpt_header")
REGION_SIZE: int = ffi.sizeof("struct ckpt_region")
RUN_SIZE: int = ffi.sizeof("struct ckpt_run")
MAGIC = b"EXTCKPT\0"  # CKPT_MAGIC with its NUL, outside the cdef section
# Highest user address with 4-level paging (CKPT_USER_TOP, ckpt_validate.h).
USER_TOP = 0x7FFFFFFFF000
PAGE = C.CKPT_PAGE_SIZE
# glibc's gregs order (sys/ucontext.h), for display.
REG_NAMES = (
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi",
    "rbp", "rbx", "rdx", "rax", "rcx", "rsp", "rip", "efl", "csgsfs",
    "err", "trapno", "oldmask", "cr2",
)  # fmt: skip
REG_RSP = 15
REG_RIP = 16

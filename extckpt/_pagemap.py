# SPDX-License-Identifier: GPL-2.0-or-later
"""PAGEMAP_SCAN (Linux 6.7) on /proc/PID/pagemap, through ctypes.

It returns the populated pages of a range as a few (start, end) ranges and
skips unpopulated page tables, so asking about a 2 TiB reservation with five
pages touched costs microseconds; reading /proc/PID/pagemap instead would
mean 4 GiB of 8-byte entries. Same categories and layout as
native/ckpt_pagemap.h (ioctl_pagemap_scan(2)).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os

PAGE_IS_FILE = 1 << 2
PAGE_IS_PRESENT = 1 << 3
PAGE_IS_SWAPPED = 1 << 4
PAGE_IS_PFNZERO = 1 << 5


class _PageRegion(ctypes.Structure):
    _fields_ = [("start", ctypes.c_uint64), ("end", ctypes.c_uint64), ("categories", ctypes.c_uint64)]


class _ScanArg(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "size",
            "flags",
            "start",
            "end",
            "walk_end",
            "vec",
            "vec_len",
            "max_pages",
            "category_inverted",
            "category_mask",
            "category_anyof_mask",
            "return_mask",
        )
    ]


# _IOWR('f', 16, struct pm_scan_arg)
PAGEMAP_SCAN = (3 << 30) | (ctypes.sizeof(_ScanArg) << 16) | (ord("f") << 8) | 16
_VEC = 1024


class Unsupported(Exception):
    """The kernel has no PAGEMAP_SCAN."""


def scan(fd: int, start: int, end: int, *, private: bool) -> list[tuple[int, int]]:
    """Ranges of [start, end) holding pages that libckpt would store now:
    present or swapped and, for private mappings, neither page-cache pages
    of the file nor the shared zero page (native/dump_mem.c, scan_region)."""
    vec = (_PageRegion * _VEC)()
    arg = _ScanArg()
    arg.size = ctypes.sizeof(_ScanArg)
    arg.vec = ctypes.addressof(vec)
    arg.vec_len = _VEC
    if private:
        arg.category_inverted = PAGE_IS_FILE | PAGE_IS_PFNZERO
        arg.category_mask = PAGE_IS_FILE | PAGE_IS_PFNZERO
    arg.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED
    arg.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED
    out: list[tuple[int, int]] = []
    pos = taken = start
    while pos < end:
        arg.start, arg.end, arg.walk_end = pos, end, 0
        try:
            n = fcntl.ioctl(fd, PAGEMAP_SCAN, arg)
        except OSError as e:
            if e.errno in (errno.ENOTTY, errno.EINVAL, errno.EOPNOTSUPP):
                raise Unsupported(os.strerror(e.errno)) from None
            raise
        # Trust no answer (native/dump_mem.c, scan_region): ranges are cut
        # to what is not yet taken; after a full vector, walk_end may lie
        # before ranges already returned, so go on from the last one taken.
        for i in range(min(n, _VEC)):
            a, b = max(vec[i].start, taken), min(vec[i].end, end)
            if a >= b:
                continue
            if out and out[-1][1] == a:
                out[-1] = (out[-1][0], b)
            else:
                out.append((a, b))
            taken = b
        nxt = taken if n >= _VEC else max(arg.walk_end, taken)
        if n < _VEC and nxt >= end:
            break
        if nxt <= pos:
            raise OSError(errno.EIO, f"PAGEMAP_SCAN made no progress at {pos:#x}")
        pos = nxt
    return out

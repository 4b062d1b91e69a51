# SPDX-License-Identifier: GPL-2.0-or-later
"""``show``: what an image holds, as data (the CLI formats it)."""

from __future__ import annotations

import dataclasses
import os
import signal as _signal

from . import signals as _signals
from ._layout import REG_NAMES, C
from .image import Image

# sa_flags bits (asm/signal.h), for display.
_SA_FLAGS = (
    (0x00000001, "NOCLDSTOP"),
    (0x00000002, "NOCLDWAIT"),
    (0x00000004, "SIGINFO"),
    (0x04000000, "RESTORER"),
    (0x08000000, "ONSTACK"),
    (0x10000000, "RESTART"),
    (0x40000000, "NODEFER"),
    (0x80000000, "RESETHAND"),
)


def sa_flag_names(flags: int) -> list[str]:
    return [name for bit, name in _SA_FLAGS if flags & bit]


@dataclasses.dataclass
class RegionInfo:
    start: int
    end: int
    perms: str
    kind: str
    name: str
    flags: list[str]
    mapped_bytes: int
    stored_bytes: int
    runs: int
    checksum: str  # "ok", "BAD" or "unchecked"


@dataclasses.dataclass
class HandlerInfo:
    signal: str
    signo: int
    handler: str  # "ignore" or an address
    flags: list[str]
    mask: int


@dataclasses.dataclass
class ImageInfo:
    path: str
    size: int
    format_version: int
    created_ns: int
    pid: int
    exe: str
    signal: str
    registers: dict[str, int]
    fs_base: int
    gs_base: int
    sigmask: int
    handlers: list[HandlerInfo]
    rseq: dict[str, int]
    brk: dict[str, int]
    stored_bytes: int
    mapped_bytes: int
    regions: list[RegionInfo]
    checked: bool

    @property
    def bad_regions(self) -> list[RegionInfo]:
        return [r for r in self.regions if r.checksum == "BAD"]


def show(image: str | os.PathLike[str], *, check: bool = True) -> ImageInfo:
    """Read an image (header and tables validated; with check, every
    region's checksum too, reported per region rather than raised)."""
    with Image.open(image) as img:
        h = img.header
        handlers = []
        for a in h.sigactions:
            if a.handler == 0 or a.signo in (_signal.SIGKILL, _signal.SIGSTOP):
                continue
            handlers.append(
                HandlerInfo(
                    _signals.name(a.signo),
                    a.signo,
                    "ignore" if a.handler == 1 else f"{a.handler:#x}",
                    sa_flag_names(a.flags),
                    a.mask,
                )
            )
        regions = []
        for r in img.regions:
            if not check or r.kind >= C.CKPT_KIND_VDSO:
                state = "unchecked" if not check else "ok"
            else:
                state = "ok" if img.region_checksum_ok(r) else "BAD"
            regions.append(
                RegionInfo(
                    r.start,
                    r.end,
                    r.perms,
                    r.kind_name,
                    r.display_name,
                    r.flag_names,
                    r.size,
                    r.stored_bytes,
                    r.nr_runs,
                    state,
                )
            )
        return ImageInfo(
            path=str(img.path),
            size=img.size,
            format_version=h.version,
            created_ns=h.created_ns,
            pid=h.pid,
            exe=h.exe,
            signal=_signals.name(h.signo),
            registers={name: h.gregs[i] for i, name in enumerate(REG_NAMES)},
            fs_base=h.fs_base,
            gs_base=h.gs_base,
            sigmask=h.sigmask,
            handlers=handlers,
            rseq={"addr": h.rseq_addr, "len": h.rseq_len, "sig": h.rseq_sig},
            brk={"start_brk": h.mm["start_brk"], "brk": h.mm["brk"]},
            stored_bytes=h.data_size,
            mapped_bytes=sum(r.size for r in img.regions),
            regions=regions,
            checked=check,
        )

# SPDX-License-Identifier: GPL-2.0-or-later
"""Just enough ELF64 to find one symbol in a shared library's .dynsym.

Why not pyelftools: we need one lookup (the address of ckpt_image_done in
libckpt.so) in a file our own build produced; forty lines of struct unpacking
over the well-defined ELF64 little-endian layout cost less than a dependency.
"""

from __future__ import annotations

import struct

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_PHDR = struct.Struct("<IIQQQQQQ")
_SYM = struct.Struct("<IBBHQQ")
_SHT_DYNSYM = 11
_PT_LOAD = 1


class ElfError(Exception):
    pass


def _unpack(s: struct.Struct, data: bytes, off: int) -> tuple:
    if off < 0 or off + s.size > len(data):
        raise ElfError("truncated ELF file")
    return s.unpack_from(data, off)


def dynsym_address(data: bytes, name: str) -> tuple[int, int]:
    """(st_value of the defined dynamic symbol `name`, lowest PT_LOAD vaddr
    rounded down to its page). The symbol's run-time address is
    load_base + st_value, where load_base = (start of the mapping of file
    offset 0) - that vaddr."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ElfError("not a 64-bit little-endian ELF file")
    eh = _unpack(_EHDR, data, 0)
    phoff, shoff = eh[5], eh[6]
    phentsize, phnum, shentsize, shnum = eh[9], eh[10], eh[11], eh[12]
    first_load = None
    for i in range(phnum):
        ph = _unpack(_PHDR, data, phoff + i * phentsize)
        if ph[0] == _PT_LOAD:
            va = ph[3] & ~0xFFF  # ld.so maps each segment from its page start
            first_load = va if first_load is None else min(first_load, va)
    if first_load is None:
        raise ElfError("no PT_LOAD segment")
    want = name.encode()
    for i in range(shnum):
        sh = _unpack(_SHDR, data, shoff + i * shentsize)
        if sh[1] != _SHT_DYNSYM:
            continue
        off, size, link, entsize = sh[4], sh[5], sh[6], sh[9] or _SYM.size
        strsh = _unpack(_SHDR, data, shoff + link * shentsize)
        stroff, strsize = strsh[4], strsh[5]
        for k in range(size // entsize):
            st_name, _info, _other, shndx, value, _size = _unpack(_SYM, data, off + k * entsize)
            if shndx == 0 or st_name >= strsize:
                continue
            a = stroff + st_name
            end = data.find(b"\0", a, stroff + strsize)
            if end >= 0 and data[a:end] == want:
                return value, first_load
    raise ElfError(f"no dynamic symbol {name}")

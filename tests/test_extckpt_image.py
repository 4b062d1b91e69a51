# SPDX-License-Identifier: GPL-2.0-or-later
"""extckpt.image and `extckpt show`: the layout matches C, a real image
reads back, every kind of bad image is refused with an ImageError (and exit
status 2 from the CLI), and fuzzed input never raises anything else."""

from __future__ import annotations

import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extckpt._layout import HEADER_SIZE, STRUCTS, C, cffi_section, ffi
from extckpt._native import header_path, libckpt_path
from extckpt.errors import (
    BadMagicError,
    DataCorruptError,
    ImageEmptyError,
    ImageError,
    ImageNotFileError,
    ImageOpenError,
    TruncatedError,
    VersionError,
)
from extckpt.image import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TIMEOUT = 30


def cli(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "extckpt.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


# ---- a real image, made once --------------------------------------------


@pytest.fixture(scope="module")
def real_image(tmp_path_factory) -> Path:
    """Compile cli_spin, run it preloaded, checkpoint it with its signal,
    wait for the image's rename, kill it."""
    d = tmp_path_factory.mktemp("img")
    exe = d / "cli_spin"
    subprocess.run(
        ["gcc", "-O1", "-o", str(exe), str(HERE / "targets" / "cli_spin.c")], check=True, timeout=60
    )
    image = d / "spin.ckpt"
    env = dict(os.environ, LD_PRELOAD=str(libckpt_path()), CKPT_IMAGE=str(image))
    p = subprocess.Popen([str(exe)], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    try:
        assert p.stdout is not None
        r, _, _ = select.select([p.stdout], [], [], TIMEOUT)
        assert r, "cli_spin did not say ready"
        assert p.stdout.readline().startswith(b"ready")
        os.kill(p.pid, signal.SIGUSR2)
        deadline = time.monotonic() + TIMEOUT
        while not image.exists():  # the image appears complete (rename)
            assert time.monotonic() < deadline, "no image"
            time.sleep(0.01)
    finally:
        p.kill()
        p.wait(timeout=TIMEOUT)
    return image


def patched(src: Path, dst: Path, edit, *, fix_checksums: bool) -> Path:
    """A copy of an image with edit(bytearray) applied, optionally with the
    tables and header checksums recomputed so deeper checks are reached."""
    data = bytearray(src.read_bytes())
    edit(data)
    if fix_checksums:
        h = ffi.cast("struct ckpt_header *", ffi.from_buffer(data))
        h.tables_checksum = xxhash.xxh64_intdigest(bytes(data[h.regions_offset :]))
        h.header_checksum = 0
        h.header_checksum = xxhash.xxh64_intdigest(bytes(data[:HEADER_SIZE]))
    dst.write_bytes(data)
    return dst


# ---- layout: cffi against the C compiler --------------------------------


def test_cffi_layout_matches_c(tmp_path: Path) -> None:
    """Every field of every struct: offsetof and sizeof from gcc with the real
    header equal cffi's, with the field list taken from cffi's own types."""
    lines, expect = [], []
    for s in STRUCTS:
        lines.append(f'printf("%zu\\n", sizeof({s}));')
        expect.append(ffi.sizeof(s))
        for name, field in ffi.typeof(s).fields:
            lines.append(f'printf("%zu %zu\\n", offsetof({s}, {name}), sizeof((({s} *)0)->{name}));')
            expect.append(f"{field.offset} {ffi.sizeof(field.type)}")
    src = tmp_path / "layout.c"
    src.write_text(
        "#include <stddef.h>\n#include <stdio.h>\n"
        f'#include "{header_path()}"\n'
        "int main(void) {\n" + "\n".join(lines) + "\nreturn 0; }\n"
    )
    exe = tmp_path / "layout"
    subprocess.run(["gcc", "-Wall", "-Werror", "-o", str(exe), str(src)], check=True, timeout=60)
    got = subprocess.run([str(exe)], capture_output=True, text=True, check=True, timeout=30).stdout.split(
        "\n"
    )
    assert got[: len(expect)] == [str(e) for e in expect]


def test_bundled_header_is_the_native_one() -> None:
    """The package reads the copy of native/ckpt_image.h it was built with."""
    native = (REPO / "native" / "ckpt_image.h").read_text()
    assert cffi_section(header_path().read_text()) == cffi_section(native), (
        "extckpt/_native/ckpt_image.h is stale: reinstall with `pip install -e .`"
    )


# ---- a good image -------------------------------------------------------


def test_real_image_reads_and_checks(real_image: Path) -> None:
    with Image.open(real_image) as img:
        h = img.header
        assert h.version == C.CKPT_FORMAT_VERSION
        assert h.exe.endswith("cli_spin")
        assert h.signo == signal.SIGUSR2
        assert img.size == real_image.stat().st_size
        assert any(r.name == "[stack]" for r in img.regions)
        assert any(r.is_ckptlib for r in img.regions)
        assert sum(r.stored_bytes for r in img.regions) <= h.data_size
        assert img.find_region(h.rsp) is not None
        img.check_data()


def test_show_text_and_json(real_image: Path) -> None:
    r = cli("show", str(real_image))
    assert r.returncode == 0, r.stderr
    for word in ("format version", "rip 0x", "rsp 0x", "fs_base 0x", "SIGUSR2", "[stack]", "rseq", "brk"):
        assert word in r.stdout
    import json

    j = json.loads(cli("show", "--json", str(real_image)).stdout)
    assert j["format_version"] == C.CKPT_FORMAT_VERSION
    assert all(reg["checksum"] == "ok" for reg in j["regions"])
    j = json.loads(cli("show", "--json", "--no-check", str(real_image)).stdout)
    assert {reg["checksum"] for reg in j["regions"]} == {"unchecked"}


# ---- bad images: API and CLI ---------------------------------------------


def _bad(tmp_path: Path, real: Path, case: str) -> Path:
    p = tmp_path / f"{case}.ckpt"
    if case == "missing":
        return p
    if case == "directory":
        p.mkdir()
        return p
    if case == "empty":
        p.write_bytes(b"")
        return p
    if case == "truncated":
        p.write_bytes(real.read_bytes()[:-4096])
        return p
    if case == "header_only":
        p.write_bytes(real.read_bytes()[:100])
        return p
    if case == "magic":
        return patched(real, p, lambda d: d.__setitem__(0, d[0] ^ 0x20), fix_checksums=False)
    if case == "version":

        def edit(d: bytearray) -> None:
            ffi.cast("struct ckpt_header *", ffi.from_buffer(d)).version = C.CKPT_FORMAT_VERSION + 7

        return patched(real, p, edit, fix_checksums=True)
    if case == "header_flip":
        return patched(real, p, lambda d: d.__setitem__(200, d[200] ^ 1), fix_checksums=False)
    if case == "tables_flip":
        return patched(real, p, lambda d: d.__setitem__(len(d) - 1, d[-1] ^ 1), fix_checksums=False)
    raise AssertionError(case)


CASES = {
    "missing": (ImageOpenError, "no such file"),
    "directory": (ImageNotFileError, "directory"),
    "empty": (ImageEmptyError, "empty"),
    "truncated": (TruncatedError, "truncated"),
    "header_only": (TruncatedError, "truncated"),
    "magic": (BadMagicError, "not an extckpt image"),
    "version": (VersionError, f"version {C.CKPT_FORMAT_VERSION + 7}; this extckpt reads version"),
    "header_flip": (ImageError, "header is corrupted"),
    "tables_flip": (ImageError, "tables are corrupted"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_image_api(tmp_path: Path, real_image: Path, case: str) -> None:
    exc, words = CASES[case]
    with pytest.raises(exc) as info:
        Image.open(_bad(tmp_path, real_image, case))
    assert words in str(info.value)
    assert info.value.hint


@pytest.mark.parametrize("command", ["show", "verify", "restart"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_image_cli(tmp_path: Path, real_image: Path, case: str, command: str) -> None:
    path = _bad(tmp_path, real_image, case)
    args = [command, str(path)] + ([str(os.getpid())] if command == "verify" else [])
    r = cli(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith("extckpt: ")
    assert CASES[case][1] in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 2  # the message and the hint


def test_flipped_data_byte(tmp_path: Path, real_image: Path) -> None:
    """A flipped byte in the data: opens (tables are fine), check_data()
    names the region, show marks it BAD and exits 2, restart refuses it."""
    with Image.open(real_image) as img:
        region = next(r for r in img.regions if r.stored_bytes)
        off = img.region_runs(region)[0].data_offset + 123
    p = patched(
        real_image, tmp_path / "data.ckpt", lambda d: d.__setitem__(off, d[off] ^ 0x40), fix_checksums=False
    )
    with Image.open(p) as img:
        assert [r.start for r in img.bad_regions()] == [region.start]
        with pytest.raises(DataCorruptError, match=f"{region.start:#x}"):
            img.check_data()
    r = cli("show", str(p))
    assert r.returncode == 2
    assert " BAD " in r.stdout
    assert "fails its checksum" in r.stderr
    r = cli("show", "--no-check", str(p))
    assert r.returncode == 0
    r = cli("restart", str(p))
    assert r.returncode == 2 and "fails its checksum" in r.stderr


# ---- fuzz: nothing but ImageError, ever ----------------------------------

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _open_only_image_errors(data: bytes) -> None:
    with tempfile.NamedTemporaryFile(prefix="fuzz", suffix=".ckpt") as f:
        f.write(data)
        f.flush()
        try:
            with Image.open(f.name) as img:
                img.check_data()
                img.bad_regions()
        except ImageError:
            pass


@FUZZ
@given(st.binary(max_size=9000))
def test_fuzz_random_bytes(data: bytes) -> None:
    _open_only_image_errors(data)


@FUZZ
@given(st.binary(max_size=64))
def test_fuzz_magic_then_random(tail: bytes) -> None:
    _open_only_image_errors(b"EXTCKPT\0" + tail + bytes(HEADER_SIZE))


@FUZZ
@given(cut=st.integers(min_value=0, max_value=10**9))
def test_fuzz_truncations(real_image: Path, cut: int) -> None:
    data = real_image.read_bytes()
    _open_only_image_errors(data[: cut % len(data)])


@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(min_value=0), st.integers(min_value=1, max_value=255)), min_size=1, max_size=8
    )
)
def test_fuzz_byte_flips(real_image: Path, flips: list[tuple[int, int]]) -> None:
    data = bytearray(real_image.read_bytes())
    for pos, x in flips:
        data[pos % len(data)] ^= x
    _open_only_image_errors(bytes(data))


@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(min_value=0), st.integers(min_value=1, max_value=255)), min_size=1, max_size=8
    ),
    st.booleans(),
)
def test_fuzz_flips_behind_good_checksums(
    real_image: Path, flips: list[tuple[int, int]], in_header: bool
) -> None:
    """Flip bytes in the tables (or the header's counts and offsets) and fix
    both checksums, so the structural checks themselves are exercised."""
    src = real_image.read_bytes()
    with Image.open(real_image) as img:
        lo = img.header.regions_offset
    hdr_fields = [
        "image_size", "data_offset", "data_size", "regions_offset", "nr_regions",
        "runs_offset", "nr_runs", "strings_offset", "strings_size",
        "exe_name_offset", "exe_name_len", "resume_entry", "resume_stack",
    ]  # fmt: skip

    def edit(d: bytearray) -> None:
        for pos, x in flips:
            if in_header:
                name = hdr_fields[pos % len(hdr_fields)]
                off = ffi.offsetof("struct ckpt_header", name) + (pos // len(hdr_fields)) % 8
                off = min(off, HEADER_SIZE - 1)
            else:
                off = lo + pos % (len(d) - lo)
            d[off] ^= x

    with tempfile.TemporaryDirectory() as t:
        p = patched(real_image, Path(t) / "x.ckpt", edit, fix_checksums=True)
        _open_only_image_errors(p.read_bytes())
    assert real_image.read_bytes() == src


def test_fuzz_many_random_flips_behind_good_checksums(real_image: Path, tmp_path: Path) -> None:
    """A deterministic sweep: every table byte position class, random xor."""
    rng = random.Random(1234)
    with Image.open(real_image) as img:
        lo = img.header.regions_offset
    size = real_image.stat().st_size
    for i in range(300):
        off = lo + rng.randrange(size - lo)
        x = rng.randrange(1, 256)
        p = patched(
            real_image,
            tmp_path / f"{i}.ckpt",
            lambda d, o=off, v=x: d.__setitem__(o, d[o] ^ v),
            fix_checksums=True,
        )
        try:
            with Image.open(p) as img:
                img.check_data()
        except ImageError:
            pass
        p.unlink()


def test_huge_counts_do_not_allocate(tmp_path: Path, real_image: Path) -> None:
    """A header claiming 2**60 regions is refused before anything is sized
    by it."""

    def edit(d: bytearray) -> None:
        ffi.cast("struct ckpt_header *", ffi.from_buffer(d)).nr_regions = 1 << 60

    p = patched(real_image, tmp_path / "huge.ckpt", edit, fix_checksums=True)
    with pytest.raises(ImageError, match="table of contents"):
        Image.open(p)


def test_not_a_regular_file() -> None:
    if not Path("/dev/null").exists() or shutil.which("true") is None:
        pytest.skip("no /dev/null")
    with pytest.raises(ImageNotFileError):
        Image.open("/dev/null")

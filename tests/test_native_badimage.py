# SPDX-License-Identifier: GPL-2.0-or-later
"""myrestart refuses bad images cleanly: the exact CKPT_EXIT_* status from
native/ckpt_image.h, one ``myrestart: `` line on stderr, nothing on stdout,
no death by a signal, and no hang.

The images are damaged copies of one good image; field offsets come from the
header through cffi, exit statuses from its #defines - nothing is restated
here by hand.
"""

from __future__ import annotations

import os
import pwd
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest
import support
import xxhash
from support import (
    MYRESTART,
    ProcTracker,
    Target,
    checkpoint,
    describe_status,
    finish,
    header_defines,
    header_ffi,
    start_target,
    target_path,
)

pytestmark = pytest.mark.usefixtures("built")

EXIT = header_defines()
FFI = header_ffi()
HEADER_SIZE = FFI.sizeof("struct ckpt_header")


def off(field: str) -> int:
    return FFI.offsetof("struct ckpt_header", field)


def u32(data: bytes | bytearray, field: str) -> int:
    return struct.unpack_from("<I", data, off(field))[0]


def u64(data: bytes | bytearray, field: str) -> int:
    return struct.unpack_from("<Q", data, off(field))[0]


def reseal(data: bytearray) -> bytearray:
    """Recompute header_checksum after editing the header."""
    struct.pack_into("<Q", data, off("header_checksum"), 0)
    digest = xxhash.xxh64_intdigest(bytes(data[:HEADER_SIZE]), seed=0)
    struct.pack_into("<Q", data, off("header_checksum"), digest)
    return data


@pytest.fixture(scope="module")
def good_image(tmp_path_factory, native_build, targets_build):
    """One image of the quiet target (it restarts and passes: checked)."""
    tmp = tmp_path_factory.mktemp("good")
    image = tmp / "good.img"
    procs = ProcTracker()
    try:
        proc = start_target(procs, target_path("quiet"), image)
        checkpoint(proc, image)
        proc.kill()
    finally:
        procs.cleanup()
    data = image.read_bytes()
    assert data[: len(b"EXTCKPT\0")] == b"EXTCKPT\0"
    assert u32(data, "version") == EXIT["CKPT_FORMAT_VERSION"]
    return image


@pytest.fixture
def image_bytes(good_image) -> bytearray:
    return bytearray(good_image.read_bytes())


def run_myrestart(*args, timeout: float = 30) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            [str(MYRESTART), *map(str, args)],
            check=False,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:  # run() has killed it
        pytest.fail(f"myrestart {args} hung for {timeout} s: {e}")


def assert_refused(r: subprocess.CompletedProcess, status: str, *, mentions=(), usage=False) -> str:
    """Exit status EXIT[status], one `myrestart: ` line, no stdout.

    With usage, the usage text may come first; the last line is the error.
    """
    err = r.stderr.decode(errors="replace")
    detail = f"{describe_status(r.returncode)}; stdout {r.stdout!r}; stderr {err!r}"
    assert r.returncode >= 0, f"myrestart died by a signal: {detail}"
    assert r.returncode == EXIT[status], f"expected {status} ({EXIT[status]}): {detail}"
    lines = err.splitlines()
    assert lines and err.endswith("\n"), f"expected a stderr line: {detail}"
    if not usage:
        assert len(lines) == 1, f"expected one stderr line: {detail}"
    assert lines[-1].startswith("myrestart: "), detail
    assert r.stdout == b"", detail
    for word in mentions:
        assert str(word) in lines[-1], f"message should mention {word!r}: {lines[-1]}"
    return lines[-1]


def write(tmp_path, data: bytes | bytearray, name: str = "bad.img"):
    path = tmp_path / name
    path.write_bytes(bytes(data))
    return path


# ---- arguments and files ------------------------------------------------------


def test_no_argument():
    assert_refused(run_myrestart(), "CKPT_EXIT_USAGE", usage=True)


def test_unknown_option(good_image):
    assert_refused(run_myrestart("--no-such-option", good_image), "CKPT_EXIT_USAGE", usage=True)


def test_missing_file(tmp_path):
    assert_refused(run_myrestart(tmp_path / "absent.img"), "CKPT_EXIT_OPEN")


def test_directory(tmp_path):
    assert_refused(run_myrestart(tmp_path), "CKPT_EXIT_NOT_FILE")


def test_character_device():
    assert_refused(run_myrestart("/dev/null"), "CKPT_EXIT_NOT_FILE")


def test_fifo_does_not_hang(tmp_path):
    """Opening a FIFO for reading blocks unless done with care."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert_refused(run_myrestart(fifo, timeout=10), "CKPT_EXIT_NOT_FILE")


def test_empty_file(tmp_path):
    assert_refused(run_myrestart(write(tmp_path, b"")), "CKPT_EXIT_EMPTY")


def test_not_an_image(tmp_path):
    assert_refused(run_myrestart(write(tmp_path, b"hello, world\n" * 1000)), "CKPT_EXIT_BAD_MAGIC")


def test_elf_file_is_not_an_image():
    assert_refused(run_myrestart(MYRESTART), "CKPT_EXIT_BAD_MAGIC")


@pytest.mark.parametrize("index", [0, 3, 7])
def test_flipped_magic(tmp_path, image_bytes, index):
    image_bytes[index] ^= 0x20
    assert_refused(run_myrestart(write(tmp_path, image_bytes)), "CKPT_EXIT_BAD_MAGIC")


# ---- sizes ---------------------------------------------------------------------


@pytest.mark.parametrize("keep", ["header-part", "header-page", "half", "all-but-one-byte"])
def test_truncated(tmp_path, image_bytes, keep):
    size = {
        "header-part": 100,
        "header-page": EXIT["CKPT_PAGE_SIZE"],
        "half": len(image_bytes) // 2,
        "all-but-one-byte": len(image_bytes) - 1,
    }[keep]
    assert_refused(run_myrestart(write(tmp_path, image_bytes[:size])), "CKPT_EXIT_TRUNCATED")


def test_longer_than_the_header_says(tmp_path, image_bytes):
    assert_refused(run_myrestart(write(tmp_path, image_bytes + b"\0")), "CKPT_EXIT_TRUNCATED")


# ---- version and architecture ---------------------------------------------------


@pytest.mark.parametrize("resealed", [True, False], ids=["resealed", "stale-checksum"])
def test_future_version(tmp_path, image_bytes, resealed):
    """Version is checked before the checksum: the message names both."""
    version = EXIT["CKPT_FORMAT_VERSION"] + 1
    struct.pack_into("<I", image_bytes, off("version"), version)
    if resealed:
        reseal(image_bytes)
    assert_refused(
        run_myrestart(write(tmp_path, image_bytes)),
        "CKPT_EXIT_VERSION",
        mentions=(version, EXIT["CKPT_FORMAT_VERSION"]),
    )


@pytest.mark.parametrize("field,value", [("arch", 3), ("arch", 183), ("page_size", 65536)])
def test_wrong_arch(tmp_path, image_bytes, field, value):
    struct.pack_into("<I", image_bytes, off(field), value)
    reseal(image_bytes)
    assert_refused(run_myrestart(write(tmp_path, image_bytes)), "CKPT_EXIT_ARCH")


# ---- integrity ---------------------------------------------------------------------


@pytest.mark.parametrize("field", ["created_ns", "resume_entry", "fs_base", "sigmask"])
def test_header_checksum(tmp_path, image_bytes, field):
    image_bytes[off(field)] ^= 0x01
    assert_refused(run_myrestart(write(tmp_path, image_bytes)), "CKPT_EXIT_CORRUPT")


def test_header_checksum_field_itself(tmp_path, image_bytes):
    image_bytes[off("header_checksum") + 3] ^= 0x40
    assert_refused(run_myrestart(write(tmp_path, image_bytes)), "CKPT_EXIT_CORRUPT")


@pytest.mark.parametrize("where", ["regions", "runs", "strings"])
def test_tables_checksum(tmp_path, image_bytes, where):
    start = u64(image_bytes, f"{where}_offset")
    image_bytes[start + 5] ^= 0x10
    assert_refused(run_myrestart(write(tmp_path, image_bytes)), "CKPT_EXIT_CORRUPT")


def test_absurd_table_size(tmp_path, image_bytes):
    """A consistent header (resealed) whose tables cannot fit the file."""
    struct.pack_into("<Q", image_bytes, off("nr_regions"), 1 << 40)
    reseal(image_bytes)
    assert_refused(run_myrestart(write(tmp_path, image_bytes)), "CKPT_EXIT_CORRUPT")


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_region_data(tmp_path, image_bytes, where):
    start, size = u64(image_bytes, "data_offset"), u64(image_bytes, "data_size")
    assert size > 0
    index = {"first": start, "middle": start + size // 2, "last": start + size - 1}[where]
    image_bytes[index] ^= 0x01
    assert_refused(run_myrestart(write(tmp_path, image_bytes)), "CKPT_EXIT_DATA_CORRUPT")


# ---- the world changed --------------------------------------------------------------


def _checkpointed_copy(procs, tmp_path):
    """A copy of the quiet target, checkpointed and killed: (exe, image)."""
    exe = tmp_path / "quiet"
    shutil.copy2(target_path("quiet"), exe)
    image = tmp_path / "img"
    proc = start_target(procs, exe, image)
    checkpoint(proc, image)
    proc.kill()
    return exe, image


@pytest.mark.parametrize("change", ["content", "size", "deleted"])
def test_executable_changed(procs, tmp_path, change):
    """The program's file changed since the checkpoint: MISMATCH, not a crash."""
    exe, image = _checkpointed_copy(procs, tmp_path)
    if change == "content":
        with open(exe, "r+b") as f:  # same size, one byte different
            f.seek(100)
            byte = f.read(1)
            f.seek(100)
            f.write(bytes([byte[0] ^ 0xFF]))
    elif change == "size":
        with open(exe, "ab") as f:
            f.write(b"\0")
    else:
        exe.unlink()
    line = assert_refused(run_myrestart(image), "CKPT_EXIT_MISMATCH")
    assert str(exe) in line


def test_executable_touched_or_copied_restarts(procs, tmp_path):
    """Same bytes under a new time and a new inode (a copy): accepted."""
    exe, image = _checkpointed_copy(procs, tmp_path)
    copy = tmp_path / "copy"
    shutil.copyfile(exe, copy)
    copy.chmod(0o755)
    copy.rename(exe)  # another inode, another time, the same bytes
    finish(support.restart(procs, image), Target("quiet"))


def test_good_image_still_restarts(procs, good_image):
    """The control: the undamaged image restarts and passes."""
    finish(support.restart(procs, good_image), Target("quiet"))


# ---- refused before the point of no return (issue 15, item 10) --------------


def reseal_tables(data: bytearray) -> bytearray:
    """Recompute tables_checksum (regions to the end), then the header's."""
    start = u64(data, "regions_offset")
    struct.pack_into("<Q", data, off("tables_checksum"), xxhash.xxh64_intdigest(bytes(data[start:]), seed=0))
    return reseal(data)


def region_field(data: bytes | bytearray, index: int, field: str) -> int:
    return (
        u64(data, "regions_offset")
        + index * FFI.sizeof("struct ckpt_region")
        + FFI.offsetof("struct ckpt_region", field)
    )


@pytest.mark.parametrize("which", ["interval_us", "value_us"])
def test_garbage_itimer(tmp_path, image_bytes, which):
    """An interval timer beyond what the kernel keeps (signed 64-bit ns):
    refused by name, before the point of no return (before, setitimer got
    it after that point)."""
    where = FFI.offsetof("struct ckpt_header", "proc") + FFI.offsetof("struct ckpt_proc", "itimers")
    where += FFI.sizeof("struct ckpt_itimer") + FFI.offsetof("struct ckpt_itimer", which)
    struct.pack_into("<Q", image_bytes, where, 1 << 62)
    assert_refused(
        run_myrestart(write(tmp_path, reseal(image_bytes))), "CKPT_EXIT_CORRUPT", mentions=["ITIMER_VIRTUAL"]
    )


def test_garbage_timer_slack(tmp_path, image_bytes):
    struct.pack_into(
        "<Q", image_bytes, off("proc") + FFI.offsetof("struct ckpt_proc", "timerslack_ns"), 1 << 63
    )
    assert_refused(
        run_myrestart(write(tmp_path, reseal(image_bytes))), "CKPT_EXIT_CORRUPT", mentions=["timer slack"]
    )


def test_file_offset_beyond_the_file(tmp_path, image_bytes):
    """A mapped file region whose offset lies beyond the file: refused with
    the file named (before, the restored program died of SIGBUS later)."""
    nr = u64(image_bytes, "nr_regions")
    kinds = [
        struct.unpack_from("<I", image_bytes, region_field(image_bytes, i, "kind"))[0] for i in range(nr)
    ]
    i = kinds.index(EXIT["CKPT_KIND_FILE"])
    struct.pack_into("<Q", image_bytes, region_field(image_bytes, i, "file_offset"), 1 << 40)
    line = assert_refused(run_myrestart(write(tmp_path, reseal_tables(image_bytes))), "CKPT_EXIT_MISMATCH")
    assert "SIGBUS" in line and "offset 1099511627776" in line, line


def test_region_below_mmap_min_addr(tmp_path, image_bytes):
    """Memory at address 0, restarted by a user who may not map there
    (no CAP_SYS_RAWIO): refused, naming vm.mmap_min_addr (before: exit 14
    after the point of no return)."""
    if os.geteuid() != 0:
        pytest.skip("NOT TESTED: needs root to create the unprivileged user who restarts")
    min_addr = int(Path("/proc/sys/vm/mmap_min_addr").read_text())
    if min_addr == 0:
        pytest.skip("NOT TESTED: vm.mmap_min_addr is 0 here")
    struct.pack_into("<Q", image_bytes, region_field(image_bytes, 0, "start"), 0)
    shared = Path(tempfile.mkdtemp(prefix="ck15-"))  # pytest's are 0700
    os.chmod(shared, 0o755)
    image = write(shared, reseal_tables(image_bytes))
    name = f"ck15m{os.getpid() % 10000}"
    subprocess.run(["useradd", "-M", "-N", "-s", "/bin/false", name], check=True, timeout=30)
    try:
        pw = pwd.getpwnam(name)
        os.chown(image, pw.pw_uid, pw.pw_gid)

        def become() -> None:
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)

        r = subprocess.run(
            [str(MYRESTART), "--pid=never", str(image)],
            capture_output=True,
            timeout=30,
            preexec_fn=become,
            check=False,
        )
    finally:
        subprocess.run(["userdel", name], check=False, timeout=30)
        shutil.rmtree(shared, ignore_errors=True)
    assert_refused(r, "CKPT_EXIT_RESOURCE", mentions=["vm.mmap_min_addr", "0x0 "])


@pytest.fixture
def low_max_map_count():
    """vm.max_map_count lowered to 20 for the test (root only), then restored."""
    knob = Path("/proc/sys/vm/max_map_count")
    if os.geteuid() != 0:
        pytest.skip("needs root to lower vm.max_map_count for a moment")
    old = knob.read_text()
    try:
        knob.write_text("20")
    except OSError as e:
        pytest.skip(f"cannot write {knob}: {e}")
    try:
        yield
    finally:
        knob.write_text(old)


def test_more_regions_than_max_map_count(good_image, low_max_map_count):
    """More regions than the kernel lets a process map: refused with the
    limit named, before the point of no return (exit 13), not a failed
    mmap after it."""
    line = assert_refused(run_myrestart(good_image), "CKPT_EXIT_RESOURCE")
    assert "max_map_count" in line, line

# SPDX-License-Identifier: GPL-2.0-or-later
"""`extckpt show` on a real format-2 image: the saved fds (with a deleted
file), the process settings (cwd, umask, name, rlimits, interval timers,
prctl values) and the per-region vmflags, in text and in --json.

The target is a small C program compiled here. It sets all of that up,
prints ``ready`` with the addresses of its special mappings and waits; it
runs under LD_PRELOAD=native/libckpt.so (absolute) with CKPT_IMAGE, is
checkpointed with SIGUSR2, and the image's appearance (libckpt renames it
into place complete) is the event we wait for. It is killed by pid in
``finally``.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import LIBCKPT

from extckpt._layout import C
from extckpt.image import Image
from extckpt.show import open_flag_names, show

TIMEOUT = 30

SHOWME_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

/* usage: showme DIR */
int main(int argc, char **argv)
{
    struct rlimit nofile = { 200, 300 };
    struct itimerval real = { { 1000, 0 }, { 2000, 0 } };
    struct itimerval prof = { { 0, 0 }, { 500, 0 } };
    char *nr, *dc, *lo;
    int app, ghost, locked;

    if (argc != 2 || chdir(argv[1]))
        return 2;
    app = open("log.txt", O_RDWR | O_CREAT | O_APPEND, 0644);
    if (app != 3 || write(app, "hello\n", 6) != 6)
        return 3;
    ghost = open("ghost.txt", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (ghost != 4 || write(ghost, "0123456789abc", 13) != 13 || unlink("ghost.txt"))
        return 4;
    if (lseek(ghost, 4, SEEK_SET) != 4)
        return 5;
    umask(027);
    if (setrlimit(RLIMIT_NOFILE, &nofile) || setitimer(ITIMER_REAL, &real, NULL) ||
        setitimer(ITIMER_PROF, &prof, NULL))
        return 6;
    nr = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE,
          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    dc = mmap(NULL, 3 << 12, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    lo = mmap(NULL, 1 << 12, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (nr == MAP_FAILED || dc == MAP_FAILED || lo == MAP_FAILED ||
        madvise(dc, 3 << 12, MADV_DONTFORK))
        return 7;
    nr[0] = 1;
    locked = mlock(lo, 1 << 12) == 0;
    if (prctl(PR_SET_NAME, "showme-x", 0, 0, 0) ||
        prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) ||
        prctl(PR_SET_TIMERSLACK, 123456, 0, 0, 0) ||
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
        prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0))
        return 8;
    printf("ready %p %p %p %d\n", (void *)nr, (void *)dc, (void *)lo, locked);
    fflush(stdout);
    for (;;)
        pause();
}
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "extckpt.cli", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )


class Made:
    """The image and what the target said about itself."""

    def __init__(self, image: Path, scratch: Path, exe: Path, addrs: dict[str, int], locked: bool):
        self.image = image
        self.scratch = scratch
        self.exe = exe
        self.addrs = addrs
        self.locked = locked


@pytest.fixture(scope="module")
def made(tmp_path_factory, native_build) -> Made:
    d = tmp_path_factory.mktemp("show")
    src, exe = d / "showme.c", d / "showme"
    src.write_text(SHOWME_C)
    subprocess.run(["gcc", "-O1", "-Wall", "-Wextra", "-o", str(exe), str(src)], check=True, timeout=60)
    scratch = d / "scratch"
    scratch.mkdir()
    image = d / "showme.ckpt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CKPT_")}
    env.update(LD_PRELOAD=str(LIBCKPT), CKPT_IMAGE=str(image))
    p = subprocess.Popen(
        [str(exe), str(scratch)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert p.stdout is not None
        r, _, _ = select.select([p.stdout], [], [], TIMEOUT)
        assert r, "showme said nothing in time"
        line = p.stdout.readline().decode().split()
        assert line and line[0] == "ready", (line, p.poll())
        nr, dc, lo, locked = (int(x, 0) for x in line[1:])
        os.kill(p.pid, signal.SIGUSR2)
        deadline = time.monotonic() + TIMEOUT
        while not image.exists():  # renamed into place only when complete
            assert p.poll() is None, f"showme died: {p.returncode}"
            assert time.monotonic() < deadline, "no image"
            time.sleep(0.01)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=TIMEOUT)
    return Made(image, scratch, exe, {"noreserve": nr, "dontfork": dc, "locked": lo}, bool(locked))


# ---- the API --------------------------------------------------------------


def test_open_flag_names() -> None:
    assert open_flag_names(0) == ["O_RDONLY"]
    assert open_flag_names(0o2 | 0o2000) == ["O_RDWR", "O_APPEND"]
    assert open_flag_names(0o1 | 0o100000) == ["O_WRONLY"]  # O_LARGEFILE left out
    assert open_flag_names(0o4010000) == ["O_RDONLY", "O_SYNC"]
    assert open_flag_names(0o10000 | 0o4000) == ["O_RDONLY", "O_NONBLOCK", "O_DSYNC"]
    assert open_flag_names(0o2 | 0o40000000) == ["O_RDWR", "0o40000000"]


def test_show_api(made: Made) -> None:
    info = show(made.image)
    p = info.proc
    assert p is not None
    assert p.cwd == str(made.scratch)
    assert p.umask == 0o027 and p.umask_octal == "0027"
    assert p.comm == "showme-x"
    nofile = next(r for r in p.rlimits if r.resource == "NOFILE")
    assert (nofile.number, nofile.soft, nofile.hard) == (7, 200, 300)
    assert len(p.rlimits) == 16
    assert all(r.soft is not None or r.hard is not None for r in p.limited)
    timers = {t.timer: t for t in p.itimers}
    assert timers["REAL"].armed and timers["REAL"].interval_us == 1000 * 10**6
    assert 1000 * 10**6 < timers["REAL"].value_us <= 2000 * 10**6
    assert timers["PROF"].armed and timers["PROF"].interval_us == 0
    assert not timers["VIRTUAL"].armed
    assert (p.thp_disable, p.no_new_privs, p.child_subreaper, p.timerslack_ns) == (1, 1, 1, 123456)
    assert p.dumpable == 1

    fds = {f.fd: f for f in info.fds}
    assert fds[0].type == "char"  # /dev/null
    assert fds[1].type == fds[2].type == "pipe"
    log = fds[3]
    assert (log.type, log.flag_names, log.offset, log.cloexec) == ("file", ["O_RDWR", "O_APPEND"], 6, False)
    assert log.path == str(made.scratch / "log.txt") and not log.deleted
    ghost = fds[4]
    assert ghost.type == "ghost" and ghost.deleted
    assert ghost.path.startswith(str(made.scratch / "ghost.txt"))
    assert (ghost.saved_bytes, ghost.offset, ghost.cloexec, ghost.checksum) == (13, 4, True, "ok")

    by_start = {r.start: r for r in info.regions}
    assert "noreserve" in by_start[made.addrs["noreserve"]].vmflags
    assert "dontfork" in by_start[made.addrs["dontfork"]].vmflags
    if made.locked:
        assert "locked" in by_start[made.addrs["locked"]].vmflags
    stack = next(r for r in info.regions if r.name == "[stack]")
    assert "growsdown" in stack.vmflags


# ---- the command ------------------------------------------------------------


def _section(out: str, start: str) -> list[str]:
    """The lines of a section: its heading line and the indented ones after."""
    lines = out.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(start))
    body = [lines[i]]
    for line in lines[i + 1 :]:
        if not line.startswith("  "):
            break
        body.append(line)
    return body


def test_show_text(made: Made) -> None:
    r = cli("show", str(made.image))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert f"format version {C.CKPT_FORMAT_VERSION}" in out
    assert "name:      showme-x\n" in out
    assert f"cwd:       {made.scratch}\n" in out
    assert "umask:     0027\n" in out

    rl = _section(out, "rlimits:")
    assert any(line.split()[:5] == ["NOFILE", "soft", "200", "hard", "300"] for line in rl), rl
    assert not any(line.split()[0] == "CPU" for line in rl[1:]), "CPU is unlimited: not listed"

    it = _section(out, "itimers:")
    assert any(line.split()[0] == "REAL" and "then every 1000.000 s" in line for line in it), it
    assert any(line.split()[0] == "PROF" and line.endswith("once") for line in it), it
    assert not any("VIRTUAL" in line for line in it)
    prctl = next(line for line in out.splitlines() if line.startswith("prctl:"))
    for word in (
        "dumpable 1",
        "no_new_privs 1",
        "thp_disable 1",
        "child_subreaper 1",
        "timerslack 123456 ns",
    ):
        assert word in prctl, prctl

    files = _section(out, "files:")
    assert files[0] == "files:     5 open"
    rows = {int(line.split()[0]): line for line in files[2:]}
    assert rows[3].split()[1:5] == ["file", "O_RDWR|O_APPEND", "6", "no"], rows[3]
    assert rows[3].endswith(str(made.scratch / "log.txt"))
    assert rows[4].split()[1:5] == ["ghost", "O_RDWR", "4", "yes"], rows[4]
    assert rows[4].endswith(f"{made.scratch / 'ghost.txt'}  (deleted, 13 bytes saved)"), rows[4]
    assert "not restorable" in rows[1] and "pipe" in rows[1]

    table = out.split("\n\n", 1)[1].splitlines()
    assert "VMFLAGS" in table[0].split()

    def row(addr: int) -> list[str]:
        return next(line for line in table if line.startswith(f"{addr:#014x}-")).split()

    assert "noreserve" in row(made.addrs["noreserve"])[-2].split(",")
    assert "dontfork" in row(made.addrs["dontfork"])[-2].split(",")
    if made.locked:
        assert "locked" in row(made.addrs["locked"])[-2].split(",")


def test_show_json(made: Made) -> None:
    r = cli("show", "--json", str(made.image))
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    p = j["proc"]
    assert set(p) >= {
        "cwd", "umask", "umask_octal", "comm", "rlimits", "itimers", "thp_disable",
        "no_new_privs", "dumpable", "child_subreaper", "timerslack_ns",
    }  # fmt: skip
    assert p["umask"] == 0o027 and p["umask_octal"] == "0027" and p["cwd"] == str(made.scratch)
    assert len(p["rlimits"]) == 16
    assert {"resource": "NOFILE", "number": 7, "unit": "", "soft": 200, "hard": 300} in p["rlimits"]
    assert next(x for x in p["rlimits"] if x["resource"] == "CPU")["soft"] is None  # unlimited
    assert [t["timer"] for t in p["itimers"]] == ["REAL", "VIRTUAL", "PROF"]
    assert [t["armed"] for t in p["itimers"]] == [True, False, True]
    fds = {f["fd"]: f for f in j["fds"]}
    assert set(fds) == {0, 1, 2, 3, 4}
    assert fds[3]["flag_names"] == ["O_RDWR", "O_APPEND"] and fds[3]["offset"] == 6
    assert fds[4]["deleted"] is True and fds[4]["saved_bytes"] == 13 and fds[4]["cloexec"] is True
    regions = {reg["start"]: reg for reg in j["regions"]}
    assert "noreserve" in regions[made.addrs["noreserve"]]["vmflags"]
    assert all(isinstance(reg["vmflags"], list) for reg in j["regions"])


def test_show_bad_ghost_contents(made: Made, tmp_path: Path) -> None:
    """A flipped byte in a deleted file's saved contents: show marks it,
    exits 2 and names the fd; restart refuses the image."""
    with Image.open(made.image) as img:
        ghost = next(f for f in img.fds if f.is_ghost)
        off = ghost.data_offset + 5
    data = bytearray(made.image.read_bytes())
    data[off] ^= 0x10
    bad = tmp_path / "bad.ckpt"  # header and tables untouched: it opens
    bad.write_bytes(bytes(data))
    r = cli("show", str(bad))
    assert r.returncode == 2
    assert "checksum BAD" in r.stdout
    assert "deleted file fd 4 fail their checksum" in r.stderr
    r = cli("show", "--no-check", "--json", str(bad))
    assert r.returncode == 0
    assert {f["fd"]: f["checksum"] for f in json.loads(r.stdout)["fds"]}[4] == "unchecked"
    r = cli("restart", str(bad))
    assert r.returncode == 2 and "fail their checksum" in r.stderr

#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Generate the seed corpus for the ckpt_validate fuzzers.

    python3 tests/fuzz/make_seeds.py OUT_DIR [--full] [--no-real]

Writes into OUT_DIR:
  synth.img          a small valid image built by seedgen (no process needed)
  real-small.img     a real checkpoint of a tiny program run under
                     native/libckpt.so, cut down by seedgen to its tables and
                     two stored pages (a few KB instead of ~150 KB)
  real-full.img      the untouched real checkpoint (only with --full)
  mutants/           boundary-value variants of both seeds: every header
                     field, the first and last region's fields and the first
                     run's fields set to 0, max, +1, -1, the file size and
                     max/2, each raw and with its checksums recomputed; and
                     truncations at each table boundary.

Nothing binary is committed: the corpus is rebuilt from the sources. If the
real checkpoint cannot be taken (libckpt.so does not build, the machine
refuses), a warning is printed and the synthetic seeds are still written,
unless --require-real is given.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
NATIVE = ROOT / "native"

# The program checkpointed: touches a heap page and a stack page, says
# "ready" once the preloaded handler is armed (the constructor has run by
# the time main does), then waits for the signal.
TARGET_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
	volatile char stack_page[4096];
	char *heap = malloc(3 * 4096);

	if (!heap)
		return 1;
	memset(heap, 0x5a, 3 * 4096);
	memset((char *)stack_page, 0x33, sizeof(stack_page));
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
"""

CFLAGS = ["-O1", "-g", "-Wall", "-Wextra", "-Werror"]


def run(cmd: list[str], timeout: float = 120) -> None:
    subprocess.run(cmd, check=True, timeout=timeout)


def build_seedgen(build: Path, cc: str) -> Path:
    exe = build / "seedgen"
    run(
        [
            cc,
            *CFLAGS,
            "-I",
            str(NATIVE),
            "-I",
            str(HERE),
            "-o",
            str(exe),
            str(HERE / "seedgen.c"),
            str(NATIVE / "ckpt_validate.c"),
        ]
    )
    return exe


def take_checkpoint(build: Path, cc: str, image: Path, deadline: float = 20) -> None:
    """Checkpoint a tiny program under libckpt.so into image."""
    run(["make", "-C", str(NATIVE), "libckpt.so"], timeout=300)
    src = build / "seed_target.c"
    exe = build / "seed_target"
    src.write_text(TARGET_C)
    run([cc, "-O1", "-o", str(exe), str(src)])
    env = dict(os.environ)
    env["LD_PRELOAD"] = str(NATIVE / "libckpt.so")
    env["CKPT_IMAGE"] = str(image)
    env.pop("CKPT_SIGNAL", None)  # the default, SIGUSR2
    log = build / "seed_target.stderr"
    with open(log, "w") as err_file:
        proc = subprocess.Popen(
            [str(exe)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err_file,
            cwd=build,
            text=True,
        )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if line.strip() != "ready":
            raise RuntimeError(f"seed target did not start: {line!r} {log.read_text()!r}")
        proc.send_signal(signal.SIGUSR2)
        # The image is renamed into place complete: its appearance is the
        # event. A failed checkpoint says so in one "libckpt: " line instead.
        end = time.monotonic() + deadline
        while not image.exists():
            failed = [x for x in log.read_text().splitlines() if x.startswith("libckpt: ")]
            if failed:
                raise RuntimeError(failed[0])
            if proc.poll() is not None:
                raise RuntimeError(f"seed target exited with {proc.returncode}")
            if time.monotonic() > end:
                raise RuntimeError(f"no image at {image} after {deadline} s")
            time.sleep(0.01)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--cc", default=os.environ.get("CC", "gcc"))
    ap.add_argument("--full", action="store_true", help="keep the full real image")
    ap.add_argument("--no-real", action="store_true", help="synthetic seeds only")
    ap.add_argument("--require-real", action="store_true", help="fail if the real checkpoint cannot be taken")
    args = ap.parse_args(argv)

    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "mutants").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="extckpt-seeds-") as tmp:
        build = Path(tmp)
        seedgen = build_seedgen(build, args.cc)
        seeds = [out / "synth.img"]
        run([str(seedgen), "synth", str(seeds[0])])
        if not args.no_real:
            full = build / "real.img"
            try:
                take_checkpoint(build, args.cc, full)
                run([str(seedgen), "shrink", str(full), str(out / "real-small.img"), "2"])
                seeds.append(out / "real-small.img")
                if args.full:
                    shutil.copyfile(full, out / "real-full.img")
            except (OSError, RuntimeError, subprocess.SubprocessError) as e:
                if args.require_real:
                    raise
                print(f"make_seeds: no real checkpoint ({e}); synthetic seeds only", file=sys.stderr)
        for seed in seeds:
            sub = out / "mutants" / seed.stem
            sub.mkdir(exist_ok=True)
            run([str(seedgen), "mutants", str(seed), str(sub)])
    n = sum(1 for p in out.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"make_seeds: {n} files, {size // 1024} KiB in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

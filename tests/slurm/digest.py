# SPDX-License-Identifier: GPL-2.0-or-later
"""digest.py STEPS - the Python twin of digest.c: STEPS steps of fixed work
(hashing and a pure-Python loop), a line "step I HASH" after each (flushed),
"digest HASH" at the end. The output depends only on STEPS."""

import hashlib
import sys


def main() -> int:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    data = bytearray(range(256)) * 4096  # 1 MiB
    h = hashlib.sha256()
    acc = 0
    for step in range(1, steps + 1):
        for i in range(60_000):
            acc = (acc * 6364136223846793005 + i) & 0xFFFFFFFFFFFFFFFF
        for _ in range(16):
            h.update(data)
            data[acc % len(data)] ^= 0x5A
            acc ^= int.from_bytes(h.digest()[:8], "little")
        print(f"step {step} {acc:016x}", flush=True)
    print(f"digest {h.hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

# SPDX-License-Identifier: GPL-2.0-or-later
"""benchmarks/run.py in its smallest configuration: it runs end to end and
writes its markdown table and JSON (a few seconds; not marked slow)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from support import NATIVE, ROOT

RUN = ROOT / "benchmarks" / "run.py"
DEADLINE = 60.0  # seconds; the run itself takes about 3


def test_benchmark_quick_writes_a_table(tmp_path):
    out = tmp_path / "out"
    argv = [sys.executable, str(RUN), "--quick", "--reps", "1", "--workloads", "tiny,64M"]
    argv += ["--dir", str(tmp_path), "--out", str(out), "--native", str(NATIVE)]
    p = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = p.communicate(timeout=DEADLINE)
    finally:
        if p.poll() is None:
            # SIGINT first: run.py kills what it started in its finally.
            p.send_signal(signal.SIGINT)
            try:
                p.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
    assert p.returncode == 0, f"run.py exited {p.returncode}\nstdout:\n{stdout}\nstderr:\n{stderr}"

    md = (out / "results.md").read_text()
    assert "| workload | touched | image |" in md
    assert "| workload | pause sync | pause forked |" in md
    for name in ("tiny", "64M"):
        assert f"| {name} |" in md
    assert "| tiny program image ≤ 1 MiB |" in md

    data = json.loads((out / "results.json").read_text())
    stats = data["results"]["64M"]["stats"]
    assert stats["image_bytes"]["median"] >= 64 << 20
    for key in ("ckpt_s", "dd_s", "pause_sync_s", "pause_fork_s", "restart_s", "cat_s", "verify_s"):
        assert stats[key]["median"] > 0, key
    # Everything it wrote into --dir is gone, images and dd files included.
    assert [q.name for q in tmp_path.iterdir()] == ["out"]

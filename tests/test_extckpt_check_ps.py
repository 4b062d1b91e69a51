# SPDX-License-Identifier: GPL-2.0-or-later
"""`extckpt check` and `extckpt ps` over real processes (issue 16)."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
from support import checkpoint, run_cli, start_target, target_path

TIMEOUT = 60
REQUIRED = {
    "kernel",
    "PAGEMAP_SCAN",
    "PR_SET_MM_MAP",
    "vDSO",
    "bundled native files",
    "checkpoint and restart",
}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, timeout=TIMEOUT)


def test_check_json_says_this_machine_works():
    r = cli("check", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["ok"] is True
    probes = {p["name"]: p for p in out["probes"]}
    assert set(probes) >= REQUIRED, sorted(probes)
    for name in REQUIRED:
        assert probes[name]["required"] and probes[name]["ok"], probes[name]
    # The real round trip ran: a shell was checkpointed and restarted.
    assert "restarted" in probes["checkpoint and restart"]["detail"]


def test_check_text_lists_every_probe_and_a_verdict():
    r = cli("check")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1] == "this machine can checkpoint and restart"
    for name in REQUIRED:
        assert any(line.startswith(name) and " ok " in line for line in lines), (name, r.stdout)


def test_check_without_round_trip():
    out = json.loads(cli("check", "--json", "--no-round-trip").stdout)
    assert "checkpoint and restart" not in {p["name"] for p in out["probes"]}


def _listed(pid: int) -> dict | None:
    r = cli("ps", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    return next((p for p in json.loads(r.stdout)["processes"] if p["pid"] == pid), None)


@pytest.mark.usefixtures("built")
def test_ps_lists_a_preloaded_process_with_its_image(procs, tmp_path):
    image = tmp_path / "quiet.img"
    target = start_target(procs, target_path("quiet"), image, env={"CKPT_SIGNAL": "RTMIN+3"})
    entry = _listed(target.pid)
    assert entry is not None
    assert entry["image"] == str(image)
    assert entry["signal"] == "RTMIN+3"
    assert entry["program"] == str(target_path("quiet"))
    assert entry["image_size"] is None  # no checkpoint yet
    checkpoint(target, image, sig=signal.SIGRTMIN + 3)
    entry = _listed(target.pid)
    assert entry["image_size"] == image.stat().st_size
    assert entry["image_mtime"] == pytest.approx(image.stat().st_mtime)


@pytest.mark.usefixtures("built")
def test_ps_resolves_a_relative_image_against_the_cwd(procs, tmp_path):
    target = start_target(procs, target_path("quiet"), "rel.img", cwd=tmp_path)
    assert _listed(target.pid)["image"] == str(tmp_path / "rel.img")
    text = cli("ps").stdout
    assert any(line.split()[0] == str(target.pid) for line in text.splitlines()[1:] if line.strip()), text


def test_ps_leaves_out_processes_without_libckpt(procs):
    plain = procs.start(["sleep", "30"])
    assert _listed(plain.pid) is None

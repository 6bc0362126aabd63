"""``crossnic demo``, as README's first command runs it (root): it passes, says so, and leaves
no namespace, TAP device, socket or memory file behind."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crossnic.host.demo import DemoError, run_demo


def _leftovers() -> set[str]:
    ns = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    shm = {p.name for p in Path("/dev/shm").glob("crossnic-demo-card-*")} \
        if Path("/dev/shm").is_dir() else set()
    return ({n for n in ns if n.startswith(("red", "blue", "cndemo"))}
            | {w for w in links.split() if w.startswith(("cndx", "vred", "vblue"))} | shm)


@pytest.mark.xdist_group("demo")
@pytest.mark.skipif(os.geteuid() != 0, reason="the demo needs root (CI runs as root)")
def test_demo_passes_and_cleans_up():
    before = _leftovers()
    r = subprocess.run([sys.executable, "-m", "crossnic", "demo", "--json"],
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout)
    assert summary["ok"] and summary["simulation"]
    assert all(p["received"] == 3 for p in summary["pings"].values())
    assert summary["wire_unchanged_during_vns_ping"] and summary["hairpinned"] >= 6
    assert summary["tcp"]["received_by_server"] == summary["tcp"]["bytes"] == 1 << 20
    assert summary["classifier"]["mac_hits"] > 500
    # TLS 1.3 between the two VNS, with both ends' handshakes on the card's offload engine
    tls = summary["tls"]
    assert tls["echoed"] and tls["backend"] == "card"
    assert tls["card_cycles"]["keygen"] > 50_000 and "finished" in tls["card_cycles"]
    assert "cleaning up" in r.stderr
    assert _leftovers() == before


def test_demo_without_root_says_so(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(DemoError, match="as root"):
        run_demo(say=lambda m: None)

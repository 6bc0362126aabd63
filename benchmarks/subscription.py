"""Subscription priority under congestion (simulation figures, rates in card time): what
associating a connection with a subscription level does to its throughput.

Runs as root: a served card (:class:`crossnic.sim.lab.LabCard`) with port 0 on a TAP in a
station namespace, a VNS with one VNIC held to ``--vnic-maxbw`` of card time, and two
connections from the VNS to the station sharing it: UDP blasts of 1000-byte datagrams (the
default: the card's queues stay full, so its scheduler decides) or bulk TCP (``--traffic
tcp``: TCP reacts to the simulator's wall-clock pace too). Each connection's rate is measured
(bytes the station received against the card's cycle counter) before association, while one
of them is associated with a level (``--level-priority``, ``--level-maxbw``), and after it is
dissociated; while associated, also the connection's own transmit ring by the card's
counters (the station's count takes frames in the simulator's bursts, a frame or two off
over a window).

    sudo python benchmarks/subscription.py [--traffic udp|tcp] [--window 15]
                                           [--vnic-maxbw 200M] [--level-maxbw 600M]
                                           [--level-priority high]
                                           [--out benchmarks/results/subscription.json]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from crossnic.gateware.nic_core import NicCore
from crossnic.host.registers import Registers
from crossnic.host.sim_device import SimDevice
from crossnic.sim.lab import (
    CLOCK_HZ,
    LabCard,
    card_rates,
    in_ns,
    sh,
    station,
    stream_progress,
    wait_ready,
)

ROOT = Path(__file__).resolve().parents[1]
FAST, OTHER = 47001, 47002


def start_traffic(ext: str, vns: str, result: Path, traffic: str) -> list[subprocess.Popen]:
    """The station's receiver, then the two connections' senders."""
    if traffic == "udp":
        sink = ["udp-count", "10.31.0.100", "7300", "3600", str(result)]
    else:
        sink = ["tcp-serve", "10.31.0.100", "7300", "2", str(result)]
    procs = [in_ns(ext, *sink)]
    wait_ready(procs[0], result)
    for port in (FAST, OTHER):
        send = (["udp-blast", "10.31.0.100", "7300", str(port), "1000", "300", "3600"]
                if traffic == "udp" else
                ["tcp-send", "10.31.0.100", "7300", str(port), str(1 << 30), "0"])
        procs.append(in_ns(vns, *send, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


def measure(card: LabCard, ext: str, vns: str, args) -> dict:
    result = card.tmp / "streams.json"
    procs = start_traffic(ext, vns, result, args.traffic)
    try:
        while not (len(got := stream_progress(result)) == 2 and min(got.values()) > 65536):
            time.sleep(0.5)
        with SimDevice(card.card_sock) as dev:
            regs = Registers(NicCore().regmap(), dev.read32, dev.write32)
            phases = {"before": card_rates(regs, result, args.window)}
            out = card.ok("associate", "--link", "vsub", "--level", "bench", "-a",
                          f"transport={args.traffic},local_port={FAST},"
                          "remote_ip=10.31.0.100,remote_port=7300")
            time.sleep(2)
            ring = json.loads(card.ok("show-association", "--json"))[0]["ring"]
            start = regs.read("nic.cycles"), regs.read(f"tx_ring[{ring}].bytes.lo")
            phases["associated"] = card_rates(regs, result, args.window)
            end = regs.read("nic.cycles"), regs.read(f"tx_ring[{ring}].bytes.lo")
            seconds = (end[0] - start[0]) % (1 << 32) / CLOCK_HZ
            phases["flow_ring"] = {FAST: (end[1] - start[1]) % (1 << 32) * 8 / seconds}
            card.ok("dissociate", out.split(":")[0])
            time.sleep(2)
            phases["after"] = card_rates(regs, result, args.window)
        return phases
    finally:
        for p in procs:
            p.kill()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traffic", choices=("udp", "tcp"), default="udp")
    parser.add_argument("--window", type=float, default=15.0, help="seconds per measurement")
    parser.add_argument("--vnic-maxbw", default="200M")
    parser.add_argument("--level-maxbw", default="600M")
    parser.add_argument("--level-priority", default="high")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks/results/subscription.json")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks/subscription.py needs root (namespaces, TAP devices)",
              file=sys.stderr)
        return 2
    tag = f"{os.getpid() % 10000}"
    ext, tap = f"cnsx{tag}", f"cns{tag}"
    card = LabCard(Path(tempfile.mkdtemp(prefix="crossnic-sub-")), f"tap:{tap}")
    try:
        card.start()
        station(ext, tap, "10.31.0.100/24")
        card.ok("create-vns", f"cnsv{tag}", "--ip", "10.31.0.1/24")
        card.ok("create-vnic", "vsub", "--over", "port0", "--vns", f"cnsv{tag}", "-p",
                f"maxbw={args.vnic_maxbw}")
        card.ok("create-sublevel", "bench", "-p",
                f"priority={args.level_priority},maxbw={args.level_maxbw}")
        phases = measure(card, ext, f"cnsv{tag}", args)
        stats = json.loads(Path(str(card.card_sock) + ".stats").read_text())
        print("simulator:", {k: v for k, v in stats.items() if "cycles" in k})
        print(card.ok("show-vnic", "vsub", "--json"))
    finally:
        card.stop()
        sh("ip", "netns", "del", ext, check=False)
        sh("ip", "netns", "del", f"cnsv{tag}", check=False)
    mb = {p: {str(k): round(v / 1e6, 1) for k, v in r.items()} for p, r in phases.items()}
    print(f"{args.traffic.upper()} connections; VNIC maxbw {args.vnic_maxbw}; level: priority "
          f"{args.level_priority}, maxbw {args.level_maxbw}; Mb/s of card time")
    print(f"{'phase':>10} {'associated conn':>15} {'other conn':>10}")
    for p, r in mb.items():
        print(f"{p:>10} {r[str(FAST)]:>15} {r.get(str(OTHER), '-'):>10}")
    ratio = phases["associated"][FAST] / phases["before"][FAST]
    back = phases["after"][FAST] / phases["associated"][FAST]
    print(f"associated / before: {ratio:.2f}x; after / associated: {back:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "traffic": args.traffic, "vnic_maxbw": args.vnic_maxbw,
        "level": {"priority": args.level_priority, "maxbw": args.level_maxbw},
        "window_s": args.window, "mbit_s_card_time": mb,
        "ratio_associated_before": round(ratio, 2), "ratio_after_associated": round(back, 2),
    }, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Lanes (simulation figures, wall time): the round trip of a quiet VNIC while another VNIC of
the card is flooded, with a lane per VNIC (the default) and with every ring served by one loop
(``crossnicd --no-lanes``).

Runs as root, once per mode: a served card (:class:`crossnic.sim.lab.LabCard`) with port 0 on
a TAP in a station namespace and three VNICs over port 0, each in a VNS of its own: ``quiet``
answers the station's UDP probes (``udp-ping`` / ``udp-echo``), ``flooder`` blasts 64-byte
datagrams at ``busy`` through the card's switch. The probes run idle and during the flood;
the table gives their round trips and what the busy VNIC's lane did.

The simulated card runs some 20,000 clocks a second, so it, not the host, sets the pace:
the flood reaches ``busy`` as fast as the card switches it, and a probe's round trip is
mostly card time. What the lanes change is the host's share of it.

    sudo python benchmarks/lanes.py [--probes 40] [--rate 2000]
                                    [--out benchmarks/results/lanes.json]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from crossnic.sim.lab import LabCard, in_ns, sh, station, wait_ready

ROOT = Path(__file__).resolve().parents[1]
EXT_IP = "10.44.0.100"
IPS = {"quiet": "10.44.0.1", "busy": "10.44.0.2", "flooder": "10.44.0.3"}


def ping(ext: str, probes: int) -> list[float | None]:
    p = in_ns(ext, "udp-ping", IPS["quiet"], "7800", str(probes), "0.25",
              stdout=subprocess.PIPE, text=True)
    return json.loads(p.communicate(timeout=probes * 11 + 60)[0])


def summary(rtts: list[float | None]) -> dict:
    got = sorted(r for r in rtts if r is not None)
    if not got:
        return {"probes": len(rtts), "lost": len(rtts)}
    return {"probes": len(rtts), "lost": len(rtts) - len(got),
            "median_ms": round(statistics.median(got), 1),
            "p90_ms": round(got[int(0.9 * (len(got) - 1))], 1), "max_ms": got[-1]}


def run(mode: str, args, tag: str) -> dict:
    ext, tap = f"cnbx{tag}", f"cnb{tag}"
    ns = {k: f"cnb{k[0]}{tag}" for k in IPS}
    card = LabCard(Path(tempfile.mkdtemp(prefix="crossnic-lanes-")), f"tap:{tap}",
                   daemon_args=("--no-lanes",) if mode == "one loop" else ())
    procs = []
    try:
        card.start()
        station(ext, tap, f"{EXT_IP}/24")
        for k, ip in IPS.items():
            card.ok("create-vns", ns[k], "--ip", f"{ip}/24")
            card.ok("create-vnic", k, "--over", "port0", "--vns", ns[k])
        procs.append(in_ns(ns["quiet"], "udp-echo", IPS["quiet"], "7800", "3600",
                           str(card.tmp / "echo.json")))
        wait_ready(procs[-1], card.tmp / "echo.json")
        procs.append(in_ns(ns["busy"], "udp-count", IPS["busy"], "7801", "3600",
                           str(card.tmp / "busy.json")))
        wait_ready(procs[-1], card.tmp / "busy.json")
        ping(ext, 4)                                            # (ARP on both sides)
        idle = ping(ext, args.probes)
        procs.append(in_ns(ns["flooder"], "udp-blast", IPS["busy"], "7801", "47801", "64",
                           str(args.rate), "3600"))
        time.sleep(5)
        before = json.loads(card.ok("show-vnic", "busy", "--json"))[0]
        flooded = ping(ext, args.probes)
        after = json.loads(card.ok("show-vnic", "busy", "--json"))[0]
        lane = {k: after[k] - before[k] for k in after
                if k.startswith("lane_") and isinstance(after[k], int)}
        frames = json.loads((card.tmp / "busy.json").read_text()).get("47801", {})
        return {"mode": mode, "idle": summary(idle), "flooded": summary(flooded),
                "busy_lane": {"mode_at_end": after["lane"], **lane},
                "busy_received_bytes": frames.get("bytes", 0)}
    finally:
        for p in procs:
            p.kill()
            p.wait()
        card.stop()
        for n in (ext, *ns.values()):
            sh("ip", "netns", "del", n, check=False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument("--rate", type=int, default=2000, help="flood datagrams per second")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/lanes.json")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks/lanes.py needs root (namespaces, TAP devices)", file=sys.stderr)
        return 2
    tag = f"{os.getpid() % 10000}"
    rows = [run(mode, args, tag) for mode in ("lanes", "one loop")]
    print("quiet VNIC's UDP round trip (ms, wall time), idle and while another VNIC is flooded")
    print(f"{'mode':>9} {'idle median':>11} {'idle p90':>8} {'flood median':>12} "
          f"{'flood p90':>9} {'lost':>4}  busy lane (during the probes)")
    for r in rows:
        i, f, b = r["idle"], r["flooded"], r["busy_lane"]
        print(f"{r['mode']:>9} {i.get('median_ms', '-'):>11} {i.get('p90_ms', '-'):>8} "
              f"{f.get('median_ms', '-'):>12} {f.get('p90_ms', '-'):>9} "
              f"{i['lost'] + f['lost']:>4}  polls {b.get('lane_polls', '-')}, "
              f"to poll {b.get('lane_to_poll', '-')}, interrupts {b.get('lane_interrupts', '-')}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"note": "simulation: wall time on this machine",
                                    "probes": args.probes, "flood_rate": args.rate,
                                    "rows": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

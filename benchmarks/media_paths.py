"""Media-based transfer (simulation figures): TCP throughput between VNICs by the path the
chassis chose for them, in wall time on this machine.

Runs as root: :class:`crossnic.sim.lab.PathChassis` (two served cards whose crossnicd share a
chassis, both cabled to one Linux bridge with a station on it). Each path moves ``--bytes``
over one TCP connection and reports its throughput and the frames each VNIC counted by path:

* ``card``: VNIC a1 -> a2 on card A, through the simulated card's switch;
* ``host``: VNIC a1 (card A) -> b1 (card B), driver to driver through host memory;
* ``wire``: VNIC a1 -> the station, through the simulated card and its port.

The simulated card runs some 20,000 cycles per second, so the two paths through it are slow
in wall time; the host path does not touch a card, which is the point of it.

    sudo python benchmarks/media_paths.py [--bytes 262144]
                                          [--out benchmarks/results/media_paths.json]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from crossnic.sim.lab import PathChassis, tcp_transfer

ROOT = Path(__file__).resolve().parents[1]

def transfer(server_ns: str, client_ns: str, addr: str, port: int, size: int) -> float:
    """Seconds for ``size`` bytes over one checked connection (to the server's close, so
    every byte arrived)."""
    return tcp_transfer(server_ns, client_ns, addr, port, size, timeout=1800)["seconds"]


def paths(c: PathChassis) -> dict:
    return {v: {k: c.view(v)[k] for k in ("card_frames", "host_frames", "wire_frames")}
            for v in ("a1", "a2", "b1")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=256 * 1024)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/media_paths.json")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks/media_paths.py needs root (namespaces, TAP devices)", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="crossnic-paths-"))
    c = PathChassis(tmp, f"{os.getpid() % 10000}")
    rows = []
    try:
        # a small transfer first (ARP goes over the wire, as always, and proves the peer
        # shares the segment), so each run measures its path alone
        for n, (server, client, addr) in enumerate((
                (c.ns("a2"), c.ns("a1"), c.IPS["a2"]), (c.ns("b1"), c.ns("a1"), c.IPS["b1"]),
                (c.ext, c.ns("a1"), c.EXT_IP))):
            transfer(server, client, addr, 6200 + n, 1024)
        time.sleep(1.0)
        for n, (path, server, client, addr) in enumerate((
                ("card", c.ns("a2"), c.ns("a1"), c.IPS["a2"]),
                ("host", c.ns("b1"), c.ns("a1"), c.IPS["b1"]),
                ("wire", c.ext, c.ns("a1"), c.EXT_IP))):
            before = paths(c)
            seconds = transfer(server, client, addr, 6100 + n, args.bytes)
            after = paths(c)
            a1 = {k: after["a1"][k] - before["a1"][k] for k in after["a1"]}
            rows.append({"path": path, "bytes": args.bytes, "seconds": round(seconds, 3),
                         "mbit_s": round(args.bytes * 8 / seconds / 1e6, 3),
                         "a1_frames_by_path": a1})
    finally:
        c.close()
    print(f"{'path':>5} {'bytes':>8} {'seconds':>8} {'Mbit/s (wall)':>13}  a1 frames by path")
    for r in rows:
        f = r["a1_frames_by_path"]
        print(f"{r['path']:>5} {r['bytes']:>8} {r['seconds']:>8} {r['mbit_s']:>13}  "
              f"card {f['card_frames']}, host {f['host_frames']}, wire {f['wire_frames']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"note": "simulation: wall time on this machine",
                                    "paths": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

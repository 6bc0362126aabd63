"""Host-stack benchmark (simulation figures): ping RTT and TCP throughput through the simulated
card, simulated clocks per second in serve mode, and the driver's CPU time per frame.

Runs as root, like ``crossnic demo``: a served card with port 0 on a TAP in an outside
namespace, crossnicd's Daemon in this process, two VNS instances with a VNIC each. Measures
pings outside -> VNS and VNS -> VNS (switched on the card), and a TCP transfer each way; reads
the served card's statistics file for its simulation speed.

    sudo python benchmarks/host.py [--pings 20] [--bytes 1048576] [--out FILE.json]
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pings", type=int, default=20)
    parser.add_argument("--bytes", type=int, default=1 << 20)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/host.json")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks/host.py needs root (namespaces, TAP devices)", file=sys.stderr)
        return 2
    from crossnic.host import netns
    from crossnic.host.daemon import Daemon
    from crossnic.host.demo import _probe, _tcp
    from crossnic.host.sim_device import SimDevice
    from crossnic.host.sim_serve_client import start_card

    tag = f"{os.getpid() % 10000}"
    ext, tap, a, b = f"cnbx{tag}", f"cnbt{tag}", f"cnba{tag}", f"cnbb{tag}"
    tmp = Path(tempfile.mkdtemp(prefix="crossnic-bench-"))
    card = dev = daemon = None
    r: dict = {"simulation": True}
    try:
        card = start_card(tmp / "card.sock", [f"tap:{tap}", "none"], tmp / "serve.log")
        netns.add_netns(ext)
        for ns_ in (ext,):
            netns.set_sysctl(ns_, "net.ipv6.conf.all.disable_ipv6", "1")
        netns.ip("link", "set", tap, "netns", ext)
        netns.ip("addr", "add", "10.30.0.100/24", "dev", tap, ns=ext)
        netns.ip("link", "set", tap, "up", ns=ext)
        dev = SimDevice(tmp / "card.sock")
        daemon = Daemon(dev, tmp / "config.db")
        threading.Thread(target=daemon.serve, args=(tmp / "d.sock",), daemon=True).start()
        for name, ip_ in ((a, "10.30.0.1"), (b, "10.30.0.2")):
            daemon.create_vns(name, ips=[f"{ip_}/24"], temporary=True,
                              sysctls={"net.ipv6.conf.all.disable_ipv6": "1"})
            daemon.create_vnic(f"v{name}", over="port0", vns=name, temporary=True)
        _probe(ext, "ping", "10.30.0.1", "-c", "1")            # ARP out of the way
        _probe(a, "ping", "10.30.0.2", "-c", "1")
        for label, src, dst in (("outside -> VNS", ext, "10.30.0.1"),
                                ("VNS -> VNS (on card)", a, "10.30.0.2")):
            p = _probe(src, "ping", dst, "-c", str(args.pings))
            rtts = [x for x in p["rtt_ms"] if x is not None]
            r[f"ping {label}"] = {"sent": p["sent"], "received": p["received"],
                                  "median_ms": round(statistics.median(rtts), 2),
                                  "p90_ms": round(sorted(rtts)[int(0.9 * (len(rtts) - 1))], 2)}
        moved0 = sum(v.stats["rx_frames"] + v.stats["tx_frames"] + v.stats["rx_flooded"]
                     for v in daemon.driver.vnics.values())
        cpu0, wall0 = _cpu(), time.monotonic()
        for label, srv, cli, addr in (("TCP outside -> VNS", a, ext, "10.30.0.1"),
                                      ("TCP VNS -> VNS (on card)", b, a, "10.30.0.2")):
            t = _tcp(srv, cli, addr, args.bytes)
            r[label] = {"bytes": t["bytes"], "seconds": round(t["seconds"], 2),
                        "mbit_s": round(t["mbit_s"], 3)}
        moved = sum(v.stats["rx_frames"] + v.stats["tx_frames"] + v.stats["rx_flooded"]
                    for v in daemon.driver.vnics.values()) - moved0
        cpu = _cpu() - cpu0
        r["driver frames moved (TCP runs)"] = moved
        r["driver CPU ms per frame"] = round(cpu * 1e3 / moved, 3) if moved else None
        r["driver CPU share"] = round(cpu / (time.monotonic() - wall0), 3)
        stats = json.loads((Path(str(tmp / "card.sock") + ".stats")).read_text())
        r["serve busy clocks/s"] = stats["busy_cycles_per_s"]
        r["serve clocks/s overall"] = stats["cycles_per_s"]
        r["register requests"] = stats["requests"]
    finally:
        if daemon is not None:
            daemon.shutdown()
        if dev is not None:
            dev.close()
        netns.delete_netns(ext)
        if card is not None:
            card.terminate()
            card.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)
    width = max(len(k) for k in r)
    print("host stack through the simulated card (simulation figures)")
    for k, v in r.items():
        print(f"  {k:<{width}}  {v}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(r, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

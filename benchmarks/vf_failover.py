"""Failover of a guest's link aggregate over VFs of two simulated cards (simulation figures): how
long traffic stops, each way, when the card carrying it loses its link.

Runs as root: :class:`crossnic.sim.lab.BondChassis` (two served cards with their crossnicd, a
Linux bridge as the switch with the station on it, a guest aggregating VF 1 of both). In each
trial a numbered UDP datagram goes every ``--interval`` seconds from the guest to the station
(on a flow the hash puts on the active card) and from the station to the guest (which arrives
through the active card); then that card's cable is pulled. The figures: the time from the pull
until the guest noticed (its event log), the longest silence at each receiver, and the
datagrams lost. The cable is plugged back between trials, so they alternate between the cards.

    sudo python benchmarks/vf_failover.py [--trials 3] [--interval 0.05]
                                          [--out benchmarks/results/vf_failover.json]
"""

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from crossnic.host.vf_guest import choose_member, flow_key
from crossnic.sim.lab import BondChassis, wait_ready
from crossnic.sim.serve import set_cable

ROOT = Path(__file__).resolve().parents[1]
TO_EXT, TO_GUEST = 7000, 7001
SECONDS, PULL_AT = 8.0, 3.0


def sport_on(member: int) -> int:
    """A source port whose guest -> station UDP flow the aggregate hashes onto ``member``."""
    for sport in range(42000, 42100):
        frame = bytes(Ether() / IP(src=BondChassis.GUEST_IP, dst=BondChassis.EXT_IP)
                      / UDP(sport=sport, dport=TO_EXT))
        if choose_member(flow_key(frame), [0, 1]) == member:
            return sport
    raise RuntimeError("no port hashes onto the member")


def silence(path: Path, sent: int, pulled: float) -> dict:
    """The longest gap between arrivals from a second before the pull on, and the losses."""
    arrivals = {int(k): v for k, v in json.loads(path.read_text())["arrivals"].items()}
    times = sorted(t for t in arrivals.values() if t >= pulled - 1.0)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return {"gap_ms": round(1000 * max(gaps), 1) if gaps else None,
            "lost": sent - len(arrivals), "sent": sent}


def trial(chassis: BondChassis, tmp: Path, n: int, interval: float) -> dict:
    k = chassis.state()["active"]
    results = {d: tmp / f"trial{n}-{d}.json" for d in ("to_ext", "to_guest")}
    receivers = [
        chassis.in_ns(chassis.ext, "udp-recv", BondChassis.EXT_IP, str(TO_EXT),
                      str(SECONDS + 3), str(results["to_ext"])),
        chassis.in_ns(chassis.guest, "udp-recv", BondChassis.GUEST_IP, str(TO_GUEST),
                      str(SECONDS + 3), str(results["to_guest"]))]
    for receiver, result in zip(receivers, results.values(), strict=True):
        wait_ready(receiver, result)
    senders = [
        chassis.in_ns(chassis.guest, "udp-send", BondChassis.EXT_IP, str(TO_EXT),
                      str(sport_on(k)), str(interval), str(SECONDS), stdout=-1, text=True),
        chassis.in_ns(chassis.ext, "udp-send", BondChassis.GUEST_IP, str(TO_GUEST), "42500",
                      str(interval), str(SECONDS), stdout=-1, text=True)]
    time.sleep(PULL_AT)
    pulled = time.time()
    set_cable(chassis.cards[k].card_sock, 0, "down")
    sent = [int(p.communicate(timeout=120)[0]) for p in senders]
    for p in receivers:
        p.wait(120)
    state = chassis.state()
    noticed = [e["t"] for e in state["events"] if e["event"] == "down" and e["member"] == k
               and e["t"] >= pulled]
    row = {"trial": n, "card": "ab"[k],
           "detect_ms": round(1000 * (noticed[0] - pulled), 1) if noticed else None,
           "guest_to_station": silence(results["to_ext"], sent[0], pulled),
           "station_to_guest": silence(results["to_guest"], sent[1], pulled)}
    set_cable(chassis.cards[k].card_sock, 0, "up")
    end = time.monotonic() + 30
    while chassis.state()["members"][k]["state"] != "up" and time.monotonic() < end:
        time.sleep(0.2)
    time.sleep(1.0)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/vf_failover.json")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("benchmarks/vf_failover.py needs root (namespaces, TAP devices)", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="crossnic-failover-"))
    chassis = BondChassis(tmp, f"{os.getpid() % 10000}")
    try:
        rows = [trial(chassis, tmp, n, args.interval) for n in range(args.trials)]
    finally:
        chassis.close()
    print(f"{'trial':>5} {'card':>4} {'detect ms':>9} {'guest->station gap ms':>21} "
          f"{'lost':>5} {'station->guest gap ms':>21} {'lost':>5}")
    for r in rows:
        out, back = r["guest_to_station"], r["station_to_guest"]
        print(f"{r['trial']:>5} {r['card']:>4} {r['detect_ms']!s:>9} {out['gap_ms']!s:>21} "
              f"{out['lost']:>5} {back['gap_ms']!s:>21} {back['lost']:>5}")

    def median(key, side=None):
        vals = [(r[side][key] if side else r[key]) for r in rows]
        vals = [v for v in vals if v is not None]
        return statistics.median(vals) if vals else None
    summary = {"detect_ms": median("detect_ms"),
               "guest_to_station_gap_ms": median("gap_ms", "guest_to_station"),
               "station_to_guest_gap_ms": median("gap_ms", "station_to_guest")}
    print("median:", summary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"interval_s": args.interval, "trials": rows,
                                    "median": summary}, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

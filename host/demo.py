"""``crossnic demo``: the card carrying real Linux traffic, end to end, in one command.

Starts the simulated card (port 0 cabled to an "external host" network namespace through a
TAP device), runs crossnicd on it, creates two VNS instances (``red``, ``blue``: network
namespaces) each with a VNIC over port 0, and shows: ping from each VNS to the external host,
ping between the two VNS (switched on the card: none of its frames on port 0's wire), a TCP
transfer, and the card's classifier and ring counters. Everything it created is removed on
exit, on error and on Ctrl-C. Needs root (namespaces and TAP devices).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import netns

__all__ = ["run_demo", "DemoError"]

EXT_IP, RED_IP, BLUE_IP = "10.20.0.100", "10.20.0.1", "10.20.0.2"


class DemoError(RuntimeError):
    pass


def _probe(ns: str, *args: str, timeout: float = 300) -> dict:
    r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "crossnic.host.probe",
                        *args], capture_output=True, text=True, timeout=timeout)
    lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
    out = json.loads(lines[-1]) if lines else {"error": r.stderr.strip() or "no output"}
    if "error" in out:
        raise DemoError(f"{' '.join(args)} in {ns}: {out['error']}")
    return out


def _tcp(server_ns: str, client_ns: str, addr: str, size: int) -> dict:
    srv = subprocess.Popen(["ip", "netns", "exec", server_ns, sys.executable, "-m",
                            "crossnic.host.probe", "receive", "5201"], stdout=subprocess.PIPE,
                           text=True)
    try:
        first = srv.stdout.readline()
        if "listening" not in first:
            raise DemoError(f"TCP receiver in {server_ns} did not start")
        sent = _probe(client_ns, "send", addr, "5201", str(size))
        got = json.loads(srv.stdout.readline() or "{}")
        sent["received_by_server"] = got.get("bytes")
        return sent
    finally:
        srv.kill()
        srv.wait()


def _tls(server_ns: str, client_ns: str, addr: str, daemon_sock: Path) -> dict:
    """A TLS 1.3 handshake and an echo between two VNS instances, both ends' keys on the card
    (``crossnic tls serve``/``connect`` through crossnicd)."""
    crossnic = [sys.executable, "-m", "crossnic", "tls"]
    srv = subprocess.Popen(["ip", "netns", "exec", server_ns, *crossnic, "serve", "--daemon",
                            str(daemon_sock), "--listen", "0.0.0.0:4433", "--count", "1",
                            "--upper", "--json"], stderr=subprocess.PIPE, text=True)
    try:
        if not srv.stderr.readline().startswith("listening"):
            raise DemoError(f"TLS server in {server_ns} did not start")
        r = subprocess.run(["ip", "netns", "exec", client_ns, *crossnic, "connect",
                            f"{addr}:4433", "--daemon", str(daemon_sock), "--send",
                            "hello over TLS", "--expect", "HELLO OVER TLS", "--wait", "120",
                            "--json"], capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise DemoError(f"TLS client in {client_ns}: {r.stderr.strip()}")
        info = json.loads(r.stderr.splitlines()[0])
        info["echoed"] = r.stdout == "HELLO OVER TLS"
        srv.wait(60)                    # it serves one client, then gives its slots back
        return info
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()


def run_demo(*, say=print, keep_going: threading.Event | None = None) -> dict:
    """Run the demo; returns the summary (also for ``--json``)."""
    if os.geteuid() != 0:
        raise DemoError("the demo creates network namespaces and TAP devices: run it as root "
                        "(sudo crossnic demo)")
    if not os.path.exists("/dev/net/tun"):
        raise DemoError("/dev/net/tun is missing (TAP devices are not available here)")
    if shutil.which("ip") is None:
        raise DemoError("the `ip` tool (iproute2) is needed: apt-get install iproute2")
    from .daemon import Daemon
    from .sim_device import SimDevice
    from .sim_serve_client import CardStartError, start_card

    tag = f"{os.getpid() % 10000}"
    ext_ns, ext_tap = f"cndemo-ext{tag}", f"cndx{tag}"
    red, blue = f"red{tag}", f"blue{tag}"
    tmp = Path(tempfile.mkdtemp(prefix="crossnic-demo-"))
    card = dev = daemon = None
    summary: dict = {"simulation": True}
    try:
        say("starting the simulated card (Verilator; the first run builds it, a few minutes)")
        t0 = time.monotonic()
        try:
            card = start_card(tmp / "demo-card.sock", ["tap:" + ext_tap, "none"],
                              tmp / "serve.log")
        except CardStartError as e:
            raise DemoError(str(e)) from None
        summary["card_start_s"] = round(time.monotonic() - t0, 1)
        netns.add_netns(ext_ns)
        # IPv4 only, so that nothing but the demo's own traffic crosses the card
        netns.set_sysctl(ext_ns, "net.ipv6.conf.all.disable_ipv6", "1")
        netns.set_sysctl(ext_ns, "net.ipv6.conf.default.disable_ipv6", "1")
        netns.ip("link", "set", ext_tap, "netns", ext_ns)
        netns.ip("addr", "add", f"{EXT_IP}/24", "dev", ext_tap, ns=ext_ns)
        netns.ip("link", "set", ext_tap, "up", ns=ext_ns)
        say(f"external host: namespace {ext_ns}, {EXT_IP} on port 0's wire")

        dev = SimDevice(tmp / "demo-card.sock")
        daemon = Daemon(dev, tmp / "config.db")
        threading.Thread(target=daemon.serve, args=(tmp / "crossnicd.sock",),
                         daemon=True).start()
        say(f"crossnicd running; meanwhile try: crossnic show-vnic --daemon "
            f"{tmp / 'crossnicd.sock'}")
        for name, ip_ in ((red, RED_IP), (blue, BLUE_IP)):
            daemon.create_vns(name, ips=[f"{ip_}/24"], temporary=True,
                              sysctls={"net.ipv6.conf.all.disable_ipv6": "1",
                                       "net.ipv6.conf.default.disable_ipv6": "1"})
            v = daemon.create_vnic(f"v{name}", over="port0", vns=name, temporary=True,
                                   priority="high" if name == red else "medium")
            say(f"VNS {name} (instance ID {daemon.vns[name]['vns_id']}): VNIC v{name} "
                f"{v['mac']} over port0, {ip_}, rings rx {v['rx_ring']} / tx {v['tx_ring']}")
        regs = daemon.driver.regs

        def wire() -> int:
            # Frames of the VNS pings' size (1042 bytes) port 0 sent: the background traffic
            # on the wire (ARP, neighbour discovery) is all far smaller.
            return regs.read("eth0_tx.frames_1024_1518")

        pings = {}
        for src, dst, label in ((red, EXT_IP, "red -> external"),
                                (blue, EXT_IP, "blue -> external")):
            pings[label] = _probe(src, "ping", dst, "-c", "3")
            say(f"ping {label}: {pings[label]['received']}/3, avg "
                f"{pings[label]['avg_ms']:.1f} ms" if pings[label]["avg_ms"] else
                f"ping {label}: no reply")
        _probe(red, "ping", BLUE_IP, "-c", "1")          # resolve blue's MAC (ARP) first
        before = wire()
        hairpin0 = regs.read("tx_switch.hairpin")
        pings["red -> blue"] = p = _probe(red, "ping", BLUE_IP, "-c", "3", "-s", "1000")
        after = wire()
        on_card = regs.read("tx_switch.hairpin") - hairpin0
        say(f"ping red -> blue: {p['received']}/3, avg {p['avg_ms']:.1f} ms; switched on the "
            f"card: {on_card} frames hairpinned; frames of their size on port 0's wire: "
            f"{after - before}" if p["avg_ms"] else "ping red -> blue: no reply")
        tcp = _tcp(blue, red, BLUE_IP, 1 << 20)
        say(f"TCP red -> blue: {tcp['bytes']} bytes in {tcp['seconds']:.2f} s "
            f"({tcp['mbit_s']:.2f} Mbit/s of simulated card)")
        tls = _tls(blue, red, BLUE_IP, tmp / "crossnicd.sock")
        cyc = tls.get("card_cycles", {})
        say(f"TLS 1.3 red -> blue: handshake in {tls['handshake_ms'] / 1000:.1f} s with every "
            f"secret on the card (X25519 key pair {cyc.get('keygen', 0):,} clk, shared secret "
            f"{cyc.get('derive', 0):,} clk, key-schedule step {cyc.get('expand', 0):,} clk); "
            f"'hello over TLS' echoed: {'yes' if tls['echoed'] else 'NO'}")
        counters = regs.counters("classifier_stats")
        rings = {n: daemon.driver.ring_counters(n) for n in daemon.driver.vnics}
        say("classifier: " + ", ".join(f"{k} {v}" for k, v in counters.items() if v))
        for n, c in rings.items():
            say(f"  {n}: rx ring frames {c['rx_frames']}, tx ring frames {c['tx_frames']}")
        summary |= {"pings": pings, "tcp": tcp, "hairpinned": on_card, "tls": tls,
                    "wire_unchanged_during_vns_ping": before == after,
                    "classifier": counters, "rings": rings,
                    "ok": all(x["received"] == 3 for x in pings.values())
                    and tcp["received_by_server"] == tcp["bytes"] and before == after
                    and on_card >= 6 and tls["echoed"] and tls["backend"] == "card"}
        return summary
    finally:
        say("cleaning up")
        if daemon is not None:
            daemon.shutdown()
        if dev is not None:
            dev.close()
        netns.delete_netns(ext_ns)
        if card is not None:
            card.terminate()
            try:
                card.wait(30)
            except subprocess.TimeoutExpired:
                card.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def main(args) -> int:
    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    say = (lambda m: print(m, file=sys.stderr, flush=True)) if args.json else \
        (lambda m: print(m, flush=True))
    summary = run_demo(say=say)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print("demo " + ("passed" if summary["ok"] else "FAILED") + ": ping and TCP through "
              "the simulated card, VNS-to-VNS traffic switched on the card, TLS 1.3 with the "
              "handshake on the card")
    return 0 if summary["ok"] else 1

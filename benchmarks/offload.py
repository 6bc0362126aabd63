"""Handshake offload benchmark: clocks per offload command (the engine in Verilator), and host
CPU time per TLS 1.3 handshake with the software backend and with the card's engine.

* Engine: the ``bench`` testcase of ``tests/gateware/tb_offload.py`` runs a handshake's
  commands and SEAL/OPEN of several record sizes; each completion reports its clocks.
* Software: ``--handshakes`` client/server pairs of :mod:`crossnic.host.tls` on loopback with
  :class:`SoftCrypto`; the client thread's CPU time (``time.thread_time``).
* Card (``--card``): the same client with its handshake on a served card (``crossnic sim
  --serve``) through crossnicd, both run by this script; the server side stays in software.
  The client thread's CPU time excludes the daemon and the simulator (other threads and
  processes): it is what the TLS endpoint itself spends.

    python benchmarks/offload.py [--handshakes 20] [--card] [--out FILE.json]
"""

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLOCK_HZ = 125e6


def engine_cycles(tmp: Path) -> dict:
    from crossnic.gateware.crypto.offload import OffloadEngine
    from crossnic.sim.harness import simulate
    out = tmp / "engine.json"
    simulate(OffloadEngine(), "tb_offload", testcase="bench", module_dir=ROOT / "tests/gateware",
             test_dir=tmp / "engine", params={"out": str(out)})
    return json.loads(out.read_text())


def _pair(client_crypto, server_crypto, cert, key) -> float:
    """One handshake and a 1-byte echo; the client thread's CPU seconds for the handshake."""
    from crossnic.host import tls
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def serve():
        s, _ = srv.accept()
        conn = tls.server(s, server_crypto, cert, key)
        conn.send(conn.recv())
        conn.close()

    t = threading.Thread(target=serve)
    t.start()
    sock = socket.create_connection(srv.getsockname())
    cpu = time.thread_time()
    conn = tls.client(sock, client_crypto)
    spent = time.thread_time() - cpu
    conn.send(b"x")
    assert conn.recv() == b"x"
    conn.close()
    t.join()
    srv.close()
    return spent


def handshakes(n: int, make_client, cert, key) -> dict:
    from crossnic.host.offload import SoftCrypto
    cpu, wall = [], []
    for _ in range(n):
        client = make_client()
        started = time.monotonic()
        cpu.append(_pair(client, SoftCrypto(), cert, key))
        wall.append(time.monotonic() - started)
        if hasattr(client, "close"):
            client.close()
    return {"handshakes": n, "client_cpu_ms": round(1000 * statistics.median(cpu), 2),
            "wall_ms": round(1000 * statistics.median(wall), 1)}


def x25519_us() -> float:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    a, b = X25519PrivateKey.generate(), X25519PrivateKey.generate().public_key()
    n, start = 2000, time.perf_counter()
    for _ in range(n):
        a.exchange(b)
    return round(1e6 * (time.perf_counter() - start) / n, 1)


def card_handshakes(n: int, tmp: Path, cert, key) -> dict:
    from crossnic.host.daemon import Daemon
    from crossnic.host.offload import DaemonCrypto
    from crossnic.host.sim_device import SimDevice
    from crossnic.host.sim_serve_client import start_card
    card = start_card(tmp / "card.sock", ["none", "none"], tmp / "serve.log")
    dev = daemon = None
    try:
        dev = SimDevice(tmp / "card.sock")
        daemon = Daemon(dev, tmp / "config.db", group=os.getgid())
        sock = tmp / "crossnicd.sock"
        threading.Thread(target=daemon.serve, args=(sock,), daemon=True).start()
        while not sock.exists():
            time.sleep(0.05)
        return handshakes(n, lambda: DaemonCrypto(sock), cert, key)
    finally:
        if daemon is not None:
            daemon.shutdown()
        if dev is not None:
            dev.close()
        card.terminate()
        card.wait(60)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handshakes", type=int, default=20)
    parser.add_argument("--card", action="store_true",
                        help="also time handshakes on a served card (starts one)")
    parser.add_argument("--card-handshakes", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/offload.json")
    args = parser.parse_args(argv)
    from crossnic.host.offload import SoftCrypto
    from crossnic.host.tls_cli import _self_signed

    cert, key = _self_signed("bench")
    with tempfile.TemporaryDirectory(prefix="crossnic-offload-") as t:
        tmp = Path(t)
        r: dict = {"clock_hz": CLOCK_HZ, "engine": engine_cycles(tmp)}
        r["software"] = handshakes(args.handshakes, SoftCrypto, cert, key)
        r["software"]["x25519_us"] = x25519_us()
        if args.card:
            r["card"] = card_handshakes(args.card_handshakes, tmp, cert, key)
    print(f"{'command':<14}{'clocks':>9}{'ops/s at 125 MHz':>18}")
    for op, clocks in r["engine"]["ops"].items():
        print(f"{op:<14}{clocks:>9,}{CLOCK_HZ / clocks:>18,.0f}")
    print(f"\n{'record bytes':<14}{'seal clk':>9}{'open clk':>9}{'seal Gb/s':>10}")
    for n, v in r["engine"]["records"].items():
        print(f"{n:<14}{v['seal']:>9,}{v['open']:>9,}"
              f"{int(n) * 8 * CLOCK_HZ / v['seal'] / 1e9:>10.2f}")
    print("\nclient CPU per handshake (median): software "
          f"{r['software']['client_cpu_ms']} ms (X25519 in software: "
          f"{r['software']['x25519_us']} µs)", end="")
    if "card" in r:
        print(f", card {r['card']['client_cpu_ms']} ms (wall {r['card']['wall_ms']} ms "
              "in simulation)", end="")
    print()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(r, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

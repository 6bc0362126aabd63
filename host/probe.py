"""Small network probes run inside a namespace (``ip netns exec NS python -m
crossnic.host.probe ...``): ICMP echo (a ``ping`` that needs no iputils, only root) and a timed
TCP transfer. Each prints one JSON object."""

import argparse
import json
import os
import socket
import struct
import sys
import time

__all__ = ["ping", "tcp_send", "tcp_receive", "checksum"]


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def ping(addr: str, count: int = 3, timeout: float = 3.0, interval: float = 0.2,
         size: int = 56) -> dict:
    """ICMP echo requests of ``size`` payload bytes to ``addr``; round-trip times in ms (None:
    lost)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xFFFF
    rtts: list[float | None] = []
    try:
        for seq in range(count):
            payload = struct.pack("!d", time.monotonic()) + bytes(max(0, size - 8))
            header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
            packet = struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, seq) + payload
            sent = time.monotonic()
            s.sendto(packet, (addr, 0))
            rtt = None
            deadline = sent + timeout
            while (left := deadline - time.monotonic()) > 0:
                s.settimeout(left)
                try:
                    data, _ = s.recvfrom(2048)
                except TimeoutError:
                    break
                ihl = (data[0] & 0xF) * 4
                kind, _, _, rid, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
                if kind == 0 and rid == ident and rseq == seq:
                    rtt = (time.monotonic() - sent) * 1e3
                    break
            rtts.append(rtt)
            time.sleep(interval)
    finally:
        s.close()
    got = [r for r in rtts if r is not None]
    return {"to": addr, "sent": count, "received": len(got), "rtt_ms": rtts,
            "avg_ms": sum(got) / len(got) if got else None}


def tcp_receive(port: int, timeout: float = 120.0) -> dict:
    """Accept one connection on ``port``, read until it closes; bytes and seconds."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(1)
    srv.settimeout(timeout)
    print(json.dumps({"listening": port}), flush=True)
    conn, peer = srv.accept()
    conn.settimeout(timeout)
    total, start = 0, time.monotonic()
    while chunk := conn.recv(65536):
        total += len(chunk)
    conn.sendall(b"%d" % total)
    conn.close()
    srv.close()
    return {"from": peer[0], "bytes": total, "seconds": time.monotonic() - start}


def tcp_send(addr: str, port: int, size: int, timeout: float = 120.0) -> dict:
    start = time.monotonic()
    c = socket.create_connection((addr, port), timeout=timeout)
    block = bytes(range(256)) * 256
    left = size
    while left:
        n = c.send(block[:min(left, len(block))])
        left -= n
    c.shutdown(socket.SHUT_WR)
    echoed = int(c.recv(64) or b"0")
    c.close()
    seconds = time.monotonic() - start
    return {"to": addr, "bytes": size, "acknowledged": echoed, "seconds": seconds,
            "mbit_s": size * 8 / seconds / 1e6}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m crossnic.host.probe")
    sub = p.add_subparsers(dest="what", required=True)
    q = sub.add_parser("ping")
    q.add_argument("addr")
    q.add_argument("-c", "--count", type=int, default=3)
    q.add_argument("-s", "--size", type=int, default=56, help="payload bytes (8..1472)")
    q = sub.add_parser("receive")
    q.add_argument("port", type=int)
    q = sub.add_parser("send")
    q.add_argument("addr")
    q.add_argument("port", type=int)
    q.add_argument("size", type=int)
    a = p.parse_args(argv)
    try:
        if a.what == "ping":
            r = ping(a.addr, a.count, size=min(max(a.size, 8), 1472))
        elif a.what == "receive":
            r = tcp_receive(a.port)
        else:
            r = tcp_send(a.addr, a.port, a.size)
    except OSError as e:
        print(json.dumps({"error": str(e)}), flush=True)
        return 1
    print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

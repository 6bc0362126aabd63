"""Helpers run inside the test's namespaces (``python tls_peers.py MODE ...``):

* ``tamper LISTEN TARGET DIRECTION INDEX``: a TCP relay that flips the last byte (in the AEAD
  tag) of the INDEX-th record (from 0) going DIRECTION (``c2s`` or ``s2c``); prints every
  record type it relays as ``c2s 22`` lines.
* ``bad-client TARGET``: a ClientHello whose X25519 share is a small-order point (zero);
  prints the first record the server answers (hex).
* ``bad-server LISTEN``: answers any ClientHello with a ServerHello whose X25519 share is zero;
  prints the first record the client answers (hex).
"""

import os
import select
import socket
import sys

from crossnic.host import tls


def _records(buf: bytes):
    out = []
    while len(buf) >= 5 and len(buf) >= 5 + int.from_bytes(buf[3:5], "big"):
        n = 5 + int.from_bytes(buf[3:5], "big")
        out.append(buf[:n])
        buf = buf[n:]
    return out, buf


def _accept(port: int) -> socket.socket:
    """Listen on ``port``, say so (the test waits for it), take one connection."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(1)
    print("listening", flush=True)
    with srv:
        return srv.accept()[0]


def tamper(listen: int, target: str, direction: str, index: int) -> None:
    host, port = target.rsplit(":", 1)
    a = _accept(listen)
    b = socket.create_connection((host, int(port)))
    ends = {a: (b, "c2s"), b: (a, "s2c")}
    bufs, counts = {a: b"", b: b""}, {"c2s": 0, "s2c": 0}
    while True:
        ready, _, _ = select.select([a, b], [], [], 30)
        if not ready:
            return
        for s in ready:
            data = s.recv(65536)
            other, d = ends[s]
            if not data:
                print(f"{d} closed", flush=True)
                return
            recs, bufs[s] = _records(bufs[s] + data)
            for r in recs:
                if d == direction and counts[d] == index:
                    r = r[:-1] + bytes([r[-1] ^ 1])
                    print(f"{d} {r[0]} tampered", flush=True)
                else:
                    print(f"{d} {r[0]}", flush=True)
                counts[d] += 1
                other.sendall(r)


def _hello(kind: int, body: bytes) -> bytes:
    msg = tls._handshake(kind, body)
    return bytes([tls.HANDSHAKE, 3, 3]) + tls._u16(msg)


def bad_client(target: str) -> None:
    host, port = target.rsplit(":", 1)
    exts = (tls._ext(tls.EXT_VERSIONS, tls._u8(b"\x03\x04"))
            + tls._ext(tls.EXT_GROUPS, tls._u16(b"\x00\x1d"))
            + tls._ext(tls.EXT_SIG_ALGS, tls._u16(b"\x04\x03"))
            + tls._ext(tls.EXT_KEY_SHARE, tls._u16(b"\x00\x1d" + tls._u16(bytes(32)))))
    body = (b"\x03\x03" + os.urandom(32) + tls._u8(b"") + tls._u16(b"\x13\x01") + b"\x01\x00"
            + tls._u16(exts))
    s = socket.create_connection((host, int(port)), timeout=30)
    s.sendall(_hello(tls.CLIENT_HELLO, body))
    print(s.recv(7).hex(), flush=True)


def bad_server(listen: int) -> None:
    c = _accept(listen)
    c.settimeout(30)
    c.recv(65536)                                   # the ClientHello
    exts = (tls._ext(tls.EXT_VERSIONS, b"\x03\x04")
            + tls._ext(tls.EXT_KEY_SHARE, b"\x00\x1d" + tls._u16(bytes(32))))
    body = b"\x03\x03" + os.urandom(32) + tls._u8(b"") + b"\x13\x01\x00" + tls._u16(exts)
    c.sendall(_hello(tls.SERVER_HELLO, body))
    print(c.recv(7).hex(), flush=True)


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "tamper":
        tamper(int(rest[0]), rest[1], rest[2], int(rest[3]))
    elif mode == "bad-client":
        bad_client(rest[0])
    else:
        bad_server(int(rest[0]))

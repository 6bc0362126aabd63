"""Hkdf in amaranth.sim: RFC 5869's extract values, RFC 8448's early and derived secrets, and a
whole TLS 1.3 handshake key schedule against a Python RFC 8446 §7.1 implementation."""

import hashlib
import hmac
import random

from amaranth.sim import Simulator

from crossnic.gateware.crypto.hkdf import LABELS, Hkdf, HkdfOp, hkdf_label


def extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def expand_label(secret: bytes, label: str, context: bytes, length: int) -> bytes:
    return hmac.new(secret, hkdf_label(label, context, length) + b"\x01",
                    hashlib.sha256).digest()[:length]


def run(requests: list[dict]) -> list[bytes]:
    dut = Hkdf()
    out = []

    async def producer(ctx):
        for r in requests:
            ctx.set(dut.request.payload, r)
            ctx.set(dut.request.valid, 1)
            await ctx.tick().until(dut.request.ready)
            ctx.set(dut.request.valid, 0)

    async def consumer(ctx):
        ctx.set(dut.result.ready, 1)
        for r in requests:
            while True:
                _, _, valid, payload = await ctx.tick().sample(dut.result.valid,
                                                               dut.result.payload)
                if valid:
                    break
            out.append(bytes(int(x) for x in payload)[:r["length"]])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return out


def ex(salt: bytes, ikm: bytes) -> dict:
    return {"op": HkdfOp.EXTRACT, "key": list(salt.ljust(32, b"\0")), "key_len": len(salt),
            "data": list(ikm.ljust(32, b"\0")), "data_len": len(ikm), "length": 32}


def el(secret: bytes, label: str, context: bytes, length: int) -> dict:
    return {"op": HkdfOp.EXPAND_LABEL, "key": list(secret), "key_len": 32,
            "data": list(context.ljust(32, b"\0")), "data_len": len(context),
            "label": LABELS.index(label), "length": length}


def test_rfc_5869_and_rfc_8448_values():
    zeros = bytes(32)
    got = run([ex(bytes(range(13)), bytes([0x0B] * 22)),          # RFC 5869 A.1 PRK
               ex(b"", bytes([0x0B] * 22)),                       # A.3 PRK (empty salt)
               ex(zeros, zeros),                                  # RFC 8448 early secret
               el(bytes.fromhex("33ad0a1c607ec03b09e6cd9893680ce2"
                                "10adf300aa1f2660e1b22e10f170f92a"), "derived",
                  hashlib.sha256(b"").digest(), 32)])
    assert got[0].hex() == "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"
    assert got[1].hex() == "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04"
    assert got[2].hex() == "33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a"
    assert got[3].hex() == "6f2615a108c702c5678f54fc9dbab69716c076189c48250cebeac3576c3611ba"


def test_a_handshake_key_schedule():
    """RFC 8446 §7.1 from an ECDHE secret and two transcript hashes, every label and length
    a TLS 1.3 handshake uses, against Python."""
    rng = random.Random(8)
    shared, th_hello, th_finished = rng.randbytes(32), rng.randbytes(32), rng.randbytes(32)
    early = extract(bytes(32), bytes(32))
    derived = expand_label(early, "derived", hashlib.sha256(b"").digest(), 32)
    hs = extract(derived, shared)
    c_hs = expand_label(hs, "c hs traffic", th_hello, 32)
    master_salt = expand_label(hs, "derived", hashlib.sha256(b"").digest(), 32)
    master = extract(master_salt, bytes(32))
    requests = [
        (ex(derived, shared), hs),
        (el(hs, "c hs traffic", th_hello, 32), c_hs),
        (el(hs, "s hs traffic", th_hello, 32), expand_label(hs, "s hs traffic", th_hello, 32)),
        (el(c_hs, "key", b"", 16), expand_label(c_hs, "key", b"", 16)),
        (el(c_hs, "iv", b"", 12), expand_label(c_hs, "iv", b"", 12)),
        (el(c_hs, "finished", b"", 32), expand_label(c_hs, "finished", b"", 32)),
        (ex(master_salt, bytes(32)), master),
        (el(master, "c ap traffic", th_finished, 32),
         expand_label(master, "c ap traffic", th_finished, 32)),
        (el(master, "res master", th_finished, 32),
         expand_label(master, "res master", th_finished, 32)),
    ]
    got = run([r for r, _ in requests])
    assert got == [w for _, w in requests]

"""Aes128Gcm in amaranth.sim against the ``cryptography`` package's AESGCM: TLS 1.3 record shapes
(5-byte additional data), every partial-block length, empty texts and additional data, both
directions, a changed key; and the clocks a block of text costs."""

import random

from amaranth.sim import Simulator
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crossnic.gateware.crypto.gcm import Aes128Gcm


def blocks(data: bytes, aad: bool, last: bool) -> list[dict]:
    chunks = [data[k:k + 16] for k in range(0, len(data), 16)] or ([b""] if last else [])
    return [{"block": list(c.ljust(16, b"\0")), "count": len(c), "aad": aad,
             "last": last and n == len(chunks) - 1} for n, c in enumerate(chunks)]


def run(jobs: list[tuple], *, stall: float = 0.0, seed: int = 0):
    """jobs: (key or None, nonce, aad, text, decrypt) -> [(text out, tag)], clocks of each."""
    dut = Aes128Gcm()
    rng = random.Random(seed)
    results = []

    async def producer(ctx):
        for key, nonce, aad, text, decrypt in jobs:
            if key is not None:
                ctx.set(dut.key.payload, list(key))
                ctx.set(dut.key.valid, 1)
                await ctx.tick().until(dut.key.ready)
                ctx.set(dut.key.valid, 0)
            ctx.set(dut.start.payload, {"nonce": list(nonce), "decrypt": decrypt})
            ctx.set(dut.start.valid, 1)
            await ctx.tick().until(dut.start.ready)
            ctx.set(dut.start.valid, 0)
            for b in blocks(aad, True, False) + blocks(text, False, True):
                ctx.set(dut.i.payload, b)
                ctx.set(dut.i.valid, 1)
                await ctx.tick().until(dut.i.ready)
                ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        for _ in jobs:
            out = b""
            clocks = 0
            while True:
                ready = not (stall and rng.random() < stall)
                ctx.set(dut.o.ready, ready)
                ctx.set(dut.tag.ready, ready)
                _, _, ov, op, tv, tp = await ctx.tick().sample(dut.o.valid, dut.o.payload,
                                                               dut.tag.valid, dut.tag.payload)
                clocks += 1
                if ov and ready:
                    out += bytes(int(x) for x in op.block)[:op.count]
                if tv and ready:
                    results.append((out, bytes(int(x) for x in tp.tag), clocks))
                    break

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return results


def test_against_cryptography_both_ways():
    rng = random.Random(12)
    key = rng.randbytes(16)
    jobs, want = [], []
    for n, length in enumerate([0, 1, 15, 16, 17, 31, 32, 33, 64, 100]):
        nonce, aad = rng.randbytes(12), rng.randbytes(5 if n % 3 else 0)
        text = rng.randbytes(length)
        sealed = AESGCM(key).encrypt(nonce, text, aad)
        jobs.append((key if n == 0 else None, nonce, aad, text, False))
        want.append((sealed[:-16], sealed[-16:]))
        jobs.append((None, nonce, aad, sealed[:-16], True))
        want.append((text, sealed[-16:]))
    got = run(jobs, stall=0.3, seed=4)
    assert [(o, t) for o, t, _ in got] == want


def test_a_new_key_and_long_additional_data():
    rng = random.Random(13)
    jobs, want = [], []
    for _ in range(3):
        key, nonce = rng.randbytes(16), rng.randbytes(12)
        aad, text = rng.randbytes(rng.randrange(0, 50)), rng.randbytes(rng.randrange(0, 50))
        sealed = AESGCM(key).encrypt(nonce, text, aad)
        jobs.append((key, nonce, aad, text, False))
        want.append((sealed[:-16], sealed[-16:]))
    got = run(jobs)
    assert [(o, t) for o, t, _ in got] == want


def test_a_text_block_costs_about_one_aes_block():
    """1 KB of text: 64 blocks at 13 clocks (AES 11, one to combine, one to start the next)
    plus loading the key (H), J0 and the tag: at least 1 Gb/s at 125 MHz all included."""
    key, nonce, text = bytes(16), bytes(12), bytes(1024)
    (out, tag, clocks), = run([(key, nonce, b"", text, False)])
    sealed = AESGCM(key).encrypt(nonce, text, None)
    assert (out, tag) == (sealed[:-16], sealed[-16:])
    assert clocks <= 64 * 13 + 60, clocks
    assert 1024 * 8 / (clocks / 125e6) >= 1e9

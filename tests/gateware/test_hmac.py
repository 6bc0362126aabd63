"""HmacSha256 in amaranth.sim: RFC 4231's test cases 1-5 (keys up to 32 bytes) and random
keys and messages against Python's hmac, with backpressure."""

import hashlib
import hmac
import random

from amaranth.sim import Simulator

from crossnic.gateware.crypto.hmac import HmacSha256

RFC4231 = [   # (key, data, HMAC-SHA-256), RFC 4231 §4.2-4.6 (case 5 is truncated to 128 bits)
    (bytes([0x0B] * 20), b"Hi There",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (bytes([0xAA] * 20), bytes([0xDD] * 50),
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (bytes(range(1, 26)), bytes([0xCD] * 50),
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    (bytes([0x0C] * 20), b"Test With Truncation", "a3b6167473100ee06e0c796c2955552b"),
]


def run(cases: list[tuple[bytes, bytes]], *, idle=0.0, stall=0.0, seed=0):
    dut = HmacSha256()
    rng = random.Random(seed)
    macs = []
    clocks = [0]

    async def producer(ctx):
        for key, msg in cases:
            ctx.set(dut.request.payload, {"key": list(key.ljust(32, b"\0")),
                                          "key_len": len(key), "empty": not msg})
            ctx.set(dut.request.valid, 1)
            await ctx.tick().until(dut.request.ready)
            ctx.set(dut.request.valid, 0)
            for n, byte in enumerate(msg):
                while idle and rng.random() < idle:
                    await ctx.tick()
                ctx.set(dut.message.payload, {"byte": byte, "last": n == len(msg) - 1})
                ctx.set(dut.message.valid, 1)
                await ctx.tick().until(dut.message.ready)
                ctx.set(dut.message.valid, 0)

    async def consumer(ctx):
        for _ in cases:
            while True:
                ready = not (stall and rng.random() < stall)
                ctx.set(dut.mac.ready, ready)
                _, _, valid, payload = await ctx.tick().sample(dut.mac.valid, dut.mac.payload)
                clocks[0] += 1
                if valid and ready:
                    break
            macs.append(b"".join(int(x).to_bytes(4, "big") for x in payload))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return macs, clocks[0]


def test_rfc_4231():
    macs, _ = run([(k, d) for k, d, _ in RFC4231])
    assert [mac.hex()[:len(want)] for mac, (_, _, want) in zip(macs, RFC4231, strict=True)] \
        == [want for _, _, want in RFC4231]


def test_random_keys_and_messages():
    rng = random.Random(4)
    cases = [(bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 16, 31, 32]))),
              bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 32, 55, 56, 100]))))
             for _ in range(12)]
    macs, _ = run(cases, idle=0.3, stall=0.3, seed=2)
    assert macs == [hmac.new(k, d, hashlib.sha256).digest() for k, d in cases]


def test_a_key_schedule_hmac_takes_under_340_clocks():
    """HKDF-Expand-Label's message (at most 55 bytes here): four blocks, byte-serial."""
    (mac,), clocks = run([(bytes(32), bytes(range(55)))])
    assert mac == hmac.new(bytes(32), bytes(range(55)), hashlib.sha256).digest()
    assert clocks < 340, clocks

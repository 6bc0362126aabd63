"""Sha256 in amaranth.sim against FIPS 180-4's examples and hashlib: digests, chaining across
blocks and messages, backpressure on the digest, and the clocks a block takes."""

import hashlib
import random

from amaranth.sim import Simulator

from crossnic.gateware.crypto.sha256 import CYCLES_PER_BLOCK, Sha256
from crossnic.gateware.crypto.sha256_stream import Sha256Stream


def pad(message: bytes) -> list[list[int]]:
    """FIPS 180-4 §5.1.1 padding, split into blocks of 16 big-endian words."""
    padded = message + b"\x80" + bytes(-(len(message) + 9) % 64) + (8 * len(message)).to_bytes(
        8, "big")
    return [[int.from_bytes(padded[i + 4 * k:i + 4 * k + 4], "big") for k in range(16)]
            for i in range(0, len(padded), 64)]


def run(messages: list[bytes], *, stall: float = 0.0, seed: int = 0):
    """Hash ``messages`` back to back; returns the digests and the clock each digest appeared."""
    dut = Sha256()
    rng = random.Random(seed)
    digests, seen = [], []

    async def producer(ctx):
        for msg in messages:
            for n, words in enumerate(pad(msg)):
                ctx.set(dut.blocks.payload, {"words": words, "first": n == 0})
                ctx.set(dut.blocks.valid, 1)
                await ctx.tick().until(dut.blocks.ready)
            ctx.set(dut.blocks.valid, 0)

    async def consumer(ctx):
        blocks = [len(pad(msg)) for msg in messages]
        cycle = 0
        for count in blocks:
            for _ in range(count):
                while True:
                    ready = not (stall and rng.random() < stall)
                    ctx.set(dut.digest.ready, ready)
                    _, _, valid, payload = await ctx.tick().sample(dut.digest.valid,
                                                                   dut.digest.payload)
                    cycle += 1
                    if valid and ready:
                        break
            seen.append(cycle)
            digests.append(b"".join(int(x).to_bytes(4, "big") for x in payload))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return digests, seen


def test_fips_180_4_examples():
    messages = [b"abc", b"", b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                (b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnop"
                 b"jklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu")]
    digests, _ = run(messages)
    assert digests[0].hex() == ("ba7816bf8f01cfea414140de5dae2223"
                                "b00361a396177a9cb410ff61f20015ad")
    assert digests[2].hex() == ("248d6a61d20638b8e5c026930c3e6039"
                                "a33ce45964ff2167f6ecedd419db06c1")
    assert digests == [hashlib.sha256(m).digest() for m in messages]


def test_random_messages_with_backpressure():
    rng = random.Random(7)
    # every padding case: lengths around the 55/56/64-byte block edges
    lengths = [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 200] + [rng.randrange(300)
                                                                    for _ in range(8)]
    messages = [bytes(rng.randrange(256) for _ in range(n)) for n in lengths]
    digests, _ = run(messages, stall=0.5, seed=3)
    assert digests == [hashlib.sha256(m).digest() for m in messages]


def test_a_block_takes_66_clocks():
    msg = bytes(range(256)) * 4                  # 1024 bytes: 17 blocks
    digests, seen = run([msg, b"x"])
    assert digests[0] == hashlib.sha256(msg).digest()
    assert CYCLES_PER_BLOCK == 66
    assert seen[1] - seen[0] == CYCLES_PER_BLOCK        # the next message's single block
    assert seen[0] <= 17 * CYCLES_PER_BLOCK + 2


def run_stream(messages: list[bytes], *, idle: float = 0.0, stall: float = 0.0, seed: int = 0):
    """Messages through Sha256Stream byte by byte; returns the digests and the clock count."""
    dut = Sha256Stream()
    rng = random.Random(seed)
    digests = []
    clocks = [0]

    async def producer(ctx):
        for msg in messages:
            for n, byte in enumerate(msg):
                while idle and rng.random() < idle:
                    await ctx.tick()
                ctx.set(dut.data.payload, {"byte": byte, "last": n == len(msg) - 1})
                ctx.set(dut.data.valid, 1)
                await ctx.tick().until(dut.data.ready)
                ctx.set(dut.data.valid, 0)

    async def consumer(ctx):
        for _ in messages:
            while True:
                ready = not (stall and rng.random() < stall)
                ctx.set(dut.digest.ready, ready)
                _, _, valid, payload = await ctx.tick().sample(dut.digest.valid,
                                                               dut.digest.payload)
                clocks[0] += 1
                if valid and ready:
                    break
            digests.append(b"".join(int(x).to_bytes(4, "big") for x in payload))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return digests, clocks[0]


def test_stream_pads_every_length():
    rng = random.Random(11)
    lengths = [1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 121, 128, 129, 300]
    messages = [bytes(rng.randrange(256) for _ in range(n)) for n in lengths]
    digests, _ = run_stream(messages, idle=0.3, stall=0.3, seed=5)
    assert digests == [hashlib.sha256(m).digest() for m in messages]


def test_stream_keeps_up_with_the_core():
    """A long message costs about one block time per 64 bytes (bytes fill the next block while
    the core works on the last)."""
    msg = bytes(range(256)) * 8                      # 2048 bytes: 33 blocks with the padding
    digests, clocks = run_stream([msg, b"abc"])
    assert digests == [hashlib.sha256(msg).digest(), hashlib.sha256(b"abc").digest()]
    assert clocks <= 34 * (CYCLES_PER_BLOCK + 2) + 140

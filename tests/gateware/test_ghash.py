"""Ghash in amaranth.sim against SP 800-38D's algorithm (Python) and a GCM test vector's GHASH."""

import random

from amaranth.sim import Simulator

from crossnic.gateware.crypto.ghash import CYCLES_PER_BLOCK, Ghash, gf128_mul


def ghash(h: int, blocks: list[int]) -> int:
    y = 0
    for b in blocks:
        y = gf128_mul(y ^ b, h)
    return y


def run(h: int, messages: list[list[int]]):
    dut = Ghash()
    out = []
    clocks = []

    async def tb(ctx):
        ctx.set(dut.h, h)
        for blocks in messages:
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            start = 0
            for b in blocks:
                ctx.set(dut.i.payload.block, b)
                ctx.set(dut.i.valid, 1)
                await ctx.tick().until(dut.i.ready)
                start += 1
            ctx.set(dut.i.valid, 0)
            n = 0
            while ctx.get(dut.busy):
                await ctx.tick()
                n += 1
            out.append(ctx.get(dut.y))
            clocks.append(n)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return out, clocks


def test_gcm_test_case_2():
    """McGrew-Viega test case 2 (K = 0, P = 0^128): H = E(K, 0^128), C = E(K, J0 + 1); GHASH over
    C and the lengths block, against the algorithm (the full GCM tag is checked in
    test_gcm.py)."""
    h = 0x66E94BD4EF8A2C3B884CFA59CA342B2E
    c = 0x0388DACE60B6A392F328C2B971B2FE78
    lengths = 128                          # len(A) = 0, len(C) = 128 bits
    (y,), _ = run(h, [[c, lengths]])
    assert y == ghash(h, [c, lengths])


def test_random_against_the_algorithm():
    rng = random.Random(6)
    h = rng.getrandbits(128)
    messages = [[rng.getrandbits(128) for _ in range(rng.randrange(1, 6))] for _ in range(5)]
    out, clocks = run(h, messages)
    assert out == [ghash(h, m) for m in messages]
    assert max(clocks) <= CYCLES_PER_BLOCK

"""Aes128 in amaranth.sim: FIPS 197's example vectors, random keys and blocks against the
``cryptography`` package, key changes between blocks, and 11 clocks a block."""

import itertools
import random

from amaranth.sim import Simulator
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from crossnic.gateware.crypto.aes import CYCLES_PER_BLOCK, SBOX, Aes128


def ecb(key: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def run(jobs: list[tuple[bytes, list[bytes]]], *, stall: float = 0.0, seed: int = 0):
    """For each (key, blocks): load the key, encrypt the blocks; returns the outputs and the
    clock of each."""
    dut = Aes128()
    rng = random.Random(seed)
    got = []

    async def producer(ctx):
        for key, blocks in jobs:
            ctx.set(dut.key.payload, list(key))
            ctx.set(dut.key.valid, 1)
            await ctx.tick().until(dut.key.ready)
            ctx.set(dut.key.valid, 0)
            for block in blocks:
                ctx.set(dut.i.payload, list(block))
                ctx.set(dut.i.valid, 1)
                await ctx.tick().until(dut.i.ready)
                ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        total = sum(len(b) for _, b in jobs)
        clock = 0
        while len(got) < total:
            ready = not (stall and rng.random() < stall)
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            clock += 1
            if valid and ready:
                got.append((bytes(int(x) for x in payload), clock))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return got


def test_sbox_is_fips_197s():
    assert SBOX[0x00] == 0x63 and SBOX[0x53] == 0xED and SBOX[0xFF] == 0x16
    assert sorted(SBOX) == list(range(256))


def test_fips_197_example():
    key = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
    (out, _), = run([(key, [bytes.fromhex("00112233445566778899aabbccddeeff")])])
    assert out.hex() == "69c4e0d86a7b0430d8cdb78070b4c55a"
    key = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")          # Appendix B
    (out, _), = run([(key, [bytes.fromhex("3243f6a8885a308d313198a2e0370734")])])
    assert out.hex() == "3925841d02dc09fbdc118597196a0b32"


def test_random_keys_and_blocks_with_backpressure():
    rng = random.Random(9)
    jobs = [(rng.randbytes(16), [rng.randbytes(16) for _ in range(rng.randrange(1, 5))])
            for _ in range(6)]
    got = run(jobs, stall=0.4, seed=1)
    assert [g for g, _ in got] == [ecb(k, b) for k, blocks in jobs for b in blocks]


def test_a_block_every_11_clocks():
    rng = random.Random(2)
    key, blocks = rng.randbytes(16), [rng.randbytes(16) for _ in range(8)]
    got = run([(key, blocks)])
    assert [g for g, _ in got] == [ecb(key, b) for b in blocks]
    clocks = [c for _, c in got]
    assert {b - a for a, b in itertools.pairwise(clocks)} == {CYCLES_PER_BLOCK}

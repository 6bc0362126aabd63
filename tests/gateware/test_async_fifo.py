"""RegisteredReadyAsyncFIFO in amaranth.sim with two unrelated clocks."""

import random

import pytest
from amaranth import *
from amaranth.sim import Simulator

from crossnic.gateware.async_fifo import RegisteredReadyAsyncFIFO


def _run(w_period: float, r_period: float, *, count: int, w_busy: float, r_busy: float,
         depth: int = 16, hold_reader: int = 0, seed: int = 0):
    """Write ``count`` words; returns (words read, max entries held, write-clock stalls)."""
    dut = RegisteredReadyAsyncFIFO(width=16, depth=depth, w_domain="write", r_domain="read")
    m = Module()
    m.domains.write = ClockDomain()
    m.domains.read = ClockDomain()
    m.submodules.dut = dut
    rng = random.Random(seed)
    got, written, stats = [], [], {"held": 0}

    async def writer(ctx):
        for _ in range(50 * count + hold_reader):
            if len(written) == count:
                break
            offer = rng.random() >= w_busy
            ctx.set(dut.w_en, offer)
            ctx.set(dut.w_data, len(written))
            _, _, ready = await ctx.tick("write").sample(dut.w_rdy)   # as the edge saw it
            if offer and ready:
                written.append(len(written))
            stats["held"] = max(stats["held"], len(written) - len(got))
        ctx.set(dut.w_en, 0)

    async def reader(ctx):
        if hold_reader:
            await ctx.tick("read").repeat(hold_reader)
        for _ in range(50 * count + hold_reader):     # bounded: a lost word fails, not hangs
            if len(got) == count:
                break
            take = rng.random() >= r_busy
            ctx.set(dut.r_en, take)
            _, _, rdy, value = await ctx.tick("read").sample(dut.r_rdy, dut.r_data)
            if take and rdy:
                got.append(value)

    sim = Simulator(m)
    sim.add_clock(w_period, domain="write")
    sim.add_clock(r_period, domain="read")
    sim.add_testbench(writer)
    sim.add_testbench(reader)
    sim.run()
    return got, written, stats


@pytest.mark.parametrize("w_period,r_period", [(8e-9, 8e-9), (8e-9, 11e-9), (8e-9, 5.3e-9)])
def test_words_cross_in_order(w_period, r_period):
    got, written, _ = _run(w_period, r_period, count=600, w_busy=0.3, r_busy=0.3, seed=3)
    assert written == list(range(600))
    assert got == written


def test_fills_to_depth_and_never_beyond():
    """With the reader held, exactly ``depth`` words are taken (w_rdy is not pessimistic at
    rest), then the reader drains them all in order."""
    got, written, stats = _run(8e-9, 9e-9, count=40, w_busy=0.0, r_busy=0.0, depth=16,
                               hold_reader=200)
    assert stats["held"] == 16
    assert got == written == list(range(40))


def test_rejects_tiny_depth():
    with pytest.raises(ValueError, match="depth"):
        RegisteredReadyAsyncFIFO(width=8, depth=1)

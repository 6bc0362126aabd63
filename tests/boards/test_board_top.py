"""The board top's own blocks in amaranth.sim: CSR decoder, info block, LEDs."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.sim import Simulator

from crossnic.boards.top import BOARD_ID, ActivityLed, BoardInfo
from crossnic.gateware.csr import Counter, CounterBank
from crossnic.gateware.csr_decoder import CsrDecoder


def test_csr_decoder_routes_blocks():
    a = CounterBank([Counter("x", "", width=32), Counter("y", "", width=32)])   # 2 words
    b = BoardInfo(config=0x1234)                                              # 5 of 8 words
    dec = CsrDecoder([len(a.csr.addr), len(b.csr.addr)], block_bits=3)
    m = Module()
    m.submodules.a, m.submodules.b, m.submodules.dec = a, b, dec
    wiring.connect(m, dec.block(0), a.csr)
    wiring.connect(m, dec.block(1), b.csr)
    reads = {}

    async def bench(ctx):
        ctx.set(a.inc.x, 1)
        await ctx.tick().repeat(5)
        ctx.set(a.inc.x, 0)

        async def read(addr):
            ctx.set(dec.bus.addr, addr)
            ctx.set(dec.bus.r_stb, 1)
            await ctx.tick()
            ctx.set(dec.bus.r_stb, 0)
            if dec.read_latency > 1:
                await ctx.tick().repeat(dec.read_latency - 1)
            return ctx.get(dec.bus.r_data)

        async def write(addr, value):
            ctx.set(dec.bus.addr, addr)
            ctx.set(dec.bus.w_data, value)
            ctx.set(dec.bus.w_stb, 1)
            await ctx.tick()
            ctx.set(dec.bus.w_stb, 0)

        reads["x"] = await read(0)
        reads["id"] = await read(8)
        reads["config"] = await read(9)
        await write(8 + 3, 0xDEADBEEF)               # scratch in block 1
        reads["scratch"] = await read(8 + 3)
        reads["a_hole"] = await read(2)              # beyond block 0's 2 words
        reads["no_block"] = await read(20)           # no block 2
        await write(1, 0)                            # clears counter y only
        reads["x_after"] = await read(0)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert reads == {"x": 5, "id": BOARD_ID, "config": 0x1234, "scratch": 0xDEADBEEF,
                     "a_hole": 0, "no_block": 0, "x_after": 5}


def test_activity_led_stretches_pulses():
    dut = ActivityLed(stretch=10)
    trace = []

    async def bench(ctx):
        ctx.set(dut.pulse, 1)
        await ctx.tick()
        ctx.set(dut.pulse, 0)
        for _ in range(14):
            trace.append(ctx.get(dut.led))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert trace == [1] * 10 + [0] * 4

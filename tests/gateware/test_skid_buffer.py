import random

import pytest
from amaranth.sim import Simulator
from streams import recv_frame, send_frame

from crossnic.gateware.packet import packet_layout
from crossnic.gateware.skid_buffer import SkidBuffer


@pytest.mark.parametrize("width", [1, 4])
@pytest.mark.parametrize("idle,stall", [(0, 0), (0.3, 0.4), (0, 0.6)])
def test_keeps_frames_under_backpressure(width, idle, stall):
    rng = random.Random(width)
    frames = [(bytes(rng.randrange(256) for _ in range(n)), n % 3 == 0)
              for n in (1, 2, 7, 64, 65, 130)]
    dut = SkidBuffer(packet_layout(width))
    got = []

    async def producer(ctx):
        for data, error in frames:
            await send_frame(ctx, dut.i, data, width, error=error, idle=idle, rng=rng)

    async def consumer(ctx):
        for _ in frames:
            data, error, _ = await recv_frame(ctx, dut.o, width, stall=stall, rng=rng)
            got.append((data, bool(error)))

    sim = Simulator(dut)
    sim.add_clock(8e-9)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert got == frames


def test_full_rate_one_cycle_latency():
    """With the output always ready, one beat per clock goes through, one clock late."""
    dut = SkidBuffer(packet_layout(1))
    seen = []

    async def producer(ctx):
        await send_frame(ctx, dut.i, bytes(range(32)), 1)

    async def consumer(ctx):
        ctx.set(dut.o.ready, 1)
        for cycle in range(40):
            _, _, valid, p = await ctx.tick().sample(dut.o.valid, dut.o.p)
            if valid:
                seen.append((cycle, p.data))

    sim = Simulator(dut)
    sim.add_clock(8e-9)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert [d for _, d in seen] == list(range(32))
    assert [c for c, _ in seen] == list(range(seen[0][0], seen[0][0] + 32))   # no bubbles
    assert seen[0][0] <= 1

import random

import pytest
from amaranth.sim import Simulator
from streams import recv_frame, send_frame

from crossnic.gateware.width import StreamNarrower, StreamWidener


def _run(dut, frames, in_w, out_w, idle, stall, error_every=0):
    rng = random.Random(1)
    got = []

    async def producer(ctx):
        for n, f in enumerate(frames):
            await send_frame(ctx, dut.i, f, in_w, idle=idle, rng=rng,
                             error=bool(error_every and n % error_every == 0))

    async def consumer(ctx):
        for _ in frames:
            got.append(await recv_frame(ctx, dut.o, out_w, stall=stall, rng=rng))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return got


@pytest.mark.parametrize("in_w,out_w", [(1, 4), (1, 8), (2, 8), (4, 4)])
@pytest.mark.parametrize("idle,stall", [(0, 0), (0.3, 0.3)])
def test_widener_keeps_frames(in_w, out_w, idle, stall):
    rng = random.Random(in_w * 10 + out_w)
    frames = [bytes(rng.randrange(256) for _ in range(n * in_w)) for n in (1, 2, 3, 5, 17, 64)]
    got = _run(StreamWidener(in_w, out_w), frames, in_w, out_w, idle, stall, error_every=3)
    assert [g[0] for g in got] == frames
    assert [g[1] for g in got] == [int(n % 3 == 0) for n in range(len(frames))]
    assert all(g[2] == 1 for g in got)


@pytest.mark.parametrize("in_w,out_w", [(4, 1), (8, 1), (8, 2)])
@pytest.mark.parametrize("idle,stall", [(0, 0), (0.3, 0.3)])
def test_narrower_keeps_frames(in_w, out_w, idle, stall):
    rng = random.Random(in_w * 10 + out_w)
    sizes = [out_w * n for n in (1, 2, 3, 4, 5, 7, 9, 61)]
    frames = [bytes(rng.randrange(256) for _ in range(n)) for n in sizes]
    got = _run(StreamNarrower(in_w, out_w), frames, in_w, out_w, idle, stall, error_every=2)
    assert [g[0] for g in got] == frames
    assert [g[1] for g in got] == [int(n % 2 == 0) for n in range(len(frames))]


def test_widener_full_rate():
    """One input beat per clock in, no bubbles: 64 bytes through a 1->4 widener in 64+1 clocks."""
    dut = StreamWidener(1, 4)
    cycles = []

    async def producer(ctx):
        await send_frame(ctx, dut.i, bytes(range(64)), 1)

    async def consumer(ctx):
        ctx.set(dut.o.ready, 1)
        n = 0
        for t in range(200):
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.p)
            if valid:
                n += 1
                if payload.last:
                    cycles.append(t)
                    break
        assert n == 16

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert cycles[0] <= 65


def test_bad_widths():
    with pytest.raises(ValueError, match="multiple"):
        StreamWidener(4, 1)
    with pytest.raises(ValueError, match="multiple"):
        StreamNarrower(3, 2)

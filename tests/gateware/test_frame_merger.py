"""FrameMerger in amaranth.sim: whole frames from three sources, their source numbers in step,
round robin, back-pressure, and ``room`` holding new frames back."""

import random

import pytest
from sim_csr import run, task
from streams import recv_frame, send_frame

from crossnic.gateware.frame_merger import FrameMerger


def frames_of(source: int, count: int, rng: random.Random) -> list[bytes]:
    """Frames whose second byte names their source and third their number."""
    return [bytes([0x02, source, k]) + bytes(rng.randrange(256) for _ in
                                             range(rng.choice([1, 57, 61, 200])))
            for k in range(count)]


async def feed(ctx, port, frames, rng):
    for f in frames:
        await send_frame(ctx, port, f, 4, idle=0.3, rng=rng)


@pytest.mark.parametrize("stall", [0.0, 0.5])
def test_three_sources_merge_whole_frames_with_their_source(stall):
    rng = random.Random(3)
    dut = FrameMerger(3, 4)
    sent = {k: frames_of(k, 20, rng) for k in range(3)}
    got, sources = [], []

    async def sink(ctx):
        ctx.set(dut.room, 1)
        for _ in range(60):
            frame, err, first = await recv_frame(ctx, dut.o, 4, stall=stall, rng=rng)
            assert not err and first
            got.append(frame)

    async def source_sink(ctx):
        ctx.set(dut.source.ready, 1)
        while len(sources) < 60:
            _, _, valid, value = await ctx.tick().sample(dut.source.valid, dut.source.payload)
            if valid:
                sources.append(value)

    run(dut, sink, source_sink, *(task(feed, getattr(dut, f"i{k}"), sent[k],
                                       random.Random(k)) for k in range(3)))
    for k in range(3):                                   # each source's frames keep order
        assert [f for f in got if f[1] == k] == sent[k]
    assert [f[1] for f in got] == sources
    assert sorted(f[1] for f in got[:6]) == [0, 0, 1, 1, 2, 2]   # round robin


def test_room_holds_new_frames_back():
    dut = FrameMerger(2, 4)
    frames = frames_of(0, 3, random.Random(1))
    starts = []

    async def sink(ctx):
        ctx.set(dut.o.ready, 1)
        for clock in range(300):
            ctx.set(dut.room, clock >= 100)
            _, _, valid, p = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid and p.first:
                starts.append(clock)

    run(dut, sink, task(feed, dut.i0, frames, random.Random(2)))
    assert len(starts) == 3 and starts[0] >= 100


def test_bad_parameters():
    with pytest.raises(ValueError):
        FrameMerger(5)

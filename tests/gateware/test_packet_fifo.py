"""amaranth.sim tests of the store-and-forward packet queue."""

import random

import pytest
from amaranth.sim import Simulator
from streams import send_frame

from crossnic.gateware.packet_fifo import PacketFifo


def _frames(rng, count, width, max_beats):
    return [bytes(rng.randrange(256) for _ in range(rng.randrange(1, max_beats * width + 1)))
            for _ in range(count)]


def _run(dut, width, frames, errors, *, idle=0.0, stall=0.0, hold_until=None, seed=1,
         tail=200):
    """Send ``frames`` (``errors[n]`` sets error on frame n's last beat) and collect the output.

    ``hold_until``: keep the output not ready until that many frames were sent. Returns
    (delivered frames, commit pulses, overflow pulses, beats seen with bad framing flags).
    """
    rng = random.Random(seed)
    out = []
    events = {"commit": 0, "overflow": 0, "bad": 0, "not_ready": 0}
    state = {"sent": 0, "done": False}

    async def producer(ctx):
        for n, f in enumerate(frames):
            await send_frame(ctx, dut.i, f, width, error=errors[n], idle=idle, rng=rng)
            state["sent"] += 1
        for _ in range(tail + 2 * sum(len(f) for f in frames) // width):
            await ctx.tick()
        state["done"] = True

    async def consumer(ctx):
        cur = bytearray()
        in_frame = False
        while not state["done"]:
            held = hold_until is not None and state["sent"] < hold_until
            ready = not held and not (stall and rng.random() < stall)
            ctx.set(dut.o.ready, ready)
            _, _, valid, p = await ctx.tick().sample(dut.o.valid, dut.o.p)
            if not (valid and ready):
                continue
            if p.first != (not in_frame) or p.error:
                events["bad"] += 1
            in_frame = True
            raw = p.data.to_bytes(width, "little")
            cur += bytes(raw[i] for i in range(width) if p.keep >> i & 1)
            if p.last:
                out.append(bytes(cur))
                cur.clear()
                in_frame = False

    async def monitor(ctx):
        async for _, _, commit, overflow, ready in ctx.tick().sample(
                dut.commit, dut.overflow, dut.i.ready):
            events["commit"] += commit
            events["overflow"] += overflow
            events["not_ready"] += not ready
            if state["done"]:
                break

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.add_testbench(monitor, background=True)
    sim.run()
    return out, events


@pytest.mark.parametrize("width", [1, 4])
def test_commit_and_rollback(width):
    """Good frames come out whole and in order; frames with error never appear."""
    rng = random.Random(width)
    frames = _frames(rng, 40, width, 12)
    errors = [rng.random() < 0.3 for _ in frames]
    dut = PacketFifo(width, 256)
    out, ev = _run(dut, width, frames, errors, idle=0.2, stall=0.3)
    good = [f for f, e in zip(frames, errors, strict=True) if not e]
    assert out == good
    assert ev == {"commit": len(good), "overflow": 0, "bad": 0, "not_ready": 0}


def test_overflow_drops_whole_frames():
    """With the reader stopped, frames that do not fit are dropped whole and reported once each;
    an errored frame that does not fit is not reported as overflow."""
    width, depth = 4, 32
    rng = random.Random(7)
    frames = _frames(rng, 30, width, 6)
    errors = [n % 7 == 3 for n in range(len(frames))]
    expected, overflows, used = [], 0, 0
    for f, e in zip(frames, errors, strict=True):
        beats = -(-len(f) // width)
        # The output registers take beats of committed frames out of the RAM.
        if used + beats <= depth + min(PacketFifo.OUTPUT_BEATS, used):
            if not e:
                expected.append(f)
                used += beats
        elif not e:
            overflows += 1
    assert overflows > 5    # the test really overflows
    dut = PacketFifo(width, depth)
    out, ev = _run(dut, width, frames, errors, hold_until=len(frames))
    assert out == expected
    assert ev == {"commit": len(expected), "overflow": overflows, "bad": 0, "not_ready": 0}


def test_frame_bigger_than_fifo():
    """A frame longer than the whole queue is dropped without deadlock; later frames pass."""
    width, depth = 2, 16
    big = bytes(range(100))                      # 50 beats > 16
    small = [bytes([n] * (3 + n)) for n in range(6)]
    frames = [small[0], big, *small[1:3], big, *small[3:]]
    dut = PacketFifo(width, depth)
    out, ev = _run(dut, width, frames, [False] * len(frames), stall=0.5)
    assert out == small
    assert ev["overflow"] == 2 and ev["commit"] == len(small) and ev["bad"] == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_stalls_conserve_frames(seed):
    """Small queue, bursty writer, stalling reader: every good frame is either delivered intact
    (in order) or counted as overflow; nothing partial or errored comes out."""
    width, depth = 4, 16
    rng = random.Random(seed)
    frames = [bytes([n & 0xFF]) + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
              for n in range(80)]
    errors = [rng.random() < 0.2 for _ in frames]
    dut = PacketFifo(width, depth)
    out, ev = _run(dut, width, frames, errors, stall=0.6, seed=seed)
    good = [f for f, e in zip(frames, errors, strict=True) if not e]
    it = iter(good)
    assert all(any(f == g for g in it) for f in out)    # an in-order subsequence
    assert ev["commit"] == len(out)
    assert ev["commit"] + ev["overflow"] == len(good)
    assert ev["overflow"] > 0 and ev["bad"] == 0 and ev["not_ready"] == 0


def test_malformed_input():
    """A frame cut short by a new ``first`` is discarded; beats outside a frame are ignored."""
    width = 1
    dut = PacketFifo(width, 64)
    out = []

    async def producer(ctx):
        async def beat(byte, first, last):
            ctx.set(dut.i.p, {"data": byte, "keep": 1, "first": first, "last": last, "error": 0})
            ctx.set(dut.i.valid, 1)
            await ctx.tick()
            ctx.set(dut.i.valid, 0)
        await beat(1, 1, 0)         # frame without last ...
        await beat(2, 0, 0)
        await beat(3, 1, 0)         # ... replaced by a new frame
        await beat(4, 0, 1)
        await beat(5, 0, 0)         # stray beats
        await beat(6, 0, 1)
        await beat(7, 1, 1)         # one-beat frame

    async def consumer(ctx):
        ctx.set(dut.o.ready, 1)
        cur = bytearray()
        for _ in range(40):
            _, _, valid, p = await ctx.tick().sample(dut.o.valid, dut.o.p)
            if valid:
                cur.append(p.data)
                if p.last:
                    out.append(bytes(cur))
                    cur.clear()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert out == [b"\x03\x04", b"\x07"]


def test_full_rate_output():
    """Committed frames leave at one beat per clock."""
    width = 4
    dut = PacketFifo(width, 64)
    frames = [bytes(range(40)), bytes(range(8))]
    seen = []

    async def producer(ctx):
        for f in frames:
            await send_frame(ctx, dut.i, f, width)

    async def consumer(ctx):
        ctx.set(dut.o.ready, 1)
        for t in range(60):
            _, _, valid = await ctx.tick().sample(dut.o.valid)
            if valid:
                seen.append(t)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    first_frame = seen[:10]
    assert first_frame == list(range(first_frame[0], first_frame[0] + 10))
    assert len(seen) == 12


def test_bad_depth():
    with pytest.raises(ValueError, match="power of two"):
        PacketFifo(4, 100)

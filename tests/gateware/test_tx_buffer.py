"""amaranth.sim tests of the transmit port's store-and-forward buffer (sync -> tx)."""

import random

import pytest
from amaranth.sim import Simulator
from streams import send_frame

from crossnic.gateware.tx_port import TxBuffer

WIDTH = 4


def _rand(rng: random.Random, n: int) -> bytes:
    return bytes(rng.randrange(256) for _ in range(n))


async def _send_beats(ctx, port, beats) -> None:
    """Drive raw beats (dicts of the payload fields), one handshake each."""
    for beat in beats:
        ctx.set(port.p, beat)
        ctx.set(port.valid, 1)
        await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


def _run(dut, frames, *, idle=0.0, stall=0.0, pace=1, lead=0, seed=3, sync_ns=7.9, tx_ns=8.0,
         tx_cycles=40_000, send=None):
    """Send ``frames`` (bytes, error) in ``sync``; collect frames in ``tx``.

    The consumer takes a beat at most every ``pace`` tx clocks (4 mimics the narrower in front
    of a 1-byte MAC), ``lead`` more after a frame's first beat (the MAC sends the preamble
    then), and refuses at random with probability ``stall``. ``send`` replaces the
    default producer. Returns a dict: ``out`` frames, ``aborted``/``oversize`` pulse counts,
    ``early`` (frames whose first beat left before their last beat went in) and ``holes``
    (clocks the consumer wanted a beat mid-frame and none was there).
    """
    rng = random.Random(seed)
    res = {"out": [], "aborted": 0, "oversize": 0, "early": 0, "holes": 0}
    sent = []           # frames whose last beat the buffer has taken (sync)
    expected = len(frames)

    async def producer(ctx):
        if send is not None:
            await send(ctx)
            return
        for frame, error in frames:
            await send_frame(ctx, dut.i, frame, WIDTH, error=error, idle=idle, rng=rng)
            sent.append(frame)

    async def drops(ctx):
        async for _, _, aborted, oversize in ctx.tick().sample(dut.aborted, dut.oversize):
            res["aborted"] += aborted
            res["oversize"] += oversize

    async def consumer(ctx):
        cur = None
        wait = 0
        for _ in range(tx_cycles):
            if len(res["out"]) + res["aborted"] + res["oversize"] == expected:
                break
            ready = wait == 0 and not (stall and rng.random() < stall)
            ctx.set(dut.o.ready, ready)
            _, _, valid, p = await ctx.tick("tx").sample(dut.o.valid, dut.o.p)
            wait = max(0, wait - 1)
            if ready and not valid and cur is not None:
                res["holes"] += 1
            if valid and ready:
                wait = pace - 1
                if cur is None:
                    wait += lead
                    assert p.first
                    cur = bytearray()
                    # the frame being started must already be wholly inside the buffer
                    if send is None and len(sent) <= len(res["out"]) + res["aborted"] + \
                            res["oversize"]:
                        res["early"] += 1
                else:
                    assert not p.first
                raw = p.data.to_bytes(WIDTH, "little")
                cur += bytes(raw[i] for i in range(WIDTH) if p.keep >> i & 1)
                assert not p.error
                if p.last:
                    res["out"].append(bytes(cur))
                    cur = None
        else:
            raise AssertionError(f"timed out: {len(res['out'])} frames out, {res}")

    sim = Simulator(dut)
    sim.add_clock(sync_ns * 1e-9, domain="sync")
    sim.add_clock(tx_ns * 1e-9, domain="tx")
    sim.add_testbench(producer)
    sim.add_testbench(drops, background=True)
    sim.add_testbench(consumer)
    sim.run()
    return res


@pytest.mark.parametrize("idle,stall", [(0, 0), (0.5, 0.2)])
def test_whole_frames_only(idle, stall):
    rng = random.Random(4)
    frames = [(_rand(rng, n), False) for n in (1, 4, 5, 60, 64, 61, 250, 3)]
    res = _run(TxBuffer(WIDTH, 128), frames, idle=idle, stall=stall)
    assert res["out"] == [f for f, _ in frames]
    assert (res["aborted"], res["oversize"], res["early"]) == (0, 0, 0)


def test_drops_error_and_oversize_frames():
    rng = random.Random(5)
    dut = TxBuffer(WIDTH, 16)           # 16 beats: holds 64 bytes
    assert dut.depth == 16

    frames = [(_rand(rng, 10), False), (_rand(rng, 30), True), (_rand(rng, 64), False),
              (_rand(rng, 65), False), (_rand(rng, 1), True), (_rand(rng, 200), False),
              (_rand(rng, 100), True), (_rand(rng, 5), False)]
    res = _run(dut, frames, idle=0.2)
    assert res["out"] == [frames[0][0], frames[2][0], frames[7][0]]
    # the 100-byte frame with error is oversize first: counted once, as oversize
    assert (res["aborted"], res["oversize"]) == (2, 3)
    assert res["early"] == 0


def test_error_on_any_beat_and_first_ignored():
    """``error`` on a middle beat drops the frame too; frames are delimited by ``last`` alone
    (a missing or stray ``first`` changes nothing)."""
    dut = TxBuffer(WIDTH, 32)

    def beats(frame: bytes, *, error_at=None, first=True, stray_first=None):
        chunks = [frame[i:i + WIDTH] for i in range(0, len(frame), WIDTH)]
        return [{"data": int.from_bytes(c, "little"), "keep": (1 << len(c)) - 1,
                 "first": (n == 0 and first) or n == stray_first,
                 "last": n == len(chunks) - 1, "error": n == error_at}
                for n, c in enumerate(chunks)]

    a, b, c = bytes(range(40)), bytes(range(100, 120)), bytes(range(200, 233))

    async def send(ctx):
        await _send_beats(ctx, dut.i, beats(a, error_at=3))
        await _send_beats(ctx, dut.i, beats(b, first=False))
        await _send_beats(ctx, dut.i, beats(c, stray_first=4))

    res = _run(dut, [None] * 3, send=send)
    assert res["out"] == [b, c]
    assert (res["aborted"], res["oversize"]) == (1, 0)


def test_no_deadlock_when_full():
    """Frames that fill the store exactly, back to back behind a slow reader, all come out:
    a frame waits for room while the reader drains the ones before it."""
    rng = random.Random(6)
    dut = TxBuffer(WIDTH, 16)
    frames = [(_rand(rng, n), False) for n in (64, 63, 64, 3, 64, 17, 64, 64)]
    res = _run(dut, frames, stall=0.6, pace=2)
    assert res["out"] == [f for f, _ in frames]
    assert (res["aborted"], res["oversize"], res["early"]) == (0, 0, 0)


@pytest.mark.parametrize("sync_ns", [7.9, 32.0])
def test_no_gaps_at_line_rate(sync_ns):
    """Read like the MAC behind the narrower, one beat per 4 tx clocks after half a preamble's
    head start: once a frame has started its next beat is always there, whether the core clock
    is fast or exactly tx / 4, the slowest the buffer is specified for."""
    rng = random.Random(7)
    frames = [(_rand(rng, n), False) for n in (60, 1514, 64, 200, 1, 1000, 61)]
    res = _run(TxBuffer(WIDTH, 512), frames, pace=4, lead=4, sync_ns=sync_ns, tx_cycles=80_000)
    assert res["out"] == [f for f, _ in frames]
    assert (res["holes"], res["early"]) == (0, 0)


def test_rejects_tiny_depth():
    with pytest.raises(ValueError):
        TxBuffer(WIDTH, 1)
    assert TxBuffer.depth_for(500) == 512

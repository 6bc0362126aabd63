"""amaranth.sim tests of the transmit port's store-and-forward buffer (sync -> tx)."""

import random

import pytest
from amaranth.sim import Simulator
from streams import send_frame

from crossnic.gateware.mac_tx import TxOutcome
from crossnic.gateware.tx_port import TxBuffer

WIDTH = 4


def _run(dut, frames, *, idle=0.0, stall=0.0, seed=3, tx_cycles=20_000):
    """Send ``frames`` (bytes, error) in ``sync``; collect frames and drop records in ``tx``.

    Returns ``(frames_out, drops, order_ok)``; ``order_ok`` is False if any frame's first beat
    left the buffer before its last beat had gone in.
    """
    rng = random.Random(seed)
    sent = []           # frames whose last beat the buffer has taken
    out, drops = [], []
    early = []

    async def producer(ctx):
        for frame, error in frames:
            await send_frame(ctx, dut.i, frame, WIDTH, error=error, idle=idle, rng=rng)
            sent.append(frame)

    async def consumer(ctx):
        ctx.set(dut.drop.ready, 1)
        cur = None
        for _ in range(tx_cycles):
            if len(out) + len(drops) == len(frames):
                break
            ready = not (stall and rng.random() < stall)
            ctx.set(dut.o.ready, ready)
            _, _, valid, p, dvalid, dp = await ctx.tick("tx").sample(
                dut.o.valid, dut.o.p, dut.drop.valid, dut.drop.p)
            if dvalid:
                drops.append((dp.length, dp.outcome))
            if valid and ready:
                if cur is None:
                    cur = bytearray()
                    assert p.first
                    early.append(len(sent) <= len(out) + len(drops))
                    # the frame being started must already be wholly inside the buffer
                raw = p.data.to_bytes(WIDTH, "little")
                cur += bytes(raw[i] for i in range(WIDTH) if p.keep >> i & 1)
                assert not p.error
                if p.last:
                    out.append(bytes(cur))
                    cur = None

    sim = Simulator(dut)
    sim.add_clock(7.9e-9, domain="sync")
    sim.add_clock(8e-9, domain="tx")
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return out, drops, not any(early)


@pytest.mark.parametrize("idle,stall", [(0, 0), (0.5, 0.2)])
def test_whole_frames_only(idle, stall):
    rng = random.Random(4)
    frames = [(bytes(rng.randrange(256) for _ in range(n)), False)
              for n in (1, 4, 5, 60, 64, 61, 250, 3)]
    out, drops, order_ok = _run(TxBuffer(WIDTH, 128), frames, idle=idle, stall=stall)
    assert out == [f for f, _ in frames]
    assert drops == []
    assert order_ok


def test_drops_error_and_oversize_frames():
    rng = random.Random(5)
    dut = TxBuffer(WIDTH, 16)           # 17 beats: holds 68 bytes
    assert dut.depth == 17

    def rand(n):
        return bytes(rng.randrange(256) for _ in range(n))

    frames = [(rand(10), False), (rand(30), True), (rand(68), False), (rand(69), False),
              (rand(1), True), (rand(200), False), (rand(5), False)]
    out, drops, order_ok = _run(dut, frames, idle=0.2)
    assert out == [frames[0][0], frames[2][0], frames[6][0]]
    assert drops == [(0, TxOutcome.ABORTED), (0, TxOutcome.OVERSIZE), (0, TxOutcome.ABORTED),
                     (0, TxOutcome.OVERSIZE)]
    assert order_ok


def test_rejects_tiny_depth():
    with pytest.raises(ValueError):
        TxBuffer(WIDTH, 1)

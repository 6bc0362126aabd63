"""amaranth.sim unit tests of the transmit MAC stages and of MacTx on a cycle-exact GMII trace."""

import itertools
import random
import struct
import zlib

import pytest
from amaranth.sim import Simulator
from streams import recv_frame, send_frame

from crossnic.gateware.mac_tx import (
    FcsInserter,
    GmiiTransmitter,
    IfgInserter,
    MacTx,
    PreambleInserter,
    TxOutcome,
    TxPadder,
)

PREAMBLE = bytes([0x55] * 7 + [0xD5])


def _fcs(frame: bytes) -> bytes:
    return struct.pack("<I", zlib.crc32(frame))


def _wire(frame: bytes) -> bytes:
    """Expected TXD bytes of one good frame, preamble to FCS."""
    padded = frame + bytes(max(0, 60 - len(frame)))
    return PREAMBLE + padded + _fcs(padded)


def _run_stage(dut, frames, *, idle=0.0, stall=0.0, seed=1):
    """Push ``frames`` (bytes, error) through a byte stage; returns what came out."""
    rng = random.Random(seed)
    got = []

    async def producer(ctx):
        for frame, error in frames:
            await send_frame(ctx, dut.i, frame, 1, error=error, idle=idle, rng=rng)

    async def consumer(ctx):
        for _ in frames:
            got.append(await recv_frame(ctx, dut.o, 1, stall=stall, rng=rng))

    sim = Simulator(dut)
    sim.add_clock(8e-9)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return got


async def _send_beats(ctx, port, frame: bytes, *, error=False, empty_last=False, gaps=None):
    """Drive ``frame`` a byte per beat; ``empty_last`` ends it with a keep=0 beat; ``gaps``
    maps a beat index to idle clocks inserted before it (an underrun for a MAC)."""
    beats = [{"data": b, "keep": 1} for b in frame]
    if empty_last or not beats:
        beats.append({"data": 0xEE, "keep": 0})
    for n, beat in enumerate(beats):
        for _ in range((gaps or {}).get(n, 0)):
            ctx.set(port.valid, 0)
            await ctx.tick()
        last = n == len(beats) - 1
        ctx.set(port.p, {**beat, "first": n == 0, "last": last, "error": error and last})
        ctx.set(port.valid, 1)
        await ctx.tick().until(port.ready)
    ctx.set(port.valid, 0)


# --- TxPadder ---------------------------------------------------------------------------------

@pytest.mark.parametrize("idle,stall", [(0, 0), (0.3, 0.3)])
def test_padder_boundaries(idle, stall):
    rng = random.Random(5)
    sizes = [1, 2, 59, 60, 61, 100, 59, 1]
    frames = [(bytes(rng.randrange(1, 256) for _ in range(n)), False) for n in sizes]
    got = _run_stage(TxPadder(), frames, idle=idle, stall=stall)
    for (frame, _), (out, error, first) in zip(frames, got, strict=True):
        assert out == frame + bytes(max(0, 60 - len(frame)))
        assert (error, first) == (0, 1)


def test_padder_empty_last_beat():
    """A frame of no bytes pads to 60 zeros; an empty last beat after 60+ bytes adds nothing."""
    rng = random.Random(6)
    long = bytes(rng.randrange(256) for _ in range(64))
    short = bytes(rng.randrange(1, 256) for _ in range(10))
    dut = TxPadder()
    got = []

    async def producer(ctx):
        await _send_beats(ctx, dut.i, b"")
        await _send_beats(ctx, dut.i, long, empty_last=True)
        await _send_beats(ctx, dut.i, short, empty_last=True)

    async def consumer(ctx):
        for _ in range(3):
            got.append(await recv_frame(ctx, dut.o, 1))

    sim = Simulator(dut)
    sim.add_clock(8e-9)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert got[0][0] == bytes(60)
    assert got[1][0] == long
    assert got[2][0] == short + bytes(50)


def test_padder_leaves_error_frames_alone():
    frames = [(b"\x01\x02\x03", True), (b"\x04" * 5, False), (b"\x05" * 70, True)]
    got = _run_stage(TxPadder(), frames)
    assert got[0][:2] == (b"\x01\x02\x03", 1)
    assert got[1][:2] == (b"\x04" * 5 + bytes(55), 0)
    assert got[2][:2] == (b"\x05" * 70, 1)


def test_padder_rejects_bad_length():
    with pytest.raises(ValueError):
        TxPadder(0)


# --- FcsInserter ------------------------------------------------------------------------------

@pytest.mark.parametrize("idle,stall", [(0, 0), (0.3, 0.3)])
def test_fcs_matches_zlib(idle, stall):
    rng = random.Random(7)
    frames = [(bytes(rng.randrange(256) for _ in range(n)), False)
              for n in (1, 2, 3, 4, 5, 59, 60, 61, 64, 127, 300)]
    got = _run_stage(FcsInserter(), frames, idle=idle, stall=stall)
    for (frame, _), (out, error, _) in zip(frames, got, strict=True):
        assert out == frame + _fcs(frame)
        assert error == 0


def test_fcs_empty_last_beat_and_error():
    rng = random.Random(8)
    a = bytes(rng.randrange(256) for _ in range(61))
    b = bytes(rng.randrange(256) for _ in range(20))
    c = bytes(rng.randrange(256) for _ in range(60))
    dut = FcsInserter()
    got = []

    async def producer(ctx):
        await _send_beats(ctx, dut.i, a, empty_last=True)
        await _send_beats(ctx, dut.i, b, error=True)
        await _send_beats(ctx, dut.i, b"")
        await _send_beats(ctx, dut.i, c)

    async def consumer(ctx):
        for _ in range(4):
            got.append(await recv_frame(ctx, dut.o, 1))

    sim = Simulator(dut)
    sim.add_clock(8e-9)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert got[0][:2] == (a + _fcs(a), 0)
    assert got[1][:2] == (b, 1)                 # aborted: no FCS, error kept
    assert got[2][:2] == (_fcs(b""), 0)        # empty frame: FCS of nothing
    assert got[3][:2] == (c + _fcs(c), 0)      # the CRC restarted cleanly after both


def test_fcs_full_rate():
    """Back-to-back frames: n bytes in, n + 4 out, one byte every clock, no bubbles."""
    rng = random.Random(9)
    frames = [bytes(rng.randrange(256) for _ in range(n)) for n in (60, 61, 100)]
    dut = FcsInserter()
    out = []

    async def producer(ctx):
        for f in frames:
            await send_frame(ctx, dut.i, f, 1)

    async def consumer(ctx):
        ctx.set(dut.o.ready, 1)
        while len(out) < sum(len(f) + 4 for f in frames):
            _, _, valid, p = await ctx.tick().sample(dut.o.valid, dut.o.p)
            out.append(p.data if valid else None)

    sim = Simulator(dut)
    sim.add_clock(8e-9)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    start = next(i for i, v in enumerate(out) if v is not None)
    assert bytes(out[start:]) == b"".join(f + _fcs(f) for f in frames)


# --- PreambleInserter -------------------------------------------------------------------------

@pytest.mark.parametrize("idle,stall", [(0, 0), (0.3, 0.3)])
def test_preamble(idle, stall):
    rng = random.Random(10)
    frames = [(bytes(rng.randrange(256) for _ in range(n)), False) for n in (1, 64, 65)]
    got = _run_stage(PreambleInserter(), frames, idle=idle, stall=stall)
    for (frame, _), (out, error, first) in zip(frames, got, strict=True):
        assert out == PREAMBLE + frame
        assert (error, first) == (0, 1)


# --- IfgInserter ------------------------------------------------------------------------------

@pytest.mark.parametrize("ifg", [1, 12, 20])
def test_ifg_holds_next_frame(ifg):
    dut = IfgInserter(ifg)
    times = []   # (cycle, first, last) of each transfer at the output

    async def producer(ctx):
        for n in (3, 1, 5):
            await send_frame(ctx, dut.i, bytes(range(n)), 1)

    async def consumer(ctx):
        ctx.set(dut.o.ready, 1)
        for cycle in range(100):
            _, _, valid, p = await ctx.tick().sample(dut.o.valid, dut.o.p)
            if valid:
                times.append((cycle, p.first, p.last))

    sim = Simulator(dut)
    sim.add_clock(8e-9)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    lasts = [t for t, _, last in times if last]
    firsts = [t for t, first, _ in times if first]
    assert len(lasts) == 3
    # the next frame's first byte goes ifg + 1 clocks after the previous last byte
    assert [f - e for e, f in zip(lasts, firsts[1:], strict=False)] == [ifg + 1] * 2
    with pytest.raises(ValueError):
        IfgInserter(0)


# --- GmiiTransmitter and MacTx on a GMII trace ------------------------------------------------

def _runs(trace):
    """Split a per-clock (en, er, data) trace into TX_EN runs: (start, bytes, er flags)."""
    runs, cur = [], None
    for t, (en, er, d) in enumerate(trace):
        if en:
            if cur is None:
                cur = (t, bytearray(), [])
                runs.append(cur)
            cur[1].append(d)
            cur[2].append(er)
        else:
            assert not er, f"TX_ER without TX_EN at clock {t}"
            cur = None
    return [(s, bytes(b), e) for s, b, e in runs]


def _mac_sim(dut, producer, cycles):
    """Run ``producer`` against ``dut`` (MacTx or GmiiTransmitter) and trace GMII + status."""
    trace, status = [], []

    async def monitor(ctx):
        for _ in range(cycles):
            _, _, en, er, d, sv, sp = await ctx.tick().sample(
                dut.gmii.en, dut.gmii.er, dut.gmii.data, dut.status.valid, dut.status.p)
            trace.append((en, er, d))
            if sv:
                status.append((sp.length, sp.outcome, sp.multicast, sp.broadcast))

    sim = Simulator(dut)
    sim.add_clock(8e-9)
    sim.add_testbench(producer)
    sim.add_testbench(monitor)
    sim.run()
    return _runs(trace), status


def test_mac_wire_format_and_status():
    rng = random.Random(11)
    ucast = bytes([0x02, 1, 2, 3, 4, 5])
    frames = [
        b"",                                           # empty: 60 zero bytes on the wire
        bytes([0xAB]),                                 # 1 byte, padded (group DA)
        ucast + bytes(rng.randrange(256) for _ in range(53)),     # 59
        b"\xff" * 6 + bytes(rng.randrange(256) for _ in range(54)),  # 60, broadcast
        b"\x01\x00\x5e\x00\x00\x01" + bytes(rng.randrange(256) for _ in range(55)),  # 61 mcast
        ucast + bytes(rng.randrange(256) for _ in range(1508)),   # 1514
    ]
    dut = MacTx()

    async def producer(ctx):
        for f in frames:
            await _send_beats(ctx, dut.i, f)

    runs, status = _mac_sim(dut, producer, 2400)
    assert [r[1] for r in runs] == [_wire(f) for f in frames]
    assert all(not any(r[2]) for r in runs)
    gaps = [b[0] - (a[0] + len(a[1])) for a, b in itertools.pairwise(runs)]
    assert gaps == [12] * (len(frames) - 1)
    ok = TxOutcome.OK
    assert status == [
        (64, ok, 0, 0), (64, ok, 1, 0), (64, ok, 0, 0), (64, ok, 0, 1), (65, ok, 1, 0),
        (1518, ok, 0, 0),
    ]


def test_mac_line_rate():
    """20 queued 60-byte frames (64 with FCS) take 20 * 84 clocks: 8 + 64 + 12 each."""
    dut = MacTx()
    frames = [bytes([0x02, n]) + bytes(range(58)) for n in range(20)]

    async def producer(ctx):
        for f in frames:
            await send_frame(ctx, dut.i, f, 1)

    runs, status = _mac_sim(dut, producer, 20 * 84 + 40)
    assert [r[1] for r in runs] == [_wire(f) for f in frames]
    assert runs[-1][0] + len(runs[-1][1]) + 12 - runs[0][0] == 20 * 84
    assert len(status) == 20


def test_mac_underrun_asserts_tx_er():
    rng = random.Random(12)
    a = bytes([0x02]) + bytes(rng.randrange(256) for _ in range(99))
    b = bytes([0x02]) + bytes(rng.randrange(256) for _ in range(69))
    dut = MacTx()

    async def producer(ctx):
        await _send_beats(ctx, dut.i, a, gaps={30: 5})    # input dry for 5 clocks at byte 30
        await _send_beats(ctx, dut.i, b)

    runs, status = _mac_sim(dut, producer, 600)
    assert len(runs) == 2
    start, sent, er = runs[0]
    assert sent[:8 + 30] == PREAMBLE + a[:30]
    assert len(sent) == 8 + 31 and er == [0] * 38 + [1]   # one error clock, then TX_EN drops
    assert runs[1][1] == _wire(b) and not any(runs[1][2])
    assert runs[1][0] - (start + len(sent)) >= 12
    assert status[0][:2] == (31, TxOutcome.UNDERRUN)
    assert status[1][:2] == (74, TxOutcome.OK)


def test_mac_error_flag_aborts():
    rng = random.Random(13)
    a = bytes([0x02]) + bytes(rng.randrange(256) for _ in range(99))
    good = bytes([0x02]) + bytes(rng.randrange(256) for _ in range(63))
    dut = MacTx()

    async def producer(ctx):
        await _send_beats(ctx, dut.i, a, error=True)
        await _send_beats(ctx, dut.i, b"\x07", error=True)
        await _send_beats(ctx, dut.i, good)

    runs, status = _mac_sim(dut, producer, 600)
    assert len(runs) == 3
    assert runs[0][1] == PREAMBLE + a and runs[0][2] == [0] * 107 + [1]
    assert runs[1][1] == PREAMBLE + b"\x07" and runs[1][2] == [0] * 8 + [1]
    assert runs[2][1] == _wire(good) and not any(runs[2][2])
    assert [s[:2] for s in status] == [
        (100, TxOutcome.ABORTED), (1, TxOutcome.ABORTED), (68, TxOutcome.OK)]


def test_transmitter_error_mid_frame_drains_rest():
    """An ``error`` beat before ``last`` cuts the frame there; later bytes never reach the wire."""
    dut = GmiiTransmitter()

    async def producer(ctx):
        beats = [(0x55, 0)] * 7 + [(0xD5, 0), (2, 0), (3, 1), (4, 0), (5, 0)]
        for n, (d, err) in enumerate(beats):
            ctx.set(dut.i.p, {"data": d, "keep": 1, "first": n == 0,
                              "last": n == len(beats) - 1, "error": err})
            ctx.set(dut.i.valid, 1)
            await ctx.tick()
        ctx.set(dut.i.valid, 0)

    runs, status = _mac_sim(dut, producer, 40)
    assert [r[1] for r in runs] == [PREAMBLE + bytes([2, 3])]
    assert runs[0][2] == [0] * 9 + [1]
    assert status == [(2, TxOutcome.ABORTED, 0, 0)]

"""MacRx corner cases in amaranth.sim (stalls, cut-off timing, MII nibble alignment, glitches),
plus the cocotb/Verilator runs of the whole receive port (testbench ``tb_mac_rx.py``)."""

import json
import struct
import zlib

import pytest
from amaranth.sim import Simulator
from tb_mac_rx import build_design

from crossnic.gateware.mac_rx import MacRx, RxDropReason

PRE = b"\x55" * 7 + b"\xd5"


def fcs(frame: bytes) -> bytes:
    return struct.pack("<L", zlib.crc32(frame))


def frame(n: int, *, vlan: bool = False, seed: int = 0) -> bytes:
    """A frame of ``n`` octets before FCS: addresses, (tag,) type 0x88B5, counting payload."""
    head = bytes.fromhex("02000000000102000000000a")
    if vlan:
        head += bytes.fromhex("8100002a")
    head += b"\x88\xb5"
    return head + bytes((seed + i) & 0xFF for i in range(n - len(head)))


def gmii(octets: bytes, er_at=()) -> list[tuple[int, int, int]]:
    return [(b, 1, int(i in er_at)) for i, b in enumerate(octets)]


def mii(octets: bytes, *, extra=(), er_at=()) -> list[tuple[int, int, int]]:
    """One nibble per clock, low nibble first; ``extra`` nibbles are appended (dribble)."""
    nibbles = [n for b in octets for n in (b & 0xF, b >> 4)] + list(extra)
    return [(n, 1, int(i in er_at)) for i, n in enumerate(nibbles)]


def run_mac(bursts, *, ready=lambda t: True, max_length=1518, mii_select=0, ifg=12,
            config=None):
    """Drive ``bursts`` (lists of (data, en, er) clocks, or ``("idle", data, er, n)``) with
    ``ifg`` idle clocks between them; return (frames, statuses, false-carrier pulses).

    ``frames`` are (bytes, error) from ``o``; ``config(t)`` may return a dict of new config
    values to apply at clock t of the stimulus.
    """
    dut = MacRx()
    frames, statuses, carrier = [], [], []
    done = []

    async def drive(ctx):
        ctx.set(dut.max_length, max_length)
        ctx.set(dut.mii_select, mii_select)
        await ctx.tick().repeat(4)
        t = 0
        for burst in bursts:
            if burst and burst[0] == "idle":
                _, d, er, n = burst
                burst = [(d, 0, er)] * n
            for d, en, er in burst:
                if config is not None:
                    for name, value in (config(t) or {}).items():
                        ctx.set(getattr(dut, name), value)
                ctx.set(dut.gmii.data, d)
                ctx.set(dut.gmii.en, en)
                ctx.set(dut.gmii.er, er)
                await ctx.tick()
                t += 1
            ctx.set(dut.gmii.en, 0)
            ctx.set(dut.gmii.er, 0)
            ctx.set(dut.gmii.data, 0)
            await ctx.tick().repeat(ifg)
            t += ifg
        await ctx.tick().repeat(64)
        done.append(True)

    async def sink(ctx):
        cur = bytearray()
        t = 0
        while not done:
            r = bool(ready(t))
            ctx.set(dut.o.ready, r)
            _, _, valid, p = await ctx.tick().sample(dut.o.valid, dut.o.p)
            t += 1
            if valid and r:
                assert p.first == (len(cur) == 0), "first must mark exactly the first beat"
                cur.append(p.data)
                if p.last:
                    frames.append((bytes(cur), p.error))
                    cur.clear()

    async def monitor(ctx):
        async for _, _, valid, st, fc in ctx.tick().sample(
                dut.status.valid, dut.status.p, dut.false_carrier):
            if valid:
                statuses.append((st.reason, st.length, st.vlan))
            carrier.append(fc)

    sim = Simulator(dut)
    sim.add_clock(8e-9)
    sim.add_testbench(drive)
    sim.add_testbench(sink)
    sim.add_testbench(monitor, background=True)
    sim.run()
    return frames, statuses, sum(carrier)


OK, FCS, RUNT, GIANT = (RxDropReason.NONE, RxDropReason.FCS, RxDropReason.RUNT,
                        RxDropReason.GIANT)
PHY, ALIGN, OVERFLOW = RxDropReason.PHY_ERROR, RxDropReason.ALIGNMENT, RxDropReason.OVERFLOW


def test_good_and_bad_frames():
    good = frame(60)
    tagged = frame(1518, vlan=True)
    bad = bytearray(good + fcs(good))
    bad[30] ^= 1
    runt = frame(59)
    bursts = [
        gmii(PRE + good + fcs(good)),
        gmii(b"\xd5" + good + fcs(good)),                 # no preamble at all
        gmii(PRE + tagged + fcs(tagged)),                 # 1522 on the wire, tagged: fine
        gmii(PRE + bytes(bad)),
        gmii(PRE + runt + fcs(runt)),
        gmii(PRE + good + fcs(good), er_at={40}),
        gmii(PRE + good + fcs(good), er_at={3}),          # RX_ER in the preamble
    ]
    frames, statuses, _ = run_mac(bursts)
    assert statuses == [(OK, 64, 0), (OK, 64, 0), (OK, 1522, 1), (FCS, 64, 0), (RUNT, 63, 0),
                        (PHY, 64, 0), (PHY, 64, 0)]
    assert frames[:3] == [(good, 0), (good, 0), (tagged, 0)]
    # Bad frames that got past the SFD end with error; the payload before it is intact.
    assert [e for _, e in frames[3:]] == [1, 1, 1, 1]
    assert frames[4][0] == runt


def test_preamble_variants():
    f = frame(100)
    body = f + fcs(f)
    bursts = [
        gmii(b"\x55" * 2 + b"\xd5" + body),               # short preamble: good
        gmii(b"\x55" * 15 + b"\xd5" + body),              # long preamble: good
        gmii(b"\x55\x55\x57\x55\xd5" + body),             # garbage in the preamble
        gmii(b"\x55" * 7 + b"\x5d" + body),               # nibble-shifted SFD
        gmii(b"\x55" * 8),                                # no SFD
        [(0x55, 1, 0)],                                   # one-clock RX_DV glitch
        gmii(PRE + body),
    ]
    frames, statuses, _ = run_mac(bursts)
    assert [s[0] for s in statuses] == [OK, OK, ALIGN, ALIGN, ALIGN, ALIGN, OK]
    assert frames == [(f, 0)] * 3     # alignment errors never reach the output


def test_giant_cut_off_and_max_length():
    """A giant stops at the limit: the output frame ends with error right away, no later bytes
    leave, and the status still has the whole length. ``max_length`` is sampled at the SFD."""
    big = frame(1600)
    ok = frame(996)
    bursts = [gmii(PRE + big + fcs(big)), gmii(PRE + ok + fcs(ok)), gmii(PRE + ok + fcs(ok))]
    change_at = len(bursts[0]) + 12 + 13           # just after frame 2's SFD
    frames, statuses, _ = run_mac(
        bursts, config=lambda t: {"max_length": 999} if t == change_at else None)
    # Frame 2 keeps the limit it saw at its SFD (1518); frame 3 is judged against 999.
    assert statuses == [(GIANT, 1604, 0), (OK, 1000, 0), (GIANT, 1000, 0)]
    assert frames[0] == (big[:1514], 1)      # nothing beyond max_length - 4 octets leaves
    assert frames[1] == (ok, 0)
    assert frames[2] == (ok[:995], 1)


def test_output_stall_is_overflow():
    """If ``o`` is not ready when a byte must leave, the frame is cut off with an error beat and
    reported as OVERFLOW; the next frames are delivered intact once the sink is back."""
    f = frame(200)
    bursts = [gmii(PRE + f + fcs(f))] * 3
    wire_len = len(bursts[0]) + 12
    frames, statuses, _ = run_mac(bursts, ready=lambda t: not 60 <= t < 70)
    assert statuses == [(OVERFLOW, 204, 0), (OK, 204, 0), (OK, 204, 0)]
    assert frames[0][1] == 1 and f.startswith(frames[0][0][:-1])
    assert frames[1:] == [(f, 0), (f, 0)]
    assert wire_len > 70


def test_stall_across_frames():
    """A sink that stops for longer than a frame: every frame that could not leave is dropped
    as OVERFLOW, each at most once, and the output stays well framed."""
    f = frame(60)
    bursts = [gmii(PRE + f + fcs(f))] * 6
    frames, statuses, _ = run_mac(bursts, ready=lambda t: not 90 <= t < 300)
    reasons = [s[0] for s in statuses]
    assert reasons[0] == OK and reasons[-1] == OK and OVERFLOW in reasons
    good = [fr for fr in frames if fr[1] == 0]
    assert good == [(f, 0)] * reasons.count(OK)


def test_mii_nibbles():
    f = frame(80)
    body = f + fcs(f)
    bursts = [
        mii(PRE + body),                                  # as cocotbext-eth sends it
        [(5, 1, 0)] * 5 + [(0xD, 1, 0)] + mii(body),     # odd preamble nibbles: realigned
        [(0xD, 1, 0), *mii(body)],                        # SFD nibble only
        mii(PRE + body, extra=[0x3]),                     # dribble nibble
        mii(PRE + body, er_at={50}),                      # RX_ER on one nibble
        [(5, 1, 0), (7, 1, 0), *mii(PRE + body)],         # garbage nibble in the preamble
        mii(PRE + body),
    ]
    frames, statuses, _ = run_mac(bursts, mii_select=1)
    assert [s[0] for s in statuses] == [OK, OK, OK, ALIGN, PHY, ALIGN, OK]
    assert [s[1] for s in statuses[:5]] == [84] * 5
    assert [fr for fr in frames if fr[1] == 0] == [(f, 0)] * 4


def test_mii_select_sampled_between_frames():
    """Switching to MII in the middle of a GMII frame takes effect only after it."""
    f = frame(64)
    bursts = [gmii(PRE + f + fcs(f)), mii(PRE + f + fcs(f))]
    frames, statuses, _ = run_mac(bursts, config=lambda t: {"mii_select": 1} if t == 30 else None)
    assert statuses == [(OK, 68, 0), (OK, 68, 0)]
    assert frames == [(f, 0), (f, 0)]


def test_false_carrier():
    """One pulse per false-carrier event (RX_ER, RX_DV low, 0x0E); carrier extension (0x0F) and
    RX_ER during RX_DV are not false carrier. False carrier produces no status entry."""
    f = frame(60)
    bursts = [
        ("idle", 0x0E, 1, 5),                             # one event, 5 clocks long
        ("idle", 0x0F, 1, 5),                             # carrier extension: not counted
        ("idle", 0x0E, 1, 1),
        gmii(PRE + f + fcs(f)),
        ("idle", 0x1E, 1, 3),                             # GMII: upper nibble must be 0
    ]
    _, statuses, carrier = run_mac(bursts, ifg=2)
    assert carrier == 2
    assert statuses == [(OK, 64, 0)]
    _, _, carrier_mii = run_mac([("idle", 0xFE, 1, 3), ("idle", 0x0E, 1, 1)], mii_select=1)
    assert carrier_mii == 2                               # MII: only data[0:4] counts


def test_length_saturates():
    """A burst longer than 65535 octets reports length 65535 (no wrap to a short length)."""
    dut = MacRx()
    seen = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.max_length, 65535)
        ctx.set(dut.gmii.en, 1)
        for octet in PRE:
            ctx.set(dut.gmii.data, octet)
            await ctx.tick()
        ctx.set(dut.gmii.data, 0)
        await ctx.tick().repeat(65600)      # one long burst, driven cheaply
        ctx.set(dut.gmii.en, 0)
        for _ in range(10):
            _, _, valid, st = await ctx.tick().sample(dut.status.valid, dut.status.p)
            if valid:
                seen.append((st.reason, st.length))

    sim = Simulator(dut)
    sim.add_clock(8e-9)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [(GIANT, 65535)]


# --- cocotb + Verilator runs of the RxPort (one build shared by all) --------------------------

@pytest.fixture(scope="module")
def rx_design():
    """One Verilator build of the RxPort top for every cocotb test (cached across runs)."""
    return build_design()


@pytest.mark.parametrize("testcase", [
    "sizes", "errors", "mii", "overflow",
])
def test_rx_port(run_cocotb, rx_design, testcase):
    run_cocotb(rx_design, "tb_mac_rx", testcase=testcase)


def test_rx_port_back_to_back(run_cocotb, rx_design):
    """10,000 minimum-size frames at minimum IFG: no drop, every frame delivered."""
    run_cocotb(rx_design, "tb_mac_rx", testcase="back_to_back", params={"frames": 10_000})


def test_rx_port_bench_smoke(run_cocotb, rx_design, tmp_path):
    """The benchmark entry point writes its JSON (small N here; benchmarks/ runs it big)."""
    out = tmp_path / "bench.json"
    run_cocotb(rx_design, "tb_mac_rx", testcase="bench",
               params={"frames": 40, "size": 60, "out": str(out)})
    result = json.loads(out.read_text())
    assert result["frames"] == 40 and result["delivered"] == 40 and result["dropped"] == 0
    # 60+4 octets + 8 preamble + 12 IFG = 84 GMII clocks per frame at line rate.
    assert result["mac_cycles_per_frame"] == pytest.approx(84, abs=0.5)
    assert result["out_cycles_per_frame"] == pytest.approx(84 * 8.0 / 7.9, rel=0.05)

"""cocotb testbench: cocotbext-eth's GmiiSource drives an RxPort in Verilator.

The same design (:func:`design`) serves every test, so Verilator builds it once; pick a test with
``testcase=``. The ``rx`` and ``sync`` clocks run at slightly different periods so the clock
domain crossings are real. ``bench`` is the benchmark entry point (see its docstring).
"""

import json
import logging
import random
import struct
import time
import zlib

import cocotb
from amaranth import Fragment
from cocotb.triggers import RisingEdge, Timer
from cocotb.utils import get_sim_time, get_time_from_sim_steps
from cocotbext.eth import GmiiFrame, GmiiSource
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from crossnic.gateware.packet import packet_layout
from crossnic.gateware.rx_port import RX_COUNTERS, RxPort
from crossnic.sim.cocotb_util import csr_counters, params, start_clock, unpack

__all__ = ["build_design", "design"]

WIDTH = 4
FIFO_DEPTH = 1024

def design() -> RxPort:
    """The design every test (and the benchmark) builds: 32-bit output, 1024-beat buffer.

    Its ``rx`` domain is left undefined, so the Verilog converter makes it the top-level clock
    ``rx_clk``/``rx_rst`` beside ``clk``/``rst`` of ``sync``.
    """
    return RxPort(WIDTH, FIFO_DEPTH)


def build_design():
    """Build (or reuse) the Verilator model of :func:`design`; pass the result to
    ``crossnic.sim.harness.simulate(..., "tb_mac_rx", testcase=...)``."""
    from crossnic.sim.harness import build
    return build(design())


# --- frames ------------------------------------------------------------------------------------

PREAMBLE = b"\x55" * 7 + b"\xd5"


def fcs(frame: bytes) -> bytes:
    return struct.pack("<L", zlib.crc32(frame))


def udp_frame(size: int, *, vlan: int | None = None, seq: int = 0) -> bytes:
    """An Ethernet/[802.1Q]/IPv4/UDP frame of exactly ``size`` octets before FCS."""
    eth = Ether(dst="02:00:00:00:00:01", src=f"02:00:00:00:{seq >> 8 & 0xFF:02x}:{seq & 0xFF:02x}")
    if vlan is not None:
        eth = eth / Dot1Q(vlan=vlan)
    pkt = eth / IP(src="10.0.0.2", dst="10.0.0.1", id=seq & 0xFFFF) / UDP(sport=1234, dport=5678)
    pad = size - len(pkt)
    if pad < 0:     # shorter than the headers: a raw frame with an experimental EtherType
        raw = bytes(Ether(dst="02:00:00:00:00:01", type=0x88B5))
        return (raw + bytes((seq + i) & 0xFF for i in range(size)))[:size]
    data = bytes(pkt / Raw(bytes((seq + i) & 0xFF for i in range(pad))))
    assert len(data) == size
    return data


def on_wire(frame: bytes, *, preamble: bytes = PREAMBLE, good_fcs: bool = True,
            error_at: int | None = None) -> GmiiFrame:
    """``frame`` + FCS behind ``preamble``; ``error_at`` asserts RX_ER on that wire octet."""
    check = fcs(frame)
    if not good_fcs:
        check = bytes([check[0] ^ 0x01]) + check[1:]
    data = preamble + frame + check
    error = None
    if error_at is not None:
        error = [int(i == error_at) for i in range(len(data))]
    return GmiiFrame(data, error)


# --- bench -------------------------------------------------------------------------------------

def _registers() -> list:
    port = RxPort(WIDTH, FIFO_DEPTH)
    Fragment.get(port, None)    # elaborate it, or amaranth warns that it was never used
    return port.registers


REGISTERS = _registers()
COUNTERS = [c.name for c in RX_COUNTERS]
DROPS = [n for n in COUNTERS if n.startswith("drop_")]


class FrameSink:
    """Takes frames from ``o``; ``ready`` can be held low. Records when each frame's first and
    last beats were taken, and any framing flaw (``first`` misplaced, ``error`` set)."""

    def __init__(self, dut):
        self.dut = dut
        self.layout = packet_layout(WIDTH)
        self.frames: list[bytes] = []
        self.first_ns: list[float] = []
        self.last_ns: list[float] = []
        self.flaws: list[str] = []
        dut.o__ready.value = 1
        cocotb.start_soon(self._run())

    def hold(self, held: bool) -> None:
        self.dut.o__ready.value = 0 if held else 1

    async def _run(self):
        clk, valid, ready, payload = (self.dut.clk, self.dut.o__valid, self.dut.o__ready,
                                      self.dut.o__payload)
        cur = bytearray()
        while True:
            await RisingEdge(clk)
            if valid.value != 1:
                # Idle: sleep until a beat is offered instead of waking on every clock. The
                # values read after the edge are the ones it sampled, so a beat offered because
                # of this edge is caught by the RisingEdge(valid) below.
                await RisingEdge(valid)
                continue
            if ready.value != 1:
                continue
            beat = unpack(self.layout, payload.value)
            if beat["first"] != (not cur):
                self.flaws.append(f"frame {len(self.frames)}: first={beat['first']}")
            if beat["error"]:
                self.flaws.append(f"frame {len(self.frames)}: error on the output")
            if not cur:
                self.first_ns.append(get_sim_time("ns"))
            raw = beat["data"].to_bytes(WIDTH, "little")
            cur += bytes(raw[i] for i in range(WIDTH) if beat["keep"] >> i & 1)
            if beat["last"]:
                self.frames.append(bytes(cur))
                self.last_ns.append(get_sim_time("ns"))
                cur.clear()


class Bench:
    def __init__(self, dut, *, rx_period: float = 8.0, sync_period: float = 7.9):
        self.dut = dut
        self.rx_period = rx_period
        self.sync_period = sync_period

    async def start(self) -> None:
        dut = self.dut
        dut.rst.value = 1
        dut.rx_rst.value = 1
        dut.csr__addr.value = 0
        dut.csr__r_stb.value = 0
        dut.csr__w_stb.value = 0
        dut.csr__w_data.value = 0
        dut.max_length.value = 1518
        dut.mii_select.value = 0
        dut.gmii__data.value = 0
        dut.gmii__en.value = 0
        dut.gmii__er.value = 0
        start_clock(dut.rx_clk, self.rx_period)
        start_clock(dut.clk, self.sync_period)
        await Timer(10 * max(self.rx_period, self.sync_period), "ns")
        dut.rst.value = 0
        dut.rx_rst.value = 0
        await self.sync_cycles(10)
        self.sink = FrameSink(dut)
        self.source = GmiiSource(dut.gmii__data, dut.gmii__er, dut.gmii__en, dut.rx_clk,
                                 mii_select=dut.mii_select)
        self.source.log.setLevel(logging.WARNING)    # it logs every frame in full at INFO

    async def sync_cycles(self, n: int) -> None:
        for _ in range(n):
            await RisingEdge(self.dut.clk)

    async def rx_cycles(self, n: int) -> None:
        for _ in range(n):
            await RisingEdge(self.dut.rx_clk)

    async def counters(self) -> dict[str, int]:
        """Every counter over the CSR port (low word first: it latches the high word)."""
        await RisingEdge(self.dut.clk)
        return await csr_counters(self.dut, REGISTERS, latency=RxPort.read_latency)

    async def configure(self, **values: int) -> None:
        """Change quasi-static config while the wire is quiet, and let it settle in ``rx``."""
        await self.source.wait()
        await self.rx_cycles(20)
        for name, value in values.items():
            getattr(self.dut, name).value = value
        await self.rx_cycles(10)

    async def drive_raw(self, symbols) -> None:
        """Drive (data, en, er) clocks on the GMII pins directly, once the source is idle."""
        await self.source.wait()
        await self.rx_cycles(12)
        dut = self.dut
        for d, en, er in symbols:
            await RisingEdge(dut.rx_clk)
            dut.gmii__data.value = d
            dut.gmii__en.value = en
            dut.gmii__er.value = er
        await RisingEdge(dut.rx_clk)
        dut.gmii__data.value = 0
        dut.gmii__en.value = 0
        dut.gmii__er.value = 0
        await self.rx_cycles(12)

    async def drain(self, frames: int, *, timeout_us: float = 1000.0) -> None:
        """Wait for the source to finish and for ``frames`` frames to have come out of ``o``."""
        await self.source.wait()
        deadline = get_sim_time("us") + timeout_us
        while len(self.sink.frames) < frames:
            assert get_sim_time("us") < deadline, (
                f"only {len(self.sink.frames)} of {frames} frames delivered")
            await self.sync_cycles(50)
        await self.rx_cycles(200)   # let status entries of dropped frames reach the counters

    def check_output(self, expected: list[bytes]) -> None:
        sink = self.sink
        assert not sink.flaws, sink.flaws[:5]
        assert len(sink.frames) == len(expected), (len(sink.frames), len(expected))
        for n, (got, want) in enumerate(zip(sink.frames, expected, strict=True)):
            assert got == want, (f"frame {n}: got {len(got)} octets {got[:16].hex()}..., "
                                 f"want {len(want)} octets {want[:16].hex()}...")


def expected_counters(good: list[bytes], **drops: int) -> dict[str, int]:
    out = dict.fromkeys(COUNTERS, 0)
    out["frames_ok"] = len(good)
    out["bytes_ok"] = sum(len(f) for f in good)
    out.update(drops)
    return out


# --- tests -------------------------------------------------------------------------------------

VLAN_SIZES = [60, 64, 100, 512, 1000, 1500, 1514, 1515, 1516, 1517, 1518]


@cocotb.test()
async def sizes(dut):
    """Every size from 60 to 1514 octets before FCS (64-1518 on the wire) and 802.1Q frames up
    to 1522 on the wire, back to back in shuffled order: all delivered byte-exact."""
    tb = Bench(dut)
    await tb.start()
    frames = [udp_frame(n, seq=n) for n in range(60, 1515)]
    frames += [udp_frame(n, vlan=n & 0xFFF, seq=n) for n in VLAN_SIZES]
    random.Random(1).shuffle(frames)
    for f in frames:
        tb.source.send_nowait(on_wire(f))
    await tb.drain(len(frames), timeout_us=20_000)
    tb.check_output(frames)
    assert await tb.counters() == expected_counters(frames)


@cocotb.test()
async def errors(dut):
    """Every kind of bad frame is dropped whole and counted under its reason; good frames in
    between come through intact; the counters match exactly."""
    tb = Bench(dut)
    await tb.start()
    good: list[bytes] = []
    drops = dict.fromkeys(DROPS, 0)
    seq = iter(range(1000))

    async def send(gf: GmiiFrame, reason: str | None = None, frame: bytes | None = None):
        await tb.source.send(gf)
        if reason is None:
            good.append(frame)
        else:
            drops[reason] += 1

    async def ok(size: int, **kw):
        f = udp_frame(size, seq=next(seq), **kw)
        await send(on_wire(f), None, f)

    def frame(size: int, **kw) -> bytes:
        return udp_frame(size, seq=next(seq), **kw)

    await ok(60)
    # Bad FCS.
    for size in (60, 500, 1514):
        await send(on_wire(frame(size), good_fcs=False), "drop_fcs")
    flipped = bytearray(on_wire(frame(200)).data)
    flipped[100] ^= 0x80                                  # a payload bit, FCS left as it was
    await send(GmiiFrame(flipped), "drop_fcs")
    await ok(61)
    # Runts: good or bad FCS, down to an SFD with nothing after it.
    for size in (59, 40, 1):
        await send(on_wire(frame(size)), "drop_runt")
    await send(on_wire(frame(30), good_fcs=False), "drop_runt")
    await send(GmiiFrame(PREAMBLE), "drop_runt")
    await ok(62)
    # Giants at the default limit: 1518, or 1522 with an 802.1Q tag.
    await send(on_wire(frame(1515)), "drop_giant")
    await send(on_wire(frame(3000)), "drop_giant")
    await send(on_wire(frame(1519, vlan=7)), "drop_giant")
    await ok(1518, vlan=7)
    await ok(1514)
    # A smaller limit.
    await tb.configure(max_length=1000)
    await send(on_wire(frame(997)), "drop_giant")
    await send(on_wire(frame(1514)), "drop_giant")
    await ok(996)
    await ok(1000, vlan=3)
    await send(on_wire(frame(1001, vlan=3)), "drop_giant")
    await tb.configure(max_length=1518)
    await ok(1514)
    # RX_ER: mid-frame, in the preamble, on the last FCS octet.
    await send(on_wire(frame(500), error_at=100), "drop_phy_error")
    await send(on_wire(frame(60), error_at=3), "drop_phy_error")
    await send(on_wire(frame(60), error_at=8 + 63), "drop_phy_error")
    await ok(63)
    # Preamble variants: shortened and absent preambles are fine; garbage, a nibble-shifted
    # SFD (0x5D) or no SFD at all are alignment errors.
    f = frame(100)
    await send(on_wire(f, preamble=b"\x55\x55\xd5"), None, f)
    f = frame(101)
    await send(on_wire(f, preamble=b"\xd5"), None, f)
    await send(on_wire(frame(100), preamble=b"\x55\x55\x57\x55\x55\x55\x55\xd5"),
               "drop_alignment")
    await send(on_wire(frame(100), preamble=b"\x55" * 7 + b"\x5d"), "drop_alignment")
    await send(on_wire(frame(100), preamble=b"\x55" * 7), "drop_alignment")
    await send(GmiiFrame(b"\x55" * 4), "drop_alignment")
    await ok(64)
    # False carrier (RX_ER, RX_DV low, 0x0E) twice; carrier extension (0x0F) is not counted.
    await tb.drive_raw([(0x0E, 0, 1)] * 4)
    await tb.drive_raw([(0x0F, 0, 1)] * 4)
    await tb.drive_raw([(0x0E, 0, 1)])
    await ok(65)

    await tb.drain(len(good))
    tb.check_output(good)
    assert await tb.counters() == expected_counters(good, false_carrier=2, **drops)


@cocotb.test()
async def mii(dut):
    """MII mode (4-bit, 25 MHz receive clock): frames as cocotbext-eth sends them, plus odd
    nibble counts driven by hand: an odd preamble realigns on the SFD, an odd frame (dribble
    nibble) is an alignment error."""
    tb = Bench(dut, rx_period=40.0, sync_period=7.9)
    await tb.start()
    await tb.configure(mii_select=1)
    good: list[bytes] = []
    for n, size in enumerate((60, 61, 333, 1514)):
        f = udp_frame(size, seq=n)
        await tb.source.send(on_wire(f))
        good.append(f)
    f = udp_frame(1518, vlan=5, seq=9)
    await tb.source.send(on_wire(f))
    good.append(f)
    await tb.source.send(on_wire(udp_frame(100, seq=10), good_fcs=False))      # FCS
    await tb.source.send(on_wire(udp_frame(100, seq=11), error_at=30))         # PHY error

    def nibbles(octets: bytes) -> list[int]:
        return [x for b in octets for x in (b & 0xF, b >> 4)]

    f = udp_frame(90, seq=12)
    body = nibbles(f + fcs(f))
    await tb.drive_raw([(x, 1, 0) for x in [5] * 11 + [0xD] + body])           # odd preamble
    good.append(f)
    f = udp_frame(90, seq=13)
    await tb.drive_raw([(x, 1, 0) for x in [*nibbles(PREAMBLE + f + fcs(f)), 0x6]])  # dribble
    f = udp_frame(70, seq=14)
    await tb.source.send(on_wire(f))
    good.append(f)

    await tb.drain(len(good), timeout_us=5000)
    tb.check_output(good)
    assert await tb.counters() == expected_counters(
        good, drop_fcs=1, drop_phy_error=1, drop_alignment=1)


def _fits(sizes: list[int], capacity: int) -> list[bool]:
    """Which frames a stalled packet buffer of ``capacity`` beats keeps."""
    used, kept = 0, []
    for size in sizes:
        beats = -(-size // WIDTH)
        # The buffer's output register holds one beat more once a frame is committed.
        if used + beats <= capacity + (1 if used else 0):
            used += beats
            kept.append(True)
        else:
            kept.append(False)
    return kept


@cocotb.test()
async def overflow(dut):
    """The sink holds ``o`` not ready until the packet buffer fills: frames that do not fit are
    dropped whole and counted; the kept frames come out intact when the sink resumes, and
    traffic after that flows normally."""
    tb = Bench(dut)
    await tb.start()
    tb.sink.hold(True)
    sizes = [1514, 1514, 1514, 60, 1514, 200, 60] + [60] * 20
    frames = [udp_frame(size, seq=n) for n, size in enumerate(sizes)]
    kept = _fits(sizes, FIFO_DEPTH)
    assert kept.count(False) >= 3
    for f in frames:
        await tb.source.send(on_wire(f))
    await tb.source.wait()
    await tb.rx_cycles(100)
    assert tb.sink.frames == []
    held = await tb.counters()
    tb.sink.hold(False)
    after = [udp_frame(size, seq=100 + n) for n, size in enumerate((1514, 64, 1000))]
    for f in after:
        await tb.source.send(on_wire(f))
    expected = [f for f, k in zip(frames, kept, strict=True) if k] + after
    await tb.drain(len(expected))
    tb.check_output(expected)
    stored = [f for f, k in zip(frames, kept, strict=True) if k]
    assert held == expected_counters(stored, drop_overflow=kept.count(False))
    assert await tb.counters() == expected_counters(expected, drop_overflow=kept.count(False))


async def _line_rate(dut, *, frames: int, size: int, vlan: int | None, rx_period: float,
                     sync_period: float, ifg: int = 12) -> dict:
    """Send ``frames`` back-to-back frames of ``size`` octets before FCS at ``ifg`` and measure.

    Every delivered frame is checked byte for byte; returns the measurements."""
    tb = Bench(dut, rx_period=rx_period, sync_period=sync_period)
    await tb.start()
    tb.source.ifg = ifg
    template = bytearray(udp_frame(size, vlan=vlan, seq=0))
    sent = []
    wire = []       # (start, end) of each frame on the wire, in simulator steps

    def on_sent(gf: GmiiFrame) -> None:
        wire.append((gf.sim_time_start, gf.sim_time_end))

    for n in range(frames):
        f = bytearray(template)
        f[-4:] = n.to_bytes(4, "little")                 # a sequence number in the payload
        f = bytes(f)
        sent.append(f)
        gf = on_wire(f)
        gf.tx_complete = on_sent
        tb.source.send_nowait(gf)
    timeout_us = frames * (size + 30) * rx_period / 1000 * 2 + 100
    await tb.drain(frames, timeout_us=timeout_us)
    tb.check_output(sent)
    counters = await tb.counters()

    def ns(steps):
        return get_time_from_sim_steps(steps, "ns")

    sink = tb.sink
    starts = [ns(start) for start, _ in wire]
    ends = [ns(end) for _, end in wire]
    latency = [out - end for out, end in zip(sink.last_ns, ends, strict=True)]
    span = sink.last_ns[-1] - sink.first_ns[0]
    per = max(frames - 1, 1)
    return {
        "frames": frames,
        "size": size,
        "wire_octets": len(sent[0]) + 4,
        "vlan": vlan is not None,
        "ifg": ifg,
        "width": WIDTH,
        "fifo_depth": FIFO_DEPTH,
        "rx_period_ns": rx_period,
        "sync_period_ns": sync_period,
        "delivered": len(sink.frames),
        "dropped": sum(counters[d] for d in DROPS),
        "counters": counters,
        "mac_cycles_per_frame": (starts[-1] - starts[0]) / per / rx_period,
        "out_cycles_per_frame": (sink.last_ns[-1] - sink.last_ns[0]) / per / sync_period,
        "out_gbps": sum(len(f) for f in sink.frames) * 8 / span if span else 0.0,
        "latency_ns": {"min": min(latency), "max": max(latency),
                       "mean": sum(latency) / len(latency)},
        "latency_sync_cycles_max": max(latency) / sync_period,
    }


@cocotb.test()
async def back_to_back(dut):
    """Minimum-size frames at minimum IFG (12 octets), the sync clock slower than rx: no drop.
    ``params()["frames"]`` frames (default 10,000)."""
    n = int(params().get("frames", 10_000))
    result = await _line_rate(dut, frames=n, size=60, vlan=None, rx_period=8.0,
                              sync_period=8.1)
    assert result["delivered"] == n
    assert result["dropped"] == 0
    assert result["counters"] == expected_counters([b"x" * 60] * n)
    dut._log.info("back_to_back: %s", json.dumps(result))


@cocotb.test()
async def bench(dut):
    """Benchmark entry point. ``params()``: ``frames`` (N, default 1000), ``size`` (octets
    before FCS, default 60), ``vlan`` (bool), ``ifg`` (default 12), ``rx_period`` (ns, default
    8.0), ``sync_period`` (ns, default 7.9), ``out`` (JSON path, required). Writes the
    measurements of :func:`_line_rate`: cycles per frame at the MAC's GMII input
    (``mac_cycles_per_frame``: rx clocks from one frame's start to the next) and on ``o``
    (``out_cycles_per_frame``: sync clocks from one frame's last beat to the next), latency
    from the end of a frame on the wire to its last beat on ``o``, and every counter. Every
    frame is checked byte for byte."""
    p = params()
    wall = time.monotonic()
    result = await _line_rate(
        dut, frames=int(p.get("frames", 1000)), size=int(p.get("size", 60)),
        vlan=5 if p.get("vlan") else None, ifg=int(p.get("ifg", 12)),
        rx_period=float(p.get("rx_period", 8.0)), sync_period=float(p.get("sync_period", 7.9)))
    result["wall_seconds"] = time.monotonic() - wall     # simulation only, no start-up
    with open(p["out"], "w") as out:
        json.dump(result, out, indent=1)

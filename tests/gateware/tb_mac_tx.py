"""cocotb testbench of :class:`TxPort` on Verilator, checked with cocotbext-eth's ``GmiiSink``.

The design is TxPort(4) itself (:func:`design`; its ``tx`` domain becomes the ``tx_clk``/
``tx_rst`` ports); every test here runs on that one build. ``sync`` runs at 7.9 ns and ``tx``
at 8.0 ns. A raw monitor timestamps each TX_EN edge, so run lengths and gaps are measured in tx
clocks without sampling every clock.

Benchmark use (from benchmarks/)::

    sys.path.insert(0, "tests/gateware")
    from tb_mac_tx import design
    simulate(design(), "tb_mac_tx", testcase="bench_back_to_back",
             module_dir="tests/gateware",
             params={"frames": 1000, "size": 64, "out": "/tmp/tx.json"})

``size`` is the frame length on the wire including the FCS (64..1518); the JSON holds measured
tx clocks per frame (the ideal is ``max(size, 64) + 20``) and core clocks per frame (``sync``
clocks from the first beat offered to the last beat taken, waits on backpressure included).
Every test takes ``sync_ns`` from params to run the core clock at another period.
"""

import functools
import json
import logging
import random
import struct
import time
import zlib

import cocotb
from amaranth import Fragment
from cocotb.clock import Clock
from cocotb.queue import Queue
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, Timer, with_timeout
from cocotbext.eth import GmiiSink
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from crossnic.gateware.packet import packet_layout
from crossnic.gateware.tx_port import SIZE_BUCKETS, TxPort
from crossnic.sim.cocotb_util import csr_counters, csr_read, csr_write, pack, params

WIDTH = 4
FIFO_DEPTH = 512          # beats of store and forward: frames up to 2048 bytes
SYNC_NS = 7.9
TX_NS = 8.0
IFG = 12
PREAMBLE = bytes([0x55] * 7 + [0xD5])
LAYOUT = packet_layout(WIDTH)
BACKOFF = 32              # beats the driver lets drain when the port pushes back


@functools.cache
def _port() -> TxPort:
    port = TxPort(WIDTH, fifo_depth=FIFO_DEPTH)
    Fragment.get(port, None)    # elaborated like the real one (and not left unused)
    return port


def registers():
    """The counter registers of the design under test, taken from the gateware itself."""
    return _port().registers


def max_frame_length() -> int:
    return _port().max_frame_length


def design() -> TxPort:
    """The design every test (and the benchmark) builds. Its ``tx`` domain is left undefined,
    so the Verilog converter makes ``tx_clk``/``tx_rst`` top-level ports beside ``clk``/``rst``.
    """
    return TxPort(WIDTH, fifo_depth=FIFO_DEPTH)


# --- reference model ----------------------------------------------------------------------------

def wire_bytes(frame: bytes) -> bytes:
    """What follows the SFD on the wire: the frame padded to 60 bytes, then its FCS (LSB first)."""
    padded = frame + bytes(max(0, 60 - len(frame)))
    return padded + struct.pack("<I", zlib.crc32(padded))


def make_frame(size: int, n: int, rng: random.Random, *, vlan: bool = False) -> bytes:
    """A ``size``-byte frame (no FCS) built with scapy; unicast, multicast and broadcast mixed."""
    dst = ("02:00:5e:10:00:%02x" % (n & 0xFF), "01:00:5e:00:00:%02x" % (n & 0x7F),
           "ff:ff:ff:ff:ff:ff")[n % 3]
    pkt = Ether(dst=dst, src="02:00:00:00:00:01", type=0x88B5)
    if vlan:
        pkt = Ether(dst=dst, src="02:00:00:00:00:01") / Dot1Q(vlan=n % 4094 + 1, type=0x88B5)
    head = bytes(pkt)
    body = rng.randbytes(max(0, size - len(head)))
    return bytes(pkt / Raw(body))[:size] if size >= len(head) else head[:size]


def expected_counters(good: list[bytes], *, aborted: int = 0, oversize: int = 0) -> dict:
    """The counters TxPort should show after sending ``good`` frames (and dropping some)."""
    wire = [wire_bytes(f) for f in good]
    bcast = sum(w[:6] == b"\xff" * 6 for w in wire)
    sizes = {name: sum(lo <= len(w) <= hi for w in wire) for name, lo, hi in SIZE_BUCKETS}
    return {
        "frames": len(good),
        "octets": sum(len(w) for w in wire),
        "multicast": sum(bool(w[0] & 1) for w in wire) - bcast,
        "broadcast": bcast,
        **sizes,
        "underrun": 0,
        "aborted": aborted,
        "oversize": oversize,
    }


# --- bench --------------------------------------------------------------------------------------

class Bench:
    """Clocks, reset, a frame driver on ``i``, GmiiSink + edge monitor on ``gmii``, CSR access."""

    def __init__(self, dut):
        self.dut = dut
        self.frames = Queue()
        self.runs = []          # (rise_ns, fall_ns) of each TX_EN run
        self.er_rises = 0
        self.first_bytes = []   # TXD on the first clock of each TX_EN run
        self.accepted = []      # time (ns) each frame's last beat was taken
        self.first_offer = None

    async def start(self):
        dut = self.dut
        dut.i__valid.value = 0
        dut.csr__r_stb.value = 0
        dut.csr__w_stb.value = 0
        dut.rst.value = 1
        dut.tx_rst.value = 1
        # C++ clocks: a Python clock costs a coroutine switch per edge, which at ~1.2M edges
        # per test dominated the run time. Handshakes stay exact (every frame is compared).
        self.sync_ns = params().get("sync_ns", SYNC_NS)
        cocotb.start_soon(Clock(dut.clk, self.sync_ns, unit="ns", impl="gpi").start())
        cocotb.start_soon(Clock(dut.tx_clk, TX_NS, unit="ns", impl="gpi").start())
        await ClockCycles(dut.tx_clk, 5)
        await RisingEdge(dut.clk)
        dut.rst.value = 0
        await RisingEdge(dut.tx_clk)
        dut.tx_rst.value = 0
        self.sink = GmiiSink(dut.gmii__data, dut.gmii__er, dut.gmii__en, dut.tx_clk, dut.tx_rst)
        self.sink.log.setLevel(logging.WARNING)    # it logs every frame in full at INFO
        cocotb.start_soon(self._watch_en())
        cocotb.start_soon(self._watch_er())
        cocotb.start_soon(self._drive())
        await ClockCycles(dut.clk, 10)

    async def _watch_en(self):
        en = self.dut.gmii__en
        while True:
            await RisingEdge(en)
            rise = get_sim_time("ns")
            # TX_EN and TXD change together after a tx_clk edge; read here, TXD is the run's
            # first byte, which GmiiSink does not record (it starts a frame on that clock
            # without appending it), so the preamble is checked as this byte + GmiiSink's 7.
            self.first_bytes.append(int(self.dut.gmii__data.value))
            await FallingEdge(en)
            self.runs.append((rise, get_sim_time("ns")))

    async def _watch_er(self):
        while True:
            await RisingEdge(self.dut.gmii__er)
            self.er_rises += 1

    def send(self, frame: bytes, *, error: bool = False, stall: tuple[int, int] | None = None):
        """Queue ``frame``; ``stall=(beat, clocks)`` holds ``valid`` low before that beat."""
        self.frames.put_nowait((frame, error, stall))

    async def _drive(self):
        dut, clk = self.dut, self.dut.clk
        while True:
            if self.frames.empty():
                dut.i__valid.value = 0
            frame, error, stall = await self.frames.get()
            chunks = [frame[i:i + WIDTH] for i in range(0, len(frame), WIDTH)] or [b""]
            for n, chunk in enumerate(chunks):
                if stall and n == stall[0]:
                    dut.i__valid.value = 0
                    await ClockCycles(clk, stall[1])
                last = n == len(chunks) - 1
                dut.i__payload.value = pack(
                    LAYOUT, data=int.from_bytes(chunk, "little"), keep=(1 << len(chunk)) - 1,
                    first=n == 0, last=last, error=error and last)
                dut.i__valid.value = 1
                if self.first_offer is None:
                    self.first_offer = get_sim_time("ns")
                while True:
                    await RisingEdge(clk)
                    if dut.i__ready.value:      # the value this edge sampled: beat taken
                        break
                    # Buffer full: withdraw the beat and let the wire drain BACKOFF beats
                    # instead of waking up for every freed slot (the buffer holds far more,
                    # so the wire never starves).
                    dut.i__valid.value = 0
                    await Timer(BACKOFF * WIDTH * TX_NS, "ns")
                    await RisingEdge(clk)
                    dut.i__valid.value = 1
            self.accepted.append(get_sim_time("ns"))

    async def idle(self, tx_clocks: int = 64):
        """Wait until the driver is done and the wire has been quiet for ``tx_clocks``."""
        while not self.frames.empty() or self.dut.i__valid.value:
            await ClockCycles(self.dut.clk, 16)
        quiet = 0
        while quiet < tx_clocks:
            await RisingEdge(self.dut.tx_clk)
            quiet = 0 if self.dut.gmii__en.value else quiet + 1

    async def read(self, addr: int) -> int:
        return await csr_read(self.dut, addr, latency=TxPort.read_latency)

    async def write(self, addr: int, value: int) -> None:
        await csr_write(self.dut, addr, value)

    async def counters(self) -> dict:
        """All counters over CSR (low word first: it latches the high word)."""
        await ClockCycles(self.dut.clk, 32)    # let the last status records cross
        return await csr_counters(self.dut, registers(), latency=TxPort.read_latency)

    async def expect_frames(self, expected: list[bytes]) -> list:
        """Receive one GMII frame per entry and compare it byte for byte."""
        got = []
        for n, exp in enumerate(expected):
            rx = await with_timeout(self.sink.recv(), 40_000 + 10 * len(exp), "ns")
            assert bytes(rx.get_preamble()) == PREAMBLE[1:], f"frame {n}: {rx.get_preamble()}"
            data = bytes(rx.get_payload(strip_fcs=False))
            assert data == exp, f"frame {n} ({len(exp)} bytes expected, {len(data)} received)"
            assert rx.check_fcs() and rx.error is None, f"frame {n}: FCS or TX_ER"
            got.append(rx)
        return got

    async def transmit(self, frames: list[bytes], *, options: list[dict] | None = None,
                       good: list[bytes] | None = None, idle_clocks: int = 64) -> list[bytes]:
        """Queue ``frames`` (``options[n]`` as :meth:`send` keywords), check the wire carries
        ``good`` (default: all of them) byte for byte, wait for it to go quiet; returns the
        expected wire bytes."""
        for n, f in enumerate(frames):
            self.send(f, **(options[n] if options else {}))
        expected = [wire_bytes(f) for f in (frames if good is None else good)]
        await self.expect_frames(expected)
        await self.idle(idle_clocks)
        return expected

    def run_clocks(self) -> list[int]:
        return [round((fall - rise) / TX_NS) for rise, fall in self.runs]

    def gaps(self) -> list[int]:
        return [round((b[0] - a[1]) / TX_NS) for a, b in zip(self.runs, self.runs[1:],
                                                              strict=False)]


def check_runs(bench: Bench, expected: list[bytes], *, gap: int | None = IFG) -> None:
    """TX_EN runs are preamble + frame long, start with 0x55 and (with frames queued) are exactly
    ``gap`` apart."""
    assert bench.run_clocks() == [8 + len(e) for e in expected]
    assert bench.first_bytes == [PREAMBLE[0]] * len(expected)
    assert bench.er_rises == 0
    if gap is not None:
        gaps = bench.gaps()
        bad = [(n, g) for n, g in enumerate(gaps) if g != gap]
        assert not bad, f"gaps other than {gap} clocks (index, gap): {bad[:10]}"
    else:
        assert min(bench.gaps(), default=IFG) >= IFG


# --- tests --------------------------------------------------------------------------------------

@cocotb.test()
async def test_sizes(dut):
    """Every size in params (plus VLAN-tagged ones) back to back: wire bytes, gaps, counters."""
    p = params()
    rng = random.Random(p.get("seed", 1))
    frames = [make_frame(s, n, rng) for n, s in enumerate(p.get("sizes", [1, 59, 60, 61, 1514]))]
    frames += [make_frame(s, n, rng, vlan=True) for n, s in enumerate(p.get("vlan", [64, 1518]))]
    bench = Bench(dut)
    await bench.start()
    expected = await bench.transmit(frames)
    check_runs(bench, expected)
    assert await bench.counters() == expected_counters(frames)


@cocotb.test()
async def test_line_rate(dut):
    """N queued 64-byte frames take N * 84 tx clocks: 12 idle clocks between TX_EN runs."""
    n = params().get("frames", 100)
    rng = random.Random(2)
    frames = [make_frame(60, k, rng) for k in range(n)]
    bench = Bench(dut)
    await bench.start()
    expected = await bench.transmit(frames)
    check_runs(bench, expected)
    total = round((bench.runs[-1][1] - bench.runs[0][0]) / TX_NS) + IFG
    assert total == n * 84, f"{n} frames took {total} tx clocks, not {n * 84}"
    assert await bench.counters() == expected_counters(frames)


@cocotb.test()
async def test_core_stall(dut):
    """The core pausing mid-frame delays the frame (store and forward) but never corrupts it."""
    rng = random.Random(3)
    frames = [make_frame(1000, 0, rng), make_frame(60, 1, rng), make_frame(1514, 2, rng),
              make_frame(200, 3, rng)]
    stalls = [(50, 3000), (3, 500), None, (49, 40)]
    bench = Bench(dut)
    await bench.start()
    expected = await bench.transmit(frames, options=[{"stall": s} for s in stalls])
    check_runs(bench, expected, gap=None)
    for n, ((rise, _), done) in enumerate(zip(bench.runs, bench.accepted, strict=True)):
        assert rise > done, f"frame {n} started on the wire before its last beat went in"
    counters = await bench.counters()
    assert counters == expected_counters(frames)
    assert counters["underrun"] == 0


@cocotb.test()
async def test_slow_core(dut):
    """With the core clock at tx / width (``sync_ns`` 32), the slowest TxPort is specified for,
    long and short frames back to back still go out whole: no underrun, no TX_ER."""
    rng = random.Random(6)
    sizes = params().get("sizes", [1514, 60, 1514, 1000, 61, max_frame_length(), 1, 1514])
    frames = [make_frame(s, n, rng) for n, s in enumerate(sizes)]
    bench = Bench(dut)
    await bench.start()
    expected = await bench.transmit(frames)
    check_runs(bench, expected, gap=None)
    assert await bench.counters() == expected_counters(frames)    # underrun 0 among them


@cocotb.test()
async def test_error_and_oversize(dut):
    """Frames flagged ``error`` and frames over the buffer never reach the wire; both counted.
    Writing a counter clears it."""
    rng = random.Random(4)
    cap = max_frame_length()
    plan = [(100, False), (1, True), (61, False), (1514, True), (cap + 1, False), (cap, False),
            (60, True), (64, False), (5000, False), (0, False)]
    frames = [(make_frame(s, n, rng), e) for n, (s, e) in enumerate(plan)]
    bench = Bench(dut)
    await bench.start()
    good = [f for f, e in frames if not e and len(f) <= cap]
    expected = await bench.transmit([f for f, _ in frames], good=good, idle_clocks=2 * cap,
                                    options=[{"error": e} for _, e in frames])
    check_runs(bench, expected, gap=None)
    counters = await bench.counters()
    assert counters == expected_counters(good, aborted=3, oversize=2)

    regs = {(r.name, r.part): r.addr for r in registers()}
    await bench.write(regs["aborted", ""], 0)
    await bench.write(regs["frames", "lo"], 0)
    after = await bench.counters()
    assert after == {**counters, "aborted": 0, "frames": 0}


@cocotb.test()
async def bench_back_to_back(dut):
    """Benchmark: N back-to-back frames of ``size`` bytes on the wire (FCS included)."""
    p = params()
    n, size = p.get("frames", 200), p.get("size", 64)
    rng = random.Random(5)
    frames = [make_frame(max(size, 64) - 4, k, rng) for k in range(n)]
    bench = Bench(dut)
    await bench.start()
    wall = time.monotonic()
    expected = await bench.transmit(frames)
    wall = time.monotonic() - wall
    check_runs(bench, expected)
    tx_clocks = round((bench.runs[-1][1] - bench.runs[0][0]) / TX_NS) + IFG
    core_clocks = round((bench.accepted[-1] - bench.first_offer) / bench.sync_ns)
    ideal = len(expected[0]) + 8 + IFG
    result = {
        "design": "TxPort(width=4)", "frames": n, "size": len(expected[0]),
        "tx_clocks": tx_clocks, "tx_clocks_per_frame": tx_clocks / n,
        "ideal_tx_clocks_per_frame": ideal, "line_rate_fraction": ideal * n / tx_clocks,
        "core_clocks": core_clocks, "core_clocks_per_frame": core_clocks / n,
        "sync_period_ns": bench.sync_ns, "tx_period_ns": TX_NS, "wall_seconds": round(wall, 3),
    }
    assert await bench.counters() == expected_counters(frames)
    if p.get("out"):
        with open(p["out"], "w") as fh:
            json.dump(result, fh, indent=1)
    dut._log.info("bench_back_to_back: %s", result)

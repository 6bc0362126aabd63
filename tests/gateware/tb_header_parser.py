"""cocotb testbench of HeaderParser (run by test_header_parser.py in Verilator).

Every frame's metadata is compared field by field with the reference parser
(:mod:`crossnic.sim.model.parser`); ``o`` must carry the input beats unchanged; a record may not
be offered before its frame's first beat is. Input valid gaps and output ready stalls are
random and bursty.
"""

import random

import cocotb
from cocotb.triggers import RisingEdge, Timer
from cocotb.utils import get_sim_time

from crossnic.gateware.packet import packet_layout
from crossnic.sim.cocotb_util import pack, params, reset, start_clock, unpack
from crossnic.sim.model.parser import diff, from_gateware, parse
from crossnic.sim.parser_corpus import malformed_corpus, min_frames, random_frames

PERIOD_NS = 8


class Throttle:
    """Bursty on/off pattern: runs of busy and free cycles, ``busy`` of the time busy."""

    def __init__(self, rng: random.Random, busy: float, mean_run: int = 4):
        self.rng, self.busy, self.mean_run = rng, busy, mean_run
        self.state, self.left = False, 0

    def __call__(self) -> bool:
        if not self.busy:
            return False
        if self.left <= 0:
            self.state = self.rng.random() < self.busy
            self.left = 1 + int(self.rng.expovariate(1 / self.mean_run))
        self.left -= 1
        return self.state


def cycle() -> int:
    return int(get_sim_time("ns")) // PERIOD_NS


class Bench:
    def __init__(self, dut, width: int, seed: int):
        self.dut, self.w = dut, width
        self.rng = random.Random(seed)
        self.layout = packet_layout(width)
        self.sent: list[list[dict]] = []      # beats of each frame as driven
        self.got: list[list[dict]] = []       # beats of each frame from ``o``
        self.o_first_seen: list[int] = []     # cycle a frame's first beat was first offered
        self.o_last_seen: list[int] = []      # cycle a frame's last beat was first offered
        self.metas: list[int] = []
        self.meta_seen: list[int] = []        # cycle a record was first offered
        self.not_ready_cycles = 0             # input beats offered but not taken
        self.o_policy = lambda: True
        self.meta_policy = lambda: True
        self.fresh = False                    # policies read the outputs after each edge

    async def start(self):
        dut = self.dut
        start_clock(dut.clk, PERIOD_NS)
        dut.i__valid.value = 0
        dut.o__ready.value = 0
        dut.meta__ready.value = 0
        await reset(dut.clk, dut.rst)

    def beats(self, frame: bytes, error: bool) -> list[dict]:
        w = self.w
        chunks = [frame[i:i + w] for i in range(0, len(frame), w)]
        return [{"data": int.from_bytes(c, "little"), "keep": (1 << len(c)) - 1,
                 "first": int(n == 0), "last": int(n == len(chunks) - 1),
                 "error": int(error and n == len(chunks) - 1)} for n, c in enumerate(chunks)]

    async def drive(self, frames, errors, gap: Throttle):
        dut = self.dut
        for frame, error in zip(frames, errors, strict=True):
            beats = self.beats(frame, error)
            self.sent.append(beats)
            for beat in beats:
                while gap():
                    dut.i__valid.value = 0
                    await RisingEdge(dut.clk)
                dut.i__payload.value = pack(self.layout, **beat)
                dut.i__valid.value = 1
                while True:
                    await RisingEdge(dut.clk)
                    if dut.i__ready.value:
                        break
                    self.not_ready_cycles += 1
        dut.i__valid.value = 0

    async def _settle(self):
        """Let the clock edge's updates settle before a policy looks at the outputs."""
        if self.fresh:
            await Timer(1, "ns")

    async def sink_o(self, count: int, stall: Throttle, timeout: int):
        dut = self.dut
        beats: list[dict] = []
        dut.o__ready.value = 0
        for _ in range(timeout):
            await RisingEdge(dut.clk)
            if dut.o__valid.value:
                beat = unpack(self.layout, dut.o__payload.value)
                index = len(self.got)
                if not beats and len(self.o_first_seen) == index:
                    self.o_first_seen.append(cycle())
                if beat["last"] and len(self.o_last_seen) == index:
                    self.o_last_seen.append(cycle())
                if dut.o__ready.value:
                    beats.append(beat)
                    if beat["last"]:
                        self.got.append(beats)
                        beats = []
                        if len(self.got) == count:
                            dut.o__ready.value = 0
                            return
            await self._settle()
            dut.o__ready.value = int(not stall() and self.o_policy())
        raise TimeoutError(f"o: {len(self.got)} of {count} frames")

    async def sink_meta(self, count: int, stall: Throttle, timeout: int):
        dut = self.dut
        dut.meta__ready.value = 0
        for _ in range(timeout):
            await RisingEdge(dut.clk)
            if dut.meta__valid.value:
                if len(self.meta_seen) == len(self.metas):
                    self.meta_seen.append(cycle())
                if dut.meta__ready.value:
                    self.metas.append(int(dut.meta__payload.value))
                    if len(self.metas) == count:
                        dut.meta__ready.value = 0
                        return
            await self._settle()
            dut.meta__ready.value = int(not stall() and self.meta_policy())
        raise TimeoutError(f"meta: {len(self.metas)} of {count} records")

    async def run(self, frames, *, errors=None, gap=0.0, o_stall=0.0, meta_stall=0.0,
                  mean_run=4, timeout=None):
        errors = errors or [False] * len(frames)
        total_beats = sum(-(-len(f) // self.w) for f in frames)
        timeout = timeout or 20 * total_beats + 2000
        rng = self.rng
        cocotb.start_soon(self.drive(frames, errors, Throttle(rng, gap, mean_run)))
        o_task = cocotb.start_soon(self.sink_o(len(frames), Throttle(rng, o_stall, mean_run),
                                               timeout))
        await self.sink_meta(len(frames), Throttle(rng, meta_stall, mean_run), timeout)
        await o_task
        self.check(frames, errors)

    def check(self, frames, errors):
        assert self.got == self.sent, "o does not carry the input beats unchanged"
        bad = []
        for n, (frame, error, packed) in enumerate(zip(frames, errors, self.metas, strict=True)):
            mismatch = diff(parse(frame, aborted=error), from_gateware(packed))
            if mismatch:
                bad.append(f"frame {n} ({len(frame)} bytes {frame[:64].hex()}): {mismatch}")
        assert not bad, f"{len(bad)} of {len(frames)} records differ:\n" + "\n".join(bad[:10])
        early = [n for n, (m, o) in enumerate(zip(self.meta_seen, self.o_first_seen, strict=True))
                 if m <= o]
        assert not early, f"records offered before their frame's first beat: {early[:10]}"


def _setup(dut):
    p = params()
    return Bench(dut, p["width"], p.get("seed", 1)), p


@cocotb.test()
async def random_traffic(dut):
    """Random scapy frames (some aborted) with bursty input gaps and output stalls."""
    bench, p = _setup(dut)
    await bench.start()
    frames = random_frames(p.get("seed", 1), p.get("count", 300))
    errors = [bench.rng.random() < 0.05 for _ in frames]
    await bench.run(frames, errors=errors, gap=0.3, o_stall=0.3, meta_stall=0.3)
    dut._log.info("%d frames, %d beats", len(frames), sum(len(b) for b in bench.got))


@cocotb.test()
async def malformed_headers(dut):
    """Every truncation of three frames, bad IHL / versions / lengths / checksums, tiny frames."""
    bench, _ = _setup(dut)
    await bench.start()
    frames = [f for _, f in malformed_corpus()]
    await bench.run(frames, gap=0.2, o_stall=0.2, meta_stall=0.4, mean_run=2)


@cocotb.test()
async def full_rate(dut):
    """Back-to-back minimum-size frames, then back-to-back single-beat frames, at one beat per
    clock: the input is never held up and ``o`` carries a beat every clock."""
    bench, _ = _setup(dut)
    await bench.start()
    w = bench.w
    rng = bench.rng
    frames = min_frames(100) + [bytes(rng.randrange(256) for _ in range(rng.randrange(1, w + 1)))
                                for _ in range(100)]
    start = cycle()
    await bench.run(frames)
    beats = sum(len(b) for b in bench.got)
    assert bench.not_ready_cycles == 0, f"input held up {bench.not_ready_cycles} clocks"
    out_span = bench.o_last_seen[-1] - bench.o_first_seen[0] + 1
    assert out_span == beats, f"{beats} beats left o over {out_span} clocks"
    latency = bench.o_first_seen[0] - start    # 7 in the parser, 1 to the driver's first edge
    assert latency <= 8, f"first beat took {latency} clocks"
    # A record is offered with its frame's last beat (a clock later for one-beat frames).
    late = [n for n, (m, last) in enumerate(zip(bench.meta_seen, bench.o_last_seen, strict=True))
            if m > last + (len(bench.sent[n]) == 1)]
    assert not late, f"records offered after their frame's last beat: {late[:10]}"
    dut._log.info("%d beats in %d clocks, latency %d", beats, out_span, latency)


@cocotb.test()
async def coupled_consumers(dut):
    """Consumers that tie ``o`` and ``meta`` together must not deadlock the parser: first one
    that takes a frame's last beat only after its record, then one that takes a record only
    after the frame's last beat, with long stalls of either side in between."""
    bench, p = _setup(dut)
    await bench.start()
    frames = random_frames(p.get("seed", 1) + 100, 60) + min_frames(40)
    # Take the last beat of frame k only once record k was taken.
    bench.o_policy = lambda: not (bench.dut.o__valid.value and unpack(
        bench.layout, bench.dut.o__payload.value)["last"] and len(bench.metas) <= len(
            bench.got))
    bench.fresh = True
    await bench.run(frames, gap=0.1, o_stall=0.2, meta_stall=0.5, mean_run=30)
    first = len(frames)
    # Take record k only once frame k was taken whole.
    bench2 = Bench(dut, bench.w, 5)
    bench2.meta_policy = lambda: len(bench2.got) > len(bench2.metas)
    await bench2.run(frames, gap=0.1, o_stall=0.5, meta_stall=0.2, mean_run=30)
    dut._log.info("%d + %d frames", first, len(frames))

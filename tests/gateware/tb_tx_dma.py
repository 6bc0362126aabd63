"""cocotb testbench of :class:`TxDmaEngine` (run by test_tx_dma.py): cocotbext-axi's ``AxiRam`` is
host memory, a Python host driver posts frames on rings, and a monitor collects ``o`` /
``o_info`` and every AR and AW handshake.

The design is ``TxDmaEngine(rings=64)`` with a 64-bit AXI bus (:func:`design`); every test runs
on that one build. Memory map (1 MiB): descriptor ring *n* at ``0x400*n`` (up to 64 entries),
head write-back of ring *n* at ``0x10000 + 4*n``, frame buffers from ``0x20000`` (any byte
offset; some placed across a 4 KB boundary); reads of ``0xF0000..0xF2000`` are answered with
SLVERR (``AxiRam`` itself wraps every address into its size and never fails).
"""

import json
import logging
import random
from collections import deque

import cocotb
from amaranth.lib import data
from cocotb.triggers import ClockCycles, Lock, RisingEdge
from cocotbext.axi import AxiBus, AxiRam

from crossnic.gateware.layouts import TxDescriptor
from crossnic.gateware.tx_dma import (
    BYTES,
    CTRL,
    CTRL_ENABLE,
    CTRL_PORT_SHIFT,
    CTRL_PRIORITY_SHIFT,
    CTRL_RESET,
    CTRL_SIZE_SHIFT,
    DESC_BASE_HI,
    DESC_BASE_LO,
    ERRORS,
    FETCH,
    FRAMES,
    HEAD,
    HEAD_WB_HI,
    HEAD_WB_LO,
    IRQ_MASK,
    IRQ_MODER,
    IRQ_STATUS,
    MAXBW,
    RING_STRIDE,
    TAIL,
    VNIC,
    TxDmaEngine,
    TxFrameInfo,
)
from crossnic.gateware.tx_scheduler import rate_register
from crossnic.sim.cocotb_util import pack, reset, start_clock, unpack

RINGS = 64
IN_FLIGHT = 4
BEAT = 8                  # AXI data bytes
MEM = 1 << 20
DESC_AREA, WB_AREA, BUF_AREA = 0x0, 0x10000, 0x20000
POISON = range(0xF0000, 0xF2000)          # reads there fail
CLK_HZ = 125e6
DESC = data.Layout.cast(TxDescriptor)
INFO = data.Layout.cast(TxFrameInfo)


def design() -> TxDmaEngine:
    return TxDmaEngine(rings=RINGS, data_width=8 * BEAT, in_flight=IN_FLIGHT)


class Ring:
    """Host driver of one transmit ring, with what the card must send from it."""

    def __init__(self, bench: "Bench", n: int, *, size_log2: int = 6, priority: int = 0,
                 port: int = 0, vnic: int = 0, moder: int = 0, maxbw: float = 0,
                 enable: bool = True, wb: bool = True):
        self.bench, self.n = bench, n
        self.size_log2, self.size = size_log2, 1 << size_log2
        self.priority, self.port, self.vnic = priority, port, vnic
        self.moder, self.maxbw, self.enable = moder, maxbw, enable
        self.desc_base = DESC_AREA + 0x400 * n
        self.wb_addr = WB_AREA + 4 * n if wb else 0
        self.tail = 0                                   # host producer index
        self.done = 0                                   # host's view of head (write-back)
        self.expect: deque = deque()                    # frames the card must send, in order
        self.frames = self.bytes = self.errors = 0      # model of the counters

    def reg(self, off: int) -> int:
        return self.n * RING_STRIDE + off

    def ctrl(self) -> int:
        return ((CTRL_ENABLE if self.enable else 0) | self.size_log2 << CTRL_SIZE_SHIFT |
                self.priority << CTRL_PRIORITY_SHIFT | self.port << CTRL_PORT_SHIFT)

    async def configure(self) -> None:
        b = self.bench
        for off, value in ((DESC_BASE_LO, self.desc_base & 0xFFFF_FFFF),
                           (DESC_BASE_HI, self.desc_base >> 32),
                           (HEAD_WB_LO, self.wb_addr & 0xFFFF_FFFF),
                           (HEAD_WB_HI, self.wb_addr >> 32),
                           (VNIC, self.vnic), (IRQ_MODER, self.moder),
                           (MAXBW, rate_register(self.maxbw, rings=RINGS)),
                           (TAIL, self.tail)):
            await b.write(self.reg(off), value)
        await b.write(self.reg(CTRL), self.ctrl())

    async def set_enable(self, enable: bool) -> None:
        self.enable = enable
        await self.bench.write(self.reg(CTRL), self.ctrl())

    def written_back(self) -> int:
        return self.bench.ram.read_dword(self.wb_addr) if self.wb_addr else 0

    def room(self) -> int:
        return self.size - ((self.tail - self.written_back()) & 0xFFFF)

    def add(self, length: int, *, addr: int | None = None, payload: bytes | None = None,
            good: bool = True, error: bool = False) -> None:
        """Put one descriptor at the tail (no doorbell). A good frame gets a fresh buffer
        (or ``addr``) filled with ``payload`` (random by default) and is expected on ``o``
        (with ``error`` set when its read fails); a bad one is expected to be skipped."""
        b = self.bench
        if addr is None:
            addr = b.alloc(length)
        if good and not error:
            payload = payload if payload is not None else b.rng.randbytes(length)
            b.ram.write(addr, payload)
            self.frames += 1
            self.bytes += length
        else:
            self.errors += 1
        if good:
            self.expect.append((payload, error))
        raw = pack(DESC, addr=addr, length=length).to_bytes(16, "little")
        b.ram.write(self.desc_base + 16 * (self.tail % self.size), raw)
        self.tail = (self.tail + 1) & 0xFFFF

    async def doorbell(self) -> None:
        await self.bench.write(self.reg(TAIL), self.tail)

    async def post(self, lengths, **kwargs) -> None:
        for length in lengths:
            self.add(length, **kwargs)
        await self.doorbell()

    async def check_registers(self) -> None:
        b = self.bench
        assert await b.read(self.reg(HEAD)) == self.tail, f"ring {self.n} head"
        assert await b.read(self.reg(FETCH)) == self.tail, f"ring {self.n} fetch"
        got = [await b.counter(self.reg(off)) for off in (FRAMES, BYTES, ERRORS)]
        want = [self.frames, self.bytes, self.errors]
        assert got == want, f"ring {self.n} counters {got} != {want}"
        if self.wb_addr:
            assert self.written_back() == self.tail, f"ring {self.n} head write-back"


class Bench:
    """Clock, reset, host memory, register access and the one per-clock monitor."""

    def __init__(self, dut, seed: int = 1):
        self.dut = dut
        self.rng = random.Random(seed)
        self.lock = Lock()
        self.rings: dict[int, Ring] = {}
        self.cycle = 0
        self.ar: list[tuple[int, int, int]] = []         # (cycle, addr, len)
        self.wb: list[tuple[int, int, int]] = []         # (cycle, addr, head written)
        self.out: list[dict] = []                        # frames on o, with their info
        self.infos: list[dict] = []
        self.o_ready = lambda cycle: True
        self.info_ready = lambda cycle: True
        self.next_buf = BUF_AREA

    async def start(self) -> None:
        dut = self.dut
        start_clock(dut.clk, 8)
        dut.csr__r_stb.value = 0
        dut.csr__w_stb.value = 0
        dut.o__ready.value = 0
        dut.o_info__ready.value = 0
        self.ram = AxiRam(AxiBus.from_prefix(dut, "axi_"), dut.clk, dut.rst, size=MEM)
        logging.getLogger("cocotb.top.axi_").setLevel(logging.ERROR)   # a line per burst
        read = self.ram.read_if._read

        async def poisoned(address: int, length: int) -> bytes:
            if address in POISON:
                raise ValueError("poisoned")            # the slave answers SLVERR
            return await read(address, length)

        self.ram.read_if._read = poisoned
        await reset(dut.clk, dut.rst)
        cocotb.start_soon(self._monitor())
        await ClockCycles(dut.clk, RINGS * 8 + 4)          # the memories' zero sweep

    def alloc(self, length: int, offset: int | None = None) -> int:
        """A buffer at a random byte offset (sometimes straddling a 4 KB boundary)."""
        if offset is None:
            offset = self.rng.randrange(8)
        if self.rng.random() < 0.2:                        # end just past a 4 KB boundary
            start = (self.next_buf | 0xFFF) + 1 - self.rng.randrange(1, min(length, 64) + 1)
        else:
            start = self.next_buf + offset
        if start + length >= POISON.start:
            start = BUF_AREA + offset
        self.next_buf = (start + length + 63) & ~63
        return start

    async def _monitor(self) -> None:
        """Counts clocks, drives the ready lines, collects frames, infos and handshakes."""
        dut = self.dut
        frame = bytearray()
        first = 0
        o_ready = info_ready = 0
        while True:
            await RisingEdge(dut.clk)
            self.cycle += 1
            if o_ready and dut.o__valid.value:
                beat = int(dut.o__payload.value)
                keep, is_first = beat >> 32 & 0xF, beat >> 36 & 1
                if is_first:
                    assert not frame, "first beat inside a frame"
                    frame, first = bytearray(), self.cycle
                raw = (beat & 0xFFFF_FFFF).to_bytes(4, "little")
                frame += bytes(raw[k] for k in range(4) if keep >> k & 1)
                if beat >> 37 & 1:
                    self.out.append({"data": bytes(frame), "error": beat >> 38 & 1,
                                     "first": first, "last": self.cycle})
                    frame = bytearray()
            if info_ready and dut.o_info__valid.value:
                self.infos.append(unpack(INFO, dut.o_info__payload.value))
            if dut.axi__arvalid.value and dut.axi__arready.value:
                self.ar.append((self.cycle, int(dut.axi__araddr.value),
                                int(dut.axi__arlen.value)))
            if dut.axi__wvalid.value and dut.axi__wready.value:
                strb = int(dut.axi__wstrb.value)
                word = int(dut.axi__wdata.value)
                self.wb.append((self.cycle, int(dut.axi__awaddr.value),
                                word >> 32 if strb == 0xF0 else word & 0xFFFF_FFFF))
            o_ready = int(self.o_ready(self.cycle))
            info_ready = int(self.info_ready(self.cycle))
            dut.o__ready.value = o_ready
            dut.o_info__ready.value = info_ready

    # --- registers ---------------------------------------------------------------------
    async def _access(self, addr: int, value: int | None = None) -> int:
        dut = self.dut
        async with self.lock:
            dut.csr__addr.value = addr
            if value is None:
                dut.csr__r_stb.value = 1
                await RisingEdge(dut.clk)
                dut.csr__r_stb.value = 0
                await ClockCycles(dut.clk, TxDmaEngine.read_latency)
                return int(dut.csr__r_data.value)
            dut.csr__w_data.value = value
            dut.csr__w_stb.value = 1
            await RisingEdge(dut.clk)
            dut.csr__w_stb.value = 0
            return 0

    async def read(self, addr: int) -> int:
        return await self._access(addr)

    async def write(self, addr: int, value: int) -> None:
        await self._access(addr, value)

    async def counter(self, addr: int) -> int:
        """A per-ring 64-bit counter: low word (latches the high word), then high word."""
        lo = await self.read(addr)
        return lo | await self.read(addr + 1) << 32

    async def add_ring(self, n: int, **kwargs) -> Ring:
        ring = Ring(self, n, **kwargs)
        self.rings[n] = ring
        await ring.configure()
        return ring

    def irq(self, n: int) -> int:
        return (int(self.dut.irq.value) >> n) & 1

    # --- checks --------------------------------------------------------------------------
    async def wait_frames(self, count: int, timeout: int = 200_000) -> None:
        start = self.cycle
        while len(self.out) < count:
            assert self.cycle - start < timeout, f"{len(self.out)} of {count} frames"
            await ClockCycles(self.dut.clk, 32)

    async def wait_written_back(self, timeout: int = 20_000) -> None:
        """Until every ring's head write-back shows its tail."""
        start = self.cycle
        while any(r.wb_addr and r.written_back() != r.tail for r in self.rings.values()):
            assert self.cycle - start < timeout, "head write-back missing"
            await ClockCycles(self.dut.clk, 16)

    def check_frames(self) -> None:
        """Every frame on o is the next expected one of its ring (by its info), byte-exact,
        with the ring's settings in its info; nothing else came out."""
        assert len(self.infos) == len(self.out), (len(self.infos), len(self.out))
        for frame, info in zip(self.out, self.infos, strict=True):
            ring = self.rings[info["ring"]]
            assert ring.expect, f"unexpected frame from ring {ring.n}"
            payload, error = ring.expect.popleft()
            assert frame["error"] == int(error), f"ring {ring.n}: error flag"
            assert info["length"] == len(frame["data"]), f"ring {ring.n}: info length"
            if not error:
                assert frame["data"] == payload, f"ring {ring.n}: data differs"
            assert (info["vnic"], info["port"], info["priority"]) == \
                (ring.vnic, ring.port, min(ring.priority, 2)), f"ring {ring.n}: info"
        for ring in self.rings.values():
            assert not ring.expect, f"ring {ring.n}: {len(ring.expect)} frames missing"
        self.out.clear()
        self.infos.clear()

    def check_bursts(self) -> None:
        """Every AR: 1..256 beats, inside one 4 KB page; descriptor reads are 16 bytes."""
        for _, addr, length in self.ar:
            assert 0 <= length <= 255
            assert (addr % BEAT) == 0
            assert (addr & 0xFFF) + (length + 1) * BEAT <= 0x1000, f"AR {addr:#x} crosses 4K"
            if addr < WB_AREA:
                assert length == 16 // BEAT - 1 and addr % 16 == 0


# --- tests ---------------------------------------------------------------------------------

@cocotb.test()
async def frames_whole_and_exact(dut):
    """Frames of all sizes (14 .. 9018 bytes, any byte offset, across 4 KB pages) from four
    rings: byte-exact, whole, with their ring's info, in ring order; head, fetch, counters,
    head write-back, interrupt status, W1C and mask; AR bursts are long and stay in a page."""
    b = Bench(dut, seed=3)
    await b.start()
    rng = b.rng
    specs = [(0, 2, 1, 7), (5, 0, 0, 200), (17, 1, 3, 33), (63, 3, 2, 255)]
    rings = [await b.add_ring(n, priority=p, port=port, vnic=v) for n, p, port, v in specs]
    total = 0
    for ring in rings:
        lengths = [14, 15, 60, 64, 1514, 1518, 9018, 4097] + \
            [rng.randrange(14, 2000) for _ in range(6)]
        rng.shuffle(lengths)
        await ring.post(lengths)
        total += len(lengths)
    await b.wait_frames(total)
    b.check_frames()
    await b.wait_written_back()
    for ring in rings:
        await ring.check_registers()
        assert await b.read(ring.reg(IRQ_STATUS)) == 1 and b.irq(ring.n) == 1
    b.check_bursts()
    assert max(length for _, _, length in b.ar) == 255      # full-size bursts of jumbo frames
    assert sum(1 for _, addr, length in b.ar if addr >= BUF_AREA and length > 0) > 20
    # the interrupt: mask holds the line low, W1C clears the status
    r = rings[1]
    await b.write(r.reg(IRQ_MASK), 1)
    await ClockCycles(dut.clk, 2)
    assert b.irq(r.n) == 0 and await b.read(r.reg(IRQ_STATUS)) == 1
    await b.write(r.reg(IRQ_STATUS), 1)
    await b.write(r.reg(IRQ_MASK), 0)
    await ClockCycles(dut.clk, 2)
    assert b.irq(r.n) == 0 and await b.read(r.reg(IRQ_STATUS)) == 0
    # registers read back what was written (reserved bits 0), unused rings stay 0
    assert await b.read(r.reg(DESC_BASE_LO)) == r.desc_base
    await b.write(r.reg(DESC_BASE_LO), 0xFFFF_FFFF)
    assert await b.read(r.reg(DESC_BASE_LO)) == 0xFFFF_FFF0
    await b.write(r.reg(DESC_BASE_LO), r.desc_base)
    assert await b.read(r.reg(CTRL)) == r.ctrl()
    assert await b.read(r.reg(VNIC)) == 200
    assert await b.read(rings[3].reg(HEAD_WB_LO)) == WB_AREA + 4 * 63
    assert await b.read(40 * RING_STRIDE + HEAD) == 0


@cocotb.test()
async def ring_wrap_and_doorbells(dut):
    """A ring of 8 descriptors goes round five times, the host posting whatever room the head
    write-back shows (up to 8 at once: more than the engine keeps in flight); every write-back
    is a head value that only grows, the last one the final tail."""
    b = Bench(dut, seed=4)
    await b.start()
    rng = b.rng
    ring = await b.add_ring(9, size_log2=3, vnic=9)
    other = await b.add_ring(10, size_log2=3, vnic=10, wb=False)   # no write-back: head only
    total = 40
    posted = 0
    while posted < total:
        room = ring.room()
        if room:
            count = min(room, total - posted, rng.choice([1, 3, 8]))
            await ring.post([rng.randrange(14, 300) for _ in range(count)])
            posted += count
        await ClockCycles(dut.clk, rng.randrange(20, 200))
    await other.post([100] * 8)
    await b.wait_frames(total + 8)
    b.check_frames()
    await b.wait_written_back()
    await ring.check_registers()
    assert await b.read(other.reg(HEAD)) == 8 and other.written_back() == 0
    values = [v for _, addr, v in b.wb if addr == ring.wb_addr]
    assert values == sorted(values) and values[-1] == total and len(values) >= 5
    assert all(addr in (ring.wb_addr,) for _, addr, _ in b.wb)
    b.check_bursts()


@cocotb.test()
async def bad_descriptors_are_skipped(dut):
    """Lengths 0, 13 and 9019 are consumed without a frame and counted as errors, in order with
    the good ones; a buffer outside host memory (SLVERR on the data read) ends its frame with
    ``error``; a descriptor ring outside host memory (SLVERR on the descriptor read) is skipped.
    The engine keeps going."""
    b = Bench(dut, seed=5)
    await b.start()
    ring = await b.add_ring(3, vnic=3)
    ring.add(100)
    ring.add(0, good=False)
    ring.add(64)
    ring.add(13, good=False)
    ring.add(9019, good=False)
    ring.add(1500, addr=POISON.start - 203, error=True)   # runs into failing memory
    ring.add(9018)
    await ring.doorbell()
    await b.wait_frames(4)
    await ring.post([60, 61])
    await b.wait_frames(6)
    b.check_frames()
    await b.wait_written_back()
    await ring.check_registers()
    # descriptors that cannot be read
    lost = await b.add_ring(4, vnic=4)
    lost.desc_base = POISON.start + 0x1000
    await lost.configure()
    await b.write(lost.reg(TAIL), 2)
    lost.tail = 2
    lost.errors = 2
    await ClockCycles(dut.clk, 500)
    await ring.post([80])
    await b.wait_frames(1)
    b.check_frames()
    await b.wait_written_back()
    await lost.check_registers()
    await ring.check_registers()


@cocotb.test()
async def disabled_ring_and_reset(dut):
    """A disabled ring with posted frames sends nothing (others do) until enabled; ctrl.reset
    takes head and fetch back to 0 and the ring starts over."""
    b = Bench(dut, seed=6)
    await b.start()
    off = await b.add_ring(2, enable=False, vnic=2)
    on = await b.add_ring(4, vnic=4)
    await off.post([200, 300, 400])
    await on.post([100] * 5)
    await b.wait_frames(5)
    await ClockCycles(dut.clk, 500)
    assert len(b.out) == 5
    assert await b.read(off.reg(HEAD)) == 0 and await b.read(off.reg(FETCH)) == 0
    assert {i["ring"] for i in b.infos} == {4}
    await off.set_enable(True)
    await b.wait_frames(8)
    b.check_frames()
    await b.wait_written_back()
    await off.check_registers()
    # reset: head and fetch to 0 (the host then sets tail 0 and starts again)
    await b.write(off.reg(CTRL), off.ctrl() & ~CTRL_ENABLE | CTRL_RESET)
    for _ in range(100):
        if not await b.read(off.reg(CTRL)) & CTRL_RESET:
            break
    else:
        raise AssertionError("ctrl.reset never cleared")
    assert await b.read(off.reg(HEAD)) == 0 and await b.read(off.reg(FETCH)) == 0
    b.ram.write_dword(off.wb_addr, 0xDEAD)
    off.tail = 0                                        # (the counters keep counting)
    await b.write(off.reg(TAIL), 0)
    await off.set_enable(True)
    await off.post([70, 71])
    await b.wait_frames(2)
    b.check_frames()
    await b.wait_written_back()
    await off.check_registers()


@cocotb.test()
async def interrupt_moderation(dut):
    """irq_moder.count = 4: with frames leaving one by one, the host (acknowledging at once)
    sees an interrupt every 4 frames and one when the ring drains; count 0: one per
    write-back."""
    b = Bench(dut, seed=10)
    await b.start()
    b.o_ready = lambda cycle: cycle % 4 == 0               # 200-byte frames: ~200 clocks each
    seen: dict[int, list[int]] = {}

    async def host(ring: Ring) -> None:
        while True:
            await RisingEdge(dut.clk)
            if b.irq(ring.n):
                seen.setdefault(ring.n, []).append(ring.written_back())
                await b.write(ring.reg(IRQ_STATUS), 1)
                await ClockCycles(dut.clk, 2)

    moderated = await b.add_ring(6, moder=4, vnic=6)
    every = await b.add_ring(7, moder=0, vnic=7)
    for ring in (moderated, every):
        cocotb.start_soon(host(ring))
    await moderated.post([200] * 14)
    await b.wait_frames(14)
    await b.wait_written_back()
    await ClockCycles(dut.clk, 100)
    assert seen[6] == [4, 8, 12, 14], seen
    await every.post([200] * 5)
    await b.wait_frames(19)
    await b.wait_written_back()
    await ClockCycles(dut.clk, 100)
    assert seen[7] == [1, 2, 3, 4, 5], seen
    b.check_frames()


@cocotb.test()
async def priority_and_maxbw(dut):
    """Strict priority end to end: HIGH frames posted behind a LOW backlog overtake it within
    the engine's in-flight frames. maxbw: a HIGH ring limited to 1 Gb/s (512-byte frames)
    beside four backlogged unlimited LOW rings gets 1 Gb/s within 3% and the LOW rings the
    rest."""
    b = Bench(dut, seed=7)
    await b.start()
    low = await b.add_ring(10, priority=0, vnic=10)
    high = await b.add_ring(11, priority=2, vnic=11)
    await low.post([256] * 40)
    await b.wait_frames(5)
    await high.post([256] * 10)
    await b.wait_frames(50)
    order = [i["ring"] for i in b.infos]
    first = order.index(11)
    assert first <= 5 + IN_FLIGHT + 2, order
    assert order[first:first + 10] == [11] * 10, order
    b.check_frames()

    limited = await b.add_ring(20, priority=2, vnic=20, maxbw=1e9)
    backlog = [await b.add_ring(n, vnic=n) for n in (30, 31, 32, 33)]
    for ring in backlog:
        await ring.post([256] * 64)
    await limited.post([512] * 40)
    await b.wait_frames(40 + 4 * 64, timeout=400_000)
    times = [f["first"] for f, i in zip(b.out, b.infos, strict=True) if i["ring"] == 20]
    rate = (len(times) - 1) * 512 * 8 / ((times[-1] - times[0]) / CLK_HZ)
    others = [f["first"] for f, i in zip(b.out, b.infos, strict=True) if i["ring"] != 20]
    assert sum(1 for t in others if t < times[-1]) > 100     # the LOW rings kept going
    b.check_frames()
    assert abs(rate / 1e9 - 1) < 0.03, rate
    dut._log.info("limited ring: %.1f Mb/s", rate / 1e6)
    with open("maxbw.json", "w") as f:                  # in the run directory
        json.dump({"rate": rate}, f)


@cocotb.test()
async def back_pressure(dut):
    """``o`` and ``o_info`` taken at random: frames still whole and byte-exact."""
    b = Bench(dut, seed=8)
    await b.start()
    rng = random.Random(99)
    b.o_ready = lambda cycle: rng.random() < 0.4
    b.info_ready = lambda cycle: rng.random() < 0.3
    rings = [await b.add_ring(n, vnic=n, priority=n % 3) for n in (1, 2, 3)]
    for ring in rings:
        await ring.post([b.rng.randrange(14, 700) for _ in range(12)])
    await b.wait_frames(36)
    b.check_frames()
    await b.wait_written_back()
    for ring in rings:
        await ring.check_registers()


@cocotb.test()
async def throughput(dut):
    """Back-to-back frames from eight rings, ``o`` always ready: clocks per frame for 64-byte
    and 1518-byte frames (two 1 Gb/s ports need 42 and 769)."""
    b = Bench(dut, seed=9)
    await b.start()
    rings = [await b.add_ring(n, vnic=n) for n in range(8)]
    figures = {}
    for length, per_ring in ((64, 48), (1518, 8)):
        start = len(b.out)
        for ring in rings:
            for _ in range(per_ring):
                ring.add(length, addr=b.alloc(length, offset=0))
        for ring in rings:
            await ring.doorbell()
        await b.wait_frames(start + 8 * per_ring)
        firsts = [f["first"] for f in b.out[start:]]
        skip = 8                                        # leave out the ramp-up
        figures[f"clocks_per_frame_{length}"] = \
            (firsts[-1] - firsts[skip]) / (len(firsts) - 1 - skip)
    b.check_frames()
    dut._log.info("clocks per frame: %s", figures)
    with open("throughput.json", "w") as f:             # in the run directory
        json.dump(figures, f)

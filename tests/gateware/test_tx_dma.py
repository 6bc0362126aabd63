"""TxDmaEngine: cocotb + Verilator with cocotbext-axi's AxiRam (tb_tx_dma.py), and fast checks
of its parameters and register description."""

import json
import random
from collections import deque

import pytest
from amaranth.lib import data
from amaranth.sim import Simulator
from tb_tx_dma import design

from crossnic.gateware.layouts import TxDescriptor
from crossnic.gateware.regmap import RegisterMap
from crossnic.gateware.tx_dma import (
    CTRL,
    CTRL_ENABLE,
    CTRL_PORT_SHIFT,
    CTRL_SIZE_SHIFT,
    DESC_BASE_LO,
    ERRORS,
    HEAD,
    HEAD_WB_LO,
    RING_STRIDE,
    TAIL,
    VNIC,
    TxDmaEngine,
)
from crossnic.sim.cocotb_util import pack


@pytest.mark.parametrize("testcase", ["frames_whole_and_exact", "ring_wrap_and_doorbells",
                                      "bad_descriptors_are_skipped", "disabled_ring_and_reset",
                                      "interrupt_moderation", "priority_and_maxbw",
                                      "back_pressure", "throughput"])
def test_tx_dma(run_cocotb, testcase):
    run = run_cocotb(design(), "tb_tx_dma", testcase=testcase)
    if testcase == "throughput":
        figures = json.loads((run / "throughput.json").read_text())
        print(f"clocks per frame: 64 B {figures['clocks_per_frame_64']:.1f}, "
              f"1518 B {figures['clocks_per_frame_1518']:.1f}")
    if testcase == "priority_and_maxbw":
        rate = json.loads((run / "maxbw.json").read_text())["rate"]
        print(f"ring limited to 1 Gb/s sent {rate / 1e6:.1f} Mb/s")


def test_parameters_checked():
    for kwargs in ({"rings": 2}, {"rings": 48}, {"rings": 512}, {"data_width": 128},
                   {"max_frame": 13}, {"in_flight": 1}):
        with pytest.raises(ValueError):
            TxDmaEngine(**kwargs)


def test_register_block_matches_the_bus():
    dut = TxDmaEngine(rings=64)
    ring = dut.block()
    assert ring.count == 64 and ring.stride == RING_STRIDE and ring.read_latency == 2
    assert ring.addr_width == len(dut.csr.addr) == 11
    regmap = RegisterMap("t", [ring])
    assert regmap["tx_ring[63].tail"].addr == 63 * RING_STRIDE + 5
    assert regmap["tx_ring[0].errors.hi"].addr == 21
    assert "tx_ring" in regmap.markdown()


# --- the 32-bit AXI variant, in amaranth.sim with a small AXI memory model ------------------

class AxiHost:
    """Host memory behind a minimal AXI4 slave (one burst at a time, always ready) plus the
    engine's register port and output streams, all driven one clock per :meth:`step`."""

    def __init__(self, dut, beat: int):
        self.dut, self.beat = dut, beat
        self.mem = bytearray(1 << 16)
        self.bursts: deque = deque()        # beats of accepted ARs, in order
        self.ar: list[tuple[int, int]] = []
        self.aw_addr: int | None = None
        self.b_due = False
        self.frames: list[tuple[bytes, int]] = []
        self.infos: list[dict] = []
        self.frame = bytearray()

    async def step(self, ctx) -> None:
        axi, dut = self.dut.axi, self.dut
        beat = self.bursts[0][0] if self.bursts else None
        ctx.set(axi.rvalid, beat is not None)
        if beat is not None:
            ctx.set(axi.rdata, beat[0])
            ctx.set(axi.rlast, beat[1])
        ctx.set(axi.bvalid, self.b_due)
        for sig in (axi.arready, axi.awready, axi.wready, dut.o.ready, dut.o_info.ready):
            ctx.set(sig, 1)
        (_, _, arvalid, araddr, arlen, rready, awvalid, awaddr, wvalid, wdata, wstrb,
         ovalid, o, ivalid, info) = await ctx.tick().sample(
            axi.arvalid, axi.araddr, axi.arlen, axi.rready, axi.awvalid, axi.awaddr,
            axi.wvalid, axi.wdata, axi.wstrb, dut.o.valid, dut.o.payload, dut.o_info.valid,
            dut.o_info.payload)
        if self.b_due:
            self.b_due = False
        if beat is not None and rready:
            self.bursts[0].popleft()
            if not self.bursts[0]:
                self.bursts.popleft()
        if arvalid:
            assert (araddr & 0xFFF) + (arlen + 1) * self.beat <= 0x1000
            self.ar.append((araddr, arlen))
            words = [int.from_bytes(self.mem[a:a + self.beat], "little")
                     for a in range(araddr, araddr + (arlen + 1) * self.beat, self.beat)]
            self.bursts.append(deque((w, k == arlen) for k, w in enumerate(words)))
        if awvalid:
            self.aw_addr = awaddr
        if wvalid:
            for k in range(self.beat):
                if wstrb >> k & 1:
                    self.mem[(self.aw_addr & ~(self.beat - 1)) + k] = wdata >> 8 * k & 0xFF
            self.b_due = True
        if ovalid:
            raw = o.data.to_bytes(4, "little")
            self.frame += bytes(raw[k] for k in range(4) if o.keep >> k & 1)
            if o.last:
                self.frames.append((bytes(self.frame), o.error))
                self.frame = bytearray()
        if ivalid:
            self.infos.append({"ring": info.ring, "length": info.length, "vnic": info.vnic,
                               "port": info.port, "priority": info.priority.value})

    async def write(self, ctx, addr: int, value: int) -> None:
        csr = self.dut.csr
        ctx.set(csr.addr, addr)
        ctx.set(csr.w_data, value)
        ctx.set(csr.w_stb, 1)
        await self.step(ctx)
        ctx.set(csr.w_stb, 0)

    async def read(self, ctx, addr: int) -> int:
        csr = self.dut.csr
        ctx.set(csr.addr, addr)
        ctx.set(csr.r_stb, 1)
        await self.step(ctx)
        ctx.set(csr.r_stb, 0)
        for _ in range(TxDmaEngine.read_latency - 1):
            await self.step(ctx)
        return ctx.get(csr.r_data)


def test_data_width_32_in_amaranth_sim():
    """The 32-bit AXI variant (no narrowing stage, offsets 0..3): frames byte-exact with their
    info, a bad descriptor skipped, head written back, bursts within 4 KB; ``work`` is high
    exactly while descriptors wait."""
    dut = TxDmaEngine(rings=4, data_width=32, addr_width=32, in_flight=2)
    host = AxiHost(dut, 4)
    rng = random.Random(5)
    desc = data.Layout.cast(TxDescriptor)
    expect = {1: [], 2: []}
    buf = 0x2000

    async def bench(ctx):
        nonlocal buf
        for _ in range(4 * 8 + 2):                       # the zero sweep
            await host.step(ctx)
        assert not ctx.get(dut.work)
        for ring, vnic in ((1, 11), (2, 22)):
            base = ring * RING_STRIDE
            await host.write(ctx, base + DESC_BASE_LO, 0x400 * ring)
            await host.write(ctx, base + HEAD_WB_LO, 0x1000 + 4 * ring)
            await host.write(ctx, base + VNIC, vnic)
            lengths = [rng.randrange(14, 300) for _ in range(6)] + [5000]
            for k, length in enumerate(lengths):
                addr = (buf | 0xFFF) - 40 if k == 2 else buf + rng.randrange(4)
                payload = rng.randbytes(length)
                host.mem[addr:addr + length] = payload
                buf = (addr + length + 64) & ~7
                length = 9 if k == 4 else length          # a bad descriptor
                host.mem[0x400 * ring + 16 * k:0x400 * ring + 16 * k + 16] = \
                    pack(desc, addr=addr, length=length).to_bytes(16, "little")
                if k != 4:
                    expect[ring].append(payload)
            await host.write(ctx, base + TAIL, len(lengths))
            await host.write(ctx, base + CTRL, CTRL_ENABLE | 6 << CTRL_SIZE_SHIFT |
                             ring << CTRL_PORT_SHIFT)
        worked = 0
        for _ in range(8000):
            await host.step(ctx)
            worked += ctx.get(dut.work)
            if len(host.frames) == 12:
                break
        for _ in range(300):
            await host.step(ctx)
        assert worked > 100 and not ctx.get(dut.work)
        for ring in (1, 2):
            assert await host.read(ctx, ring * RING_STRIDE + HEAD) == 7
            assert await host.read(ctx, ring * RING_STRIDE + ERRORS) == 1
            assert int.from_bytes(host.mem[0x1000 + 4 * ring:0x1004 + 4 * ring], "little") == 7

    sim = Simulator(dut)
    sim.add_clock(8e-9)
    sim.add_testbench(bench)
    sim.run()
    assert len(host.frames) == len(host.infos) == 12
    got = {1: [], 2: []}
    for (frame, error), info in zip(host.frames, host.infos, strict=True):
        assert error == 0 and info["length"] == len(frame)
        assert (info["vnic"], info["port"]) == (11 * info["ring"], info["ring"])
        got[info["ring"]].append(frame)
    assert got == expect
    assert any(length > 0 for addr, length in host.ar if addr >= 0x2000)

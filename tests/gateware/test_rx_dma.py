"""RxDmaEngine: cocotb + Verilator with cocotbext-axi's AxiRam (tb_rx_dma.py), and fast checks
of its parameters and register description."""

import json
import random
from collections import deque

import pytest
from amaranth.lib import data
from amaranth.sim import Simulator
from streams import send_frame
from tb_rx_dma import design

from crossnic.gateware.layouts import RxCompletion, RxDescriptor
from crossnic.gateware.regmap import RegisterMap
from crossnic.gateware.rx_dma import (
    BYTES,
    CPL_BASE_LO,
    CPL_HEAD,
    CTRL,
    CTRL_ENABLE,
    CTRL_SIZE_SHIFT,
    DESC_BASE_LO,
    DESC_HEAD,
    DESC_TAIL,
    DROPS,
    RING_STRIDE,
    RxDmaEngine,
)
from crossnic.sim.cocotb_util import pack, unpack


@pytest.mark.parametrize("testcase", ["delivery", "ring_wrap", "drops", "aborted_frames",
                                      "interrupts", "throughput", "random_reference"])
def test_rx_dma(run_cocotb, testcase):
    run = run_cocotb(design(), "tb_rx_dma", testcase=testcase)
    if testcase == "throughput":
        figures = json.loads((run / "throughput.json").read_text())
        print(f"clocks per frame: 64 B {figures['clocks_per_frame_64']:.1f}, "
              f"1518 B {figures['clocks_per_frame_1518']:.1f}")


# --- fast checks in amaranth.sim -----------------------------------------------------------

def test_parameters_checked():
    for kwargs in ({"rings": 3}, {"rings": 512}, {"data_width": 128}, {"fifo_depth": 100},
                   {"us_clocks": 0}):
        with pytest.raises(ValueError):
            RxDmaEngine(**kwargs)
    with pytest.raises(ValueError, match="divide"):
        RxDmaEngine(8, data_width=32)


def test_register_blocks_match_the_bus():
    dut = RxDmaEngine(rings=64)
    ring = dut.block()
    stats = dut.stats_block()
    assert ring.count == 64 and ring.stride == RING_STRIDE and ring.read_latency == 2
    assert ring.addr_width == len(dut.csr.addr) == 11
    assert stats.addr_width == len(dut.stats.addr)
    regmap = RegisterMap("t", [ring, stats])
    assert regmap["rx_ring[3].desc_tail"].addr == 3 * RING_STRIDE + DESC_TAIL
    assert regmap["rx_ring[63].drops.hi"].addr == 63 * RING_STRIDE + DROPS + 1
    assert regmap["rx_ring[0].ctrl"].register.fields[1].name == "size_log2"
    names = [r.register.key for r in regmap.registers() if r.block == "rx_dma"]
    assert "drop_completion_full.lo" in names and "axi_errors.hi" in names


class _AxiRam:
    """A zero-wait AXI4 slave over a bytearray, for amaranth.sim (always ready, in order)."""

    def __init__(self, axi, size: int, data_bytes: int):
        self.axi, self.mem, self.db = axi, bytearray(size), data_bytes

    async def run(self, ctx):
        axi, db = self.axi, self.db
        for name in ("awready", "wready", "arready"):
            ctx.set(getattr(axi, name), 1)
        bursts, reads, responses = deque(), deque(), 0
        while True:
            ctx.set(axi.rvalid, bool(reads))
            if reads:
                ctx.set(axi.rdata, reads[0][0])
                ctx.set(axi.rlast, reads[0][1])
            ctx.set(axi.bvalid, responses > 0)
            (_, _, awvalid, awaddr, awlen, wvalid, wdata, wstrb, arvalid, araddr, arlen,
             rready, bready) = await ctx.tick().sample(
                axi.awvalid, axi.awaddr, axi.awlen, axi.wvalid, axi.wdata, axi.wstrb,
                axi.arvalid, axi.araddr, axi.arlen, axi.rready, axi.bready)
            if reads and rready:
                reads.popleft()
            if responses and bready:
                responses -= 1
            if awvalid:
                assert (awaddr & 0xFFF) + (awlen + 1) * db <= 0x1000
                bursts.append([awaddr % len(self.mem), awlen + 1])
            if wvalid:
                burst = bursts[0]
                for k in range(db):
                    if wstrb >> k & 1:
                        self.mem[burst[0] + k] = wdata >> 8 * k & 0xFF
                burst[0] += db
                burst[1] -= 1
                if burst[1] == 0:
                    bursts.popleft()
                    responses += 1
            if arvalid:
                base = araddr % len(self.mem)
                for k in range(arlen + 1):
                    word = self.mem[base + k * db:base + (k + 1) * db]
                    reads.append((int.from_bytes(word, "little"), k == arlen))


@pytest.mark.parametrize("width,data_width", [(4, 32), (8, 64), (1, 64)])
def test_delivery_in_amaranth_sim(width, data_width):
    """Other stream and AXI widths than the Verilator build: two rings, a few frames (one too
    long), data and completions checked in a zero-wait memory model."""
    dut = RxDmaEngine(width, rings=2, data_width=data_width, fifo_depth=16, us_clocks=10)
    ram = _AxiRam(dut.axi, 1 << 16, data_width // 8)
    rng = random.Random(width)
    desc_base, cpl_base, buf = 0x1000, 0x2000, 0x4000
    frames = [(rng.randbytes(n), {"length": n, "ring": 1, "vnic": 7, "flow_hash": n * 77,
                                  "vlan_tci": n, "port": 3})
              for n in (61, 100, 3000, 64, 1518)]
    descriptor = data.Layout.cast(RxDescriptor)
    for k in range(4):
        raw = pack(descriptor, addr=buf + 0x800 * k, length=2000)
        ram.mem[desc_base + 16 * k:desc_base + 16 * k + 16] = raw.to_bytes(16, "little")

    async def csr_write(ctx, addr, value):
        ctx.set(dut.csr.addr, addr)
        ctx.set(dut.csr.w_data, value)
        ctx.set(dut.csr.w_stb, 1)
        await ctx.tick()
        ctx.set(dut.csr.w_stb, 0)

    async def csr_read(ctx, addr):
        ctx.set(dut.csr.addr, addr)
        ctx.set(dut.csr.r_stb, 1)
        await ctx.tick()
        ctx.set(dut.csr.r_stb, 0)
        await ctx.tick().repeat(RxDmaEngine.read_latency - 1)
        return ctx.get(dut.csr.r_data)

    async def host(ctx):
        await ctx.tick().repeat(2 * 8 + 2)                   # zero sweep of the memories
        r = RING_STRIDE
        for off, value in ((DESC_BASE_LO, desc_base), (CPL_BASE_LO, cpl_base),
                           (DESC_TAIL, 4), (CTRL, CTRL_ENABLE | 3 << CTRL_SIZE_SHIFT)):
            await csr_write(ctx, r + off, value)
        for _ in range(5000):
            if await csr_read(ctx, r + CPL_HEAD) == 4:
                break
        else:
            raise AssertionError("frames not completed")
        await ctx.tick().repeat(10)
        assert await csr_read(ctx, r + DESC_HEAD) == 4
        assert await csr_read(ctx, r + DROPS) == 1
        assert await csr_read(ctx, r + BYTES) == 61 + 100 + 64 + 1518

    async def source(ctx):
        await ctx.tick().repeat(60)
        for frame, _ in frames:
            await send_frame(ctx, dut.i, frame, width)

    async def infos(ctx):
        await ctx.tick().repeat(60)
        for _, info in frames:
            ctx.set(dut.info.payload, info)
            ctx.set(dut.info.valid, 1)
            await ctx.tick().until(dut.info.ready)
            ctx.set(dut.info.valid, 0)

    sim = Simulator(dut)
    sim.add_clock(8e-9)
    sim.add_testbench(ram.run, background=True)
    sim.add_testbench(source)
    sim.add_testbench(infos)
    sim.add_testbench(host)
    sim.run()
    completion = data.Layout.cast(RxCompletion)
    delivered = [f for f in frames if f[1]["length"] <= 2000]
    for k, (frame, info) in enumerate(delivered):
        got = ram.mem[buf + 0x800 * k:buf + 0x800 * k + len(frame)]
        assert got == frame, f"frame {k}"
        assert ram.mem[buf + 0x800 * k + len(frame)] == 0
        raw = int.from_bytes(ram.mem[cpl_base + 16 * k:cpl_base + 16 * k + 16], "little")
        fields = unpack(completion, raw)
        assert fields["length"] == len(frame) and fields["phase"] == 1
        assert (fields["ring"], fields["vnic"], fields["port"]) == (1, 7, 3)
        assert fields["flow_hash"] == info["flow_hash"] and fields["vlan_tci"] == len(frame)

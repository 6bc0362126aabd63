"""cocotb testbench of AxiLiteCsrBridge (run by test_axil.py): cocotbext-axi's AxiLiteMaster
against the bridge, a CsrDecoder laid out by a RegisterMap, and real register blocks."""

import cocotb
from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from cocotb.triggers import RisingEdge
from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiResp

from crossnic.boards.top import BOARD_ID, BoardInfo
from crossnic.gateware.axil import AxiLiteCsrBridge, AxiLiteSignature
from crossnic.gateware.csr import Counter, CounterBank
from crossnic.gateware.csr_decoder import CsrDecoder
from crossnic.gateware.regmap import Block, RegisterMap
from crossnic.sim.cocotb_util import reset, start_clock

COUNTERS = [Counter("ticks", "clocks since the last clear"),
            Counter("writes", "AXI writes answered OKAY", width=32)]
CONFIG = 0x7D0102


def regmap() -> RegisterMap:
    return RegisterMap("AXI test card", [BoardInfo.describe(CONFIG, "info"),
                                         Block.from_counters("stats", "test counters",
                                                             COUNTERS)])


class AxilTestCard(wiring.Component):
    """AXI4-Lite -> bridge -> decoder -> {BoardInfo, CounterBank}."""

    def __init__(self):
        self.regmap = regmap()
        super().__init__({"axil": In(AxiLiteSignature(self.regmap.addr_width + 2)),
                          "errors": Out(2)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.info = info = BoardInfo(config=CONFIG)
        m.submodules.stats = stats = CounterBank(COUNTERS)
        m.submodules.decoder = dec = CsrDecoder([len(info.csr.addr), len(stats.csr.addr)],
                                                self.regmap.block_bits)
        m.submodules.bridge = bridge = AxiLiteCsrBridge(self.regmap, dec.read_latency)
        wiring.connect(m, wiring.flipped(self.axil), bridge.axil)
        wiring.connect(m, bridge.csr, dec.bus)
        wiring.connect(m, dec.block(0), info.csr)
        wiring.connect(m, dec.block(1), stats.csr)
        m.d.comb += [
            stats.inc.ticks.eq(1),
            stats.inc.writes.eq(bridge.csr.w_stb),
            self.errors.eq(bridge.errors),
        ]
        return m


def design():
    return AxilTestCard()


async def _start(dut) -> AxiLiteMaster:
    start_clock(dut.clk, 8)
    master = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "axil_"), dut.clk, dut.rst)
    await reset(dut.clk, dut.rst)
    return master


def _word(resp) -> int:
    return int.from_bytes(resp.data, "little")


@cocotb.test()
async def registers_by_map(dut):
    """Every register answers at 4 x its word address with its reset value or live count."""
    master = await _start(dut)
    m = regmap()
    assert _word(await master.read(4 * m["info.id"].addr, 4)) == BOARD_ID
    assert _word(await master.read(4 * m["info.config"].addr, 4)) == CONFIG
    await master.write(4 * m["info.scratch"].addr, (0xA5A55A5A).to_bytes(4, "little"))
    assert _word(await master.read(4 * m["info.scratch"].addr, 4)) == 0xA5A55A5A
    lo = _word(await master.read(4 * m["stats.ticks.lo"].addr, 4))
    hi = _word(await master.read(4 * m["stats.ticks.hi"].addr, 4))
    assert hi == 0 and 0 < lo < 10_000
    await master.write(4 * m["stats.ticks.lo"].addr, bytes(4))          # clears
    assert _word(await master.read(4 * m["stats.ticks.lo"].addr, 4)) < lo
    assert _word(await master.read(4 * m["stats.writes"].addr, 4)) == 2


@cocotb.test()
async def bad_accesses_are_answered(dut):
    """Misaligned -> SLVERR, unmapped -> DECERR (reads 0), partial strobes -> SLVERR; none
    changes a register and every one is answered."""
    master = await _start(dut)
    m = regmap()
    scratch = 4 * m["info.scratch"].addr
    await master.write(scratch, (0x11223344).to_bytes(4, "little"))
    errors = {"slverr": 0, "decerr": 0}

    async def watch():
        while True:
            await RisingEdge(dut.clk)
            errors["slverr"] += int(dut.errors.value) & 1
            errors["decerr"] += int(dut.errors.value) >> 1

    cocotb.start_soon(watch())
    r = await master.read(scratch + 1, 1)
    assert r.resp == AxiResp.SLVERR and r.data == b"\x00"
    unmapped = 4 * (m.base("info") + 7)                    # inside the block, no register
    r = await master.read(unmapped, 4)
    assert r.resp == AxiResp.DECERR and _word(r) == 0
    far = 4 * ((1 << m.addr_width) - 1)                    # past the last block
    assert (await master.read(far, 4)).resp == AxiResp.DECERR
    assert (await master.write(unmapped, bytes(4))).resp == AxiResp.DECERR
    assert (await master.write(scratch, b"\xff\xff")).resp == AxiResp.SLVERR   # wstrb 0011
    assert (await master.write(scratch + 2, b"\xee")).resp == AxiResp.SLVERR   # misaligned
    assert _word(await master.read(scratch, 4)) == 0x11223344
    assert errors == {"slverr": 3, "decerr": 3}
    assert _word(await master.read(4 * m["stats.writes"].addr, 4)) == 1


@cocotb.test()
async def concurrent_reads_and_writes(dut):
    """Reads and writes issued together are all answered, each with the right data."""
    master = await _start(dut)
    m = regmap()
    scratch = 4 * m["info.scratch"].addr
    tasks = []
    for k in range(20):
        tasks.append(cocotb.start_soon(master.write(scratch, (k * 0x01010101).to_bytes(4,
                                                                                        "little"))))
        tasks.append(cocotb.start_soon(master.read(4 * m["info.id"].addr, 4)))
    results = [await t for t in tasks]
    assert all(_word(r) == BOARD_ID for r in results[1::2])
    assert all(r.resp == AxiResp.OKAY for r in results)
    assert _word(await master.read(scratch, 4)) == 19 * 0x01010101

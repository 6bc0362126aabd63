"""cocotb side of tests/sim/test_harness.py: a CounterBank read over its CSR port."""

import cocotb
from cocotb.triggers import RisingEdge

from crossnic.gateware.csr import CounterBank
from crossnic.sim.cocotb_util import csr_read, params, reset, start_clock


async def _read(dut, addr: int) -> int:
    return await csr_read(dut, addr, latency=CounterBank.read_latency)


@cocotb.test()
async def counts_increments(dut):
    start_clock(dut.clk, 8)
    dut.csr__r_stb.value = 0
    dut.csr__w_stb.value = 0
    await reset(dut.clk, dut.rst)
    n = params()["cycles"]
    dut.inc.value = 1          # first counter, one per clock
    for _ in range(n):
        await RisingEdge(dut.clk)
    dut.inc.value = 0
    await RisingEdge(dut.clk)
    assert await _read(dut, 0) == n
    assert await _read(dut, 1) == 0


@cocotb.test()
async def deliberately_fails(dut):
    start_clock(dut.clk, 8)
    await RisingEdge(dut.clk)
    assert params()["expected"] == 1, "harness-failure-marker"

"""RGMII adapters in amaranth.sim: the SDR logic directly, and the whole adapters at pin level
through a behavioural model of the ECP5 DDR cells (IDDRX1F: rising-edge sample and the falling-edge
sample after it, presented together on the next rising edge; ODDRX1F: first half-period ``o[0]``,
second half ``o[1]``)."""

import random
from types import SimpleNamespace

import pytest
from amaranth import *
from amaranth.lib import data, io, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from crossnic.gateware.rgmii import (
    RgmiiRx,
    RgmiiRxDecoder,
    RgmiiTx,
    RgmiiTxEncoder,
    delay_taps,
)

PERIOD = 8e-9


class SimDDRBuffer(wiring.Component):
    """Behavioural DDR buffer on an :class:`io.SimulationPort` (same interface as DDRBuffer)."""

    def __init__(self, direction, port, *, i_domain=None, o_domain=None):
        self._dir = io.Direction(direction)
        self._port = port
        self._i_domain = i_domain or "sync"
        self._o_domain = o_domain or "sync"
        members = {}
        if self._dir is not io.Direction.Output:
            members["i"] = Out(data.ArrayLayout(len(port), 2))
        if self._dir is not io.Direction.Input:
            members["o"] = In(data.ArrayLayout(len(port), 2))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        if self._dir is io.Direction.Input:
            m.domains.neg = ClockDomain("neg", clk_edge="neg", local=True, reset_less=True)
            m.d.comb += ClockSignal("neg").eq(ClockSignal(self._i_domain))
            rise, fall = Signal(len(self._port)), Signal(len(self._port))
            m.d[self._i_domain] += rise.eq(self._port.i)
            m.d.neg += fall.eq(self._port.i)
            m.d[self._i_domain] += [self.i[0].eq(rise), self.i[1].eq(fall)]
        else:
            d0, d1 = Signal(len(self._port)), Signal(len(self._port))
            m.d[self._o_domain] += [d0.eq(self.o[0]), d1.eq(self.o[1])]
            m.d.comb += self._port.o.eq(Mux(ClockSignal(self._o_domain), d0, d1))
        return m


def _random_cycles(rng, n):
    """A GMII cycle sequence with idle, frames, errors inside frames and carrier extension."""
    cycles = [(0, 0, 0)] * 4
    while len(cycles) < n:
        length = rng.randrange(8, 40)
        for k in range(length):
            cycles.append((rng.randrange(256), 1, int(rng.random() < 0.05 and k > 0)))
        cycles += [(0, 0, 0)] * rng.randrange(1, 6)
        if rng.random() < 0.2:
            cycles.append((0x0F, 0, 1))          # carrier extension / error propagation
            cycles.append((0, 0, 0))
    return cycles


def test_decoder_edge_pairs_to_gmii():
    dut = RgmiiRxDecoder()
    rng = random.Random(2)
    cycles = _random_cycles(rng, 300)
    got = []

    async def bench(ctx):
        for d, en, er in cycles:
            ctx.set(dut.ddr_data, [d & 0xF, d >> 4])
            ctx.set(dut.ddr_ctl, [en, en ^ er])
            await ctx.tick("rx")
            got.append((ctx.get(dut.gmii.data), ctx.get(dut.gmii.en), ctx.get(dut.gmii.er)))

    sim = Simulator(dut)
    sim.add_clock(PERIOD, domain="rx")
    sim.add_testbench(bench)
    sim.run()
    assert got == cycles


def test_encoder_gmii_to_edge_pairs():
    dut = RgmiiTxEncoder()
    rng = random.Random(3)
    cycles = _random_cycles(rng, 300)
    got = []

    async def bench(ctx):
        for d, en, er in cycles:
            ctx.set(dut.gmii.data, d)
            ctx.set(dut.gmii.en, en)
            ctx.set(dut.gmii.er, er)
            await ctx.tick("tx")
            lo, hi = ctx.get(dut.ddr_data)
            c0, c1 = ctx.get(dut.ddr_ctl)
            got.append((lo | hi << 4, c0, c0 ^ c1))

    sim = Simulator(dut)
    sim.add_clock(PERIOD, domain="tx")
    sim.add_testbench(bench)
    sim.run()
    assert got == cycles


def _rx_top(rx_delay_taps=0):
    pins = SimpleNamespace(rx_clk=io.SimulationPort("i", 1, name="rx_clk"),
                           rx_ctl=io.SimulationPort("i", 1, name="rx_ctl"),
                           rx_data=io.SimulationPort("i", 4, name="rx_data"))
    m = Module()
    m.domains.rx = ClockDomain("rx")
    m.submodules.dut = dut = RgmiiRx(pins, ddr_buffer=SimDDRBuffer, rx_delay_taps=rx_delay_taps)
    return m, dut, pins


def test_rgmii_rx_pins_to_gmii():
    """Drive RGMII as a PHY in internal-delay mode would (data centred between clock edges)."""
    m, dut, pins = _rx_top()
    rng = random.Random(4)
    cycles = _random_cycles(rng, 400)
    got = []

    async def phy(ctx):
        q = PERIOD / 4
        for d, en, er in [*cycles, *[(0, 0, 0)] * 4]:
            ctx.set(pins.rx_data.i, d & 0xF)
            ctx.set(pins.rx_ctl.i, en)
            await ctx.delay(q)
            ctx.set(pins.rx_clk.i, 1)            # rising edge mid-nibble
            await ctx.delay(q)
            ctx.set(pins.rx_data.i, d >> 4)
            ctx.set(pins.rx_ctl.i, en ^ er)
            await ctx.delay(q)
            ctx.set(pins.rx_clk.i, 0)            # falling edge mid-nibble
            await ctx.delay(q)

    async def mac(ctx):
        while True:
            _, _, d, en, er = await ctx.tick("rx").sample(dut.gmii.data, dut.gmii.en,
                                                          dut.gmii.er)
            got.append((d, en, er))

    sim = Simulator(m)
    sim.add_testbench(phy)
    sim.add_process(mac)
    sim.run()
    # IDDR output register, then the decoder register: the octet whose rising-edge nibble came
    # with edge k is on `gmii` after edge k+2, i.e. what edge k+3 samples (got[k+3]).
    assert got[3:3 + len(cycles)] == cycles


@pytest.mark.parametrize("clk_domain", ["tx", "tx90"])
def test_rgmii_tx_gmii_to_pins(clk_domain):
    pins = SimpleNamespace(tx_clk=io.SimulationPort("o", 1, name="tx_clk"),
                           tx_ctl=io.SimulationPort("o", 1, name="tx_ctl"),
                           tx_data=io.SimulationPort("o", 4, name="tx_data"))
    dut = RgmiiTx(pins, clk_domain=clk_domain, ddr_buffer=SimDDRBuffer)
    rng = random.Random(5)
    cycles = _random_cycles(rng, 300)
    got, clk_samples = [], []

    async def bench(ctx):
        for d, en, er in [*cycles, *[(0, 0, 0)] * 4]:
            ctx.set(dut.gmii.data, d)
            ctx.set(dut.gmii.en, en)
            ctx.set(dut.gmii.er, er)
            await ctx.tick("tx")
            # First half of the cycle carries the rising-edge nibble, second half the falling.
            await ctx.delay(PERIOD / 8)
            clk_early = ctx.get(pins.tx_clk.o)
            await ctx.delay(PERIOD / 4)
            lo, c0, clk_mid_hi = ctx.get(pins.tx_data.o), ctx.get(pins.tx_ctl.o), \
                ctx.get(pins.tx_clk.o)
            await ctx.delay(PERIOD / 2)
            hi, c1, clk_mid_lo = ctx.get(pins.tx_data.o), ctx.get(pins.tx_ctl.o), \
                ctx.get(pins.tx_clk.o)
            got.append((lo | hi << 4, c0, c0 ^ c1))
            clk_samples.append((clk_early, clk_mid_hi, clk_mid_lo))

    sim = Simulator(dut)
    # (`phase` is the time of the first rising edge.)
    sim.add_clock(PERIOD, phase=PERIOD / 2, domain="tx")
    if clk_domain == "tx90":
        sim.add_clock(PERIOD, phase=PERIOD / 2 + PERIOD / 4, domain="tx90")
    sim.add_testbench(bench)
    sim.run()
    # GMII taken by the encoder at edge k, by the ODDR model at edge k+1, on the wire after it
    # (what the bench reads in iteration k+1).
    assert got[1:1 + len(cycles)] == cycles
    # TX_CLK: high in the first half (edge-aligned) or from a quarter period on (90 degrees).
    early = 0 if clk_domain == "tx90" else 1
    assert all(s == (early, 1, 0) for s in clk_samples[3:])


def test_rx_delay_taps_range():
    assert delay_taps(0) == 0
    assert delay_taps(2.0) == 80
    with pytest.raises(ValueError, match="DELAYG"):
        delay_taps(4.0)
    with pytest.raises(ValueError):
        RgmiiRx(SimpleNamespace(), rx_delay_taps=200)
    with pytest.raises(ValueError, match="clk_domain"):
        RgmiiTx(SimpleNamespace(), clk_domain="rx")

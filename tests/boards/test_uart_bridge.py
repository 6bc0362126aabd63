"""UART register bridge in amaranth.sim, driven by a bit-level UART model on its serial lines."""

import random

import pytest
from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In
from amaranth.sim import Simulator

from crossnic.gateware.csr import CsrSignature
from crossnic.gateware.uart_bridge import UartCsrBridge, UartRx, UartTx

DIVISOR = 8
TIMEOUT = 40 * DIVISOR


class RegFile(wiring.Component):
    """16 writable words at addresses 0..15 behind a CSR bus; everything else reads 0."""

    def __init__(self, addr_width: int = 16):
        super().__init__({"csr": In(CsrSignature(addr_width))})

    def elaborate(self, platform):
        m = Module()
        regs = Array(Signal(32, name=f"r{k}", init=0x1000 + k) for k in range(16))
        with m.If(self.csr.r_stb):
            m.d.sync += self.csr.r_data.eq(Mux(self.csr.addr < 16, regs[self.csr.addr[:4]], 0))
        with m.If(self.csr.w_stb & (self.csr.addr < 16)):
            m.d.sync += regs[self.csr.addr[:4]].eq(self.csr.w_data)
        return m


def _top(addr_width: int = 16):
    m = Module()
    m.submodules.bridge = bridge = UartCsrBridge(addr_width, DIVISOR, TIMEOUT)
    m.submodules.regs = regs = RegFile(addr_width)
    wiring.connect(m, bridge.csr, regs.csr)
    return m, bridge


async def uart_send(ctx, line, byte: int, *, stop: int = 1, divisor: int = DIVISOR):
    for bit in [0, *((byte >> k) & 1 for k in range(8)), stop]:
        ctx.set(line, bit)
        await ctx.tick().repeat(divisor)
    ctx.set(line, 1)


def uart_monitor(line, out: list, divisor: int = DIVISOR):
    """Background testbench decoding 8N1 bytes from ``line`` into ``out`` (bad stop bit: None)."""
    async def monitor(ctx):
        while True:
            await ctx.tick()
            if ctx.get(line):
                continue
            await ctx.tick().repeat(divisor // 2)      # middle of the start bit
            assert ctx.get(line) == 0, "glitch instead of a start bit"
            byte = 0
            for k in range(8):
                await ctx.tick().repeat(divisor)
                byte |= ctx.get(line) << k
            await ctx.tick().repeat(divisor)
            out.append(byte if ctx.get(line) == 1 else None)
    return monitor


async def wait_bytes(ctx, got: list, n: int, limit: int = 200 * DIVISOR * 10):
    for _ in range(limit):
        if len(got) >= n:
            return
        await ctx.tick()
    raise TimeoutError(f"expected {n} bytes, got {got}")


def _run(bench, addr_width: int = 16):
    m, bridge = _top(addr_width)
    got = []
    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(uart_monitor(bridge.tx, got), background=True)

    async def testbench(ctx):
        await bench(ctx, bridge, got)

    sim.add_testbench(testbench)
    sim.run()
    return got


async def _read(ctx, bridge, got, addr):
    start = len(got)
    for b in (ord("r"), addr >> 8, addr & 0xFF):
        await uart_send(ctx, bridge.rx, b)
    await wait_bytes(ctx, got, start + 4)
    return int.from_bytes(bytes(got[start:start + 4]), "little")


async def _write(ctx, bridge, got, addr, value):
    start = len(got)
    for b in (ord("w"), addr >> 8, addr & 0xFF, *value.to_bytes(4, "little")):
        await uart_send(ctx, bridge.rx, b)
    await wait_bytes(ctx, got, start + 1)
    return got[start]


def test_read_write_roundtrip():
    rng = random.Random(7)
    values = {a: rng.getrandbits(32) for a in rng.sample(range(16), 6)}
    seen = {}

    async def bench(ctx, bridge, got):
        assert await _read(ctx, bridge, got, 5) == 0x1005          # initial value
        for a, v in values.items():
            assert await _write(ctx, bridge, got, a, v) == ord("k")
        for a in values:
            seen[a] = await _read(ctx, bridge, got, a)
        # The high address byte counts: 0x0105 is not register 5, and reads as zero.
        seen[0x105] = await _read(ctx, bridge, got, 0x105)

    _run(bench)
    assert {a: seen[a] for a in values} == values
    assert seen[0x105] == 0


def test_addresses_beyond_a_narrow_bus_do_not_alias():
    """On an 8-bit bus, 0x0105 must not reach register 5: it reads zero and ignores writes."""
    seen = {}

    async def bench(ctx, bridge, got):
        assert await _write(ctx, bridge, got, 0x105, 0xDEADBEEF) == ord("k")
        seen["far"] = await _read(ctx, bridge, got, 0x105)
        seen["near"] = await _read(ctx, bridge, got, 5)

    _run(bench, addr_width=8)
    assert seen == {"far": 0, "near": 0x1005}


def test_unknown_command_gets_question_mark():
    async def bench(ctx, bridge, got):
        await uart_send(ctx, bridge.rx, ord("x"))
        await wait_bytes(ctx, got, 1)
        assert got == [ord("?")]
        assert await _read(ctx, bridge, got, 1) == 0x1001

    _run(bench)


def test_half_command_times_out_and_bridge_recovers():
    async def bench(ctx, bridge, got):
        await uart_send(ctx, bridge.rx, ord("w"))
        await uart_send(ctx, bridge.rx, 0)
        await uart_send(ctx, bridge.rx, 3)
        await uart_send(ctx, bridge.rx, 0xAA)     # then the host goes away
        await ctx.tick().repeat(TIMEOUT + 10)
        assert ctx.get(bridge.timeouts) == 1
        assert got == []                          # no reply to an abandoned command
        assert await _read(ctx, bridge, got, 3) == 0x1003   # the write never happened

    _run(bench)


def test_bad_stop_bit_is_dropped_and_counted():
    async def bench(ctx, bridge, got):
        await uart_send(ctx, bridge.rx, ord("r"), stop=0)
        await ctx.tick().repeat(3 * DIVISOR)
        assert ctx.get(bridge.framing_errors) == 1
        assert got == []
        assert await _read(ctx, bridge, got, 2) == 0x1002

    _run(bench)


def test_uart_rx_tx_loop_all_bytes():
    """UartTx -> UartRx back to back carries every byte value unchanged."""
    m = Module()
    m.submodules.tx = tx = UartTx(DIVISOR)
    m.submodules.rx = rx = UartRx(DIVISOR)
    m.d.comb += rx.rx.eq(tx.tx)
    got = []

    async def send(ctx):
        for b in range(256):
            ctx.set(tx.i.payload, b)
            ctx.set(tx.i.valid, 1)
            await ctx.tick().until(tx.i.ready)
            ctx.set(tx.i.valid, 0)
        await ctx.tick().repeat(12 * DIVISOR)

    async def recv(ctx):
        while True:
            _, _, valid, byte = await ctx.tick().sample(rx.o.valid, rx.o.payload)
            if valid:
                got.append(byte)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(send)
    sim.add_process(recv)
    sim.run()
    assert got == list(range(256))


def test_bad_parameters():
    with pytest.raises(ValueError):
        UartRx(2)
    with pytest.raises(ValueError):
        UartCsrBridge(17, DIVISOR, TIMEOUT)
    with pytest.raises(ValueError):
        UartCsrBridge(16, DIVISOR, DIVISOR)

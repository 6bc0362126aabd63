"""Host client against the real bridge gateware: UartRegisters talks to a simulated board's
register path (UartCsrBridge -> CsrDecoder -> BoardInfo + CounterBank) through a fake serial port
that advances amaranth.sim until the board answers."""

from collections import deque

import pytest
from amaranth import *
from amaranth.lib import wiring
from amaranth.sim import Simulator

from crossnic.boards.top import BOARD_ID, BoardInfo
from crossnic.boards.uart_client import BridgeError, UartRegisters, read_counters
from crossnic.gateware.csr import Counter, CounterBank
from crossnic.gateware.csr_decoder import CsrDecoder
from crossnic.gateware.regmap import Block, RegisterMap
from crossnic.gateware.uart_bridge import UartCsrBridge
from crossnic.host.registers import RegisterAccessError, Registers

DIVISOR = 8


class SimSerial:
    """A byte stream whose other end is the simulated board's UART."""

    def __init__(self, sim: Simulator, rx_line, tx_line):
        self.to_board: deque[int] = deque()
        self.from_board: deque[int] = deque()
        self._sim = sim

        async def drive(ctx):             # host -> board, 8N1
            while True:
                if not self.to_board:
                    await ctx.tick()
                    continue
                byte = self.to_board.popleft()
                for bit in [0, *((byte >> k) & 1 for k in range(8)), 1]:
                    ctx.set(rx_line, bit)
                    await ctx.tick().repeat(DIVISOR)

        async def listen(ctx):            # board -> host
            while True:
                await ctx.tick()
                if ctx.get(tx_line):
                    continue
                await ctx.tick().repeat(DIVISOR // 2)
                byte = 0
                for k in range(8):
                    await ctx.tick().repeat(DIVISOR)
                    byte |= ctx.get(tx_line) << k
                await ctx.tick().repeat(DIVISOR)
                self.from_board.append(byte)

        sim.add_testbench(drive, background=True)
        sim.add_testbench(listen, background=True)

    def write(self, data: bytes) -> int:
        self.to_board.extend(data)
        return len(data)

    def read(self, n: int) -> bytes:
        # Run the board for up to ~3 byte times; an empty result is a timeout read.
        for _ in range(30 * DIVISOR):
            if len(self.from_board) >= n:
                break
            self._sim.advance()
        return bytes(self.from_board.popleft() for _ in range(min(n, len(self.from_board))))

    def close(self):
        pass


COUNTERS = [Counter("frames", "frames seen"), Counter("errors", "errors", width=32)]
#: The register map of the simulated board below (block_bits=3, as its decoder).
REGMAP = RegisterMap("test board", [BoardInfo.describe(0x7D0102),
                                    Block.from_counters("counters", "test counters", COUNTERS)],
                     block_bits=3)


@pytest.fixture
def board():
    m = Module()
    m.submodules.info = info = BoardInfo(config=0x7D0102)
    m.submodules.counters = counters = CounterBank(COUNTERS)
    m.submodules.dec = dec = CsrDecoder([len(info.csr.addr), len(counters.csr.addr)], 3)
    m.submodules.bridge = bridge = UartCsrBridge(4, DIVISOR, 100 * DIVISOR,
                                                 read_latency=dec.read_latency)
    wiring.connect(m, bridge.csr, dec.bus)
    wiring.connect(m, dec.block(0), info.csr)
    wiring.connect(m, dec.block(1), counters.csr)
    tick = Signal(8)
    m.d.sync += tick.eq(tick + 1)
    m.d.comb += [counters.inc.frames.eq(1), counters.inc.errors.eq(tick == 0)]
    sim = Simulator(m)
    sim.add_clock(1e-8)
    port = SimSerial(sim, bridge.rx, bridge.tx)
    return UartRegisters(port, timeout=0.5), REGMAP.to_json()


def test_identify_and_scratch(board):
    regs, _ = board
    assert regs.read(0) == BOARD_ID
    assert regs.read(1) == 0x7D0102
    regs.write(3, 0x12345678)
    assert regs.read(3) == 0x12345678


def test_counters_snapshot_and_clear(board):
    regs, regmap = board
    first = read_counters(regs, regmap)
    assert first["board.id"] == BOARD_ID
    later = read_counters(regs, regmap)
    assert later["counters.frames"] > first["counters.frames"] > 0   # counts every clock
    regs.write(8, 0)                                                   # clear "frames"
    assert read_counters(regs, regmap)["counters.frames"] < later["counters.frames"]


def test_named_registers_over_the_bridge(board):
    """crossnic.host.registers through the real bridge, decoder and blocks."""
    uart, _ = board
    regs = Registers(REGMAP, uart.read, uart.write)
    assert regs.read("board.id") == BOARD_ID
    assert regs.read_field("board.config", "core_mhz") == 0x7D
    assert regs.read_field("board.config", "ports") == 2
    regs.write("board.scratch", 0xCAFE0001)
    regs.write_field("board.scratch", "value", 0x1234)
    assert regs.read("board.scratch") == 0x1234
    first = regs.read("counters.frames")                 # 64-bit, low word first
    assert first > 0 and regs.read("counters.frames") > first
    regs.clear("counters.frames")
    assert regs.read("counters.frames") < first
    assert set(regs.counters("counters")) == {"frames", "errors"}
    for bad, match in [(lambda: regs.write("board.id", 1), "read-only"),
                       (lambda: regs.write("board.nope", 1), "no register"),
                       (lambda: regs.write_field("board.config", "ports", 1), "not rw"),
                       (lambda: regs.read_field("board.config", "speed"), "no field"),
                       (lambda: regs.clear("board.scratch"), "not a clearable counter"),
                       (lambda: regs.counters("nowhere"), "no block")]:
        with pytest.raises(RegisterAccessError, match=match):
            bad()
    assert regs.read("board.scratch") == 0x1234          # refused requests changed nothing


def test_client_argument_checks():
    regs = UartRegisters(_Silent(), timeout=0.01)
    with pytest.raises(ValueError):
        regs.read(1 << 16)
    with pytest.raises(ValueError):
        regs.write(0, 1 << 32)


class _Silent:
    def write(self, data):
        return len(data)

    def read(self, n):
        return b""


class _Confused(_Silent):
    def read(self, n):
        return b"?"


def test_no_or_wrong_reply_is_an_error():
    with pytest.raises(BridgeError, match="expected 4 bytes"):
        UartRegisters(_Silent(), timeout=0.01).read(0)
    with pytest.raises(BridgeError, match="not understood"):
        UartRegisters(_Confused(), timeout=0.01).write(0, 1)

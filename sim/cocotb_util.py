"""Helpers for cocotb testbenches of Amaranth designs (run inside the simulator process).

Amaranth's Verilog backend names ports by path joined with ``__`` (``i__payload``,
``i__valid``) and packs Struct payloads first-field-lowest; these helpers take names and bit
offsets from the layout instead of hard-coding them.
"""

import json
import os
from collections.abc import Iterable

import cocotb
from amaranth.lib import data
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

__all__ = [
    "params", "pack", "unpack", "start_clock", "reset", "csr_read", "csr_counters", "csr_write",
    "StreamSource", "StreamSink",
]


def params() -> dict:
    """The ``params`` the pytest side passed to :func:`crossnic.sim.harness.simulate`."""
    return json.loads(os.environ.get("CROSSNIC_PARAMS", "{}"))


def _fields(layout: data.Layout):
    for name, fld in layout:
        yield name, fld.offset, fld.width


def pack(layout: data.Layout, **values: int) -> int:
    """Pack field values into the integer a Verilog port of ``layout`` carries."""
    known = {name: (offset, width) for name, offset, width in _fields(layout)}
    word = 0
    for name, value in values.items():
        offset, width = known[name]
        word |= (int(value) & ((1 << width) - 1)) << offset
    return word


def unpack(layout: data.Layout, word: int) -> dict[str, int]:
    """Split a packed Verilog value into a ``{field: int}`` dict."""
    word = int(word)
    return {name: (word >> offset) & ((1 << width) - 1) for name, offset, width in _fields(layout)}


def start_clock(signal, period_ns: float) -> None:
    cocotb.start_soon(Clock(signal, period_ns, unit="ns").start())


async def reset(clk, rst, cycles: int = 4) -> None:
    rst.value = 1
    for _ in range(cycles):
        await RisingEdge(clk)
    rst.value = 0
    await RisingEdge(clk)


async def csr_read(dut, addr: int, *, latency: int = 2) -> int:
    """Read a word over the design's ``csr`` port (:class:`~crossnic.gateware.csr.CsrSignature`,
    clocked by ``dut.clk``): strobe for one clock, hold the address, wait ``latency`` clocks
    (2 is :attr:`CounterBank.read_latency <crossnic.gateware.csr.CounterBank.read_latency>`)."""
    dut.csr__addr.value = addr
    dut.csr__r_stb.value = 1
    await RisingEdge(dut.clk)
    dut.csr__r_stb.value = 0
    for _ in range(latency):
        await RisingEdge(dut.clk)
    return int(dut.csr__r_data.value)


async def csr_counters(dut, registers, *, latency: int = 2) -> dict[str, int]:
    """Every counter of ``registers`` (:class:`~crossnic.gateware.csr.CounterRegister`: name,
    addr, part) by name, wide ones combined. Words are read in the order given, which puts each
    low word before its high word (reading it latches the high word)."""
    out: dict[str, int] = {}
    for reg in registers:
        word = await csr_read(dut, reg.addr, latency=latency)
        out[reg.name] = out.get(reg.name, 0) | word << (32 if reg.part == "hi" else 0)
    return out


async def csr_write(dut, addr: int, value: int) -> None:
    """Write a word over the design's ``csr`` port (one strobe clock)."""
    dut.csr__addr.value = addr
    dut.csr__w_data.value = value
    dut.csr__w_stb.value = 1
    await RisingEdge(dut.clk)
    dut.csr__w_stb.value = 0


class StreamSource:
    """Drives an Amaranth ``stream.Signature`` port (``<prefix>__payload/valid/ready``)."""

    def __init__(self, dut, prefix: str, layout: data.Layout, clk):
        self.payload = getattr(dut, f"{prefix}__payload")
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready", None)
        self.layout = layout
        self.clk = clk
        self.valid.value = 0

    async def send(self, **fields: int) -> None:
        """Offer one transfer and return once the sink has taken it."""
        self.payload.value = pack(self.layout, **fields)
        self.valid.value = 1
        while True:
            await RisingEdge(self.clk)
            if self.ready is None or self.ready.value:
                break
        self.valid.value = 0

    async def send_frame(self, frame: bytes, width: int, *, error: bool = False,
                         gaps: Iterable[int] = ()) -> None:
        """Send ``frame`` as packet-stream beats ``width`` bytes wide."""
        gaps = list(gaps)
        beats = [frame[i:i + width] for i in range(0, len(frame), width)] or [b""]
        for n, chunk in enumerate(beats):
            last = n == len(beats) - 1
            await self.send(data=int.from_bytes(chunk, "little"),
                            keep=(1 << len(chunk)) - 1, first=n == 0, last=last,
                            error=int(error and last))
            if n < len(gaps):
                for _ in range(gaps[n]):
                    await RisingEdge(self.clk)


class StreamSink:
    """Takes transfers from an Amaranth stream port; ``ready`` may be throttled."""

    def __init__(self, dut, prefix: str, layout: data.Layout, clk):
        self.payload = getattr(dut, f"{prefix}__payload")
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready", None)
        self.layout = layout
        self.clk = clk
        if self.ready is not None:
            self.ready.value = 0

    async def recv(self, *, ready_pattern=None, timeout_cycles: int = 100_000) -> dict[str, int]:
        """Wait for one transfer and return its fields.

        Values read right after a rising edge are the ones the edge sampled, as cocotbext-axi
        relies on too; ``ready`` written then applies to the next edge.
        """
        for cycle in range(timeout_cycles):
            if self.ready is not None:
                self.ready.value = 1 if ready_pattern is None else int(ready_pattern(cycle))
            await RisingEdge(self.clk)
            if self.valid.value and (self.ready is None or self.ready.value):
                if self.ready is not None:
                    self.ready.value = 0
                return unpack(self.layout, self.payload.value)
        raise TimeoutError(f"no transfer within {timeout_cycles} cycles")

    async def recv_frame(self, *, ready_pattern=None, timeout_cycles: int = 100_000
                         ) -> tuple[bytes, int]:
        """Collect one packet-stream frame; returns ``(bytes, error)``."""
        width = self.layout["keep"].width
        out = bytearray()
        while True:
            beat = await self.recv(ready_pattern=ready_pattern, timeout_cycles=timeout_cycles)
            raw = beat["data"].to_bytes(width, "little")
            out += bytes(raw[i] for i in range(width) if beat["keep"] >> i & 1)
            if beat["last"]:
                return bytes(out), beat["error"]

"""cocotb side of ``crossnic sim``: replay frames on GMII, collect what the card delivers.

Run by :mod:`crossnic.sim.replay` through the harness; talks to it through files named in
``params()``: ``frames`` (input, length-prefixed), ``delivered`` (output, length-prefixed) and
``results`` (JSON).
"""

import json
import struct
import time
from pathlib import Path

import cocotb
from cocotb.triggers import RisingEdge, Timer
from cocotb.utils import get_sim_time
from cocotbext.eth import GmiiFrame, GmiiSource

from crossnic.gateware.csr import CounterRegister
from crossnic.gateware.layouts import FrameMetadata
from crossnic.gateware.packet import packet_layout
from crossnic.gateware.rx_port import RxPort
from crossnic.sim.cocotb_util import StreamSink, csr_counters, params, start_clock

RX_PERIOD_NS = 8.0      # 125 MHz from the PHY
CORE_PERIOD_NS = 7.99   # the card's own 125 MHz oscillator: close, never equal


def read_frames(path: Path) -> list[bytes]:
    blob, frames, pos = path.read_bytes(), [], 0
    while pos < len(blob):
        (n,) = struct.unpack_from("<I", blob, pos)
        frames.append(blob[pos + 4:pos + 4 + n])
        pos += 4 + n
    return frames


def write_frames(path: Path, frames: list[bytes]) -> None:
    path.write_bytes(b"".join(struct.pack("<I", len(f)) + f for f in frames))


class Csr:
    def __init__(self, dut):
        self.dut = dut
        dut.csr__r_stb.value = 0
        dut.csr__w_stb.value = 0

    async def counters(self, registers: list[dict]) -> dict[str, int]:
        """Read every counter; the low word first, so the high word is latched with it."""
        return await csr_counters(self.dut, [CounterRegister(doc="", **r) for r in registers],
                                  latency=RxPort.read_latency)


@cocotb.test()
async def replay(dut):
    p = params()
    frames = read_frames(Path(p["frames"]))
    width = p["width"]
    start_clock(dut.rx_clk, RX_PERIOD_NS)
    start_clock(dut.clk, CORE_PERIOD_NS)
    dut.gmii__en.value = 0
    dut.gmii__er.value = 0
    dut.max_length.value = p["max_length"]
    dut.mii_select.value = 0
    dut.rst.value = 1
    dut.rx_rst.value = 1
    await Timer(50, unit="ns")
    dut.rst.value = 0
    dut.rx_rst.value = 0
    for _ in range(4):
        await RisingEdge(dut.clk)

    source = GmiiSource(dut.gmii__data, dut.gmii__er, dut.gmii__en, dut.rx_clk, dut.rx_rst,
                        reset_active_level=True)
    csr = Csr(dut)
    registers = p["registers"]
    accounting = p["accounting"]       # counters that count each frame exactly once

    delivered: list[tuple[float, bytes]] = []
    metas: list[int] = []
    o_sink = StreamSink(dut, "o", packet_layout(width), dut.clk)
    meta_sink = StreamSink(dut, "meta", FrameMetadata.as_shape(), dut.clk)

    async def collect_frames():
        while True:
            data, _ = await o_sink.recv_frame(timeout_cycles=10**12)
            delivered.append((get_sim_time("ns"), data))

    async def collect_meta():
        while True:
            beat = await meta_sink.recv(timeout_cycles=10**12)
            metas.append(_pack_meta(beat))

    cocotb.start_soon(collect_frames())
    cocotb.start_soon(collect_meta())

    def wire(frame: bytes) -> GmiiFrame:
        if p["fcs"] == "present":
            return GmiiFrame.from_raw_payload(frame)
        return GmiiFrame.from_payload(frame, min_len=0)

    outcomes: list[str] = []
    start_ns = get_sim_time("ns")
    start_wall = time.monotonic()
    if p["line_rate"]:
        for frame in frames:
            await source.send(wire(frame))
        await source.wait()
        total = len(frames)
        before = {k: 0 for k in accounting}
        after = await _settle(dut, csr, registers, accounting, before, total)
        await _drain(dut, delivered, metas, after["frames_ok"])
        outcomes = ["line-rate"] * len(frames)
    else:
        before = await csr.counters(registers)
        for frame in frames:
            await source.send(wire(frame))
            await source.wait()
            after = await _settle(dut, csr, registers, accounting, before, 1)
            changed = [k for k in accounting if after[k] != before[k]]
            outcomes.append(changed[0] if len(changed) == 1 else "+".join(changed))
            await _drain(dut, delivered, metas, after["frames_ok"])
            before = after
    end_ns = get_sim_time("ns")
    wall = time.monotonic() - start_wall
    counters = await csr.counters(registers)

    write_frames(Path(p["delivered"]), [f for _, f in delivered])
    Path(p["results"]).write_text(json.dumps({
        "outcomes": outcomes,
        "delivered_ns": [t for t, _ in delivered],
        "metadata": metas,
        "counters": counters,
        "sim_ns": end_ns - start_ns,
        "sim_wall_seconds": wall,
    }))
    assert len(metas) == len(delivered), "one metadata record per delivered frame"


def _pack_meta(beat: dict) -> int:
    word = 0
    for name, fld in FrameMetadata.as_shape():
        word |= beat[name] << fld.offset
    return word


async def _settle(dut, csr, registers, accounting, before, expected: int,
                  limit_cycles: int = 200_000) -> dict[str, int]:
    """Poll the counters until ``expected`` more frames are accounted for."""
    base = sum(before[k] for k in accounting)
    for _ in range(limit_cycles // 64):
        now = await csr.counters(registers)
        if sum(now[k] for k in accounting) - base >= expected:
            return now
        for _ in range(32):
            await RisingEdge(dut.clk)
    raise TimeoutError(f"frames not accounted for after {limit_cycles} cycles: {now}")


async def _drain(dut, delivered, metas, count: int, limit_cycles: int = 100_000) -> None:
    """Wait until ``count`` frames and their metadata have come out."""
    for _ in range(limit_cycles):
        if len(delivered) >= count and len(metas) >= count:
            return
        await RisingEdge(dut.clk)
    raise TimeoutError(f"{count} frames expected, {len(delivered)} delivered, {len(metas)} meta")

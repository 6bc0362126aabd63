"""HeaderParser: Verilator runs at 4 and 8 bytes per beat (testbench ``tb_header_parser.py``),
amaranth.sim runs at 1 and 2 bytes per beat, each compared field by field with the reference
parser."""

import random

import pytest
from amaranth.sim import Simulator
from streams import recv_frame, send_frame

from crossnic.gateware.header_parser import HeaderParser
from crossnic.sim.model.parser import diff, from_gateware, parse
from crossnic.sim.parser_corpus import malformed_corpus, random_frames

VERILATOR_CASES = ["random_traffic", "malformed_headers", "full_rate", "coupled_consumers"]


@pytest.mark.parametrize("testcase", VERILATOR_CASES)
@pytest.mark.parametrize("width", [4, 8])
def test_header_parser_verilator(run_cocotb, width, testcase):
    run_cocotb(HeaderParser(width), "tb_header_parser", testcase=testcase,
               params={"width": width, "seed": width, "count": 300})


def _simulate(width: int, frames: list[bytes], *, idle=0.2, stall=0.2, seed=0):
    """Run frames through HeaderParser in amaranth.sim; returns (o frames, packed records)."""
    dut = HeaderParser(width)
    rng = random.Random(seed)
    got, metas = [], []

    async def produce(ctx):
        for frame in frames:
            await send_frame(ctx, dut.i, frame, width, idle=idle, rng=rng)

    async def consume(ctx):
        for _ in frames:
            got.append((await recv_frame(ctx, dut.o, width, stall=stall, rng=rng))[0])

    async def consume_meta(ctx):
        while len(metas) < len(frames):
            ready = rng.random() >= stall
            ctx.set(dut.meta.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.meta.valid, dut.meta.payload)
            if valid and ready:
                metas.append(payload.as_value().value)
        ctx.set(dut.meta.ready, 0)

    sim = Simulator(dut)
    sim.add_clock(8e-9)
    sim.add_testbench(produce)
    sim.add_testbench(consume)
    sim.add_testbench(consume_meta)
    sim.run()
    return got, metas


@pytest.mark.parametrize("width", [1, 2])
def test_header_parser_narrow(width):
    """Narrow datapaths: a sample of the malformed corpus plus random frames."""
    corpus = [f for n, (name, f) in enumerate(malformed_corpus())
              if n % 3 == width % 3 or name.startswith("stale")]
    frames = corpus + [f for f in random_frames(20 + width, 40) if len(f) <= 200]
    got, metas = _simulate(width, frames, seed=width)
    assert got == frames
    bad = {n: d for n, (frame, packed) in enumerate(zip(frames, metas, strict=True))
           if (d := diff(parse(frame), from_gateware(packed)))}
    assert not bad, f"{len(bad)} records differ, e.g. {list(bad.items())[:3]}"


def test_header_parser_rejects_other_widths():
    for width in (0, 3, 16):
        with pytest.raises(ValueError, match="width"):
            HeaderParser(width)

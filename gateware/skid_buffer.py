# Ref: amaranth stdlib/stream.rst (data transfer rules)
"""A register slice for any stream: cuts every combinational path through it at full rate."""

from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer"]


class SkidBuffer(wiring.Component):
    """Registers a stream in both directions (payload/valid forward, ready backward).

    One clock of latency and no bubbles: a second register catches the beat that arrives in the
    cycle the output stalls. Used where a slow source (a block RAM's clock-to-output, a long
    route across the chip) would otherwise share a cycle with the logic behind it.

    Parameters
    ----------
    shape : shape-castable
        Payload shape of the stream, e.g. ``packet_layout(4)``.
    """

    def __init__(self, shape):
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
        })

    def elaborate(self, platform):
        m = Module()
        skid = Signal.like(self.i.payload)
        skid_valid = Signal()
        m.d.comb += self.i.ready.eq(~skid_valid)
        with m.If(~self.o.valid | self.o.ready):
            with m.If(skid_valid):
                m.d.sync += [self.o.payload.eq(skid), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & ~skid_valid):
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m

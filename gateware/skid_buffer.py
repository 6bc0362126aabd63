# Ref: amaranth stdlib/stream.rst (data transfer rules)
"""A register slice for any stream: cuts every combinational path through it at full rate."""

from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer"]


class SkidBuffer(wiring.Component):
    """A two-entry register FIFO between two halves of a stream.

    One clock of latency, no bubbles, and no combinational path from ``i`` to ``o`` or from
    ``o.ready`` to ``i.ready``. Each entry loads straight from ``i.payload`` with a clock enable
    (no multiplexer in front of the registers), so a slow source such as a block RAM's
    clock-to-output has the whole cycle; the choice between the two entries is made after them.

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
        entries = [Signal.like(self.i.payload, name=f"entry{n}") for n in range(2)]
        full = Signal(2)
        wr = Signal()       # entry the next input beat goes to
        rd = Signal()       # entry the output shows
        m.d.comb += [
            self.i.ready.eq(~full.bit_select(wr, 1)),
            self.o.valid.eq(full.bit_select(rd, 1)),
            self.o.payload.eq(Mux(rd, entries[1], entries[0])),
        ]
        # An empty entry loads the input every clock, valid or not (nobody looks at it until
        # it is marked full): its clock enable then comes from registers alone, not from the
        # source's `valid` logic, which may be long and must not drive a wide enable net.
        for n, entry in enumerate(entries):
            with m.If((wr == n) & ~full[n]):
                m.d.sync += entry.eq(self.i.payload)
        with m.If(self.i.valid & self.i.ready):
            for n in range(2):
                with m.If(wr == n):
                    m.d.sync += full[n].eq(1)
            m.d.sync += wr.eq(~wr)
        with m.If(self.o.valid & self.o.ready):
            for n in range(2):
                with m.If(rd == n):
                    m.d.sync += full[n].eq(0)
            m.d.sync += rd.eq(~rd)
        return m

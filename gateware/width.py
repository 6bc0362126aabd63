"""Width converters for the packet stream, e.g. the 8-bit MAC side to the 32-bit core datapath.

Both directions keep one frame per ``first``..``last`` run, carry ``error`` on the last beat
and take one input beat per clock, so neither slows a 1 Gb/s port.
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .packet import PacketSignature

__all__ = ["StreamNarrower", "StreamWidener"]


def _check(narrow: int, wide: int):
    if narrow < 1 or wide % narrow or wide < narrow:
        raise ValueError(f"width {wide} must be a multiple of width {narrow}")


class StreamWidener(wiring.Component):
    """Packs ``in_width``-byte beats into ``out_width``-byte beats.

    A frame's last output beat may be partial; ``keep`` marks its valid low bytes. Input beats
    other than a frame's last must have a full ``keep`` (as every packet stream guarantees).
    """

    def __init__(self, in_width: int, out_width: int):
        _check(in_width, out_width)
        self._in_width, self._out_width = in_width, out_width
        super().__init__({
            "i": In(PacketSignature(in_width)),
            "o": Out(PacketSignature(out_width)),
        })

    def elaborate(self, platform):
        m = Module()
        ratio = self._out_width // self._in_width
        bits = 8 * self._in_width

        acc_data = Signal(8 * self._out_width)
        acc_keep = Signal(self._out_width)
        acc_first = Signal()
        index = Signal(range(ratio))

        # One output register; it is free when empty or being taken this cycle.
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        with m.If(self.i.valid & self.i.ready):
            data = Signal.like(acc_data)
            keep = Signal.like(acc_keep)
            first = Signal()
            m.d.comb += [data.eq(acc_data), keep.eq(acc_keep), first.eq(acc_first)]
            with m.Switch(index):
                for n in range(ratio):
                    with m.Case(n):
                        m.d.comb += [
                            data[n * bits:(n + 1) * bits].eq(self.i.p.data),
                            keep[n * self._in_width:(n + 1) * self._in_width].eq(self.i.p.keep),
                        ]
                        if n == 0:
                            m.d.comb += first.eq(self.i.p.first)
            with m.If(self.i.p.last | (index == ratio - 1)):
                m.d.sync += [
                    self.o.valid.eq(1),
                    self.o.p.data.eq(data),
                    self.o.p.keep.eq(keep),
                    self.o.p.first.eq(first),
                    self.o.p.last.eq(self.i.p.last),
                    self.o.p.error.eq(self.i.p.error & self.i.p.last),
                    acc_data.eq(0),
                    acc_keep.eq(0),
                    acc_first.eq(0),
                    index.eq(0),
                ]
            with m.Else():
                m.d.sync += [
                    acc_data.eq(data),
                    acc_keep.eq(keep),
                    acc_first.eq(first),
                    index.eq(index + 1),
                ]
        return m


class StreamNarrower(wiring.Component):
    """Splits ``in_width``-byte beats into ``out_width``-byte beats.

    Chunks of a frame's last beat that hold no valid byte are skipped, so the output frame ends
    exactly where the input frame's data does.
    """

    def __init__(self, in_width: int, out_width: int):
        _check(out_width, in_width)
        self._in_width, self._out_width = in_width, out_width
        super().__init__({
            "i": In(PacketSignature(in_width)),
            "o": Out(PacketSignature(out_width)),
        })

    def elaborate(self, platform):
        m = Module()
        ratio = self._in_width // self._out_width
        bits = 8 * self._out_width
        w = self._out_width

        index = Signal(range(ratio))
        chunk_data = Signal(bits)
        chunk_keep = Signal(w)
        next_keep = Signal(w)     # keep of the chunk after this one (0 past the end)
        with m.Switch(index):
            for n in range(ratio):
                with m.Case(n):
                    m.d.comb += [
                        chunk_data.eq(self.i.p.data[n * bits:(n + 1) * bits]),
                        chunk_keep.eq(self.i.p.keep[n * w:(n + 1) * w]),
                    ]
                    if n + 1 < ratio:
                        m.d.comb += next_keep.eq(self.i.p.keep[(n + 1) * w:(n + 2) * w])

        final = Signal()   # this chunk is the last one taken from the input beat
        m.d.comb += [
            final.eq((index == ratio - 1) | (self.i.p.last & (next_keep == 0))),
            self.o.valid.eq(self.i.valid),
            self.o.p.data.eq(chunk_data),
            self.o.p.keep.eq(chunk_keep),
            self.o.p.first.eq(self.i.p.first & (index == 0)),
            self.o.p.last.eq(self.i.p.last & final),
            self.o.p.error.eq(self.i.p.error & self.i.p.last & final),
            self.i.ready.eq(self.o.ready & final),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += index.eq(Mux(final, 0, index + 1))
        return m

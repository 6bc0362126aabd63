"""FrameMerger: whole frames from several sources into one stream, round robin.

The card has one header parser and one classifier for all its receive sources (the two ports
and the on-card hairpin from the transmit side): at 32 bits and 125 MHz one stream carries
4 Gb/s, twice what two 1 Gb/s ports bring. The merger takes a whole frame from one source
before it looks at the next (round robin among those with a frame waiting) and says, for each
frame, which source it came from on :attr:`source` (in frame order), so the port travels with
the frame's metadata to the classifier.

A frame is started only while ``room`` is high: the parent uses it to keep the frame queue
behind the parser from ever dropping a frame (a source waits instead; the ports' own receive
buffers absorb bursts and count what they cannot hold).
"""

from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .packet import PacketSignature

__all__ = ["FrameMerger"]


class FrameMerger(wiring.Component):
    """``sources`` packet streams in, one out.

    Parameters
    ----------
    sources : int
    width : int
        Bytes per beat.
    source_depth : int
        Frames whose source can be waiting to be taken from :attr:`source`.

    Attributes
    ----------
    i{k} : In(PacketSignature(width)), one per source
    o : Out(PacketSignature(width))
    source : Out(stream of range(sources)), one per frame on ``o``, in order, offered from the
        clock the frame's first beat is offered
    room : In(1), start a new frame only while high
    """

    def __init__(self, sources: int = 3, width: int = 4, source_depth: int = 32):
        if not 1 <= sources <= 4:
            raise ValueError(f"sources must be 1..4, not {sources}")
        self._sources = sources
        self._source_depth = source_depth
        members = {f"i{k}": In(PacketSignature(width)) for k in range(sources)}
        members["o"] = Out(PacketSignature(width))
        members["source"] = Out(stream.Signature(range(sources)))
        members["room"] = In(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        n = self._sources
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=max(1, (n - 1).bit_length()),
                                                    depth=self._source_depth)
        m.d.comb += [self.source.payload.eq(fifo.r_data), self.source.valid.eq(fifo.r_rdy),
                     fifo.r_en.eq(self.source.ready)]
        ins = [getattr(self, f"i{k}") for k in range(n)]
        busy = Signal()                       # a frame is being copied ...
        port = Signal(range(n))               # ... from this source
        last_port = Signal(range(n))          # round robin: who went last
        with m.Switch(port):
            for k in range(n):
                with m.Case(k):
                    m.d.comb += [self.o.payload.eq(ins[k].payload),
                                 self.o.valid.eq(busy & ins[k].valid),
                                 ins[k].ready.eq(busy & self.o.ready)]
        with m.If(self.o.valid & self.o.ready & self.o.payload.last):
            m.d.sync += busy.eq(0)

        # Choose the next source: the first with a frame waiting after the one that went last.
        # Its number enters the FIFO as the frame starts (the FIFO has room: checked here).
        start = Signal()
        choice = Signal(range(n))
        with m.If(~busy & self.room & fifo.w_rdy):
            for step in reversed(range(1, n + 1)):
                for last in range(n):
                    k = (last + step) % n
                    with m.If((last_port == last) & ins[k].valid):
                        m.d.comb += [start.eq(1), choice.eq(k)]
        with m.If(start):
            m.d.sync += [busy.eq(1), port.eq(choice), last_port.eq(choice)]
        m.d.comb += [fifo.w_en.eq(start), fifo.w_data.eq(choice)]
        return m

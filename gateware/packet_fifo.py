# Ref: IEEE 802.3-2022 clause 3.4 (invalid frames are discarded whole); amaranth stdlib/stream.rst
"""Store-and-forward packet queue: the reader only ever sees whole, good frames.

The writer never waits (a MAC cannot), so a frame that does not fit is dropped whole and
reported, and a frame whose last beat carries ``error`` is discarded by rolling the write pointer
back to the last committed frame. A frame bigger than the whole queue is simply dropped.
"""

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .packet import PacketSignature
from .skid_buffer import SkidBuffer

__all__ = ["PacketFifo"]


class PacketFifo(wiring.Component):
    """Packet queue of ``depth`` beats, each ``width`` bytes wide (sync domain).

    Parameters
    ----------
    width : int
        Bytes per beat of the packet stream.
    depth : int
        Beats of storage; a power of two.

    Attributes
    ----------
    i : In(PacketSignature(width))
        Always ready. A beat with ``first`` starts a new frame (an unfinished one before it is
        discarded); beats outside a frame are ignored.
    o : Out(PacketSignature(width))
        Committed frames, one beat per clock when ready; ``error`` is never set. Registered
        (payload, ``valid`` and ``ready``), so it can drive logic anywhere on the chip.
    commit : Out(1)
        Pulses with the last beat of a frame that was stored (it will appear on ``o``).
    overflow : Out(1)
        Pulses with the last beat of a frame without ``error`` that was dropped for lack of space.
        Frames with ``error`` are never reported here, whether or not they fitted.
    level : Out(range(depth + 1))
        Beats stored, including those of a frame still being written.
    full : Out(1)
        No room for a beat with the ``first`` flag now on ``i.p``; for writers that apply
        back-pressure (they never see a frame dropped). Derived from registers and ``i.p.first``
        only. Exact while the reader waits; while it reads, it may say full one clock early.
    """

    #: Beats of committed frames held outside the RAM when the reader stalls (the read register
    #: and the two registers of the skid buffer behind it).
    OUTPUT_BEATS = 3

    def __init__(self, width: int, depth: int):
        if depth < 2 or depth & (depth - 1):
            raise ValueError(f"PacketFifo depth must be a power of two >= 2, not {depth}")
        self._width = width
        self._depth = depth
        super().__init__({
            "i": In(PacketSignature(width)),
            "o": Out(PacketSignature(width)),
            "commit": Out(1),
            "overflow": Out(1),
            "level": Out(range(depth + 1)),
            "full": Out(1),
        })

    @property
    def depth(self) -> int:
        return self._depth

    def elaborate(self, platform):
        m = Module()
        w = self._width
        depth = self._depth
        entry = data.StructLayout({"data": 8 * w, "keep": w, "first": 1, "last": 1})
        # The reader only reads committed beats and the writer only writes free ones, so a read
        # never meets a write to the same address. Saying so (Yosys's `no_rw_check`) spares the
        # collision bypass Yosys would otherwise put after the block RAM, whose clock-to-output
        # (5.8 ns on an ECP5 -6 without output register) leaves no room for it at 125 MHz.
        # Yosys honours the attribute when it folds a register into an asynchronous read port,
        # so the port is written that way: `comb` read, then a reset-less register (`ram_out`).
        m.submodules.mem = mem = Memory(shape=entry, depth=depth, init=[],
                                        attrs={"no_rw_check": 1})
        wport = mem.write_port()
        rport = mem.read_port(domain="comb")
        ram_out = Signal(entry, reset_less=True)

        # Pointers carry one wrap bit: equal = empty, equal but for the wrap bit = full.
        bits = depth.bit_length()
        wr = Signal(bits)           # next beat of the frame being written
        committed = Signal(bits)    # end of the last whole frame (reader's limit)
        rd = Signal(bits)
        in_frame = Signal()
        dropping = Signal()         # the current frame did not fit

        m.d.comb += [
            self.i.ready.eq(1),
            self.level.eq(wr - rd),
        ]

        p = self.i.p
        base = Signal(bits)
        m.d.comb += base.eq(Mux(p.first, committed, wr))

        # Room for the incoming beat, from flags registered the clock before, so no pointer
        # arithmetic shares a clock with the block RAM's write enable. Since then `wr` moved at
        # most one past the pointer the flags describe (a write), `committed` jumped to `wr`
        # (a commit) or both went back (a rollback, which only frees room); reads only free
        # room too. So the result is exact while the reader waits and at worst one clock
        # pessimistic while it reads.
        wr_room2 = Signal(init=1)      # last clock: wr - rd <= depth - 2
        wr_room1 = Signal(init=1)      # last clock: wr - rd <= depth - 1
        committed_room1 = Signal(init=1)
        wrote = Signal()               # last clock wrote a beat and moved wr past it
        just_committed = Signal()      # last clock committed a frame: committed == wr now
        m.d.sync += [
            wr_room2.eq(self.level < depth - 1),
            wr_room1.eq(self.level < depth),
            committed_room1.eq((committed - rd)[:bits] < depth),
            wrote.eq(0),
            just_committed.eq(self.commit),
        ]
        space_wr = Signal()
        space_first = Signal()
        space = Signal()
        m.d.comb += [
            space_wr.eq(wr_room2 | (~wrote & wr_room1)),
            space_first.eq(Mux(just_committed, wr_room2, committed_room1)),
            space.eq(Mux(p.first, space_first, space_wr)),
            self.full.eq(~space),
        ]
        m.d.comb += [
            wport.addr.eq(base[:-1]),
            wport.data.data.eq(p.data),
            wport.data.keep.eq(p.keep),
            wport.data.first.eq(p.first),
            wport.data.last.eq(p.last),
        ]

        with m.If(self.i.valid & (p.first | in_frame)):    # beats outside a frame are ignored
            m.d.sync += in_frame.eq(~p.last)
            with m.If(~p.first & dropping):
                with m.If(p.last):
                    m.d.comb += self.overflow.eq(~p.error)
            with m.Elif(~space):
                m.d.sync += [dropping.eq(1), wr.eq(committed)]
                with m.If(p.last):
                    m.d.comb += self.overflow.eq(~p.error)
            with m.Else():
                m.d.comb += wport.en.eq(1)
                m.d.sync += [dropping.eq(0), wr.eq(base + 1), wrote.eq(1)]
                with m.If(p.last & p.error):
                    m.d.sync += [wr.eq(committed), wrote.eq(0)]
                with m.Elif(p.last):
                    m.d.sync += committed.eq(base + 1)
                    m.d.comb += self.commit.eq(1)

        # Read side: the synchronous read port, then a skid buffer right beside the block RAM,
        # so the RAM's slow clock-to-output (and the collision bypass Yosys puts after it) never
        # shares a cycle with the logic behind ``o``.
        m.submodules.out = out = SkidBuffer(self.o.p.shape())
        head = out.i
        load = Signal()
        m.d.comb += [
            load.eq((rd != committed) & (~head.valid | head.ready)),
            rport.addr.eq(rd[:-1]),
            head.p.data.eq(ram_out.data),
            head.p.keep.eq(ram_out.keep),
            head.p.first.eq(ram_out.first),
            head.p.last.eq(ram_out.last),
        ]
        with m.If(load):
            m.d.sync += [rd.eq(rd + 1), head.valid.eq(1), ram_out.eq(rport.data)]
        with m.Elif(head.ready):
            m.d.sync += head.valid.eq(0)
        wiring.connect(m, out.o, wiring.flipped(self.o))
        return m

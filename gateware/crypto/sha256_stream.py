# Ref: FIPS 180-4 §5.1.1 (padding), §5.2.1 (parsing into blocks)
"""SHA-256 of a byte stream: padding and block assembly in front of :class:`Sha256`.

Bytes enter one per clock into a 64-byte shift register; a full block moves to a second
register that the core takes while the next block fills, so a long message costs about one
block time (66 clocks) per 64 bytes. After a message's last byte the padding (0x80, zeros, the
64-bit length) is shifted in the same way, one byte per clock.
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .sha256 import Sha256

__all__ = ["Sha256Stream", "ByteLayout", "DigestLayout"]

#: One message byte; ``last`` marks a message's final byte (messages are never empty).
ByteLayout = data.StructLayout({"byte": 8, "last": 1})
#: A digest as eight 32-bit words, ``H0`` first (the hash's bytes are each word big-endian).
DigestLayout = data.ArrayLayout(32, 8)


class Sha256Stream(wiring.Component):
    """Hash each message of a byte stream.

    Attributes
    ----------
    data : In(stream.Signature(ByteLayout))
    digest : Out(stream.Signature(DigestLayout)), one per message
    """

    data: In(stream.Signature(ByteLayout))
    digest: Out(stream.Signature(DigestLayout))

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = Sha256()

        fill = Signal(512)                  # the block being assembled, newest byte lowest
        count = Signal(7)                   # bytes in fill (64: full)
        first = Signal(init=1)              # the block being assembled starts a message
        length = Signal(64)                 # message bits so far
        out = Signal(512)                   # a full block waiting for the core
        out_first, out_last = Signal(), Signal()
        out_valid = Signal()
        core_last = Signal()                # the block in the core ends its message

        # --- a full block moves to `out` when it is free -----------------------------------
        move = (count == 64) & (~out_valid | core.blocks.ready)
        m.d.comb += [
            core.blocks.valid.eq(out_valid),
            core.blocks.payload.words.eq(Cat(out.word_select(15 - k, 32) for k in range(16))),
            core.blocks.payload.first.eq(out_first),
        ]
        with m.If(core.blocks.valid & core.blocks.ready):
            m.d.sync += [out_valid.eq(0), core_last.eq(out_last)]

        # --- digests: the last block's goes out, the others are dropped ---------------------
        m.d.comb += [
            self.digest.payload.eq(core.digest.payload),
            self.digest.valid.eq(core.digest.valid & core_last),
            core.digest.ready.eq(~core_last | self.digest.ready),
        ]

        # --- bytes in: message, then padding --------------------------------------------------
        byte = Signal(8)
        shift = Signal()
        pad_end = Signal()                  # this byte completes the padded message
        with m.FSM():
            with m.State("MESSAGE"):
                m.d.comb += [self.data.ready.eq(count != 64), byte.eq(self.data.payload.byte)]
                with m.If(self.data.valid & self.data.ready):
                    m.d.comb += shift.eq(1)
                    m.d.sync += length.eq(length + 8)
                    with m.If(self.data.payload.last):
                        m.next = "PAD_80"
            with m.State("PAD_80"):
                with m.If(count != 64):
                    m.d.comb += [byte.eq(0x80), shift.eq(1)]
                    m.next = "PAD_ZERO"
            with m.State("PAD_ZERO"):
                with m.If(count != 64):
                    with m.If(count == 56):
                        m.next = "PAD_LENGTH"
                    with m.Else():
                        m.d.comb += [byte.eq(0), shift.eq(1)]
            with m.State("PAD_LENGTH"):
                with m.If(count != 64):
                    m.d.comb += [byte.eq(length[56:64]), shift.eq(1)]
                    m.d.sync += length.eq(length << 8)
                    with m.If(count == 63):
                        m.d.comb += pad_end.eq(1)
                        m.next = "MESSAGE"

        fill_last = Signal()                # the block in `fill` ends its message
        with m.If(move):
            m.d.sync += [out.eq(fill), out_first.eq(first), out_last.eq(fill_last),
                         out_valid.eq(1), first.eq(fill_last), fill_last.eq(0), count.eq(0)]
        with m.If(shift):                   # (never with `move`: no byte enters a full block)
            m.d.sync += [fill.eq(Cat(byte, fill[:-8])), count.eq(count + 1)]
        with m.If(pad_end):
            m.d.sync += [fill_last.eq(1), length.eq(0)]
        return m

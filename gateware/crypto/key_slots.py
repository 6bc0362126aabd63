# Ref: docs/crypto.md "Key slots"
"""Key slots: the card's store of secrets, which only the offload engine reads.

There is deliberately no register or DMA path to the data: the host names a slot by number and
sees its kind, never its bytes. A slot is zeroized on request, and every slot is zeroized after
a reset (block RAM keeps its contents through a reset, so a sweep writes zeros over all of them;
until it is done every slot reads as empty and writes wait).
"""

import enum

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory, MemoryData
from amaranth.lib.wiring import In, Out

__all__ = ["KeySlots", "SlotKind", "SlotRead", "SlotWrite"]


class SlotKind(enum.IntEnum):
    """What a slot holds; commands check it (a traffic secret is never used as an HMAC key for
    an arbitrary message, a private key never leaves X25519)."""
    EMPTY = 0
    PRIVATE_KEY = 1         #: an X25519 scalar
    SHARED_SECRET = 2       #: an X25519 result
    SECRET = 3              #: a key-schedule secret (early, handshake, master)
    TRAFFIC_SECRET = 4      #: a client/server traffic secret
    FINISHED_KEY = 5        #: may MAC a transcript hash for a Finished message
    AEAD_KEY = 6            #: 16-byte key and 12-byte IV (bytes 16..27) for records
    AEAD_KEY_EXPORTABLE = 7  #: the same, which policy lets a record-layer user export


SlotWrite = data.StructLayout({"slot": 8, "kind": 3, "data": 256})
SlotRead = data.StructLayout({"kind": 3, "data": 256})


class KeySlots(wiring.Component):
    """``slots`` secrets of 32 bytes with their kinds.

    Attributes
    ----------
    read_slot : In(stream.Signature(8)), a slot to read; answered on ``read_data`` one clock
        after it is taken
    read_data : Out(stream.Signature(SlotRead))
    write : In(stream.Signature(SlotWrite)), store (kind EMPTY zeroizes the slot)
    zeroize_all : In(1), a pulse: sweep every slot
    ready : Out(1), no sweep running
    """

    def __init__(self, slots: int = 64):
        if not 1 <= slots <= 256:
            raise ValueError(f"slots must be 1..256, not {slots}")
        self.slots = slots
        #: The secrets' storage (for simulation to inspect; nothing in the design exposes it).
        self.data = MemoryData(shape=256, depth=slots, init=[])
        super().__init__({
            "read_slot": In(stream.Signature(8)),
            "read_data": Out(stream.Signature(SlotRead)),
            "write": In(stream.Signature(SlotWrite)),
            "zeroize_all": In(1),
            "ready": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.slots
        m.submodules.mem = mem = Memory(data=self.data)
        wr = mem.write_port()
        rd = mem.read_port(transparent_for=(wr,))
        kinds = Array(Signal(3, name=f"kind{k}") for k in range(n))     # reset: EMPTY

        sweeping = Signal(init=1)               # after reset, and on zeroize_all
        sweep = Signal(range(n + 1))
        m.d.comb += self.ready.eq(~sweeping)
        with m.If(self.zeroize_all):
            m.d.sync += [sweeping.eq(1), sweep.eq(0)]
            m.d.sync += [k.eq(SlotKind.EMPTY) for k in kinds]

        with m.If(sweeping):
            m.d.comb += [wr.addr.eq(sweep), wr.data.eq(0), wr.en.eq(1)]
            with m.If(~self.zeroize_all):
                m.d.sync += sweep.eq(sweep + 1)
                with m.If(sweep == n - 1):
                    m.d.sync += sweeping.eq(0)
        with m.Else():
            p = self.write.payload
            in_range = p.slot < n
            m.d.comb += self.write.ready.eq(1)
            with m.If(self.write.valid & in_range):
                m.d.comb += [wr.addr.eq(p.slot),
                             wr.data.eq(Mux(p.kind == SlotKind.EMPTY, 0, p.data)), wr.en.eq(1)]
                m.d.sync += kinds[p.slot].eq(p.kind)

        # reads: one clock; a slot out of range, or any slot while sweeping, is EMPTY with zeros
        pending, empty = Signal(), Signal()
        slot = Signal(8)
        m.d.comb += [rd.addr.eq(self.read_slot.payload),
                     rd.en.eq(self.read_slot.valid & self.read_slot.ready),  # held until taken
                     self.read_slot.ready.eq(~pending | self.read_data.ready)]
        with m.If(self.read_data.ready):
            m.d.sync += pending.eq(0)
        with m.If(self.read_slot.valid & self.read_slot.ready):
            m.d.sync += [pending.eq(1), slot.eq(self.read_slot.payload),
                         empty.eq(sweeping | (self.read_slot.payload >= n))]
        kind = Mux(empty, SlotKind.EMPTY, kinds[slot])
        m.d.comb += [self.read_data.valid.eq(pending),
                     self.read_data.payload.kind.eq(kind),
                     self.read_data.payload.data.eq(Mux(kind == SlotKind.EMPTY, 0, rd.data))]
        return m

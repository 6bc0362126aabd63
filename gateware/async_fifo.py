# Ref: C. E. Cummings, "Simulation and Synthesis Techniques for Asynchronous FIFO Design"
#      (SNUG 2002, style #2); amaranth lib/fifo.py (AsyncFIFO, whose read side this keeps)
"""An asynchronous FIFO whose write-side ``w_rdy`` is a register.

Amaranth's ``AsyncFIFO`` decides ``w_rdy`` combinationally (a Gray-code compare) and feeds it
straight into the write-pointer increment, so one clock holds compare, enable, adder and Gray
encode. On an ECP5 -6 at 125 MHz that path was the slowest in the TX crossing. Here ``w_rdy``
is computed a clock ahead for both outcomes of the current clock (written or not) and
registered; the read side is Amaranth's design unchanged.
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.cdc import AsyncFFSynchronizer, FFSynchronizer
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

__all__ = ["RegisteredReadyAsyncFIFO"]


def _gray_encode(value: Value) -> Value:
    return value ^ value[1:]


def _gray_decode(value: Value) -> Value:
    bits, acc = [], Const(0)
    for n in reversed(range(len(value))):
        acc = acc ^ value[n]
        bits.insert(0, acc)
    return Cat(*bits)


class RegisteredReadyAsyncFIFO(wiring.Component):
    """First in, first out across two clock domains, ``w_rdy`` registered.

    The interface is that of Amaranth's ``AsyncFIFO``: write ``w_data`` with ``w_en`` while
    ``w_rdy``; ``r_data`` is valid while ``r_rdy`` and advances on ``r_en``. ``w_rdy`` may lag
    the reader by a clock or two (it only ever says "full" too long, never too short). Reset
    belongs to the write domain, which also empties the FIFO on the read side (``r_rst``).

    Parameters
    ----------
    width : int
    depth : int
        Rounded up to a power of 2 (at least 2).
    r_domain, w_domain : str
    """

    def __init__(self, *, width: int, depth: int, r_domain: str = "read",
                 w_domain: str = "write"):
        if depth < 2:
            raise ValueError(f"depth must be at least 2, not {depth}")
        self._width = width
        self._depth_bits = ceil_log2(depth)
        self._r_domain = r_domain
        self._w_domain = w_domain
        super().__init__({
            "w_data": In(width),
            "w_en": In(1),
            "w_rdy": Out(1),
            "r_data": Out(width),
            "r_en": In(1),
            "r_rdy": Out(1),
            "r_rst": Out(1),
        })

    @property
    def depth(self) -> int:
        return 1 << self._depth_bits

    def elaborate(self, platform):
        m = Module()
        bits = self._depth_bits + 1
        depth = self.depth
        w, r = m.d[self._w_domain], m.d[self._r_domain]

        # --- write side -------------------------------------------------------------------
        do_write = Signal()
        m.d.comb += do_write.eq(self.w_en & self.w_rdy)
        produce_w_bin = Signal(bits)
        produce_w_nxt = Signal(bits)
        produce_w_gry = Signal(bits)
        m.d.comb += produce_w_nxt.eq(produce_w_bin + do_write)
        w += [produce_w_bin.eq(produce_w_nxt), produce_w_gry.eq(_gray_encode(produce_w_nxt))]

        consume_r_gry = Signal(bits, reset_less=True)
        consume_w_gry = Signal(bits)
        m.submodules.consume_cdc = FFSynchronizer(consume_r_gry, consume_w_gry,
                                                  o_domain=self._w_domain)
        consume_w_bin = Signal(bits)
        w += consume_w_bin.eq(_gray_decode(consume_w_gry))

        # Room next clock, for both outcomes of this one: only the choice waits for `w_en`.
        # `consume_w_bin` is a clock behind the synchroniser, which only understates the room.
        room_if_idle = Signal()
        room_if_write = Signal()
        m.d.comb += [
            room_if_idle.eq((produce_w_bin - consume_w_bin)[:bits] < depth),
            room_if_write.eq((produce_w_bin - consume_w_bin)[:bits] < depth - 1),
        ]
        w_rdy = Signal(init=1)
        w += w_rdy.eq(Mux(do_write, room_if_write, room_if_idle))
        m.d.comb += self.w_rdy.eq(w_rdy)

        # --- read side (Amaranth's AsyncFIFO) ---------------------------------------------
        do_read = Signal()
        m.d.comb += do_read.eq(self.r_rdy & self.r_en)
        consume_r_bin = Signal(bits, reset_less=True)
        consume_r_nxt = Signal(bits)
        m.d.comb += consume_r_nxt.eq(consume_r_bin + do_read)
        r += [consume_r_bin.eq(consume_r_nxt), consume_r_gry.eq(_gray_encode(consume_r_nxt))]

        produce_r_gry = Signal(bits)
        m.submodules.produce_cdc = FFSynchronizer(produce_w_gry, produce_r_gry,
                                                  o_domain=self._r_domain)
        r_empty = Signal()
        m.d.comb += r_empty.eq(consume_r_gry == produce_r_gry)

        m.submodules.storage = storage = Memory(shape=self._width, depth=depth, init=[])
        w_port = storage.write_port(domain=self._w_domain)
        r_port = storage.read_port(domain=self._r_domain)
        m.d.comb += [
            w_port.addr.eq(produce_w_bin[:-1]),
            w_port.data.eq(self.w_data),
            w_port.en.eq(do_write),
            r_port.addr.eq(consume_r_nxt[:-1]),
            r_port.en.eq(1),
            self.r_data.eq(r_port.data),
            self.r_rdy.eq(~r_empty),
        ]

        # Reset belongs to the write domain; its reset empties the read side through an
        # async-set, sync-release synchroniser (the read counters are reset-less for this).
        w_rst = ResetSignal(self._w_domain, allow_reset_less=True)
        r_rst = Signal()
        m.submodules.rst_cdc = AsyncFFSynchronizer(w_rst, r_rst, o_domain=self._r_domain)
        with m.If(r_rst):
            m.d.comb += r_empty.eq(1)
            r += [
                consume_r_gry.eq(produce_r_gry),
                consume_r_bin.eq(_gray_decode(produce_r_gry)),
                self.r_rst.eq(1),
            ]
        with m.Else():
            r += self.r_rst.eq(0)
        return m

"""Splits one register bus into blocks, registering everything on the way to them."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .csr import CounterBank, CsrSignature

__all__ = ["CsrDecoder"]


class CsrDecoder(wiring.Component):
    """Splits one CSR bus into blocks of ``2**block_bits`` words.

    Block ``k`` answers at ``k << block_bits``; addresses outside every block read as zero. The
    strobes, address and write data going to the blocks are registered, because the blocks sit
    all over the chip and their read multiplexers and latch enables would otherwise share one
    cycle with the address decode (the colorlight's `sync` clock missed 125 MHz on exactly that
    path). Read data therefore arrives :attr:`read_latency` cycles after ``bus.r_stb``: one
    register stage plus the blocks' own latency.

    Parameters
    ----------
    widths : list of int
        Address width of each block's bus (at most ``block_bits``).
    block_bits : int
    block_latency : int
        The blocks' read latency (every block must have this one).
    """

    def __init__(self, widths: list[int], block_bits: int, *,
                 block_latency: int = CounterBank.read_latency):
        if any(w > block_bits for w in widths):
            raise ValueError(f"block address widths {widths} exceed block_bits={block_bits}")
        if block_latency < 1:
            raise ValueError(f"block read latency must be at least 1, not {block_latency}")
        self._widths = list(widths)
        self._block_bits = block_bits
        self._block_latency = block_latency
        #: cycles from ``bus.r_stb`` to valid ``bus.r_data``
        self.read_latency = 1 + block_latency
        sel_bits = max(1, (len(widths) - 1).bit_length())
        self.addr_width = block_bits + sel_bits
        members = {"bus": In(CsrSignature(self.addr_width))}
        for k, w in enumerate(widths):
            members[f"b{k}"] = Out(CsrSignature(max(1, w)))
        super().__init__(members)

    def block(self, k: int):
        return getattr(self, f"b{k}")

    def elaborate(self, platform):
        m = Module()
        sel = self.bus.addr[self._block_bits:]
        offset = self.bus.addr[:self._block_bits]
        none = len(self._widths)
        hit_sel = Signal(range(none + 1), init=none)
        read_sel = Signal(range(none + 1), init=none)    # block being read, one cycle later
        data_sel = read_sel                              # ... delayed until its data is due
        for k in range(self._block_latency):
            delayed = Signal(range(none + 1), init=none, name=f"data_sel{k}")
            m.d.sync += delayed.eq(data_sel)
            data_sel = delayed
        with m.If(self.bus.r_stb):
            m.d.sync += read_sel.eq(hit_sel)
        with m.Else():
            m.d.sync += read_sel.eq(none)
        for k, w in enumerate(self._widths):
            b = self.block(k)
            hit = (sel == k) & (offset < (1 << w))
            with m.If(hit):
                m.d.comb += hit_sel.eq(k)
            # Each block gets its own address/data registers, loaded only when it is accessed:
            # shared ones (Yosys merges identical registers) would fan out across the chip.
            with m.If((self.bus.r_stb | self.bus.w_stb) & hit):
                m.d.sync += [b.addr.eq(offset), b.w_data.eq(self.bus.w_data)]
            m.d.sync += [
                b.r_stb.eq(self.bus.r_stb & hit),
                b.w_stb.eq(self.bus.w_stb & hit),
            ]
        # r_data is valid on the cycle the read is due (zero for addresses outside every block).
        with m.If(data_sel != none):
            with m.Switch(data_sel):
                for k in range(len(self._widths)):
                    with m.Case(k):
                        m.d.comb += self.bus.r_data.eq(self.block(k).r_data)
        return m

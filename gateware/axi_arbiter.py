# Ref: ARM IHI 0022 (AMBA AXI4) A5 (transaction identifiers, response routing by ID)
"""AxiArbiter: several AXI4 managers (the DMA engines) onto one host-memory port.

Requests are granted round robin, per channel: read addresses one at a time, write bursts
whole (the write-address handshake and every data beat up to ``wlast`` go to one manager before
the next is granted, so data of two bursts never interleave). The manager's number is put in
front of its ID (``id`` of the shared port = ``{manager, id}``), and responses (``B``, ``R``)
go back by that number, so a manager sees only its own, in the order the memory gave them.
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axi import AxiSignature

__all__ = ["AxiArbiter"]

_ADDR = ("addr", "len", "size", "burst", "lock", "cache", "prot", "qos")


class AxiArbiter(wiring.Component):
    """``managers`` AXI4 ports (``m{k}``, each ``id_width`` ID bits) onto ``o``.

    Parameters
    ----------
    managers : int
    addr_width, data_width, id_width : int
        Of the managers' ports; ``o`` has ``id_width + log2(managers)`` ID bits.
    """

    def __init__(self, managers: int = 2, addr_width: int = 64, data_width: int = 64,
                 id_width: int = 1):
        if managers < 2:
            raise ValueError(f"an arbiter needs at least two managers, not {managers}")
        self._n = managers
        self._id_width = id_width
        self._sel_bits = (managers - 1).bit_length()
        members = {f"m{k}": In(AxiSignature(addr_width, data_width, id_width))
                   for k in range(managers)}
        members["o"] = Out(AxiSignature(addr_width, data_width, id_width + self._sel_bits))
        super().__init__(members)

    def _round_robin(self, m: Module, requests: list[Value], last: Signal, name: str):
        """(any, choice): the first requester after ``last``."""
        n = self._n
        any_ = Signal(name=f"{name}_any")
        choice = Signal(range(n), name=f"{name}_choice")
        for step in reversed(range(1, n + 1)):
            for prev in range(n):
                k = (prev + step) % n
                with m.If((last == prev) & requests[k]):
                    m.d.comb += [any_.eq(1), choice.eq(k)]
        return any_, choice

    def elaborate(self, platform):
        m = Module()
        n, o = self._n, self.o
        ms = [getattr(self, f"m{k}") for k in range(n)]
        idw = self._id_width

        # --- read address: one request per clock, round robin -------------------------------
        ar_last = Signal(range(n))
        ar_any, ar_pick = self._round_robin(m, [x.arvalid for x in ms], ar_last, "ar")
        with m.Switch(ar_pick):
            for k, x in enumerate(ms):
                with m.Case(k):
                    for f in _ADDR:
                        m.d.comb += getattr(o, f"ar{f}").eq(getattr(x, f"ar{f}"))
                    m.d.comb += [o.arid.eq(Cat(x.arid, C(k, self._sel_bits))),
                                 o.arvalid.eq(ar_any), x.arready.eq(o.arready)]
        with m.If(o.arvalid & o.arready):
            m.d.sync += ar_last.eq(ar_pick)

        # --- read data: back by the manager number in the ID -------------------------------
        r_to = o.rid[idw:]
        for k, x in enumerate(ms):
            m.d.comb += [x.rid.eq(o.rid[:idw]), x.rdata.eq(o.rdata), x.rresp.eq(o.rresp),
                         x.rlast.eq(o.rlast), x.rvalid.eq(o.rvalid & (r_to == k))]
            with m.If(r_to == k):
                m.d.comb += o.rready.eq(x.rready)

        # --- write: a burst (address, then data up to wlast) at a time --------------------
        w_last = Signal(range(n))
        owner = Signal(range(n))
        aw_done = Signal()              # the owner's address went out
        busy = Signal()                 # a burst is under way
        aw_any, aw_pick = self._round_robin(m, [x.awvalid for x in ms], w_last, "aw")
        with m.If(~busy & aw_any):
            m.d.sync += [busy.eq(1), owner.eq(aw_pick), w_last.eq(aw_pick), aw_done.eq(0)]
        with m.Switch(owner):
            for k, x in enumerate(ms):
                with m.Case(k):
                    for f in _ADDR:
                        m.d.comb += getattr(o, f"aw{f}").eq(getattr(x, f"aw{f}"))
                    m.d.comb += [
                        o.awid.eq(Cat(x.awid, C(k, self._sel_bits))),
                        o.awvalid.eq(busy & ~aw_done & x.awvalid),
                        x.awready.eq(busy & ~aw_done & o.awready),
                        o.wdata.eq(x.wdata), o.wstrb.eq(x.wstrb), o.wlast.eq(x.wlast),
                        o.wvalid.eq(busy & x.wvalid),
                        x.wready.eq(busy & o.wready),
                    ]
        with m.If(o.awvalid & o.awready):
            m.d.sync += aw_done.eq(1)
        # The burst ends with its last beat, once its address has gone out too.
        aw_gone = aw_done | (o.awvalid & o.awready)
        w_end = o.wvalid & o.wready & o.wlast
        w_ended = Signal()
        with m.If(w_end):
            m.d.sync += w_ended.eq(1)
        with m.If(busy & aw_gone & (w_end | w_ended)):
            m.d.sync += [busy.eq(0), w_ended.eq(0)]

        # --- write responses: back by the manager number ----------------------------------
        b_to = o.bid[idw:]
        for k, x in enumerate(ms):
            m.d.comb += [x.bid.eq(o.bid[:idw]), x.bresp.eq(o.bresp),
                         x.bvalid.eq(o.bvalid & (b_to == k))]
            with m.If(b_to == k):
                m.d.comb += o.bready.eq(x.bready)
        return m

# Ref: ../shared/DESIGN.md "Host interface" (virtual functions); ARM IHI 0022 (AXI4 ordering,
#      A5.3: responses of one ID return in request order)
"""DmaGuard: holds each DMA request of a virtual function's ring to the host memory the PF granted.

No IOMMU is assumed, so the card itself must keep a guest from pointing its descriptors (or its
ring bases) at memory that is not its own. A DMA engine names, in ``aruser``/``awuser``, the ring
each request serves; a ring inside an enabled VF's range belongs to that VF, every other ring to
the PF. A VF's request passes only when every byte of its burst lies inside one of the VF's
windows (4 KiB pages ``[base, limit)``); the PF's requests always pass.

A refused request never reaches the bus: a read is answered with ``len + 1`` beats of zeros and
``SLVERR``, a write's data beats are swallowed and it is answered ``SLVERR``, each in its place
among the responses to the engine's other requests (AXI returns one ID's responses in order, and
the engines count on it). The engines already treat an error response as a failed descriptor
fetch or an aborted frame, so the guest sees a dropped frame; the card counts the refusal
against the VF (``denied_r``/``denied_w``).

Each address channel takes one request at a time through three registered steps (owner, check,
send), so a request waits three clocks more than without the guard and the compares never share a
clock with the bus.
"""

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .axi import AxiSignature
from .layouts import PAGE_BITS, VfGrant
from .vf_control import owner_of

__all__ = ["DmaGuard", "RESP_SLVERR", "connect_unguarded"]

RESP_SLVERR = 0b10
_ATTRS = ("id", "addr", "len", "size", "burst", "lock", "cache", "prot", "qos")


def connect_unguarded(m: Module, engine, bus) -> None:
    """Connect an engine's AXI port (with ``user``) to a port without, for a card without VFs."""
    for name in bus.signature.members:
        ours, theirs = getattr(engine, name), getattr(bus, name)
        if bus.signature.members[name].flow == Out:
            m.d.comb += theirs.eq(ours)
        else:
            m.d.comb += ours.eq(theirs)


class DmaGuard(wiring.Component):
    """Between one DMA engine and the bus: confines the rings of each VF to its windows.

    Parameters
    ----------
    vfs : int
        Virtual functions (grants).
    ring_bits : int
        Width of ``aruser``/``awuser`` (the engine's ring numbers).

    Attributes
    ----------
    i : In(AxiSignature(addr_width, data_width, id_width, ring_bits)), from the engine
    o : Out(AxiSignature(addr_width, data_width, id_width)), to the bus
    grants : In(ArrayLayout(VfGrant, vfs)), what the PF granted each VF
    denied_r, denied_w : Out(vfs), a pulse per refused read / write request, by VF (two
        outputs, since both channels may refuse one VF's requests on the same clock)
    """

    def __init__(self, *, vfs: int, ring_bits: int, addr_width: int = 64, data_width: int = 64,
                 id_width: int = 1, depth: int = 16):
        if vfs < 1:
            raise ValueError(f"a guard needs at least one VF, not {vfs}")
        self._vfs = vfs
        self._depth = depth
        super().__init__({
            "i": In(AxiSignature(addr_width, data_width, id_width, ring_bits)),
            "o": Out(AxiSignature(addr_width, data_width, id_width)),
            "grants": In(data.ArrayLayout(VfGrant, vfs)),
            "denied_r": Out(vfs),
            "denied_w": Out(vfs),
        })

    def _inside(self, m: Module, owner: Value, first: Value, last: Value) -> Value:
        """Pages ``first..last`` lie inside one window of the VF ``owner`` (one-hot) names."""
        windows = Signal(self.grants[0].windows.shape())
        selected = C(0, len(windows.as_value()))
        for v, g in enumerate(self.grants):
            selected = selected | Mux(owner[v], g.windows.as_value(), 0)
        m.d.comb += windows.eq(selected)
        return Cat(*[(first >= w.base) & (last < w.limit) for w in windows]).any()

    def _address(self, m: Module, p: str, push: Value, room: Value,
                 denied: Value) -> tuple[Signal, Signal, Signal]:
        """Take requests on channel ``p`` ("ar"/"aw") one at a time: owner, check, then pass them
        on or refuse them (``denied``: the owner, one-hot). ``push`` is driven high on the clock
        the decision is final (``room``: the order FIFOs can take it). Returns (passed, length,
        id) of that decision."""
        src, dst = self.i, self.o
        names = [f"{p}{a}" for a in _ATTRS]
        req = {n: Signal.like(getattr(src, n), name=f"{p}_req_{n[2:]}") for n in names}
        ring = Signal.like(getattr(src, f"{p}user"), name=f"{p}_ring")
        owner = Signal(self._vfs, name=f"{p}_owner")
        first = Signal(len(src.araddr) - PAGE_BITS + 1, name=f"{p}_first")
        last = Signal(len(src.araddr) - PAGE_BITS + 1, name=f"{p}_last")
        ok = Signal(name=f"{p}_ok")
        addr, length, size = req[f"{p}addr"], req[f"{p}len"], req[f"{p}size"]
        end = (addr + ((length + 1) << size) - 1)[:len(addr) + 1]  # bit len(addr): wrapped
        with m.FSM(name=f"{p}_guard"):
            with m.State("IDLE"):
                m.d.comb += getattr(src, f"{p}ready").eq(1)
                with m.If(getattr(src, f"{p}valid")):
                    m.d.sync += [req[n].eq(getattr(src, n)) for n in names]
                    m.d.sync += ring.eq(getattr(src, f"{p}user"))
                    m.next = "OWNER"
            with m.State("OWNER"):
                m.d.sync += [owner.eq(owner_of(self.grants, ring)), first.eq(addr[PAGE_BITS:]),
                             last.eq(end[PAGE_BITS:])]
                m.next = "CHECK"
            with m.State("CHECK"):
                m.d.sync += ok.eq((owner == 0) | self._inside(m, owner, first, last))
                m.next = "DECIDE"
            with m.State("DECIDE"):
                with m.If(ok):
                    m.d.comb += getattr(dst, f"{p}valid").eq(room)
                    with m.If(room & getattr(dst, f"{p}ready")):
                        m.d.comb += push.eq(1)
                        m.next = "IDLE"
                with m.Elif(room):
                    m.d.comb += [push.eq(1), denied.eq(owner)]
                    m.next = "IDLE"
        m.d.comb += [getattr(dst, n).eq(req[n]) for n in names]
        return ok, length, req[f"{p}id"]

    def elaborate(self, platform):
        m = Module()
        src, dst = self.i, self.o
        order = data.StructLayout({"ok": 1, "len": 8, "id": len(src.arid)})

        # --- reads: R beats of passed requests, or error beats, in request order ----------
        m.submodules.r_order = r_order = SyncFIFOBuffered(width=order.size, depth=self._depth)
        ar_push = Signal()
        ok, length, rid = self._address(m, "ar", ar_push, r_order.w_rdy, self.denied_r)
        m.d.comb += [r_order.w_data.eq(Cat(ok, length, rid)), r_order.w_en.eq(ar_push)]
        head = data.View(order, r_order.r_data)
        beat = Signal(8)
        with m.If(r_order.r_rdy & head.ok):
            m.d.comb += [src.rvalid.eq(dst.rvalid), src.rdata.eq(dst.rdata),
                         src.rresp.eq(dst.rresp), src.rlast.eq(dst.rlast), src.rid.eq(dst.rid),
                         dst.rready.eq(src.rready),
                         r_order.r_en.eq(dst.rvalid & src.rready & dst.rlast)]
        with m.Elif(r_order.r_rdy):
            m.d.comb += [src.rvalid.eq(1), src.rresp.eq(RESP_SLVERR), src.rid.eq(head.id),
                         src.rlast.eq(beat == head.len)]
            with m.If(src.rready):
                m.d.sync += beat.eq(Mux(beat == head.len, 0, beat + 1))
                m.d.comb += r_order.r_en.eq(beat == head.len)

        # --- writes: W beats follow their AW's decision; B in request order ----------------
        m.submodules.w_route = w_route = SyncFIFOBuffered(width=1, depth=self._depth)
        m.submodules.b_order = b_order = SyncFIFOBuffered(width=order.size, depth=self._depth)
        aw_push = Signal()
        ok, length, bid = self._address(m, "aw", aw_push, w_route.w_rdy & b_order.w_rdy,
                                        self.denied_w)
        m.d.comb += [w_route.w_data.eq(ok), w_route.w_en.eq(aw_push),
                     b_order.w_data.eq(Cat(ok, length, bid)), b_order.w_en.eq(aw_push)]
        swallowed = Signal(range(self._depth + 1))     # refused bursts whose data is gone
        ate, answered = Signal(), Signal()
        with m.If(w_route.r_rdy & w_route.r_data[0]):
            m.d.comb += [dst.wvalid.eq(src.wvalid), dst.wdata.eq(src.wdata),
                         dst.wstrb.eq(src.wstrb), dst.wlast.eq(src.wlast),
                         src.wready.eq(dst.wready),
                         w_route.r_en.eq(src.wvalid & dst.wready & src.wlast)]
        with m.Elif(w_route.r_rdy):
            m.d.comb += [src.wready.eq(1), ate.eq(src.wvalid & src.wlast),
                         w_route.r_en.eq(ate)]
        bhead = data.View(order, b_order.r_data)
        with m.If(b_order.r_rdy & bhead.ok):
            m.d.comb += [src.bvalid.eq(dst.bvalid), src.bresp.eq(dst.bresp),
                         src.bid.eq(dst.bid), dst.bready.eq(src.bready),
                         b_order.r_en.eq(dst.bvalid & src.bready)]
        with m.Elif(b_order.r_rdy & (swallowed != 0)):
            m.d.comb += [src.bvalid.eq(1), src.bresp.eq(RESP_SLVERR), src.bid.eq(bhead.id),
                         answered.eq(src.bready), b_order.r_en.eq(src.bready)]
        m.d.sync += swallowed.eq(swallowed + ate - answered)
        return m

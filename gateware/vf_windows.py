# Ref: ../shared/DESIGN.md "Host interface" (PF at the bottom of BAR0, an aligned window per VF);
#      PCI-SIG SR-IOV 1.1 (a VF's BAR is its own aperture)
"""VfWindows: the virtual functions' register windows, translated onto the PF's registers.

BAR0 holds the PF's register map in its lower half and, in the upper half, one 4 KiB window per
virtual function (VF *n* at ``VF_REGION + n * 4 KiB``; on PCIe this is the SR-IOV VF BAR
aperture, and a VM is given exactly its window). A window is laid out by :func:`window_map`:

=======  =============================================  ========================
words    what                                           PF registers behind it
=======  =============================================  ========================
0x000    ``port``: identity, mailbox (``vf_port``)      ``vf_port[n]``
0x100    ``rx_ring[k]``, k < the VF's ``ring_count``    ``rx_ring[ring_base + k]``
0x200    ``tx_ring[k]``, k < the VF's ``ring_count``    ``tx_ring[ring_base + k]``
=======  =============================================  ========================

A VF may not set what the PF decides for its rings: a transmit ring's ``vnic`` and ``maxbw``
(``max_tx_rate``) are not in the window, and its ``ctrl.priority`` and ``ctrl.port`` read as
the PF set them and keep their value when the VF writes ``ctrl`` (the translator reads the PF's
word first and merges: :func:`pf_owned`).

Isolation is enforced here, not trusted to the guest: an access to any other word of the window,
to a ring set the VF does not own, or to the window of a disabled VF is answered ``DECERR`` (reads
return 0, writes change nothing) and counted against that VF (``reg_denied``); it never reaches a
PF register. Accesses to the PF half pass unchanged. One access at a time, registered at every
step (accept, translate, forward, answer).
"""

from dataclasses import replace

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .axil import RESP_DECERR, AxiLiteSignature
from .layouts import MAX_VF_RINGS, VfGrant
from .regmap import Access, Block, Register, RegisterMap

__all__ = ["VfWindows", "window_map", "pf_owned", "WINDOW_WORDS", "TX_PF_REGISTERS",
           "TX_PF_FIELDS"]

#: Words of one VF window (4 KiB).
WINDOW_WORDS = 1024
_PORT, _RX, _TX = 0, 1, 2
#: Transmit ring registers only the PF sees, and ``ctrl`` fields only the PF may set.
TX_PF_REGISTERS = ("vnic", "maxbw")
TX_PF_FIELDS = ("priority", "port")


def _pf_fields_read_only(reg: Register) -> Register:
    if reg.name != "ctrl":
        return reg
    fields = tuple(replace(f, access=Access.RO, doc=f.doc + " (set by the PF)")
                   if f.name in TX_PF_FIELDS else f for f in reg.fields)
    return replace(reg, fields=fields)


def window_map(port: Block, rx_ring: Block, tx_ring: Block) -> RegisterMap:
    """What a VF sees: its own registers, then ``MAX_VF_RINGS`` receive and transmit ring sets
    (the PF's blocks, narrowed to a VF's share), 256 words apart."""
    tx_regs = tuple(_pf_fields_read_only(r) for r in tx_ring.registers
                    if r.name not in TX_PF_REGISTERS)
    return RegisterMap("crossnic virtual function window (VF BAR)", [
        replace(port, name="port", count=1, stride=0),
        replace(rx_ring, count=MAX_VF_RINGS,
                            doc="the VF's receive rings: set k is its k-th ring"),
        replace(tx_ring, count=MAX_VF_RINGS, registers=tx_regs,
                            doc="the VF's transmit rings: set k is its k-th ring; the PF "
                                "sets their VNIC, rate, priority and port"),
    ], block_bits=8)


def pf_owned(window: Block, pf: Block) -> dict[int, int]:
    """Register offset -> bits the PF may write but the VF may not (kept on a VF's write)."""
    out = {}
    for reg in window.registers:
        theirs = next(r for r in pf.registers if r.offset == reg.offset)
        mask = sum(f.mask for f in reg.fields if f.access is Access.RO) & \
            sum(f.mask for f in theirs.fields if f.access is not Access.RO)
        if mask:
            out[reg.offset] = mask
    return out


class VfWindows(wiring.Component):
    """AXI4-Lite in front of the PF's register bridge, with ``vfs`` VF windows above its map.

    Parameters
    ----------
    pf_map : RegisterMap
        The PF's map; it must have blocks ``vf_port``, ``rx_ring`` and ``tx_ring``.
    vfs : int

    Attributes
    ----------
    i : In(AxiLiteSignature(pf_map.addr_width + 3)), BAR0 (PF half, then the VF region)
    o : Out(AxiLiteSignature(pf_map.addr_width + 2)), to the PF's bridge
    grants : In(ArrayLayout(VfGrant, vfs))
    denied : Out(vfs), a pulse per refused VF access
    """

    def __init__(self, pf_map: RegisterMap, vfs: int):
        if vfs * WINDOW_WORDS > 1 << pf_map.addr_width:
            raise ValueError(f"{vfs} windows do not fit the VF region")
        self._pf = pf_map
        self._vfs = vfs
        self._window = window_map(*(pf_map.blocks[self._index(n)]
                                    for n in ("vf_port", "rx_ring", "tx_ring")))
        super().__init__({
            "i": In(AxiLiteSignature(pf_map.addr_width + 3)),
            "o": Out(AxiLiteSignature(pf_map.addr_width + 2)),
            "grants": In(data.ArrayLayout(VfGrant, vfs)),
            "denied": Out(vfs),
        })

    def _index(self, name: str) -> int:
        return next(k for k, b in enumerate(self._pf.blocks) if b.name == name)

    @property
    def window(self) -> RegisterMap:
        return self._window

    window_words = WINDOW_WORDS

    @property
    def region(self) -> int:
        """Word address of VF 0's window."""
        return 1 << self._pf.addr_width

    def _translate(self, m: Module, word: Value, target: Signal, ok: Signal, vf: Signal,
                   keep: Signal) -> None:
        """``target``: the PF word behind window word ``word`` of VF ``vf``; ``ok``: there is
        one and the VF may reach it; ``keep``: its bits a VF's write must leave as they are."""
        offset = word[:10]
        kind, inner = offset[8:10], offset[:8]
        ring, reg = inner[5:8], inner[:5]
        m.d.comb += vf.eq(word[10:])
        grant = Signal(VfGrant)
        with m.Switch(vf):
            for v in range(self._vfs):
                with m.Case(v):
                    m.d.comb += grant.eq(self.grants[v])
        in_range = vf < self._vfs
        blocks = self._window.blocks
        with m.Switch(kind):
            with m.Case(_PORT):
                mapped = Signal()
                with m.Switch(inner):
                    with m.Case(*sorted({r.offset for r in blocks[_PORT].registers})):
                        m.d.comb += mapped.eq(1)
                m.d.comb += [ok.eq(in_range & grant.enable & mapped),
                             target.eq(self._pf.base("vf_port") + (vf << 5) + inner)]
            for kind_value, pf_name in ((_RX, "rx_ring"), (_TX, "tx_ring")):
                with m.Case(kind_value):
                    mapped = Signal(name=f"{pf_name}_mapped")
                    with m.Switch(reg):
                        with m.Case(*sorted({r.offset for r in blocks[kind_value].registers})):
                            m.d.comb += mapped.eq(1)
                    # The PF ring must exist too: ring_base near the top must not carry a VF
                    # into the next block.
                    pf_ring = (grant.ring_base + ring)[:9]
                    rings = self._pf.blocks[self._index(pf_name)].count
                    m.d.comb += [
                        ok.eq(in_range & grant.enable & mapped & (ring < grant.ring_count) &
                              (pf_ring < rings)),
                        target.eq(self._pf.base(pf_name) + (pf_ring << 5) + reg)]
                    owned = pf_owned(blocks[kind_value],
                                     self._pf.blocks[self._index(pf_name)])
                    with m.Switch(reg):
                        for offset, mask in owned.items():
                            with m.Case(offset):
                                m.d.comb += keep.eq(mask)

    def elaborate(self, platform):
        m = Module()
        bus, down = self.i, self.o
        top = self._pf.addr_width               # word-address bit that selects the VF region
        addr = Signal(top + 1)                  # word address of the request
        is_write = Signal()
        data_ = Signal(32)
        strb = Signal(4)
        misaligned = Signal()
        target = Signal(top)
        resp = Signal(2)
        vf_now = Signal(range(max(2, 1 << (top - 10))))
        vf = Signal.like(vf_now)
        ok_now, ok = Signal(), Signal()
        target_now = Signal(top)
        keep_now, keep = Signal(32), Signal(32)
        self._translate(m, addr[:top], target_now, ok_now, vf_now, keep_now)
        aw_done, w_done = Signal(), Signal()

        m.d.comb += [down.awaddr.eq(Cat(C(0, 2), target)), down.araddr.eq(Cat(C(0, 2), target)),
                     down.wdata.eq(data_), down.wstrb.eq(strb)]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(bus.awvalid & bus.wvalid):
                    m.d.comb += [bus.awready.eq(1), bus.wready.eq(1)]
                    m.d.sync += [addr.eq(bus.awaddr[2:]), misaligned.eq(bus.awaddr[:2] != 0),
                                 data_.eq(bus.wdata), strb.eq(bus.wstrb), is_write.eq(1)]
                    m.next = "TRANSLATE"
                with m.Elif(bus.arvalid):
                    m.d.comb += bus.arready.eq(1)
                    m.d.sync += [addr.eq(bus.araddr[2:]), misaligned.eq(bus.araddr[:2] != 0),
                                 is_write.eq(0)]
                    m.next = "TRANSLATE"
            with m.State("TRANSLATE"):
                pf_half = ~addr[top]
                m.d.sync += [target.eq(Mux(pf_half, addr[:top], target_now)),
                             ok.eq(pf_half | ok_now), vf.eq(vf_now), aw_done.eq(0),
                             w_done.eq(0), keep.eq(Mux(pf_half | ~is_write, 0, keep_now))]
                m.next = "DECIDE"
            with m.State("DECIDE"):
                with m.If(ok & (keep != 0)):
                    m.next = "MERGE"
                with m.Elif(ok):
                    m.next = "FORWARD"
                with m.Else():
                    with m.If(vf < self._vfs):
                        m.d.comb += self.denied.eq(1 << vf)
                    m.d.sync += [resp.eq(RESP_DECERR), data_.eq(0)]
                    m.next = "ANSWER"
            with m.State("MERGE"):
                # The PF's word first: the bits it owns go down as they are.
                m.d.comb += down.arvalid.eq(1)
                with m.If(down.arready):
                    m.next = "MERGE_WAIT"
            with m.State("MERGE_WAIT"):
                m.d.comb += down.rready.eq(1)
                with m.If(down.rvalid):
                    m.d.sync += data_.eq(data_ & ~keep | down.rdata & keep)
                    m.next = "FORWARD"
            with m.State("FORWARD"):
                with m.If(is_write):
                    m.d.comb += [down.awvalid.eq(~aw_done), down.wvalid.eq(~w_done)]
                    done_aw = aw_done | down.awready
                    done_w = w_done | down.wready
                    m.d.sync += [aw_done.eq(done_aw), w_done.eq(done_w)]
                    with m.If(done_aw & done_w):
                        m.next = "WAIT"
                with m.Else():
                    m.d.comb += down.arvalid.eq(1)
                    with m.If(down.arready):
                        m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += [down.bready.eq(is_write), down.rready.eq(~is_write)]
                with m.If(is_write & down.bvalid):
                    m.d.sync += resp.eq(down.bresp)
                    m.next = "ANSWER"
                with m.If(~is_write & down.rvalid):
                    m.d.sync += [resp.eq(down.rresp), data_.eq(down.rdata)]
                    m.next = "ANSWER"
            with m.State("ANSWER"):
                m.d.comb += [bus.bvalid.eq(is_write), bus.bresp.eq(resp),
                             bus.rvalid.eq(~is_write), bus.rresp.eq(resp), bus.rdata.eq(data_)]
                with m.If(Mux(is_write, bus.bready, bus.rready)):
                    m.next = "IDLE"
        # A misaligned access keeps its low bits on the way down, so the bridge answers SLVERR.
        with m.If(misaligned):
            m.d.comb += [down.awaddr[:2].eq(1), down.araddr[:2].eq(1)]
        return m

# Ref: ../shared/DESIGN.md "Host interface" (virtual functions); IEEE 802.1Q (C-tag);
#      RFC 826 (ARP sender addresses); RFC 791 (IPv4 source address)
"""TxSpoofCheck: a VF's frames leave only with the addresses its PF gave it.

Between the transmit DMA engine and the switch. For a frame from a ring of an enabled VF whose
``spoof`` settings ask for it, the card checks, in hardware:

* **MAC**: the source MAC (and an ARP packet's sender hardware address) is one of the VF's two
  MACs (``mac0``, ``mac1``; the driver keeps them equal to its MAC-table entries);
* **VLAN**: with a port VLAN the frame carries exactly that 802.1Q tag; without one it is
  untagged (no hopping into another VLAN); a second tag or an 802.1ad S-tag is never allowed;
* **IPv4**: an IPv4 packet's source (and an ARP packet's sender protocol address) is one of the
  VF's two addresses (0 is no address).

A frame that fails, or is too short to show a field the check needs, is sent with ``error`` on
its last beat, which every stage behind discards whole (the port's MAC aborts it, the hairpin
drops it), and ``spoofed`` pulses for its VF. PF frames pass untouched.

The frame's first 36 bytes are captured as they enter (a frame waits in a 32-beat FIFO meanwhile),
then judged in three registered steps; the frame leaves once its verdict is there. About 12
clocks of latency, full rate. ``i_info`` is taken with each frame's first beat and handed on as
``o_info`` with the frame, so the switch behind sees frame and route together as before.
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .layouts import ETHERTYPE_ARP, ETHERTYPE_IPV4, TPID_8021Q, VfGrant, VfSpoof
from .packet import PacketSignature, packet_layout
from .tx_dma import TxFrameInfo
from .vf_control import owner_of

__all__ = ["TxSpoofCheck"]

#: IEEE 802.1ad service tag (an outer, "QinQ" tag).
TPID_8021AD = 0x88A8

_HEADER = 36            # bytes captured: enough for a tagged ARP packet's sender addresses


def _be(hdr: Value, at: int, n: int) -> Value:
    """``n`` bytes of ``hdr`` from byte ``at``, network order, as an integer."""
    return Cat(*reversed([hdr.word_select(at + k, 8) for k in range(n)]))


class TxSpoofCheck(wiring.Component):
    """Transmit anti-spoofing for ``vfs`` virtual functions (4-byte beats).

    Attributes
    ----------
    i : In(PacketSignature(4)); i_info : In(stream of TxFrameInfo), one per frame
    o : Out(PacketSignature(4)); o_info : Out(stream of TxFrameInfo), with each frame
    grants : In(ArrayLayout(VfGrant, vfs)); spoof : In(ArrayLayout(VfSpoof, vfs))
    spoofed : Out(vfs), a pulse per frame dropped, by VF
    """

    def __init__(self, vfs: int, *, depth: int = 32):
        self._vfs = vfs
        self._depth = depth
        super().__init__({
            "i": In(PacketSignature(4)),
            "i_info": In(stream.Signature(TxFrameInfo)),
            "o": Out(PacketSignature(4)),
            "o_info": Out(stream.Signature(TxFrameInfo)),
            "grants": In(data.ArrayLayout(VfGrant, vfs)),
            "spoof": In(data.ArrayLayout(VfSpoof, vfs)),
            "spoofed": Out(vfs),
        })

    def elaborate(self, platform):
        m = Module()
        i, o = self.i, self.o
        beat = packet_layout(4)
        m.submodules.frames = frames = SyncFIFOBuffered(width=beat.size, depth=self._depth)
        m.submodules.infos = infos = SyncFIFOBuffered(width=Shape.cast(TxFrameInfo).width,
                                                      depth=4)
        # One verdict per frame whose last beat is still in `frames`: as deep as `frames`, so
        # short frames queued behind a long one can never lose theirs.
        m.submodules.verdicts = verdicts = SyncFIFOBuffered(width=1, depth=self._depth)

        # --- in: a frame's first beat comes with its info --------------------------------
        take = Signal()
        m.d.comb += [
            i.ready.eq(frames.w_rdy & (~i.p.first | (self.i_info.valid & infos.w_rdy))),
            take.eq(i.valid & i.ready),
            frames.w_data.eq(i.p.as_value()), frames.w_en.eq(take),
            infos.w_data.eq(self.i_info.p.as_value()),
            infos.w_en.eq(take & i.p.first),
            self.i_info.ready.eq(take & i.p.first),
        ]

        # --- capture the header ------------------------------------------------------------
        hdr = Signal(8 * _HEADER)
        ring = Signal(8)
        count = Signal(range(_HEADER // 4 + 1))     # beats captured of this frame
        have = Signal(range(_HEADER + 1))           # bytes of the header the frame has
        done = Signal()
        nbytes = Signal(3)
        m.d.comb += nbytes.eq(Mux(i.p.last, sum(i.p.keep[k] for k in range(4)), 4))
        with m.If(take):
            with m.If(i.p.first):
                m.d.sync += [hdr.word_select(0, 32).eq(i.p.data), ring.eq(self.i_info.p.ring),
                             count.eq(1), have.eq(nbytes)]
            with m.Elif(count < _HEADER // 4):
                m.d.sync += [hdr.word_select(count, 32).eq(i.p.data), count.eq(count + 1),
                             have.eq(have + nbytes)]
            # the verdict can start once the header is in, or the frame ended before
            m.d.comb += done.eq(i.p.last | (~i.p.first & (count == _HEADER // 4 - 1)))
        seen = Signal()                              # the verdict of this frame has started
        with m.If(take & i.p.first):
            m.d.sync += seen.eq(0)
        start = Signal()
        m.d.comb += start.eq(done & ~(seen & ~i.p.first))
        with m.If(start):
            m.d.sync += seen.eq(1)

        # --- step 1: the header and its owner, held ------------------------------------------
        s1 = Signal()
        h = Signal(8 * _HEADER)
        h_len = Signal(range(_HEADER + 1))
        owner = Signal(self._vfs)
        m.d.sync += s1.eq(start)
        with m.If(start):
            # (the beat taken on this clock lands in `hdr` at the same edge: merge it here)
            merged = Signal(8 * _HEADER)
            m.d.comb += merged.eq(hdr)
            with m.If(~i.p.first & (count < _HEADER // 4)):
                m.d.comb += merged.word_select(count, 32).eq(i.p.data)
            with m.If(i.p.first):
                m.d.comb += merged.word_select(0, 32).eq(i.p.data)
            m.d.sync += [h.eq(merged),
                         h_len.eq(Mux(i.p.first, nbytes, Mux(count < _HEADER // 4,
                                                             have + nbytes, have))),
                         owner.eq(owner_of(self.grants,
                                           Mux(i.p.first, self.i_info.p.ring, ring)))]

        # --- step 2: the fields, compared ----------------------------------------------------
        s2 = Signal()
        m.d.sync += s2.eq(s1)
        cfg = Signal(VfSpoof)
        sel = C(0, len(cfg.as_value()))
        for v in range(self._vfs):
            sel = sel | Mux(owner[v], self.spoof[v].as_value(), 0)
        m.d.comb += cfg.eq(sel)
        tagged = _be(h, 12, 2) == TPID_8021Q
        # An S-tag, or a second tag inside the first, is never a VF's to send (it would hide the
        # inner headers from the checks below).
        stacked = (_be(h, 12, 2) == TPID_8021AD) | \
            (tagged & ((_be(h, 16, 2) == TPID_8021Q) | (_be(h, 16, 2) == TPID_8021AD)))
        off = Mux(tagged, 4, 0)
        etype = Mux(tagged, _be(h, 16, 2), _be(h, 12, 2))
        is_v4, is_arp = etype == ETHERTYPE_IPV4, etype == ETHERTYPE_ARP
        src_mac = _be(h, 6, 6)
        ip_src = Mux(tagged, _be(h, 30, 4), _be(h, 26, 4))
        arp_mac = Mux(tagged, _be(h, 26, 6), _be(h, 22, 6))
        arp_ip = Mux(tagged, _be(h, 32, 4), _be(h, 28, 4))
        need_ip = Mux(is_arp, 32, 30) + off              # bytes the IP check reads

        def one_of(value, choices):
            return Cat(*[(value == c) & (c != 0) for c in choices]).any()

        mac_bad, vlan_bad, ip_bad, short = (Signal(name=n) for n in
                                            ("mac_bad", "vlan_bad", "ip_bad", "short"))
        short_checked = Signal()
        pf = Signal()
        with m.If(s1):
            m.d.sync += [
                pf.eq(owner == 0),
                short.eq(h_len < 14 + off),
                short_checked.eq(cfg.check_mac | cfg.check_vlan),
                mac_bad.eq(cfg.check_mac & (~one_of(src_mac, cfg.macs) |
                                            (is_arp & ~one_of(arp_mac, cfg.macs)))),
                vlan_bad.eq(cfg.check_vlan & (stacked | Mux(
                    cfg.vlan == 0, tagged, ~tagged | (_be(h, 14, 2)[:12] != cfg.vlan)))),
                ip_bad.eq(cfg.check_ip & (is_v4 | is_arp) &
                          ((h_len < need_ip) | ~one_of(Mux(is_arp, arp_ip, ip_src), cfg.ips))),
            ]
        spoofed_by = Signal(self._vfs)
        m.d.sync += spoofed_by.eq(owner)

        # --- step 3: the verdict ---------------------------------------------------------------
        bad = Signal()
        m.d.comb += bad.eq(~pf & (mac_bad | vlan_bad | ip_bad | (short & short_checked)))
        m.d.comb += [verdicts.w_data.eq(bad), verdicts.w_en.eq(s2)]
        with m.If(s2 & bad):
            m.d.comb += self.spoofed.eq(spoofed_by)

        # --- out: a frame leaves once its verdict is there ----------------------------------------
        head = data.View(beat, frames.r_data)
        m.d.comb += [
            o.valid.eq(frames.r_rdy & verdicts.r_rdy),
            o.p.eq(head),
            o.p.error.eq(head.error | (head.last & verdicts.r_data[0])),
            frames.r_en.eq(o.valid & o.ready),
            verdicts.r_en.eq(o.valid & o.ready & head.last),
            self.o_info.valid.eq(infos.r_rdy),
            self.o_info.p.eq(infos.r_data),
            infos.r_en.eq(self.o_info.valid & self.o_info.ready),
        ]
        return m

# Ref: IEEE 802.1Q-2018 8.6 (forwarding process: known unicast to its port, flooding otherwise)
"""TxSwitch: sends each transmitted frame to the wire, back onto the card, or both.

The card is a switch between its VNICs and the wire. A frame a VNIC transmits is looked up by
destination MAC and VLAN in the MAC table (its second, transmit-side port):

* a unicast address of a VNIC of this card (a hit): the frame is *hairpinned*: it goes back
  into the receive path (merger source ``hairpin``), where the classifier steers it into the
  destination VNIC's ring like any received frame, and never reaches the wire;
* broadcast and multicast: to the wire of the sending VNIC's port *and* hairpinned, so the
  other VNICs see it too (the classifier floods or delivers it);
* any other unicast: to the wire of the sending VNIC's port.

A ring whose port is past the card's wire ports (``port >= ports``) belongs to an *etherstub*:
a switch on the card with no wire, so its frames are only ever hairpinned. The etherstubs'
VLANs are the IDs from ``stub_vlan_base`` up (0: none; the classifier's ``stub_vlans``
register), and the two worlds never mix: a wire port's ring sending a frame tagged with an
etherstub VLAN, or an etherstub's ring sending one that is not, is refused (dropped whole,
``stub_refused``). With the receive side's ``STUB_VLAN`` drop this keeps etherstubs apart from
the wires in hardware, whatever a tenant puts in its frames; etherstubs are apart from each
other by VLAN, like any two VLANs.

The decision needs the first 16 bytes (destination MAC, and the 802.1Q tag if there is one), so
frames pass through a short FIFO while their header is looked up; the lookup of one frame
overlaps the tail of the one before. A frame sent to both places moves only when both take
the beat. Frames are not reordered: one busy port holds the frames behind it (the transmit
scheduler paces rings per port).
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .csr import Counter, CounterBank, CsrSignature
from .layouts import TPID_8021Q
from .mac_table import MacKey
from .packet import PacketSignature, packet_layout

__all__ = ["TxSwitch", "TxRoute", "TX_SWITCH_COUNTERS"]

#: Where the transmit engine says a frame comes from: the physical port of its VNIC.
TxRoute = data.StructLayout({"port": 2, "vnic": 8})

TX_SWITCH_COUNTERS = [
    Counter("wire", "frames sent to a port's wire only (unicast to no VNIC of the card)"),
    Counter("hairpin", "frames switched on the card only (unicast to a VNIC of the card)"),
    Counter("flood", "broadcast and multicast frames sent to the wire and switched on the card"),
    Counter("no_port", "frames (or a flood's wire copy) from a ring whose port has no wire, "
                       "an etherstub's or one the card does not have: not sent"),
    Counter("hairpin_overflow", "hairpinned frames dropped: the hairpin buffer was full"),
    Counter("stub_refused", "frames dropped: a wire port's ring sending into an etherstub "
                            "VLAN, or an etherstub's ring sending outside them"),
]

_HEADER_BEATS = 4       # 16 bytes of 4-byte beats


class TxSwitch(wiring.Component):
    """``ports`` wire outputs and one hairpin output for a stream of transmitted frames.

    Attributes
    ----------
    i : In(PacketSignature(4)); route : In(stream of TxRoute), one per frame, same order
    port{k} : Out(PacketSignature(4)); hairpin : Out(PacketSignature(4))
    mac_lookup : Out(stream of MacKey); mac_result : In(stream, ``hit`` field used)
        To the MAC table's transmit-side port.
    csr : In(CsrSignature), the counters (read latency 2)
    stub_vlan_base : In(12), the first etherstub VLAN ID (0: none)
    """

    read_latency = 2

    def __init__(self, ports: int = 2, mac_result_layout: data.Layout | None = None,
                 depth: int = 32):
        from .mac_table import mac_match_layout
        self._ports = ports
        self._depth = depth
        self.stats = CounterBank(TX_SWITCH_COUNTERS)
        members = {
            "i": In(PacketSignature(4)),
            "route": In(stream.Signature(TxRoute)),
            "hairpin": Out(PacketSignature(4)),
            "mac_lookup": Out(stream.Signature(MacKey)),
            "mac_result": In(stream.Signature(mac_result_layout or mac_match_layout(32, 6))),
            "csr": In(CsrSignature(len(self.stats.csr.addr))),
            "hairpin_overflow": In(1),
            "stub_vlan_base": In(12),
        }
        for k in range(ports):
            members[f"port{k}"] = Out(PacketSignature(4))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.stats = stats = self.stats
        wiring.connect(m, wiring.flipped(self.csr), stats.csr)
        m.d.comb += stats.inc.hairpin_overflow.eq(self.hairpin_overflow)
        beat = packet_layout(4)
        m.submodules.frames = frames = SyncFIFOBuffered(width=beat.size, depth=self._depth)
        # one decision per frame: (wire, hairpin, port)
        decision = data.StructLayout({"wire": 1, "hairpin": 1, "port": 2})
        m.submodules.decisions = decisions = SyncFIFOBuffered(width=decision.size, depth=4)

        # --- input: beats into the FIFO, header bytes captured on the way ------------------
        header = Signal(8 * 4 * _HEADER_BEATS)
        index = Signal(range(_HEADER_BEATS + 1))
        looking = Signal()                # a lookup for this frame is out or due
        lookup_due = Signal()
        route_port = Signal(2)
        i = self.i
        # A frame is taken only when its route is there and the decision FIFO has room
        # (one frame's lookup at a time).
        can_take = frames.w_rdy & (~i.p.first | (self.route.valid & ~looking & decisions.w_rdy))
        m.d.comb += [i.ready.eq(can_take), frames.w_data.eq(i.p),
                     frames.w_en.eq(i.valid & can_take)]
        with m.If(i.valid & can_take):
            with m.If(i.p.first):
                m.d.comb += self.route.ready.eq(1)
                m.d.sync += [route_port.eq(self.route.p.port), looking.eq(1),
                             header.eq(i.p.data), index.eq(1)]   # the rest reads 0
            with m.Elif(index < _HEADER_BEATS):
                m.d.sync += [header.word_select(index, 32).eq(i.p.data), index.eq(index + 1)]
            position = Mux(i.p.first, 0, index)
            with m.If((position == _HEADER_BEATS - 1)
                      | (i.p.last & (position < _HEADER_BEATS - 1))):
                m.d.sync += lookup_due.eq(1)

        # --- lookup ------------------------------------------------------------------------
        octets = [header[8 * k:8 * k + 8] for k in range(16)]
        dst = Cat(*reversed(octets[0:6]))                  # first octet in bits 47:40
        tagged = Cat(octets[13], octets[12]) == TPID_8021Q
        vid = Cat(octets[15], octets[14])[:12]
        group = octets[0][0]
        m.d.comb += [self.mac_lookup.valid.eq(lookup_due),
                     self.mac_lookup.p.mac.eq(dst),
                     self.mac_lookup.p.vlan.eq(Mux(tagged, vid, 0))]
        with m.If(self.mac_lookup.valid & self.mac_lookup.ready):
            m.d.sync += lookup_due.eq(0)
        wait_group = Signal()
        with m.If(self.mac_lookup.valid & self.mac_lookup.ready):
            m.d.sync += wait_group.eq(group)
        d = Signal(decision)
        hit = self.mac_result.p.hit
        base = self.stub_vlan_base
        stub_vlan = tagged & (base != 0) & (vid >= base)
        refused = Signal()
        m.d.comb += refused.eq((base != 0)
                               & Mux(route_port >= self._ports, ~stub_vlan, stub_vlan))
        m.d.comb += [
            d.port.eq(route_port),
            d.wire.eq(~refused & (wait_group | ~hit)),
            d.hairpin.eq(~refused & (wait_group | hit)),
            self.mac_result.ready.eq(decisions.w_rdy),
            decisions.w_data.eq(d),
            decisions.w_en.eq(self.mac_result.valid),
        ]
        with m.If(self.mac_result.valid & self.mac_result.ready):
            m.d.sync += looking.eq(0)
            m.d.comb += [
                stats.inc.wire.eq(~refused & ~wait_group & ~hit & (route_port < self._ports)),
                stats.inc.hairpin.eq(~refused & ~wait_group & hit),
                stats.inc.flood.eq(~refused & wait_group),
                stats.inc.stub_refused.eq(refused),
            ]

        # --- output: each frame to the targets its decision names --------------------------
        cur = Signal(decision)
        active = Signal()
        head = Signal(beat)
        m.d.comb += head.eq(frames.r_data)
        with m.If(~active & decisions.r_rdy):
            m.d.comb += decisions.r_en.eq(1)
            m.d.sync += [cur.eq(decisions.r_data), active.eq(1)]
        # A beat goes to every target of the frame; a target that took it is not offered it
        # again (``sent``), and the FIFO moves on once all have it, so no ``valid`` depends on
        # another target's ``ready``.
        targets = [(getattr(self, f"port{k}"), cur.wire & (cur.port == k))
                   for k in range(self._ports)] + [(self.hairpin, cur.hairpin)]
        sent = Signal(len(targets))
        offer = active & frames.r_rdy
        done = []
        for t, (o, want) in enumerate(targets):
            m.d.comb += [o.p.eq(head), o.valid.eq(offer & want & ~sent[t])]
            done.append(~want | sent[t] | o.ready)
        move = Signal()
        m.d.comb += [move.eq(offer & Cat(done).all()), frames.r_en.eq(move)]
        with m.If(move):
            m.d.sync += sent.eq(0)
        with m.Elif(offer):
            m.d.sync += sent.eq(sent | Cat(o.valid & o.ready for o, _ in targets))
        with m.If(move & head.last):
            m.d.sync += active.eq(0)
        with m.If(move & head.first & cur.wire & (cur.port >= self._ports)):
            m.d.comb += stats.inc.no_port.eq(1)
        return m

# Ref: IEEE 802.3-2022 clause 3.1-3.4 (MAC frame format, FCS, invalid frames), clause 3.5 (802.1Q
# tagged frame size), clause 35.2.2 (GMII receive signals, Table 35-2), clause 22.2.2 (MII)
"""Ethernet receive MAC for an 8-bit GMII (1000 Mb/s) or a 4-bit MII (10/100 Mb/s) PHY.

The MAC is three small stages joined in one clock domain (the PHY's receive clock; written for
``sync``, renamed by the parent):

* :class:`GmiiDecoder` registers the PHY pins, pairs MII nibbles into octets (realigning on the
  SFD nibble, as 10BASE-T PHYs may lose preamble bits) and flags false carrier;
* :class:`SfdDetector` strips the preamble and SFD and flags alignment errors;
* :class:`FrameChecker` checks FCS, runt/giant lengths and RX_ER, strips the FCS and delivers
  the frame on a packet stream, with one :class:`RxStatus` entry for every frame.

A GMII receiver cannot wait: if the packet stream is not ready when a byte has to leave, the frame
is cut off with ``error`` and reported as :attr:`RxDropReason.OVERFLOW`.
"""

from amaranth import *
from amaranth.lib import crc, data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from .gmii import PREAMBLE, SFD, GmiiSignature
from .packet import PacketSignature

__all__ = [
    "RxDropReason", "RxStatus", "RxStatusSignature", "OctetSignature", "FrameOctetSignature",
    "GmiiDecoder", "SfdDetector", "FrameChecker", "MacRx",
    "MIN_FRAME", "MAX_FRAME", "VLAN_TAG_LENGTH", "TPID_8021Q",
]

#: Shortest valid frame on the wire, destination address through FCS (IEEE 802.3 clause 4.4.2).
MIN_FRAME = 64
#: Default longest untagged frame, destination address through FCS.
MAX_FRAME = 1518
#: Extra octets a frame carrying an 802.1Q tag may have (clause 3.5).
VLAN_TAG_LENGTH = 4
#: Tag protocol identifier of an 802.1Q tag, at octets 12-13 of the frame.
TPID_8021Q = 0x8100
#: Octet RXD carries with RX_ER and RX_DV low to signal false carrier (Table 35-2; MII: 0xE).
FALSE_CARRIER = 0x0E


class RxDropReason(enum.Enum, shape=3):
    """Why a received frame was dropped; ``NONE`` for a good frame.

    When several apply, the first in this order is reported: PHY_ERROR, ALIGNMENT, GIANT, RUNT,
    FCS, OVERFLOW (so that OVERFLOW only counts frames that were otherwise good).
    """
    NONE      = 0
    FCS       = 1   #: FCS does not match (and no other error)
    RUNT      = 2   #: shorter than 64 octets including FCS
    GIANT     = 3   #: longer than ``max_length`` (+4 with an 802.1Q tag)
    PHY_ERROR = 4   #: RX_ER asserted while RX_DV was high
    ALIGNMENT = 5   #: bad preamble, no SFD, nibble-shifted SFD, or an odd number of MII nibbles
    OVERFLOW  = 6   #: the packet stream was not ready when a byte had to leave


class RxStatus(data.Struct):
    """One entry per frame (one per RX_DV burst, good or bad)."""
    #: Octets from the destination address through the FCS (saturates at 65535).
    length: 16
    reason: RxDropReason
    #: The frame carried an 802.1Q tag (TPID 0x8100 at octets 12-13).
    vlan: 1


def RxStatusSignature() -> stream.Signature:
    """The per-frame status stream. It has no back-pressure: the MAC cannot wait, and entries come
    at most once every two clocks (every RX_DV burst needs a high and a low clock)."""
    return stream.Signature(RxStatus, always_ready=True)


class OctetSignature(wiring.Signature):
    """Octets from the PHY, in bursts of RX_DV, with no back-pressure.

    ``valid`` marks an octet in ``data``; ``er`` is RX_ER seen while RX_DV was high this clock;
    ``end`` pulses on a clock without an octet once a burst is over, with ``dribble`` set if an
    odd MII nibble was left over.
    """

    def __init__(self):
        super().__init__({
            "valid":   Out(1),
            "data":    Out(8),
            "er":      Out(1),
            "end":     Out(1),
            "dribble": Out(1),
        })


class FrameOctetSignature(wiring.Signature):
    """Frame octets after the SFD, with no back-pressure.

    ``start`` pulses when the SFD is seen, ``valid`` marks each following octet (destination
    address through FCS), ``end`` pulses once per RX_DV burst (also for bursts that never had an
    SFD); ``phy_error`` and ``alignment_error`` are valid with ``end``.
    """

    def __init__(self):
        super().__init__({
            "start":           Out(1),
            "valid":           Out(1),
            "data":            Out(8),
            "end":             Out(1),
            "phy_error":       Out(1),
            "alignment_error": Out(1),
        })


class GmiiDecoder(wiring.Component):
    """Registers the GMII/MII receive pins and turns them into octets.

    In MII mode (``mii_select``) the PHY gives one nibble per clock on ``data[0:4]``, low nibble
    first. Nibbles are paired from the start of RX_DV; the SFD nibble (0xD) realigns the pairing,
    so a preamble with an odd number of nibbles still frames correctly. ``mii_select`` is sampled
    only while RX_DV is low, so changing it never breaks a frame in flight.

    ``false_carrier`` pulses once per false-carrier event (RX_ER high, RX_DV low, RXD 0x0E);
    carrier extension (0x0F) and LPI (0x01) are not counted.
    """

    gmii: In(GmiiSignature())
    mii_select: In(1)
    o: Out(OctetSignature())
    false_carrier: Out(1)

    def elaborate(self, platform):
        m = Module()

        # Input registers (IOB flops on hardware).
        dv = Signal()
        er = Signal()
        rxd = Signal(8)
        dv_prev = Signal()
        m.d.sync += [
            dv.eq(self.gmii.en),
            er.eq(self.gmii.er),
            rxd.eq(self.gmii.data),
            dv_prev.eq(dv),
        ]

        mii = Signal()
        with m.If(~dv):
            m.d.sync += mii.eq(self.mii_select)

        nibble = rxd[0:4]
        low = Signal(4)
        have_low = Signal()
        hunting = Signal(init=1)    # MII: SFD nibble not seen yet in this burst

        m.d.sync += [
            self.o.valid.eq(0),
            self.o.er.eq(dv & er),
            self.o.end.eq(dv_prev & ~dv),
            self.o.dribble.eq(dv_prev & ~dv & have_low),
        ]
        with m.If(dv):
            with m.If(~mii):
                m.d.sync += [self.o.valid.eq(1), self.o.data.eq(rxd)]
            with m.Elif(hunting & (nibble == (SFD >> 4))):
                # SFD nibble: complete an 0xD5 octet (or a bad one if garbage was pending) and
                # start pairing afresh with the next nibble.
                m.d.sync += [
                    self.o.valid.eq(1),
                    self.o.data.eq(Cat(Mux(have_low, low, PREAMBLE & 0xF), nibble)),
                    have_low.eq(0),
                    hunting.eq(0),
                ]
            with m.Elif(have_low):
                m.d.sync += [
                    self.o.valid.eq(1),
                    self.o.data.eq(Cat(low, nibble)),
                    have_low.eq(0),
                ]
            with m.Else():
                m.d.sync += [low.eq(nibble), have_low.eq(1)]
        with m.Else():
            m.d.sync += [have_low.eq(0), hunting.eq(1)]

        carrier = Signal()
        carrier_prev = Signal()
        m.d.comb += carrier.eq(~dv & er & (nibble == (FALSE_CARRIER & 0xF)) &
                               (mii | (rxd[4:8] == (FALSE_CARRIER >> 4))))
        m.d.sync += [
            carrier_prev.eq(carrier),
            self.false_carrier.eq(carrier & ~carrier_prev),
        ]
        return m


class SfdDetector(wiring.Component):
    """Strips the preamble and SFD.

    Any number of 0x55 octets (including none) may precede the SFD 0xD5, since PHYs may eat
    preamble. A burst whose preamble holds any other octet (e.g. 0x5D, a nibble-shifted SFD), that
    ends before an SFD, or that ends with an odd MII nibble is reported as an alignment error.
    """

    i: In(OctetSignature())
    o: Out(FrameOctetSignature())

    def elaborate(self, platform):
        m = Module()

        er_seen = Signal()
        with m.If(self.i.er):
            m.d.sync += er_seen.eq(1)

        m.d.sync += [self.o.start.eq(0), self.o.valid.eq(0), self.o.end.eq(0)]
        with m.FSM(name="sfd"):
            with m.State("PREAMBLE"):
                with m.If(self.i.valid):
                    with m.If(self.i.data == SFD):
                        m.d.sync += self.o.start.eq(1)
                        m.next = "DATA"
                    with m.Elif(self.i.data != PREAMBLE):
                        m.next = "BAD"
                with m.If(self.i.end):
                    m.d.sync += self.o.alignment_error.eq(1)
            with m.State("BAD"):
                with m.If(self.i.end):
                    m.d.sync += self.o.alignment_error.eq(1)
                    m.next = "PREAMBLE"
            with m.State("DATA"):
                m.d.sync += [self.o.valid.eq(self.i.valid), self.o.data.eq(self.i.data)]
                with m.If(self.i.end):
                    m.d.sync += self.o.alignment_error.eq(self.i.dribble)
                    m.next = "PREAMBLE"

        with m.If(self.i.end):
            m.d.sync += [
                self.o.end.eq(1),
                self.o.phy_error.eq(er_seen),
                er_seen.eq(0),
            ]
        return m


class FrameChecker(wiring.Component):
    """Checks a frame and forwards it without its FCS.

    Octets are held back four deep (the FCS) plus one (the candidate last octet), so the last
    octet leaves with ``last`` and, for a bad frame, ``error``. A frame that grows longer than the
    limit is cut off at once (last beat with ``error``) and its remaining octets are only counted.
    The FCS is checked with the CRC-32 residue. ``max_length`` is sampled at the SFD.
    """

    i: In(FrameOctetSignature())
    max_length: In(16, init=MAX_FRAME)
    o: Out(PacketSignature(1))
    status: Out(RxStatusSignature())

    def elaborate(self, platform):
        m = Module()

        fcs = m.submodules.fcs = crc.Processor(crc.catalog.CRC32_ETHERNET(8))
        m.d.comb += [
            fcs.start.eq(self.i.start),
            fcs.valid.eq(self.i.valid),
            fcs.data.eq(self.i.data),
        ]

        # Per-frame state, cleared at the end of every burst.
        count = Signal(16)          # octets after the SFD, saturating
        room = Signal(17)           # octets the frame may still grow (a zero test, no compare)
        tpid_hi = Signal()
        vlan = Signal()
        giant = Signal()
        overflow = Signal()
        stopped = Signal()          # output cut off (giant or overflow)
        started = Signal()          # a beat of this frame has left
        delay = Signal(32)          # the last four octets; data[0:8] newest
        fill = Signal(range(5))
        held = Signal(8)
        held_valid = Signal()

        # Output register and the terminator owed to a frame cut off by overflow.
        term_pending = Signal()
        out_free = Signal()
        m.d.comb += out_free.eq(~self.o.valid | self.o.ready)

        emit = Signal()
        emit_data = Signal(8)
        emit_last = Signal()
        emit_error = Signal()
        emit_fail = Signal()
        m.d.comb += emit_fail.eq(emit & ~(out_free & ~term_pending))

        with m.If(self.i.start):
            m.d.sync += room.eq(self.max_length)

        too_long = Signal()
        m.d.comb += too_long.eq(room == 0)
        with m.If(self.i.valid):
            m.d.sync += count.eq(Mux(count == 0xFFFF, count, count + 1))
            with m.If(~too_long):
                m.d.sync += room.eq(room - 1)
            with m.If(count == 12):
                m.d.sync += tpid_hi.eq(self.i.data == (TPID_8021Q >> 8))
            with m.If((count == 13) & tpid_hi & (self.i.data == (TPID_8021Q & 0xFF))):
                m.d.sync += vlan.eq(1)
                with m.If(~too_long):       # a tagged frame may be 4 octets longer
                    m.d.sync += room.eq(room - 1 + VLAN_TAG_LENGTH)
            with m.If(~stopped):
                with m.If(too_long):
                    m.d.sync += [giant.eq(1), stopped.eq(1)]
                    with m.If(held_valid):
                        m.d.comb += [emit.eq(1), emit_data.eq(held),
                                     emit_last.eq(1), emit_error.eq(1)]
                with m.Else():
                    m.d.sync += delay.eq(Cat(self.i.data, delay[:24]))
                    with m.If(fill == 4):
                        m.d.sync += [held.eq(delay[24:32]), held_valid.eq(1)]
                        with m.If(held_valid):
                            m.d.comb += [emit.eq(1), emit_data.eq(held)]
                    with m.Else():
                        m.d.sync += fill.eq(fill + 1)

        runt = Signal()
        fcs_bad = Signal()
        m.d.comb += [runt.eq(count < MIN_FRAME), fcs_bad.eq(~fcs.match_detected)]
        with m.If(self.i.end):
            with m.If(~stopped & held_valid):
                m.d.comb += [
                    emit.eq(1), emit_data.eq(held), emit_last.eq(1),
                    emit_error.eq(self.i.phy_error | self.i.alignment_error | runt | fcs_bad),
                ]

        # The single write port of the output register.
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(term_pending & out_free):
            m.d.sync += [
                self.o.valid.eq(1),
                self.o.p.data.eq(0), self.o.p.keep.eq(1),
                self.o.p.first.eq(0), self.o.p.last.eq(1), self.o.p.error.eq(1),
                term_pending.eq(0),
            ]
        with m.If(emit & ~emit_fail):
            m.d.sync += [
                self.o.valid.eq(1),
                self.o.p.data.eq(emit_data), self.o.p.keep.eq(1),
                self.o.p.first.eq(~started), self.o.p.last.eq(emit_last),
                self.o.p.error.eq(emit_error),
                started.eq(1),
            ]
        with m.If(emit_fail):
            m.d.sync += [overflow.eq(1), stopped.eq(1)]
            with m.If(started):
                # The sink holds part of this frame: it is owed an error beat.
                m.d.sync += term_pending.eq(1)

        m.d.sync += self.status.valid.eq(0)
        with m.If(self.i.end):
            reason = Signal(RxDropReason)
            with m.If(self.i.phy_error):
                m.d.comb += reason.eq(RxDropReason.PHY_ERROR)
            with m.Elif(self.i.alignment_error):
                m.d.comb += reason.eq(RxDropReason.ALIGNMENT)
            with m.Elif(giant):
                m.d.comb += reason.eq(RxDropReason.GIANT)
            with m.Elif(runt):
                m.d.comb += reason.eq(RxDropReason.RUNT)
            with m.Elif(fcs_bad):
                m.d.comb += reason.eq(RxDropReason.FCS)
            with m.Elif(overflow | emit_fail):
                m.d.comb += reason.eq(RxDropReason.OVERFLOW)
            m.d.sync += [
                self.status.valid.eq(1),
                self.status.p.length.eq(count),
                self.status.p.reason.eq(reason),
                self.status.p.vlan.eq(vlan),
                # Clear the per-frame state (after the output logic above, so these win).
                count.eq(0), tpid_hi.eq(0), vlan.eq(0), giant.eq(0), overflow.eq(0),
                stopped.eq(0), started.eq(0), fill.eq(0), held_valid.eq(0),
            ]
        return m


class MacRx(wiring.Component):
    """Receive MAC: GMII/MII pins in, frames without preamble/SFD/FCS out, one status per frame.

    Attributes
    ----------
    gmii : In(GmiiSignature())
        The PHY's receive pins (RXD, RX_DV, RX_ER), in this component's clock domain.
    max_length : In(16)
        Longest accepted frame in octets, destination address through FCS (default 1518); frames
        with an 802.1Q tag may be 4 octets longer. Sampled at each SFD.
    mii_select : In(1)
        1 for a 4-bit MII PHY (10/100 Mb/s), 0 for GMII. Sampled between frames.
    o : Out(PacketSignature(1))
        Every frame that got past the SFD, FCS stripped; ``error`` on the last beat of a bad one.
        Should always be ready; a byte that cannot leave cuts the frame off (OVERFLOW).
    status : Out(RxStatusSignature())
        One :class:`RxStatus` per RX_DV burst, in the clock after the burst ends.
    false_carrier : Out(1)
        Pulses once per false-carrier event (not a frame; no status entry).
    """

    gmii: In(GmiiSignature())
    max_length: In(16, init=MAX_FRAME)
    mii_select: In(1)
    o: Out(PacketSignature(1))
    status: Out(RxStatusSignature())
    false_carrier: Out(1)

    def elaborate(self, platform):
        m = Module()
        m.submodules.decoder = decoder = GmiiDecoder()
        m.submodules.sfd = sfd = SfdDetector()
        m.submodules.checker = checker = FrameChecker()

        wiring.connect(m, wiring.flipped(self.gmii), decoder.gmii)
        wiring.connect(m, decoder.o, sfd.i)
        wiring.connect(m, sfd.o, checker.i)
        wiring.connect(m, checker.o, wiring.flipped(self.o))
        wiring.connect(m, checker.status, wiring.flipped(self.status))
        m.d.comb += [
            decoder.mii_select.eq(self.mii_select),
            checker.max_length.eq(self.max_length),
            self.false_carrier.eq(decoder.false_carrier),
        ]
        return m

# Ref: IEEE 802.3-2022 clause 3 (MAC frame), clause 35 (GMII), clause 22 (MII); clause 30.3.1.1
# (MAC statistics the counters follow in spirit)
"""The receive side of one Ethernet port, from the PHY pins to good frames in the core domain.

::

    gmii --> MacRx --> StreamWidener(1, width) --> AsyncFIFOBuffered --> PacketFifo --> o
             (rx)      (rx)                        (rx->sync)    (sync)
               |status --------------------------> AsyncFIFO --\\
               |false_carrier ---------------> PulseSynchronizer -> CounterBank --> csr
                                                                   (sync)

The port cannot back-pressure the PHY. Everything after the MAC drains faster than the wire fills
it (the widener emits at most one beat every ``width`` receive clocks, the sync side takes one per
clock), so the MAC's overflow cannot happen here; a full packet buffer drops whole frames instead.
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.cdc import FFSynchronizer, PulseSynchronizer
from amaranth.lib.fifo import AsyncFIFO, AsyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .csr import Counter, CounterBank, CounterRegister, CsrSignature
from .gmii import GmiiSignature
from .mac_rx import MAX_FRAME, MacRx, RxDropReason, RxStatus
from .packet import PacketSignature, packet_layout
from .packet_fifo import PacketFifo
from .width import StreamWidener

__all__ = ["RX_COUNTERS", "RxPort"]

#: Drop counters, in register order, and the MAC drop reason each one counts.
_DROP_REASONS = {
    "drop_fcs":       RxDropReason.FCS,
    "drop_runt":      RxDropReason.RUNT,
    "drop_giant":     RxDropReason.GIANT,
    "drop_phy_error": RxDropReason.PHY_ERROR,
    "drop_alignment": RxDropReason.ALIGNMENT,
}

#: The port's statistics. Every RX_DV burst is counted exactly once, in ``frames_ok`` or in one
#: ``drop_*`` counter, so their sum is the number of frames seen on the wire.
RX_COUNTERS = [
    Counter("frames_ok",
            "Frames received without error and stored whole in the receive buffer, i.e. frames "
            "that are or will be delivered on the port's output. Frames dropped for lack of "
            "buffer space are not included (see drop_overflow).", inc_width=1),
    Counter("bytes_ok",
            "Octets of the frames in frames_ok as delivered: destination address through the "
            "end of the data/pad field; preamble, SFD and FCS are not included.", inc_width=16),
    Counter("drop_fcs", "Frames of valid length whose FCS did not match."),
    Counter("drop_runt", "Frames shorter than 64 octets including FCS (whatever their FCS)."),
    Counter("drop_giant",
            "Frames longer than max_length octets including FCS (max_length + 4 when the frame "
            "carries an 802.1Q tag, TPID 0x8100); cut off as soon as they are too long."),
    Counter("drop_phy_error", "Frames during which the PHY asserted RX_ER (RX_DV high)."),
    Counter("drop_alignment",
            "Bursts whose preamble held an octet other than 0x55 before the SFD (e.g. a "
            "nibble-shifted SFD 0x5D), bursts without SFD, and MII frames ending with an odd "
            "nibble."),
    Counter("drop_overflow",
            "Frames otherwise good that were dropped because the receive buffer was full (or, "
            "never by construction, because the MAC output was not ready).", inc_width=2),
    Counter("false_carrier",
            "False-carrier events: RX_ER with RX_DV low and RXD 0x0E (MII: 0xE). Not frames; "
            "not part of the frame sum."),
]


class RxPort(wiring.Component):
    """Receive port: GMII/MII in the ``rx`` domain, good frames and statistics in ``sync``.

    Parameters
    ----------
    width : int
        Bytes per beat of the output stream (4 for the 32-bit core datapath).
    fifo_depth : int
        Beats of the store-and-forward receive buffer (power of two).

    Attributes
    ----------
    gmii : In(GmiiSignature())
        PHY receive pins, ``rx`` domain.
    o : Out(PacketSignature(width))
        Good frames only, whole, FCS stripped, ``sync`` domain.
    csr : In(CsrSignature(n))
        Statistics counters, ``sync`` domain: :data:`RX_COUNTERS` in order, 64 bits each, the
        low word of counter *k* at address 2k and the high word at 2k+1 (see :attr:`registers`).
        Read the low word first (it latches the high word); writing the low word clears the
        counter. Counters lag the traffic by a few clocks (clock-domain crossing).
    max_length : In(16)
        Longest accepted untagged frame including FCS (default 1518), ``sync`` domain.
    mii_select : In(1)
        1 for MII (10/100 Mb/s), ``sync`` domain.

    ``max_length`` and ``mii_select`` are quasi-static: they cross into ``rx`` through
    two-flop synchronisers; the MAC samples ``max_length`` at each SFD and ``mii_select`` between
    frames, so change them while the link is quiet (a frame arriving during the change may be
    judged by a mix of old and new bits).
    """

    #: clocks from ``csr.r_stb`` to valid ``csr.r_data`` (the counter bank's)
    read_latency = CounterBank.read_latency

    def __init__(self, width: int = 4, fifo_depth: int = 1024):
        self._width = width
        self._fifo_depth = fifo_depth
        self._bank = CounterBank(RX_COUNTERS)
        super().__init__({
            "gmii": In(GmiiSignature()),
            "o": Out(PacketSignature(width)),
            "csr": In(CsrSignature(len(self._bank.csr.addr))),
            "max_length": In(16, init=MAX_FRAME),
            "mii_select": In(1),
        })

    @property
    def registers(self) -> list[CounterRegister]:
        """Where each counter word sits on :attr:`csr`."""
        return self._bank.registers

    def elaborate(self, platform):
        m = Module()
        width = self._width

        # --- rx domain: MAC and widener -----------------------------------------------------
        mac = MacRx()
        m.submodules.mac = DomainRenamer("rx")(mac)
        wiring.connect(m, wiring.flipped(self.gmii), mac.gmii)
        m.submodules.max_length_cdc = FFSynchronizer(
            self.max_length, mac.max_length, o_domain="rx", init=MAX_FRAME)
        m.submodules.mii_select_cdc = FFSynchronizer(
            self.mii_select, mac.mii_select, o_domain="rx")

        widen = StreamWidener(1, width)
        m.submodules.widen = DomainRenamer("rx")(widen)
        wiring.connect(m, mac.o, widen.i)

        # --- frames rx -> sync ------------------------------------------------------------------
        # The widener offers at most one beat per `width` rx clocks (per rx clock for width 1)
        # and the sync side takes one per clock, so a few entries are plenty.
        # Buffered: `r_rdy` comes from a register, not from comparing the synchronized
        # pointers, so the packet buffer's admission logic starts a clock path of its own.
        beats = m.submodules.beat_cdc = AsyncFIFOBuffered(
            width=packet_layout(width).size, depth=17, w_domain="rx", r_domain="sync")
        m.d.comb += [
            beats.w_data.eq(widen.o.payload),
            beats.w_en.eq(widen.o.valid),
            widen.o.ready.eq(beats.w_rdy),
        ]

        m.submodules.buffer = buffer = PacketFifo(width, self._fifo_depth)
        m.d.comb += [
            buffer.i.payload.eq(beats.r_data),
            buffer.i.valid.eq(beats.r_rdy),
            beats.r_en.eq(buffer.i.ready),
        ]
        wiring.connect(m, buffer.o, wiring.flipped(self.o))

        # --- statistics ---------------------------------------------------------------------
        # Status entries come at most every other rx clock and are read one per sync clock, so
        # the FIFO cannot fill unless sync ran at less than half the rx clock.
        status = m.submodules.status_cdc = AsyncFIFO(
            width=RxStatus.as_shape().size, depth=8, w_domain="rx", r_domain="sync")
        m.d.comb += [
            status.w_data.eq(mac.status.payload),
            status.w_en.eq(mac.status.valid),
            status.r_en.eq(1),
        ]
        entry = RxStatus(status.r_data)

        carrier = m.submodules.carrier_cdc = PulseSynchronizer("rx", "sync")
        m.d.comb += carrier.i.eq(mac.false_carrier)

        # Bytes of the frame entering the buffer, counted when the buffer commits it.
        keep = buffer.i.p.keep
        beat_bytes = Signal(range(width + 1))
        m.d.comb += beat_bytes.eq(sum(keep[n] for n in range(width)))
        frame_bytes = Signal(16)
        so_far = Signal(16)
        m.d.comb += frame_bytes.eq(Mux(buffer.i.p.first, 0, so_far) + beat_bytes)
        with m.If(buffer.i.valid):
            m.d.sync += so_far.eq(frame_bytes)

        m.submodules.counters = bank = self._bank
        wiring.connect(m, wiring.flipped(self.csr), bank.csr)
        # Increments are registered (counters lag by two clocks): the buffer's commit/overflow
        # pulses come from its fill compare, so they are registered before meeting the byte
        # count, and the increments again before the 64-bit adders.
        inc = Signal.like(bank.inc)
        m.d.sync += bank.inc.eq(inc)
        commit, overflow, committed_bytes = Signal(), Signal(), Signal(16)
        m.d.sync += [
            commit.eq(buffer.commit),
            overflow.eq(buffer.overflow),
            committed_bytes.eq(frame_bytes),
        ]
        m.d.comb += [
            inc.frames_ok.eq(commit),
            inc.bytes_ok.eq(Mux(commit, committed_bytes, 0)),
            inc.drop_overflow.eq(
                (status.r_rdy & (entry.reason == RxDropReason.OVERFLOW)) + overflow),
            inc.false_carrier.eq(carrier.o),
        ]
        for name, reason in _DROP_REASONS.items():
            m.d.comb += getattr(inc, name).eq(status.r_rdy & (entry.reason == reason))
        return m

# Ref: IEEE 802.3-2022 clause 3.2 (3.2.1 preamble, 3.2.2 SFD, 3.2.8 pad, 3.2.9 FCS),
#      4.2.3.2.2 (interframe spacing), 4.4.2 (minFrameSize, interFrameGap),
#      clause 35.2.2 (GMII transmit: TXD, TX_EN, TX_ER)
"""The transmit MAC for 8-bit GMII: pads, appends the FCS, prepends the preamble, spaces frames.

:class:`MacTx` is a chain of small stages on a one-byte packet stream, each usable on its own::

    SkidBuffer -> TxPadder -> FcsInserter -> SkidBuffer -> PreambleInserter -> IfgInserter
      -> GmiiTransmitter -> GMII

(the skid buffers only cut combinational paths for 125 MHz timing).

Every stage takes one byte per clock, so frames queued at the input leave at line rate: a
64-byte frame (60 bytes in, 4 bytes of FCS) takes 8 + 64 + 12 = 84 clocks with the gap.

The wire cannot wait. When the input runs dry in the middle of a frame (underrun) or a beat
carries ``error``, :class:`GmiiTransmitter` drives TX_EN with TX_ER for one clock, which the PHY
turns into an error symbol so every receiver discards the frame, then releases TX_EN and discards
the rest of that input frame. Each frame ends with a :class:`TxStatus` record for the counters.
"""

from amaranth import *
from amaranth.lib import crc, data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from .gmii import PREAMBLE, SFD, GmiiSignature
from .packet import PacketSignature, packet_layout
from .skid_buffer import SkidBuffer

__all__ = [
    "TxOutcome", "TxStatus",
    "TxPadder", "FcsInserter", "PreambleInserter", "IfgInserter", "GmiiTransmitter",
    "MacTx",
    "MIN_FRAME_LENGTH", "IFG_LENGTH", "PREAMBLE_LENGTH",
]

#: Shortest frame before the FCS (minFrameSize of 64 octets minus the 4-octet FCS).
MIN_FRAME_LENGTH = 60
#: Minimum interframe gap in octet times at 1000 Mb/s (interFrameGap = 96 bit times).
IFG_LENGTH = 12
#: Preamble (7 octets of 0x55) plus the SFD (0xD5).
PREAMBLE_LENGTH = 8


class TxOutcome(enum.Enum, shape=2):
    """How a frame handed to the transmit path ended."""
    OK       = 0   #: sent whole with a good FCS
    UNDERRUN = 1   #: input ran dry mid-frame; cut short with TX_ER
    ABORTED  = 2   #: the source flagged ``error``; cut with TX_ER, or dropped before it started
    OVERSIZE = 3   #: longer than the port's frame buffer; dropped before it started (TxPort)


class TxStatus(data.Struct):
    """One record per frame, for statistics.

    ``length`` counts the octets sent after the SFD (destination address through FCS, padding
    included; saturates at 65535), ``multicast``/``broadcast`` classify the destination address
    as sent (a broadcast frame is not also counted as multicast).
    """
    length:    16
    outcome:   TxOutcome
    multicast: 1
    broadcast: 1


def _byte_stages_signature() -> dict:
    return {"i": In(PacketSignature(1)), "o": Out(PacketSignature(1))}


class TxPadder(wiring.Component):
    """Pads frames shorter than ``min_length`` bytes with zero bytes to exactly ``min_length``.

    An empty last beat (``keep`` clear) becomes a pad byte when padding is needed and passes
    through unchanged otherwise. Frames flagged with ``error`` are not padded.

    Parameters
    ----------
    min_length : int
        Shortest frame length at the output, without FCS (60 for Ethernet).
    """

    def __init__(self, min_length: int = MIN_FRAME_LENGTH):
        if min_length < 1:
            raise ValueError(f"minimum frame length must be at least 1, not {min_length}")
        self._min_length = min_length
        super().__init__(_byte_stages_signature())

    def elaborate(self, platform):
        m = Module()
        n = self._min_length
        count = Signal(range(n + 1))   # bytes of this frame sent so far, saturating at n
        padding = Signal()

        with m.If(~padding):
            fill = Signal()    # an empty last beat of a short frame becomes a pad byte
            counted = Signal()
            after = Signal(range(n + 2))
            short = Signal()
            m.d.comb += [
                fill.eq(self.i.p.last & ~self.i.p.error & ~self.i.p.keep[0] & (count < n)),
                counted.eq(self.i.p.keep[0] | fill),
                after.eq(count + counted),
                # after < n, without waiting for the adder
                short.eq(self.i.p.last & ~self.i.p.error &
                         Mux(counted, count < n - 1, count < n)),
                self.o.valid.eq(self.i.valid),
                self.o.p.eq(self.i.p),
                self.i.ready.eq(self.o.ready),
            ]
            with m.If(fill):
                m.d.comb += [self.o.p.data.eq(0), self.o.p.keep.eq(1)]
            with m.If(short):
                m.d.comb += self.o.p.last.eq(0)
            with m.If(self.o.valid & self.o.ready):
                with m.If(short):
                    m.d.sync += [padding.eq(1), count.eq(after)]
                with m.Elif(self.i.p.last):
                    m.d.sync += count.eq(0)
                with m.Else():
                    m.d.sync += count.eq(Mux(after > n, n, after))
        with m.Else():
            m.d.comb += [
                self.o.valid.eq(1),
                self.o.p.keep.eq(1),
                self.o.p.last.eq(count == n - 1),
            ]
            with m.If(self.o.ready):
                m.d.sync += count.eq(count + 1)
                with m.If(self.o.p.last):
                    m.d.sync += [padding.eq(0), count.eq(0)]
        return m


class FcsInserter(wiring.Component):
    """Appends the 4-byte FCS (CRC-32, least significant byte first) to every frame.

    The output is exactly what ``frame + zlib.crc32(frame).to_bytes(4, "little")`` gives. An
    empty last beat is replaced by the first FCS byte, so no bubble and no stray byte appear. A
    frame whose beat carries ``error`` passes through without an FCS (the transmitter aborts it).
    """

    def __init__(self):
        super().__init__(_byte_stages_signature())

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = proc = crc.catalog.CRC32_ETHERNET(8).create()

        in_frame = Signal()    # the CRC holds at least one byte of the current frame
        appending = Signal()   # sending the FCS
        index = Signal(2)      # FCS byte being sent
        fcs = Signal(32)
        # CRC-32 of no data is 0; the register may still hold the previous frame then.
        m.d.comb += fcs.eq(Mux(in_frame, proc.crc, 0))

        with m.If(~appending):
            empty_last = Signal()
            good_last = Signal()
            m.d.comb += [
                empty_last.eq(self.i.p.last & ~self.i.p.error & ~self.i.p.keep[0]),
                good_last.eq(self.i.p.last & ~self.i.p.error),
                self.o.valid.eq(self.i.valid),
                self.o.p.eq(self.i.p),
                self.o.p.keep.eq(1),
                self.o.p.last.eq(self.i.p.last & self.i.p.error),
                self.i.ready.eq(self.o.ready),
                proc.start.eq(~in_frame),
                proc.data.eq(self.i.p.data),
                proc.valid.eq(self.i.valid & self.o.ready & self.i.p.keep[0] & ~empty_last),
            ]
            with m.If(empty_last):
                m.d.comb += self.o.p.data.eq(fcs[:8])
            with m.If(self.i.valid & self.o.ready):
                with m.If(empty_last):
                    m.d.sync += [appending.eq(1), index.eq(1)]
                with m.Elif(good_last):
                    m.d.sync += [appending.eq(1), index.eq(0), in_frame.eq(1)]
                with m.Elif(self.i.p.last):
                    m.d.sync += in_frame.eq(0)
                with m.Else():
                    m.d.sync += in_frame.eq(1)
        with m.Else():
            m.d.comb += [
                self.o.valid.eq(1),
                self.o.p.data.eq(fcs.word_select(index, 8)),
                self.o.p.keep.eq(1),
                self.o.p.last.eq(index == 3),
            ]
            with m.If(self.o.ready):
                m.d.sync += index.eq(index + 1)
                with m.If(index == 3):
                    m.d.sync += [appending.eq(0), in_frame.eq(0)]
        return m


class PreambleInserter(wiring.Component):
    """Puts 7 preamble bytes (0x55) and the SFD (0xD5) in front of every frame.

    The preamble starts as soon as a frame's first byte is waiting; ``first`` moves to the first
    preamble byte. Frames are delimited by ``last`` alone.
    """

    def __init__(self):
        super().__init__(_byte_stages_signature())

    def elaborate(self, platform):
        m = Module()
        index = Signal(range(PREAMBLE_LENGTH))
        passing = Signal()   # preamble done, frame bytes flow through

        with m.If(passing):
            m.d.comb += [
                self.o.valid.eq(self.i.valid),
                self.o.p.eq(self.i.p),
                self.o.p.first.eq(0),
                self.i.ready.eq(self.o.ready),
            ]
            with m.If(self.i.valid & self.o.ready & self.i.p.last):
                m.d.sync += passing.eq(0)
        with m.Else():
            m.d.comb += [
                self.o.valid.eq(self.i.valid | (index != 0)),
                self.o.p.data.eq(Mux(index == PREAMBLE_LENGTH - 1, SFD, PREAMBLE)),
                self.o.p.keep.eq(1),
                self.o.p.first.eq(index == 0),
            ]
            with m.If(self.o.valid & self.o.ready):
                m.d.sync += index.eq(index + 1)
                with m.If(index == PREAMBLE_LENGTH - 1):
                    m.d.sync += [index.eq(0), passing.eq(1)]
        return m


class IfgInserter(wiring.Component):
    """Holds the next frame back for ``ifg`` clocks after each frame's last byte.

    Behind a registered transmitter this leaves exactly ``ifg`` idle clocks between TX_EN runs
    when frames are queued, and at least that many otherwise.

    Parameters
    ----------
    ifg : int
        Gap in byte times (12 = 96 bit times, the 802.3 minimum).
    """

    def __init__(self, ifg: int = IFG_LENGTH):
        if ifg < 1:
            raise ValueError(f"interframe gap must be at least 1 byte time, not {ifg}")
        self._ifg = ifg
        super().__init__(_byte_stages_signature())

    def elaborate(self, platform):
        m = Module()
        gap = Signal(range(self._ifg + 1))
        open_ = Signal()
        m.d.comb += [
            open_.eq(gap == 0),
            self.o.valid.eq(self.i.valid & open_),
            self.o.p.eq(self.i.p),
            self.i.ready.eq(self.o.ready & open_),
        ]
        with m.If(~open_):
            m.d.sync += gap.eq(gap - 1)
        with m.If(self.i.valid & self.i.ready & self.i.p.last):
            m.d.sync += gap.eq(self._ifg)
        return m


class GmiiTransmitter(wiring.Component):
    """Drives GMII from a byte stream of whole wire frames (preamble to FCS), registered.

    It never applies backpressure: one byte per clock leaves while a frame is in progress. If the
    input is not valid mid-frame, or a beat carries ``error``, that clock goes out with TX_EN and
    TX_ER (a corrupted frame every receiver drops) and the rest of the input frame is discarded.

    Parameters
    ----------
    preamble_length : int
        Bytes at the start of each frame not counted in ``status.length`` (preamble and SFD).

    Attributes
    ----------
    status : stream, always ready
        One :class:`TxStatus` per frame, valid for one clock while the run's last byte is on
        the wire (the record is final then).
    """

    def __init__(self, preamble_length: int = PREAMBLE_LENGTH):
        self._preamble = preamble_length
        super().__init__({
            "i": In(PacketSignature(1)),
            "gmii": Out(GmiiSignature()),
            "status": Out(stream.Signature(TxStatus, always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        pre = self._preamble
        sending = Signal()    # inside a TX_EN run
        draining = Signal()   # discarding the rest of an aborted input frame
        limit = pre + 0xFFFF
        count = Signal(range(limit + 1))   # bytes sent in this run, saturating
        group = Signal()      # I/G bit of the destination address
        all_ones = Signal()   # destination address bytes seen so far are all 0xFF

        m.d.comb += self.i.ready.eq(1)
        m.d.sync += [
            self.gmii.en.eq(0),
            self.gmii.er.eq(0),
            self.gmii.data.eq(0),
            self.status.valid.eq(0),
        ]

        # One byte (or the error symbol) goes out this clock.
        emit = Signal()
        underrun = Signal()
        m.d.comb += [
            underrun.eq(sending & ~self.i.valid),
            emit.eq(~draining & (self.i.valid | sending)),
        ]
        pos = Signal.like(count)   # position of this byte in the run
        m.d.comb += pos.eq(Mux(sending, count, 0))

        with m.If(emit):
            abort = Signal()
            ends = Signal()
            m.d.comb += [
                abort.eq(underrun | self.i.p.error),
                ends.eq(abort | self.i.p.last),
            ]
            m.d.sync += [
                self.gmii.en.eq(1),
                self.gmii.er.eq(abort),
                self.gmii.data.eq(Mux(underrun, 0, self.i.p.data)),
                count.eq(Mux(pos == limit, pos, pos + 1)),
                sending.eq(~ends),
                draining.eq(abort & ~(self.i.valid & self.i.p.last)),
            ]
            with m.If(pos == pre):
                m.d.sync += [group.eq(self.i.p.data[0]), all_ones.eq(self.i.p.data == 0xFF)]
            with m.Elif((pos > pre) & (pos < pre + 6)):
                m.d.sync += all_ones.eq(all_ones & (self.i.p.data == 0xFF))
            with m.If(ends):
                m.d.sync += [
                    self.status.valid.eq(1),
                    self.status.p.outcome.eq(Mux(underrun, TxOutcome.UNDERRUN,
                                                 Mux(self.i.p.error, TxOutcome.ABORTED,
                                                     TxOutcome.OK))),
                ]
        with m.Elif(draining & self.i.valid & self.i.p.last):
            m.d.sync += draining.eq(0)

        # Status fields from the run that just ended (valid with status.valid).
        broadcast = Signal()
        m.d.comb += [
            broadcast.eq(all_ones & (count >= pre + 6)),
            self.status.p.length.eq(Mux(count > pre, count - pre, 0)),
            self.status.p.broadcast.eq(broadcast),
            self.status.p.multicast.eq(group & (count > pre) & ~broadcast),
        ]
        return m


class MacTx(wiring.Component):
    """Transmit MAC for 8-bit GMII at 125 MHz, in the ``sync`` domain.

    Takes frames without FCS (destination address first, one byte per beat) and sends them
    padded to 60 bytes, with FCS, preamble/SFD and at least ``ifg`` idle clocks between frames.

    Parameters
    ----------
    ifg : int
        Interframe gap in byte times (12 by default, the 802.3 minimum).
    min_length : int
        Pad frames to this many bytes before the FCS (60 by default).

    Attributes
    ----------
    i : packet stream, 1 byte wide
    gmii : GMII transmit signals (TXD, TX_EN, TX_ER), registered
    status : stream of :class:`TxStatus`, always ready, one per frame
    """

    def __init__(self, *, ifg: int = IFG_LENGTH, min_length: int = MIN_FRAME_LENGTH):
        self._ifg = ifg
        self._min_length = min_length
        super().__init__({
            "i": In(PacketSignature(1)),
            "gmii": Out(GmiiSignature()),
            "status": Out(stream.Signature(TxStatus, always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.skid_in = skid_in = SkidBuffer(packet_layout(1))
        m.submodules.padder = padder = TxPadder(self._min_length)
        # A register slice between padder and CRC: the padder's zero-fill choice and the
        # byte-wide CRC update do not fit one 125 MHz clock together on an ECP5 -6.
        m.submodules.skid_pad = skid_pad = SkidBuffer(packet_layout(1))
        m.submodules.fcs = fcs = FcsInserter()
        m.submodules.skid_fcs = skid_fcs = SkidBuffer(packet_layout(1))
        m.submodules.preamble = preamble = PreambleInserter()
        m.submodules.ifg = ifg = IfgInserter(self._ifg)
        m.submodules.transmitter = transmitter = GmiiTransmitter(PREAMBLE_LENGTH)

        wiring.connect(m, wiring.flipped(self.i), skid_in.i)
        wiring.connect(m, skid_in.o, padder.i)
        wiring.connect(m, padder.o, skid_pad.i)
        wiring.connect(m, skid_pad.o, fcs.i)
        wiring.connect(m, fcs.o, skid_fcs.i)
        wiring.connect(m, skid_fcs.o, preamble.i)
        wiring.connect(m, preamble.o, ifg.i)
        wiring.connect(m, ifg.o, transmitter.i)
        wiring.connect(m, transmitter.gmii, wiring.flipped(self.gmii))
        wiring.connect(m, transmitter.status, wiring.flipped(self.status))
        return m

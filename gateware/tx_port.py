# Ref: IEEE 802.3-2022 clause 4.2.3 (transmit: a frame, once started, goes out at line rate),
#      clause 30.3.1.1 (MAC transmit counters), clause 35.2.2 (GMII transmit)
"""One Ethernet transmit port: core-side packet stream in, GMII out, statistics on the CSR bus.

::

    i (sync, width bytes) -> TxBuffer (store and forward, sync -> tx) -> StreamNarrower(width, 1)
      -> MacTx (tx) -> gmii
    MacTx.status + TxBuffer.drop (tx) -> AsyncFIFO -> counter increments -> CounterBank (sync)

The wire cannot wait once a frame has started, but the core may pause in the middle of one.
:class:`TxBuffer` therefore releases a frame to the MAC only when its last beat is inside the
buffer (store and forward, as NICs do): a frame from the core never underruns, however it
stalls. The same decision point drops whole frames that cannot be sent correctly before any byte
of them reaches the wire: frames flagged with ``error``, and frames longer than the buffer.
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import AsyncFIFO, AsyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .csr import Counter, CounterBank, CounterRegister, CsrSignature
from .gmii import GmiiSignature
from .mac_tx import MacTx, TxOutcome, TxStatus
from .packet import PacketSignature, packet_layout
from .width import StreamNarrower

__all__ = ["TxFrameInfo", "TxBuffer", "TxPort", "TX_COUNTERS", "SIZE_BUCKETS"]


class TxFrameInfo(data.Struct):
    """What the write side learned about a stored frame by its last beat."""
    error:    1   #: a beat carried ``error``
    oversize: 1   #: longer than the buffer; stored truncated


class TxBuffer(wiring.Component):
    """Store-and-forward frame buffer from ``sync`` (write) to ``tx`` (read).

    Beats cross in an :class:`~amaranth.lib.fifo.AsyncFIFOBuffered`; for every complete frame the
    write side also pushes a :class:`TxFrameInfo` through a second, small AsyncFIFO. The read side
    starts a frame only after taking its info entry, i.e. once the whole frame is stored. Frames
    with ``error``, and frames longer than the buffer (cut at ``depth`` beats, the rest of the
    input frame discarded), are read out and dropped; each drop yields a ``drop`` record.

    Parameters
    ----------
    width : int
        Bytes per beat.
    depth : int
        Buffer depth in beats, rounded up to a power of 2 plus 1 (a block RAM and its output
        register); the longest frame it can send is ``depth * width`` bytes. Line rate needs
        room for one longest frame plus a few beats.
    frames : int
        Complete frames the buffer may hold at once (depth of the info FIFO).

    Attributes
    ----------
    i : packet stream, ``sync`` domain
    o : packet stream, ``tx`` domain; whole frames only, never ``error``
    drop : stream of :class:`TxStatus` (``length`` 0, outcome ABORTED or OVERSIZE), ``tx``
    """

    def __init__(self, width: int = 4, depth: int = 512, frames: int = 16):
        if depth < 2:
            raise ValueError(f"buffer depth must be at least 2 beats, not {depth}")
        self._width = width
        self._depth = self.depth_for(depth)
        self._frames = 1 << ceil_log2(max(frames, 2))
        super().__init__({
            "i": In(PacketSignature(width)),
            "o": Out(PacketSignature(width)),
            "drop": Out(stream.Signature(TxStatus)),
        })

    @staticmethod
    def depth_for(depth: int) -> int:
        """The depth in beats a buffer asked for ``depth`` beats gets (2**n + 1 >= depth)."""
        return (1 << ceil_log2(depth - 1)) + 1

    @property
    def depth(self) -> int:
        """Buffer depth in beats (a power of 2 plus 1)."""
        return self._depth

    def elaborate(self, platform):
        m = Module()
        layout = packet_layout(self._width)
        # Buffered: the block RAM's slow clock-to-output stays off the MAC's paths.
        m.submodules.beats = beats = AsyncFIFOBuffered(
            width=layout.size, depth=self._depth, w_domain="sync", r_domain="tx")
        m.submodules.infos = infos = AsyncFIFO(
            width=TxFrameInfo.as_shape().size, depth=self._frames,
            w_domain="sync", r_domain="tx")

        # --- write side (sync): store beats, note each frame's end -----------------------------
        count = Signal(range(self._depth))   # beats of the current frame already stored
        errored = Signal()                   # an earlier beat of this frame carried error
        discard = Signal()                   # dropping the tail of an oversize frame
        force = Signal()                     # this beat fills the buffer: cut the frame here
        ends = Signal()
        can = Signal()
        stored = Signal(layout)
        info = Signal(TxFrameInfo)
        m.d.comb += [
            force.eq(~self.i.p.last & (count == self._depth - 1)),
            ends.eq(self.i.p.last | force),
            can.eq(beats.w_rdy & (infos.w_rdy | ~ends)),
            stored.eq(self.i.p),
            stored.last.eq(ends),
            stored.error.eq(self.i.p.error | force),
            info.error.eq(errored | self.i.p.error | force),
            info.oversize.eq(force),
            beats.w_data.eq(stored),
            infos.w_data.eq(info),
        ]
        with m.If(discard):
            m.d.comb += self.i.ready.eq(1)
            with m.If(self.i.valid & self.i.p.last):
                m.d.sync += discard.eq(0)
        with m.Else():
            m.d.comb += [
                self.i.ready.eq(can),
                beats.w_en.eq(self.i.valid & can),
                infos.w_en.eq(self.i.valid & can & ends),
            ]
            with m.If(self.i.valid & can):
                with m.If(ends):
                    m.d.sync += [count.eq(0), errored.eq(0), discard.eq(force)]
                with m.Else():
                    m.d.sync += [count.eq(count + 1), errored.eq(errored | self.i.p.error)]

        # --- read side (tx): one whole frame at a time ------------------------------------------
        head = layout(beats.r_data)
        entry = TxFrameInfo(infos.r_data)
        outcome = Signal(TxOutcome)
        m.d.comb += [
            self.o.p.eq(head),
            self.o.p.error.eq(0),
            self.drop.p.length.eq(0),
            self.drop.p.outcome.eq(outcome),
        ]
        with m.FSM(domain="tx"):
            with m.State("WAIT"):
                m.d.comb += infos.r_en.eq(1)
                with m.If(infos.r_rdy):
                    with m.If(entry.error | entry.oversize):
                        m.d.tx += outcome.eq(Mux(entry.oversize, TxOutcome.OVERSIZE,
                                                 TxOutcome.ABORTED))
                        m.next = "DROP"
                    with m.Else():
                        m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [
                    self.o.valid.eq(beats.r_rdy),
                    beats.r_en.eq(self.o.ready),
                ]
                with m.If(self.o.valid & self.o.ready & head.last):
                    m.next = "WAIT"
            with m.State("DROP"):
                m.d.comb += beats.r_en.eq(1)
                with m.If(beats.r_rdy & head.last):
                    m.next = "REPORT"
            with m.State("REPORT"):
                m.d.comb += self.drop.valid.eq(1)
                with m.If(self.drop.ready):
                    m.next = "WAIT"
        return m


#: Frame-size histogram buckets (name, shortest, longest), lengths counted DA through FCS.
SIZE_BUCKETS = [
    ("frames_64", 64, 64),
    ("frames_65_127", 65, 127),
    ("frames_128_255", 128, 255),
    ("frames_256_511", 256, 511),
    ("frames_512_1023", 512, 1023),
    ("frames_1024_1518", 1024, 1518),
    ("frames_1519_max", 1519, 0xFFFF),
]

#: Statistics of a transmit port, in register order (see :attr:`TxPort.registers`).
TX_COUNTERS = [
    Counter("frames", "Frames sent whole with a good FCS (aFramesTransmittedOK).", 64),
    Counter("octets", "Octets of good frames from destination address through FCS, padding "
                      "included, preamble/SFD excluded.", 64, inc_width=16),
    Counter("multicast", "Good frames to a group address other than broadcast "
                         "(aMulticastFramesXmittedOK).", 64),
    Counter("broadcast", "Good frames to ff:ff:ff:ff:ff:ff (aBroadcastFramesXmittedOK).", 64),
    *[Counter(name, f"Good frames of {lo}..{hi} octets, FCS included (RMON etherStatsPkts "
                    "histogram, transmit side).", 64) for name, lo, hi in SIZE_BUCKETS],
    Counter("underrun", "Frames cut short with TX_ER because data ran out mid-frame "
                        "(aFramesLostDueToIntMACXmitError).", 32),
    Counter("aborted", "Frames the core flagged with error: dropped before sending.", 32),
    Counter("oversize", "Frames longer than the transmit buffer: dropped before sending.", 32),
]


class TxPort(wiring.Component):
    """One transmit port: frames from the core (``sync``) onto GMII (``tx``), with counters.

    Domains: ``sync`` is the core clock, ``tx`` the GMII transmit clock (125 MHz); reset both
    together. A parent renames ``tx`` per port (``DomainRenamer({"tx": "eth0_tx"})``).

    Parameters
    ----------
    width : int
        Bytes per beat of the core-side stream.
    fifo_depth : int
        Store-and-forward buffer in beats (rounded up to 2**n + 1); frames longer than
        :attr:`max_frame_length` bytes are dropped and counted as ``oversize``.

    Attributes
    ----------
    i : packet stream, ``sync``; frames without FCS
    gmii : GMII transmit signals, ``tx``
    csr : register bus, ``sync``; the counters of :data:`TX_COUNTERS` (read-only, write clears)
    """

    def __init__(self, width: int = 4, *, fifo_depth: int = 512):
        self._width = width
        self._fifo_depth = fifo_depth
        self._max_frame_length = TxBuffer.depth_for(fifo_depth) * width
        self._bank = CounterBank(TX_COUNTERS)
        super().__init__({
            "i": In(PacketSignature(width)),
            "gmii": Out(GmiiSignature()),
            "csr": In(CsrSignature(len(self._bank.csr.addr))),
        })

    @property
    def max_frame_length(self) -> int:
        """Longest frame (bytes, without FCS) the port sends; longer ones count as oversize."""
        return self._max_frame_length

    @property
    def registers(self) -> list[CounterRegister]:
        """Counter registers on :attr:`csr` (word addresses), for the register map."""
        return self._bank.registers

    def elaborate(self, platform):
        m = Module()
        m.submodules.buffer = buffer = TxBuffer(self._width, self._fifo_depth)
        m.submodules.narrower = narrower = DomainRenamer("tx")(StreamNarrower(self._width, 1))
        m.submodules.mac = mac = DomainRenamer("tx")(MacTx())
        m.submodules.counters = bank = self._bank

        wiring.connect(m, wiring.flipped(self.i), buffer.i)
        wiring.connect(m, buffer.o, narrower.i)
        wiring.connect(m, narrower.o, mac.i)
        wiring.connect(m, mac.gmii, wiring.flipped(self.gmii))
        wiring.connect(m, wiring.flipped(self.csr), bank.csr)

        # Frame records cross to the core clock. The MAC's record cannot wait and wins; a frame
        # ends at most once per 21 tx clocks and the sync side reads every clock, so 8 entries
        # never fill while both clocks run.
        m.submodules.status = fifo = AsyncFIFO(
            width=TxStatus.as_shape().size, depth=8, w_domain="tx", r_domain="sync")
        with m.If(mac.status.valid):
            m.d.comb += [fifo.w_data.eq(mac.status.p), fifo.w_en.eq(1)]
        with m.Else():
            m.d.comb += [
                fifo.w_data.eq(buffer.drop.p),
                fifo.w_en.eq(buffer.drop.valid),
                buffer.drop.ready.eq(fifo.w_rdy),
            ]

        # Decode each record into counter increments, registered: the length compares and the
        # 64-bit counter adders would not fit one 8 ns clock together.
        status = TxStatus(fifo.r_data)
        ok = Signal()
        inc = Signal.like(bank.inc)
        m.d.comb += bank.inc.eq(inc)
        m.d.comb += fifo.r_en.eq(1)
        m.d.sync += [
            inc.frames.eq(ok),
            inc.octets.eq(Mux(ok, status.length, 0)),
            inc.multicast.eq(ok & status.multicast),
            inc.broadcast.eq(ok & status.broadcast),
            *[getattr(inc, name).eq(ok & (status.length >= lo) & (status.length <= hi))
              for name, lo, hi in SIZE_BUCKETS],
            inc.underrun.eq(fifo.r_rdy & (status.outcome == TxOutcome.UNDERRUN)),
            inc.aborted.eq(fifo.r_rdy & (status.outcome == TxOutcome.ABORTED)),
            inc.oversize.eq(fifo.r_rdy & (status.outcome == TxOutcome.OVERSIZE)),
        ]
        m.d.comb += ok.eq(fifo.r_rdy & (status.outcome == TxOutcome.OK))
        return m

# Ref: IEEE 802.3-2022 clause 4.2.3 (transmit: a frame, once started, goes out at line rate),
#      clause 30.3.1.1 (MAC transmit counters), clause 35.2.2 (GMII transmit)
"""One Ethernet transmit port: core-side packet stream in, GMII out, statistics on the CSR bus.

::

    i (sync, width bytes) -> TxBuffer: PacketFifo (store and forward, sync) -> register
      -> RegisteredReadyAsyncFIFO (16 beats, sync -> tx) -> SkidBuffer (tx)
      -> StreamNarrower(width, 1) (tx) -> MacTx (tx) -> gmii
    TxBuffer.aborted/oversize (sync) + MacTx.status (tx -> AsyncFIFO -> sync) -> CounterBank

The wire cannot wait once a frame has started, but the core may pause in the middle of one.
:class:`TxBuffer` therefore releases a frame only when its last beat is inside the buffer (store
and forward, as NICs do): a frame from the core never underruns, however it stalls. The same
decision point drops whole frames that cannot be sent correctly before any byte of them reaches
the wire: frames flagged with ``error``, and frames longer than the buffer.

The frame store runs in the core clock and only a small FIFO crosses to the MAC clock, so the
clock-crossing pointers stay a few bits wide (with the whole buffer in a 513-beat AsyncFIFO, its
read-pointer logic held ``tx`` below 125 MHz on the LFE5U-25F-6). A released frame streams out at
``width`` bytes per core clock and the wire takes one byte per ``tx`` clock, so the MAC never
runs dry as long as the core clock is not slower than ``tx / width`` (31.25 MHz for a 4-byte
stream beside 125 MHz GMII).
"""

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.fifo import AsyncFIFO
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .async_fifo import RegisteredReadyAsyncFIFO
from .csr import Counter, CounterBank, CounterRegister, CsrSignature
from .gmii import GmiiSignature
from .mac_tx import MacTx, TxOutcome, TxStatus
from .packet import PacketSignature, packet_layout
from .packet_fifo import PacketFifo
from .skid_buffer import SkidBuffer
from .width import StreamNarrower

__all__ = ["TxBuffer", "TxPort", "TX_COUNTERS", "SIZE_BUCKETS"]

#: Beats of the ``sync`` -> ``tx`` crossing FIFO: covers the pointer synchronisers' round trip
#: (a few clocks each way) with room to spare, and keeps the Gray pointers 5 bits wide.
CROSSING_DEPTH = 16


class TxBuffer(wiring.Component):
    """Store-and-forward frame buffer from ``sync`` (write) to ``tx`` (read).

    A :class:`~crossnic.gateware.packet_fifo.PacketFifo` in ``sync`` holds the frames and shows
    each one only after its last beat; a small
    :class:`~crossnic.gateware.async_fifo.RegisteredReadyAsyncFIFO` then carries
    the beats to ``tx``, and a :class:`~crossnic.gateware.skid_buffer.SkidBuffer` registers them
    there (so the reader's ``ready`` does not reach the crossing FIFO's read pointer and RAM
    address in the same clock). In front of the PacketFifo, which never waits, this buffer holds
    the input back while the store is full, so frames queue instead of being dropped. A frame that
    fills the whole store and still goes on can never fit: from then on its beats are taken and
    thrown away (``oversize``). A frame with ``error`` on any beat is discarded whole (``aborted``).

    Frames are delimited by ``last`` alone: the beat after a ``last`` starts the next frame,
    whatever its ``first`` says.

    Parameters
    ----------
    width : int
        Bytes per beat.
    depth : int
        Store depth in beats, rounded up to a power of 2; the longest frame it can send is
        ``depth * width`` bytes. Line rate needs room for one longest frame plus a few beats.

    Attributes
    ----------
    i : packet stream, ``sync``
    o : packet stream, ``tx``; whole frames only, never ``error``. Once a frame has started, a
        reader taking one beat per ``width`` tx clocks (the MAC behind the narrower) always finds
        the next one, as long as the ``sync`` clock is at least ``tx / width``
    aborted : pulse, ``sync``; the last beat of a frame with ``error`` was taken (frame dropped)
    oversize : pulse, ``sync``; the last beat of a frame longer than the store was taken
        (frame dropped; counted here even if it also carried ``error``)
    """

    def __init__(self, width: int = 4, depth: int = 512):
        if depth < 2:
            raise ValueError(f"buffer depth must be at least 2 beats, not {depth}")
        self._width = width
        self._depth = self.depth_for(depth)
        super().__init__({
            "i": In(PacketSignature(width)),
            "o": Out(PacketSignature(width)),
            "aborted": Out(1),
            "oversize": Out(1),
        })

    @staticmethod
    def depth_for(depth: int) -> int:
        """The depth in beats a buffer asked for ``depth`` beats gets (2**n >= depth)."""
        return 1 << ceil_log2(depth)

    @property
    def depth(self) -> int:
        """Store depth in beats (a power of 2)."""
        return self._depth

    def elaborate(self, platform):
        m = Module()
        w = self._width
        m.submodules.store = store = PacketFifo(w, self._depth)
        # error never crosses: the store discards such frames
        beat = data.StructLayout({"data": 8 * w, "keep": w, "first": 1, "last": 1})
        # w_rdy registered: Amaranth's AsyncFIFO put its full compare, the write enable and the
        # pointer increment in one sync clock, the slowest path on the colorlight.
        m.submodules.cross = cross = RegisteredReadyAsyncFIFO(
            width=beat.size, depth=CROSSING_DEPTH, w_domain="sync", r_domain="tx")
        m.submodules.out = out = DomainRenamer("tx")(SkidBuffer(packet_layout(w)))

        # --- admission (sync): frame boundaries, backpressure, error and oversize -------------
        start = Signal(init=1)      # the next beat starts a frame
        errored = Signal()          # an earlier beat of this frame carried error
        count = Signal(range(self._depth))   # beats of this frame taken before the current one
        over = Signal()             # the frame already filled the whole store: it cannot fit
        full = Signal()
        take = Signal()
        m.d.comb += [
            full.eq(store.full),
            self.i.ready.eq(~full | over),
            take.eq(self.i.valid & self.i.ready),
            store.i.valid.eq(take),
            store.i.p.data.eq(self.i.p.data),
            store.i.p.keep.eq(self.i.p.keep),
            store.i.p.first.eq(start),
            store.i.p.last.eq(self.i.p.last),
            store.i.p.error.eq(self.i.p.error | errored),
        ]
        with m.If(take):
            with m.If(self.i.p.last):
                m.d.comb += [
                    self.oversize.eq(over),
                    self.aborted.eq(~over & (self.i.p.error | errored)),
                ]
                m.d.sync += [start.eq(1), errored.eq(0), count.eq(0), over.eq(0)]
            with m.Else():
                m.d.sync += [start.eq(0), errored.eq(errored | self.i.p.error)]
                # After ``depth`` beats the store is full of this frame alone; its next beat
                # finds no room and the PacketFifo drops the frame, so let the rest through.
                with m.If(count == self._depth - 1):
                    m.d.sync += over.eq(1)
                with m.Else():
                    m.d.sync += count.eq(count + 1)

        # --- crossing: whole frames, one beat per sync clock -----------------------------------
        # The PacketFifo's output is registered, so it can feed the crossing FIFO's RAM directly.
        m.d.comb += [
            store.o.ready.eq(cross.w_rdy),
            cross.w_en.eq(store.o.valid),
            cross.w_data.eq(Cat(store.o.p.data, store.o.p.keep,      # the layout of `beat`
                                store.o.p.first, store.o.p.last)),
        ]
        head = beat(cross.r_data)
        m.d.comb += [
            out.i.valid.eq(cross.r_rdy),
            out.i.p.data.eq(head.data),
            out.i.p.keep.eq(head.keep),
            out.i.p.first.eq(head.first),
            out.i.p.last.eq(head.last),
            cross.r_en.eq(out.i.ready),
        ]
        wiring.connect(m, out.o, wiring.flipped(self.o))
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
    together. A parent renames ``tx`` per port (``DomainRenamer({"tx": "eth0_tx"})``). ``sync``
    must not be slower than ``tx / width`` or released frames may underrun on the wire.

    Parameters
    ----------
    width : int
        Bytes per beat of the core-side stream.
    fifo_depth : int
        Store-and-forward buffer in beats (rounded up to a power of 2); frames longer than
        :attr:`max_frame_length` bytes are dropped and counted as ``oversize``.

    Attributes
    ----------
    i : packet stream, ``sync``; frames without FCS
    gmii : GMII transmit signals, ``tx``
    csr : register bus, ``sync``; the counters of :data:`TX_COUNTERS` (read-only, write clears)
    """

    #: clocks from ``csr.r_stb`` to valid ``csr.r_data`` (the counter bank's)
    read_latency = CounterBank.read_latency

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

        # MAC records cross to the core clock. The MAC cannot wait for them; a frame ends at most
        # once per 21 tx clocks (preamble, one byte and the gap) and the sync side reads every
        # clock, so 8 entries never fill while both clocks run.
        m.submodules.status = fifo = AsyncFIFO(
            width=TxStatus.as_shape().size, depth=8, w_domain="tx", r_domain="sync")
        m.d.comb += [fifo.w_data.eq(mac.status.p), fifo.w_en.eq(mac.status.valid)]

        # Decode each record into counter increments, registered: the length compares and the
        # 64-bit counter adders would not fit one 8 ns clock together. Dropped frames are counted
        # where the buffer drops them, in sync (the MAC never sees an ``error`` beat, so it never
        # reports ABORTED or OVERSIZE itself).
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
            inc.aborted.eq(buffer.aborted),
            inc.oversize.eq(buffer.oversize),
        ]
        m.d.comb += ok.eq(fifo.r_rdy & (status.outcome == TxOutcome.OK))
        return m

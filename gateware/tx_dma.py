# Ref: ../shared/DESIGN.md "Host interface" (rings, doorbells, descriptors = {address, length});
#      ARM IHI 0022 (AXI4: INCR bursts of at most 256 beats that never cross 4 KB, A3.4.1)
"""TxDmaEngine: frames posted on per-ring transmit rings in host memory, read over AXI4.

::

    csr --> ring settings (cfg memory), doorbells --> work --> TxScheduler --> grant
    A claim: read the ring's settings, take its next descriptor index --> claimed FIFO
    AR: descriptor reads (16 bytes) and frame bursts, one ID, in order; a tag FIFO says what
        each read is (descriptor / frame burst / skipped frame)
    R: descriptors --> check, debit the scheduler --> decoded FIFO --> frame bursts (AR)
       frame beats --> realign to the buffer's byte offset --> SkidBuffer --> 32-bit --> o
    completion: head index, per-ring counters, head write-back to host memory, interrupt

Each frame goes out on ``o`` whole (``first``..``last``), with one :class:`TxFrameInfo` on
``o_info`` in the same order (offered no later than the frame's first beat); a frame whose
data read was answered with an AXI error ends with ``error`` set (its info was already sent).
Up to ``in_flight`` frames are between the scheduler's offer being taken and their completion
(plus one more slot that only rate-limited rings may take, so a ring waiting on its rate is
taken as soon as it may send instead of after the frames of backlogged rings), so the
descriptor of the next frame and its first bursts are read while the current frame still
streams out. Both ``o`` and ``o_info`` must be consumed for the engine to go on.

Rules:

* Rings: ``size = 2**ctrl.size_log2`` descriptors (0..15). Indices are free-running 16-bit
  counters, slot = index mod size, descriptor *k* at ``desc_base + 16*slot``. The host posts
  by writing ``tail`` (its producer index, the doorbell); the card consumes from ``fetch``
  (next descriptor to read) and publishes ``head`` (descriptors done: the frame read, or the
  descriptor skipped). The host must keep ``tail - head <= size``.
* A ring has work while it is enabled and ``tail != fetch``. The :class:`TxScheduler` picks
  among rings with work by priority level (strict), round robin within a level, and per-ring
  ``maxbw`` (see there). A frame is charged to its ring's rate when its descriptor has been
  read (a bad descriptor costs nothing). Strict priority holds at the claim: a higher-level
  frame posted behind a lower-level backlog goes out after the frames already in flight.
* Descriptor (:class:`~crossnic.gateware.layouts.TxDescriptor`): ``addr`` may have any byte
  alignment (the engine reads whole beats and realigns); the frame may cross 4 KB pages.
  A descriptor is *bad* when ``length`` is outside 14..``max_frame``, ``addr`` does not fit
  the AXI address width, or its read was answered with an error: it is consumed (``head``
  passes it, in order), nothing is sent, and the ring's ``errors`` counts it.
* Frame reads are INCR bursts of full beats, at most 256 beats, never across 4 KB.
* ``head`` write-back: after frames complete, the engine writes the ring's ``head``
  (32 bits, zero-extended) to ``head_wb`` (4-byte aligned; 0: no write-back). Completions are
  batched: a ring is written back at most once per pass of a scan that visits one ring per
  clock, so within ``rings`` clocks plus one write per other ring due. The interrupt status
  is set after the write's response, when ``head - head at the last interrupt`` reaches
  ``irq_moder.count`` (0 or 1: every write-back) or the ring has drained (``head == tail``).
* ``irq[n]`` is high while ``irq_status`` is set and ``irq_mask`` is 0.
* Writing ``ctrl.reset`` = 1 sets the ring's ``fetch``, ``head`` and moderation state back
  to 0 once every frame in flight (any ring) has completed and been written back;
  ``ctrl.reset`` reads 1 until then. No new frame is claimed meanwhile.

State lives in memories indexed by ring, each with one writer: ``cfg`` (the eight host
settings words of each ring: register writes), ``fetch`` (claim stage), ``head``
(completion), ``irqh`` (write-back stage), ``cnt`` (per-ring counters, one read-modify-write
unit); the scheduler keeps rates and tokens in its own. Flip-flops per ring: enable,
work pending, reset request, write-back due, interrupt status and mask. After reset every
memory is swept to zero (``rings * 8`` clocks) before the engine accepts register writes.

Registers (:meth:`TxDmaEngine.block`, set *n* at word ``32*n``):

====  ==============  ======  ==========================================================
word  name            access  meaning
====  ==============  ======  ==========================================================
0/1   desc_base lo/hi RW      descriptor ring base (16-byte aligned, bits 3:0 read 0)
2/3   head_wb lo/hi   RW      where ``head`` is written back (4-byte aligned; 0: never)
4     ctrl            RW      [0] enable, [11:8] size_log2, [17:16] priority (0 low,
                              1 medium, 2 high), [21:20] port, [31] reset
5     tail            RW      host producer index (16 bits): the doorbell
6     vnic            RW      VNIC owning the ring (8 bits), carried in ``o_info``
7     irq_moder       RW      [15:0] count
8     maxbw           RW      rate limit, :func:`~.tx_scheduler.rate_register` units; 0: none
9     head            RO      card consumer index: descriptors done
10    irq_status      W1C     [0] interrupt pending
11    irq_mask        RW      [0] hold the line low
12    fetch           RO      next descriptor index the card will read
16-21 frames, bytes,  RO      per-ring 64-bit counters (reading the low word latches the
      errors lo/hi            high word); errors = bad descriptors and failed data reads
====  ==============  ======  ==========================================================

Measured (cocotb + Verilator, ``AxiRam`` as host memory, 64-bit AXI, 64 rings,
``in_flight`` 4, see ``tests/gateware/test_tx_dma.py``): back-to-back 64-byte frames from
eight rings leave every 16.4 clocks and 1518-byte frames every 380.1 clocks, i.e. at the
32-bit output's rate (16 and 379.5 beats); two 1 Gb/s ports need one every 42 and 769. A ring
limited to 1 Gb/s (512-byte frames) beside four backlogged unlimited rings sent 997 Mb/s.
Alone on an LFE5UM5G-45F (yowasp yosys ``synth_ecp5`` + nextpnr ``--out-of-context``, 64 rings,
64-bit AXI, scheduler included): 7568 LUT4 (17%), 3500 FF, 6 DP16KD, 234 LUT-RAM slices,
144 MHz post-route; about a third of the LUTs are the per-ring flag vectors the parallel
arbiter needs.
"""

from amaranth import *
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .axi import BURST_INCR, CACHE_MODIFIABLE, PROT_NONSECURE, RESP_OKAY, AxiSignature, axi_size
from .csr import CsrSignature
from .layouts import DESCRIPTOR_BYTES, Priority, TxDescriptor
from .packet import PacketSignature, packet_layout
from .regmap import Access, Block, Field, Register
from .skid_buffer import SkidBuffer
from .tx_scheduler import RATE_BITS, TxScheduler
from .width import StreamNarrower

__all__ = ["TxDmaEngine", "TxFrameInfo", "RING_STRIDE", "MIN_FRAME",
           "DESC_BASE_LO", "DESC_BASE_HI", "HEAD_WB_LO", "HEAD_WB_HI", "CTRL", "TAIL", "VNIC",
           "IRQ_MODER", "MAXBW", "HEAD", "IRQ_STATUS", "IRQ_MASK", "FETCH",
           "FRAMES", "BYTES", "ERRORS", "CTRL_ENABLE", "CTRL_SIZE_SHIFT", "CTRL_PRIORITY_SHIFT",
           "CTRL_PORT_SHIFT", "CTRL_RESET"]

# Word offsets inside a ring's register set. Words 0..7 are the ring's `cfg` memory row.
DESC_BASE_LO, DESC_BASE_HI, HEAD_WB_LO, HEAD_WB_HI, CTRL, TAIL, VNIC, IRQ_MODER = range(8)
MAXBW, HEAD, IRQ_STATUS, IRQ_MASK, FETCH = 8, 9, 10, 11, 12
FRAMES, BYTES, ERRORS = 16, 18, 20         # low words; the high word follows each
RING_STRIDE = 32
CTRL_ENABLE = 1 << 0
CTRL_SIZE_SHIFT = 8
CTRL_PRIORITY_SHIFT = 16
CTRL_PORT_SHIFT = 20
CTRL_RESET = 1 << 31
#: Shortest frame a descriptor may post (an Ethernet header).
MIN_FRAME = 14

#: What the host may store in each settings word (the rest reads 0).
_CFG_MASKS = {
    DESC_BASE_LO: 0xFFFF_FFF0, DESC_BASE_HI: 0xFFFF_FFFF,
    HEAD_WB_LO: 0xFFFF_FFFC, HEAD_WB_HI: 0xFFFF_FFFF,
    CTRL: CTRL_ENABLE | 0xF << CTRL_SIZE_SHIFT | 3 << CTRL_PRIORITY_SHIFT | 3 << CTRL_PORT_SHIFT,
    TAIL: 0xFFFF, VNIC: 0xFF, IRQ_MODER: 0xFFFF,
}


class TxFrameInfo(data.Struct):
    """Side information of one frame on ``o`` (one per frame, in frame order)."""
    #: Frame length in bytes (the descriptor's ``length``).
    length: 16
    ring: 8
    #: The ring's ``vnic`` register.
    vnic: 8
    #: Physical port the ring's VNIC is over (the ring's ``ctrl.port``).
    port: 2
    #: The ring's level (``ctrl.priority``; 3 reads as ``HIGH``).
    priority: Priority


class _Tag(enum.Enum, shape=2):
    DESC = 0        # a descriptor read (16 bytes)
    DATA = 1        # a burst of frame data
    SKIP = 2        # a bad descriptor's frame: no read, completes in order


class TxDmaEngine(wiring.Component):
    """Transmit DMA ring engine (``sync`` domain).

    Parameters
    ----------
    rings : int
        Number of rings, a power of two 4..256.
    data_width : int
        AXI data bits, 32 or 64.
    addr_width : int
        AXI address bits (64 for PCIe).
    id_width : int
        AXI ID bits (the engine uses ID 0 and keeps its transactions in order).
    max_frame : int
        Longest frame a descriptor may post (9018: jumbo with a VLAN tag).
    in_flight : int
        Frames between claim and completion (descriptor and data reads overlap across them);
        rate-limited rings may use one slot more.

    Attributes
    ----------
    o : Out(PacketSignature(4)), the frames
    o_info : Out(stream of TxFrameInfo), one per frame on ``o``, same order, never later than
        the frame's first beat
    axi : Out(AxiSignature(addr_width, data_width, id_width, ring bits)), the host-memory
        master; ``aruser``/``awuser`` carry the ring each request serves
    csr : In(CsrSignature), the ring registers (:meth:`block`), ``read_latency`` = 2
    irq : Out(rings), level interrupt per ring
    work : Out(1), some enabled ring holds descriptors not yet taken (what the scheduler
        chooses from): high while a rate-limited ring waits for its tokens, so activity
        LEDs and the simulator's idle detection see a card with work to do
    """

    #: clocks from ``r_stb`` to valid ``r_data``
    read_latency = 2

    def __init__(self, *, rings: int = 64, data_width: int = 64, addr_width: int = 64,
                 id_width: int = 1, max_frame: int = 9018, in_flight: int = 4):
        if data_width not in (32, 64):
            raise ValueError(f"data_width must be 32 or 64, not {data_width}")
        if not 4 <= rings <= 256 or rings & (rings - 1):
            raise ValueError(f"rings must be a power of two 4..256, not {rings}")
        if not MIN_FRAME <= max_frame <= 65535:
            raise ValueError(f"max_frame must be {MIN_FRAME}..65535, not {max_frame}")
        if not 2 <= in_flight <= 16:
            raise ValueError(f"in_flight must be 2..16, not {in_flight}")
        self._rings = rings
        self._ring_bits = (rings - 1).bit_length()
        self._data_width = data_width
        self._addr_width = addr_width
        self._max_frame = max_frame
        self._in_flight = in_flight
        super().__init__({
            "o": Out(PacketSignature(4)),
            "o_info": Out(stream.Signature(TxFrameInfo)),
            "axi": Out(AxiSignature(addr_width, data_width, id_width, self._ring_bits)),
            "csr": In(CsrSignature(self._ring_bits + 5)),
            "irq": Out(rings),
            "work": Out(1),
        })

    @property
    def rings(self) -> int:
        return self._rings

    def block(self, name: str = "tx_ring") -> Block:
        """The per-ring register sets, for the register map."""
        rw, ro = Access.RW, Access.RO
        regs = [
            Register("desc_base", DESC_BASE_LO, "descriptor ring base address", (
                Field("addr", 4, 28, rw, "bits 31:4 (16-byte aligned)"),), part="lo"),
            Register.word("desc_base", DESC_BASE_HI, rw, "descriptor ring base address",
                          part="hi"),
            Register("head_wb", HEAD_WB_LO, "head write-back address (0: none)", (
                Field("addr", 2, 30, rw, "bits 31:2 (4-byte aligned)"),), part="lo"),
            Register.word("head_wb", HEAD_WB_HI, rw, "head write-back address (0: none)",
                          part="hi"),
            Register("ctrl", CTRL, "ring control.", (
                Field("enable", 0, 1, rw, "the ring may send (a disabled ring is skipped; "
                      "frames already claimed still go)"),
                Field("size_log2", CTRL_SIZE_SHIFT, 4, rw, "the ring has 2**size_log2 "
                      "descriptors"),
                Field("priority", CTRL_PRIORITY_SHIFT, 2, rw, "scheduling level: 0 low, "
                      "1 medium, 2 high (3: high)"),
                Field("port", CTRL_PORT_SHIFT, 2, rw, "physical port of the ring's VNIC "
                      "(in o_info)"),
                Field("reset", 31, 1, rw, "write 1: fetch, head and the moderation state "
                      "return to 0 once the frames in flight are done; reads 1 until "
                      "then"))),
            Register.word("tail", TAIL, rw, "host producer index (free-running): the "
                          "doorbell", width=16),
            Register.word("vnic", VNIC, rw, "VNIC that owns the ring (in o_info)", width=8),
            Register("irq_moder", IRQ_MODER, "interrupt moderation.", (
                Field("count", 0, 16, rw, "raise after this many frames since the last "
                      "interrupt, or when the ring drains (0, 1: every write-back)"),)),
            Register.word("maxbw", MAXBW, rw, "rate limit in steps of 8*f_clk/(rings*2**16) "
                          "bit/s (0: unlimited)", width=RATE_BITS),
            Register.word("head", HEAD, ro, "card consumer index: descriptors done "
                          "(free-running)", width=16),
            Register("irq_status", IRQ_STATUS, "interrupt status.", (
                Field("pending", 0, 1, Access.W1C, "interrupt raised; write 1 to "
                      "acknowledge"),)),
            Register("irq_mask", IRQ_MASK, "interrupt mask.", (
                Field("mask", 0, 1, rw, "1: irq line held low (status still set)"),)),
            Register.word("fetch", FETCH, ro, "next descriptor index the card reads "
                          "(free-running)", width=16),
        ]
        for offset, cname, doc in ((FRAMES, "frames", "frames sent from this ring"),
                                   (BYTES, "bytes", "bytes of the frames sent"),
                                   (ERRORS, "errors", ("bad descriptors skipped and "
                                                       "frames whose read failed"))):
            regs.append(Register.word(cname, offset, ro, doc + " (reading the low word "
                                      "latches the high word)", part="lo"))
            regs.append(Register.word(cname, offset + 1, ro, doc, part="hi"))
        return Block(name, f"transmit DMA rings, {self._rings} register sets", tuple(regs),
                     self.read_latency, count=self._rings, stride=RING_STRIDE)

    def elaborate(self, platform):
        m = Module()
        rings, rb = self._rings, self._ring_bits
        db = self._data_width // 8                 # bytes per AXI beat
        beat_bits = (db - 1).bit_length()
        dw = self._data_width
        aw_bits = self._addr_width
        desc_beats = DESCRIPTOR_BYTES // db
        nfl = self._in_flight + 1      # one slot kept for rate-limited rings
        axi = self.axi

        # --- after reset, sweep every memory to zero ---------------------------------------
        sweep = Signal(rb + 3)
        ready = Signal()
        with m.If(~ready):
            m.d.sync += sweep.eq(sweep + 1)
            with m.If(sweep == rings * 8 - 1):
                m.d.sync += ready.eq(1)

        m.submodules.cfg = cfg = Memory(shape=32, depth=rings * 8, init=[])
        cfg_w = cfg.write_port()
        cfg_ra = cfg.read_port()                   # claim stage
        cfg_rw = cfg.read_port()                   # write-back stage
        cfg_rc = cfg.read_port()                   # register reads
        m.submodules.fetch = fetch = Memory(shape=16, depth=rings, init=[])
        fetch_w, fetch_ra, fetch_rc = fetch.write_port(), fetch.read_port(), fetch.read_port()
        m.submodules.head = head = Memory(shape=16, depth=rings, init=[])
        head_w, head_rw, head_rc = head.write_port(), head.read_port(), head.read_port()
        m.submodules.irqh = irqh = Memory(shape=16, depth=rings, init=[])
        irqh_w, irqh_r = irqh.write_port(), irqh.read_port()
        m.submodules.cnt = cnt = Memory(shape=64, depth=rings * 4, init=[])
        cnt_w = cnt.write_port()
        cnt_r = cnt.read_port()                    # shared: register reads win

        m.submodules.sched = sched = TxScheduler(rings)

        # AXI constants.
        m.d.comb += [
            axi.awid.eq(0), axi.awsize.eq(2), axi.awburst.eq(BURST_INCR), axi.awlen.eq(0),
            axi.awcache.eq(CACHE_MODIFIABLE), axi.awprot.eq(PROT_NONSECURE),
            axi.arid.eq(0), axi.arsize.eq(axi_size(dw)), axi.arburst.eq(BURST_INCR),
            axi.arcache.eq(CACHE_MODIFIABLE), axi.arprot.eq(PROT_NONSECURE),
            axi.wlast.eq(1), axi.bready.eq(1),
        ]

        # --- per-ring flops ------------------------------------------------------------------
        enable = Signal(rings)
        pending = Signal(rings)        # doorbell / ctrl written or more descriptors: look again
        reset_req = Signal(rings)
        wb_due = Signal(rings)
        irq_status = Signal(rings)
        irq_mask = Signal(rings)
        m.d.sync += self.irq.eq(irq_status & ~irq_mask)
        m.d.comb += [sched.work.eq(pending & enable), self.work.eq((pending & enable).any())]

        # Frames from their take to their completion (a take found empty leaves again).
        inflight = Signal(range(nfl + 1))
        inflight_inc = Signal()
        inflight_dec = Signal()
        cancel_dec = Signal()
        m.d.sync += inflight.eq(inflight + inflight_inc - inflight_dec - cancel_dec)
        m.d.comb += sched.only_limited.eq(inflight >= nfl - 1)

        # --- the jobs between the stages --------------------------------------------------
        meta_layout = data.StructLayout({
            "ring": rb, "index": 16, "vnic": 8, "port": 2, "priority": 2,
            "limited": 1,               # the scheduler's offer said so: its debit says so too
        })
        job_layout = data.StructLayout({"meta": meta_layout, "desc_addr": aw_bits})
        m.submodules.claimed = claimed = SyncFIFOBuffered(width=job_layout.size, depth=nfl)
        m.submodules.desc_wait = desc_wait = SyncFIFOBuffered(width=meta_layout.size,
                                                              depth=nfl)
        dec_layout = data.StructLayout({
            "job": meta_layout, "addr": 64, "length": 16, "bad": 1,
        })
        m.submodules.decoded = decoded = SyncFIFOBuffered(width=dec_layout.size, depth=nfl)
        frame_layout = data.StructLayout({
            "ring": rb, "index": 16, "length": 16, "shift": beat_bits, "skip": 1,
            "short": 1,                 # length <= one beat: its first output beat is its last
        })
        m.submodules.frames = frames = SyncFIFOBuffered(width=frame_layout.size, depth=nfl)
        m.submodules.info = info = SyncFIFOBuffered(width=Shape.cast(TxFrameInfo).width,
                                                    depth=nfl)
        tag_layout = data.StructLayout({"kind": _Tag, "last": 1})
        m.submodules.tags = tags = SyncFIFOBuffered(width=tag_layout.size, depth=16)
        cnt_ev_layout = data.StructLayout({"ring": rb, "ok": 1, "length": 16})
        m.submodules.cnt_ev = cnt_ev = SyncFIFOBuffered(width=cnt_ev_layout.size, depth=4)
        m.d.comb += [
            self.o_info.valid.eq(info.r_rdy), self.o_info.payload.eq(info.r_data),
            info.r_en.eq(self.o_info.ready),
        ]

        # Debits to the scheduler: the descriptor check has priority over a claim's cancel.
        dec_debit = Signal()
        dec_debit_ring = Signal(rb)
        dec_debit_len = Signal(16)
        dec_debit_limited = Signal()
        cancel = Signal()
        cancel_ring = Signal(rb)
        cancel_limited = Signal()
        with m.If(dec_debit):
            m.d.comb += [sched.debit.valid.eq(1), sched.debit.payload.ring.eq(dec_debit_ring),
                         sched.debit.payload.length.eq(dec_debit_len),
                         sched.debit.payload.limited.eq(dec_debit_limited)]
        with m.Elif(cancel):
            m.d.comb += [sched.debit.valid.eq(1), sched.debit.payload.ring.eq(cancel_ring),
                         sched.debit.payload.length.eq(0),
                         sched.debit.payload.limited.eq(cancel_limited)]

        # --- A: claim ------------------------------------------------------------------------
        a_ring = Signal(rb)
        a_k = Signal(3)                 # cfg word being read
        a_words = {w: Signal(32, name=f"a_word{w}") for w in (DESC_BASE_LO, DESC_BASE_HI,
                                                               CTRL, TAIL, VNIC)}
        a_fetch = Signal(16)
        a_slot = Signal(16)
        a_job = Signal(job_layout)
        a_more = Signal()
        reset_ring = Signal(rb)         # scans for reset requests, one ring per clock
        claim_reset = Signal()
        wb_idle = Signal()
        pend_we, pend_value = Signal(), Signal()
        pend_ring = Signal(rb)
        with m.If(pend_we):
            m.d.sync += pending.bit_select(pend_ring, 1).eq(pend_value)
        m.d.comb += [cfg_ra.addr.eq(Cat(a_k, a_ring)), fetch_ra.addr.eq(a_ring)]
        order = [CTRL, TAIL, DESC_BASE_LO, DESC_BASE_HI, VNIC]
        ctrl = a_words[CTRL]
        # 64-bit reductions registered, out of the take path (a clock late is harmless: a reset
        # waits for the engine to drain, and nothing becomes due while it is drained)
        reset_any, wb_any = Signal(), Signal()
        m.d.sync += [reset_any.eq(reset_req.any()), wb_any.eq(wb_due.any())]
        # a frame done in the last three clocks may not show in `wb_any` yet
        head_pend = Signal()
        recent = Signal(2)
        m.d.sync += recent.eq(Cat(head_pend, recent[0]))
        with m.FSM(name="claim"):
            with m.State("IDLE"):
                offer = sched.offer
                take = (ready & ~reset_any & sched.offer_valid &
                        ((inflight < nfl - 1) | (offer.limited & (inflight < nfl))))
                m.d.sync += a_k.eq(order[0])
                with m.If(ready & reset_any & (inflight == 0) & wb_idle & ~wb_any &
                          ~head_pend & ~recent.any()):
                    with m.If(reset_req.bit_select(reset_ring, 1)):
                        m.next = "RESET"
                    with m.Else():
                        m.d.sync += reset_ring.eq(reset_ring + 1)
                with m.Elif(take):
                    m.d.comb += [sched.take.eq(1), inflight_inc.eq(1)]
                    m.d.sync += [a_ring.eq(offer.ring), a_job.meta.limited.eq(offer.limited)]
                    m.next = "READ0"
            for n in range(len(order)):
                # cfg word order[n] is addressed in READn and arrives in the next state
                with m.State(f"READ{n}"):
                    if n == 0:
                        # Look again only if the claim finds more (or a doorbell rings): the
                        # scheduler's next offer is made after this, the claim lasts longer.
                        m.d.comb += [pend_we.eq(1), pend_ring.eq(a_ring)]
                    if n + 1 < len(order):
                        m.d.sync += a_k.eq(order[n + 1])
                    if n > 0:
                        m.d.sync += a_words[order[n - 1]].eq(cfg_ra.data)
                    if n == 1:
                        m.d.sync += a_fetch.eq(fetch_ra.data)
                    if n == 2:
                        size_log2 = ctrl[CTRL_SIZE_SHIFT:CTRL_SIZE_SHIFT + 4]
                        m.d.sync += a_slot.eq(a_fetch & ((Const(1, 17) << size_log2) - 1))
                    m.next = f"READ{n + 1}" if n + 1 < len(order) else "LAST"
            with m.State("LAST"):
                m.d.sync += a_words[order[-1]].eq(cfg_ra.data)
                m.next = "DECIDE"
            with m.State("DECIDE"):
                avail = Signal(16)
                m.d.comb += avail.eq(a_words[TAIL][:16] - a_fetch)
                prio = ctrl[CTRL_PRIORITY_SHIFT:CTRL_PRIORITY_SHIFT + 2]
                m.d.sync += [
                    a_job.meta.ring.eq(a_ring), a_job.meta.index.eq(a_fetch),
                    a_job.desc_addr.eq(Cat(a_words[DESC_BASE_LO], a_words[DESC_BASE_HI]) +
                                       (a_slot << 4)),
                    a_job.meta.vnic.eq(a_words[VNIC][:8]),
                    a_job.meta.port.eq(ctrl[CTRL_PORT_SHIFT:CTRL_PORT_SHIFT + 2]),
                    a_job.meta.priority.eq(Mux(prio == 3, Priority.HIGH.value, prio)),
                    a_more.eq(avail > 1),
                ]
                with m.If(ctrl[0] & (avail != 0)):
                    m.next = "PUSH"
                with m.Else():
                    m.next = "CANCEL"
            with m.State("PUSH"):
                m.d.comb += [claimed.w_data.eq(a_job), claimed.w_en.eq(1),
                             fetch_w.addr.eq(a_ring), fetch_w.data.eq(a_fetch + 1),
                             fetch_w.en.eq(1)]
                m.d.comb += [pend_we.eq(a_more), pend_ring.eq(a_ring), pend_value.eq(1)]
                m.next = "IDLE"
            with m.State("CANCEL"):
                m.d.comb += [cancel.eq(1), cancel_ring.eq(a_ring),
                             cancel_limited.eq(a_job.meta.limited)]
                with m.If(~dec_debit):
                    m.d.comb += cancel_dec.eq(1)
                    m.next = "IDLE"
            with m.State("RESET"):
                # (the engine is idle: this clock also zeroes head and irqh of reset_ring)
                m.d.comb += [claim_reset.eq(1), fetch_w.addr.eq(reset_ring), fetch_w.data.eq(0),
                             fetch_w.en.eq(1)]
                m.d.sync += reset_req.bit_select(reset_ring, 1).eq(0)
                m.next = "IDLE"
        with m.If(~ready):
            m.d.comb += [fetch_w.addr.eq(sweep), fetch_w.data.eq(0), fetch_w.en.eq(1)]

        # --- AR: descriptor reads first, then frame bursts; a tag per read ----------------
        claimed_job = data.View(job_layout, claimed.r_data)
        ar_free = ~axi.arvalid | axi.arready
        with m.If(axi.arvalid & axi.arready):
            m.d.sync += axi.arvalid.eq(0)
        m.d.comb += desc_wait.w_data.eq(claimed_job.meta)

        # frame issue state (set from the decoded FIFO)
        dv = data.View(dec_layout, decoded.r_data)
        busy = Signal()                 # bursts of a frame left to issue
        cur = Signal(aw_bits)           # next burst address (beat aligned)
        cur_ring = Signal(rb)           # the ring the frame belongs to
        left = Signal(16)               # beats left to read
        nb = Signal(9)                  # beats of the next burst
        nb_valid = Signal()
        to_4k = Signal(13)
        m.d.comb += to_4k.eq((4096 - cur[:12]) >> beat_bits)
        with m.If(busy & ~nb_valid):
            nbv = Mux(left < to_4k, left, to_4k)
            m.d.sync += [nb.eq(Mux(nbv > 256, 256, nbv)), nb_valid.eq(1)]

        desc_req = claimed.r_rdy & desc_wait.w_rdy & tags.w_rdy
        data_req = busy & nb_valid & tags.w_rdy
        start = ~busy & decoded.r_rdy & frames.w_rdy
        skip_req = start & dv.bad & tags.w_rdy
        good_start = start & ~dv.bad & info.w_rdy
        tag_in = Signal(tag_layout)
        m.d.comb += tags.w_data.eq(tag_in)

        with m.If(desc_req & ar_free):
            m.d.sync += [axi.arvalid.eq(1), axi.araddr.eq(claimed_job.desc_addr),
                         axi.arlen.eq(desc_beats - 1), axi.aruser.eq(claimed_job.meta.ring)]
            m.d.comb += [tag_in.kind.eq(_Tag.DESC), tags.w_en.eq(1),
                         claimed.r_en.eq(1), desc_wait.w_en.eq(1)]
        with m.Elif(data_req & ar_free):
            m.d.sync += [axi.arvalid.eq(1), axi.araddr.eq(cur), axi.arlen.eq(nb - 1),
                         axi.aruser.eq(cur_ring),
                         cur.eq(cur + (nb << beat_bits)), left.eq(left - nb), nb_valid.eq(0)]
            m.d.comb += [tag_in.kind.eq(_Tag.DATA), tag_in.last.eq(left == nb),
                         tags.w_en.eq(1)]
            with m.If(left == nb):
                m.d.sync += busy.eq(0)
        with m.Elif(skip_req):
            m.d.comb += [tag_in.kind.eq(_Tag.SKIP), tags.w_en.eq(1)]

        frame_in = Signal(frame_layout)
        shift = dv.addr[:beat_bits]
        m.d.comb += [
            frame_in.ring.eq(dv.job.ring), frame_in.index.eq(dv.job.index),
            frame_in.length.eq(dv.length), frame_in.shift.eq(shift), frame_in.skip.eq(dv.bad),
            frame_in.short.eq(dv.length <= db),
            frames.w_data.eq(frame_in),
        ]
        frame_info = Signal(TxFrameInfo)
        m.d.comb += [
            frame_info.length.eq(dv.length), frame_info.ring.eq(dv.job.ring),
            frame_info.vnic.eq(dv.job.vnic), frame_info.port.eq(dv.job.port),
            frame_info.priority.eq(dv.job.priority), info.w_data.eq(frame_info),
        ]
        with m.If(good_start):
            m.d.comb += [frames.w_en.eq(1), info.w_en.eq(1), decoded.r_en.eq(1)]
            m.d.sync += [
                busy.eq(1), nb_valid.eq(0), cur_ring.eq(dv.job.ring),
                cur.eq(Cat(C(0, beat_bits), dv.addr[beat_bits:aw_bits])),
                left.eq((shift + dv.length + db - 1) >> beat_bits),
            ]
        with m.Elif(skip_req & ~(desc_req & ar_free)):
            m.d.comb += [frames.w_en.eq(1), decoded.r_en.eq(1)]

        # --- R: descriptors ------------------------------------------------------------------
        tag = data.View(tag_layout, tags.r_data)
        wait_job = data.View(meta_layout, desc_wait.r_data)
        d_beat = Signal(range(desc_beats))
        d_raw = Signal(TxDescriptor)
        d_err = Signal()
        r_desc = tags.r_rdy & (tag.kind == _Tag.DESC)
        r_data_beat = tags.r_rdy & (tag.kind == _Tag.DATA)
        desc_now = Signal(TxDescriptor)     # the descriptor with this beat in place
        m.d.comb += desc_now.eq(d_raw)
        m.d.comb += desc_now.as_value().word_select(d_beat, dw).eq(axi.rdata)
        bad = Signal()
        m.d.comb += bad.eq(d_err | (axi.rresp != RESP_OKAY) |
                           (desc_now.length < MIN_FRAME) | (desc_now.length > self._max_frame) |
                           (desc_now.addr[aw_bits:] != 0 if aw_bits < 64 else C(0)))
        dec_in = Signal(dec_layout)
        m.d.comb += [
            dec_in.job.eq(wait_job), dec_in.addr.eq(desc_now.addr),
            dec_in.length.eq(desc_now.length), dec_in.bad.eq(bad),
            decoded.w_data.eq(dec_in),
        ]
        with m.If(r_desc & decoded.w_rdy):
            m.d.comb += axi.rready.eq(1)
            with m.If(axi.rvalid):
                m.d.sync += [d_raw.eq(desc_now), d_beat.eq(d_beat + 1)]
                with m.If(axi.rresp != RESP_OKAY):
                    m.d.sync += d_err.eq(1)
                with m.If(axi.rlast):
                    m.d.sync += [d_beat.eq(0), d_err.eq(0)]
                    m.d.comb += [
                        decoded.w_en.eq(1), desc_wait.r_en.eq(1), tags.r_en.eq(1),
                        dec_debit.eq(1), dec_debit_ring.eq(wait_job.ring),
                        dec_debit_len.eq(Mux(bad, 0, desc_now.length)),
                        dec_debit_limited.eq(wait_job.limited),
                    ]

        # --- R: frame data, realigned to the buffer's byte offset ----------------------------
        fr = data.View(frame_layout, frames.r_data)
        m.submodules.skid = skid = SkidBuffer(packet_layout(db))
        prev = Signal(dw)
        have_prev = Signal()
        active = Signal()               # the head frame has had a beat
        started = Signal()              # ... and its first output beat
        rem = Signal(16)                # bytes of the head frame not yet output
        f_err = Signal()
        flush = Signal()
        rem_last = Signal()             # rem <= db (registered with rem: no compare in the
        rem_now = Mux(active, rem, fr.length)   # path from the beat to `done`)
        s = fr.shift
        joined = Signal(2 * dw)
        m.d.comb += joined.eq(Mux(flush, prev, Cat(prev, axi.rdata)) >> (s << 3))
        out_data = Mux((s == 0) & ~flush, axi.rdata, joined[:dw])
        out_last = Mux(active, rem_last, fr.short)
        keep = Signal(db)
        m.d.comb += keep.eq(Mux(out_last, (Const(1, db + 1) << rem_now[:beat_bits + 1]) - 1,
                                (1 << db) - 1))
        out_err = Signal()
        done = Signal()                 # the head frame completes this clock
        done_ok = Signal()
        m.d.comb += [
            skid.i.payload.data.eq(out_data), skid.i.payload.keep.eq(keep),
            skid.i.payload.first.eq(~started), skid.i.payload.last.eq(out_last),
            skid.i.payload.error.eq(out_err & out_last),
        ]
        can_emit = skid.i.ready & cnt_ev.w_rdy & frames.r_rdy
        with m.If(flush):
            m.d.comb += [skid.i.valid.eq(can_emit), out_err.eq(f_err)]
            with m.If(can_emit):
                m.d.comb += [done.eq(1), done_ok.eq(~f_err)]
        with m.Elif(r_data_beat & can_emit):
            m.d.comb += axi.rready.eq(1)
            beat_err = axi.rresp != RESP_OKAY
            emit = (s == 0) | have_prev
            m.d.comb += out_err.eq(f_err | beat_err)
            with m.If(axi.rvalid):
                m.d.comb += skid.i.valid.eq(emit)
                m.d.sync += [prev.eq(axi.rdata), have_prev.eq(1), active.eq(1),
                             f_err.eq(f_err | beat_err), rem.eq(rem_now),
                             rem_last.eq(out_last)]
                with m.If(emit):
                    m.d.sync += [rem.eq(rem_now - db), rem_last.eq(rem_now <= 2 * db),
                                 started.eq(1)]
                with m.If(axi.rlast):
                    m.d.comb += tags.r_en.eq(1)
                with m.If(emit & out_last):
                    m.d.comb += [done.eq(1), done_ok.eq(~(f_err | beat_err))]
                with m.Elif(axi.rlast & tag.last):
                    m.d.sync += flush.eq(1)
        with m.Elif(tags.r_rdy & (tag.kind == _Tag.SKIP) & frames.r_rdy & cnt_ev.w_rdy):
            m.d.comb += [tags.r_en.eq(1), done.eq(1), done_ok.eq(0)]
        with m.If(done):
            m.d.sync += [have_prev.eq(0), active.eq(0), started.eq(0), f_err.eq(0),
                         flush.eq(0)]

        if db > 4:
            m.submodules.narrow = narrow = StreamNarrower(db, 4)
            wiring.connect(m, skid.o, narrow.i)
            wiring.connect(m, narrow.o, wiring.flipped(self.o))
        else:
            wiring.connect(m, skid.o, wiring.flipped(self.o))

        # --- completion: head, counters, write-back due --------------------------------------
        ev = Signal(cnt_ev_layout)
        m.d.comb += [ev.ring.eq(fr.ring), ev.ok.eq(done_ok), ev.length.eq(fr.length),
                     cnt_ev.w_data.eq(ev)]
        # The head moves a clock after the frame is done: `done` is a long function of the
        # data path, and `head` is a RAM that may sit far away. Nothing reads the new head
        # sooner (the write-back stage sees `wb_due` a clock later and reads two clocks after
        # that; a ring reset waits for the write-back).
        head_pend_ring = Signal(rb)
        head_pend_value = Signal(16)
        m.d.sync += head_pend.eq(done)
        with m.If(done):
            m.d.comb += [frames.r_en.eq(1), cnt_ev.w_en.eq(1), inflight_dec.eq(1)]
            m.d.sync += [head_pend_ring.eq(fr.ring), head_pend_value.eq(fr.index + 1)]
        with m.If(head_pend):
            m.d.comb += [head_w.addr.eq(head_pend_ring), head_w.data.eq(head_pend_value),
                         head_w.en.eq(1)]
        with m.If(claim_reset):
            m.d.comb += [head_w.addr.eq(reset_ring), head_w.data.eq(0), head_w.en.eq(1)]
        with m.If(~ready):
            m.d.comb += [head_w.addr.eq(sweep), head_w.data.eq(0), head_w.en.eq(1)]

        # --- per-ring counters: one read-modify-write at a time ------------------------------
        cv = data.View(cnt_ev_layout, cnt_ev.r_data)
        c_addr = Signal(rb + 2)
        c_inc = Signal(16)
        c_second = Signal()             # the bytes update of an ok frame follows
        c_len = Signal(16)
        c_data = Signal(64)
        csr_cnt = Signal()              # a register read uses the counter port this clock
        with m.FSM(name="count"):
            with m.State("IDLE"):
                with m.If(cnt_ev.r_rdy):
                    m.d.comb += cnt_ev.r_en.eq(1)
                    m.d.sync += [c_addr.eq(Cat(Mux(cv.ok, 0, 2), cv.ring)), c_inc.eq(1),
                                 c_second.eq(cv.ok), c_len.eq(cv.length)]
                    m.next = "READ"
            with m.State("READ"):
                with m.If(~csr_cnt):
                    m.next = "LATCH"
            with m.State("LATCH"):
                m.d.sync += c_data.eq(cnt_r.data)
                m.next = "WRITE"
            with m.State("WRITE"):
                m.d.comb += [cnt_w.addr.eq(c_addr), cnt_w.data.eq(c_data + c_inc),
                             cnt_w.en.eq(1)]
                with m.If(c_second):
                    m.d.sync += [c_second.eq(0), c_addr.eq(c_addr + 1), c_inc.eq(c_len)]
                    m.next = "READ"
                with m.Else():
                    m.next = "IDLE"
        with m.If(~ready):
            m.d.comb += [cnt_w.addr.eq(sweep), cnt_w.data.eq(0), cnt_w.en.eq(1)]

        # --- write-back of head, then the interrupt ------------------------------------------
        scan = Signal(rb)
        w_ring = Signal(rb)
        w_k = Signal(3)
        w_words = {w: Signal(32, name=f"w_word{w}") for w in (HEAD_WB_LO, HEAD_WB_HI, TAIL,
                                                               IRQ_MODER)}
        w_head = Signal(16)
        w_irqh = Signal(16)
        w_aw, w_w = Signal(), Signal()
        irq_set = Signal()
        w_order = [HEAD_WB_LO, HEAD_WB_HI, TAIL, IRQ_MODER]
        m.d.comb += [cfg_rw.addr.eq(Cat(w_k, w_ring)), head_rw.addr.eq(w_ring),
                     irqh_r.addr.eq(w_ring)]
        wb_addr = Cat(w_words[HEAD_WB_LO], w_words[HEAD_WB_HI])[:aw_bits]
        m.d.comb += [axi.awaddr.eq(wb_addr), axi.awuser.eq(w_ring), axi.awvalid.eq(w_aw),
                     axi.wvalid.eq(w_w)]
        if db > 4:
            m.d.comb += [axi.wdata.eq(Mux(wb_addr[2], w_head << 32, w_head)),
                         axi.wstrb.eq(Mux(wb_addr[2], 0xF0, 0x0F))]
        else:
            m.d.comb += [axi.wdata.eq(w_head), axi.wstrb.eq(0xF)]
        with m.If(axi.awready):
            m.d.sync += w_aw.eq(0)
        with m.If(axi.wready):
            m.d.sync += w_w.eq(0)
        with m.FSM(name="writeback"):
            with m.State("SCAN"):
                m.d.comb += wb_idle.eq(1)
                m.d.sync += [scan.eq(scan + 1), w_k.eq(w_order[0])]
                with m.If(wb_due.bit_select(scan, 1)):
                    m.d.sync += [w_ring.eq(scan), wb_due.bit_select(scan, 1).eq(0)]
                    m.next = "READ0"
            for n in range(len(w_order)):
                with m.State(f"READ{n}"):
                    if n + 1 < len(w_order):
                        m.d.sync += w_k.eq(w_order[n + 1])
                    if n > 0:
                        m.d.sync += w_words[w_order[n - 1]].eq(cfg_rw.data)
                    if n == 1:
                        m.d.sync += [w_head.eq(head_rw.data), w_irqh.eq(irqh_r.data)]
                    m.next = f"READ{n + 1}" if n + 1 < len(w_order) else "WLAST"
            with m.State("WLAST"):
                m.d.sync += w_words[w_order[-1]].eq(cfg_rw.data)
                m.next = "ISSUE"
            with m.State("ISSUE"):
                with m.If(wb_addr != 0):
                    m.d.sync += [w_aw.eq(1), w_w.eq(1)]
                    m.next = "RESP"
                with m.Else():
                    m.next = "IRQ"
            with m.State("RESP"):
                with m.If(~w_aw & ~w_w & axi.bvalid):
                    m.next = "IRQ"
            with m.State("IRQ"):
                count = w_words[IRQ_MODER][:16]
                since = (w_head - w_irqh)[:16]
                with m.If((count <= 1) | (since >= count) | (w_head == w_words[TAIL][:16])):
                    m.d.comb += [irq_set.eq(1), irqh_w.addr.eq(w_ring), irqh_w.data.eq(w_head),
                                 irqh_w.en.eq(1)]
                m.next = "SCAN"
        with m.If(claim_reset):
            m.d.comb += [irqh_w.addr.eq(reset_ring), irqh_w.data.eq(0), irqh_w.en.eq(1)]
        with m.If(~ready):
            m.d.comb += [irqh_w.addr.eq(sweep), irqh_w.data.eq(0), irqh_w.en.eq(1)]

        # --- registers ---------------------------------------------------------------------
        csr = self.csr
        c_ring = csr.addr[5:]
        c_word = csr.addr[:5]
        is_cfg = c_word < 8
        m.d.comb += [
            cfg_rc.addr.eq(Cat(c_word[:3], c_ring)),
            fetch_rc.addr.eq(c_ring), head_rc.addr.eq(c_ring),
            sched.cfg.ring.eq(c_ring),
            csr_cnt.eq(csr.r_stb),
            cnt_r.addr.eq(Mux(csr.r_stb, Cat(c_word[1:3], c_ring), c_addr)),
        ]
        # writes: (the per-ring flops are written after the engine's own updates: they win)
        mask = Signal(32)
        with m.Switch(c_word):
            for word, bits in _CFG_MASKS.items():
                with m.Case(word):
                    m.d.comb += mask.eq(bits)
        wr = csr.w_stb & ready
        with m.If(~ready):
            m.d.comb += [cfg_w.addr.eq(sweep), cfg_w.data.eq(0), cfg_w.en.eq(1)]
        with m.Else():
            m.d.comb += [cfg_w.addr.eq(Cat(c_word[:3], c_ring)), cfg_w.data.eq(csr.w_data & mask),
                         cfg_w.en.eq(wr & is_cfg)]
        with m.If(wr & ((c_word == CTRL) | (c_word == TAIL))):
            m.d.sync += pending.bit_select(c_ring, 1).eq(1)       # look at the ring again
        with m.If(wr):
            with m.Switch(c_word):
                with m.Case(CTRL):
                    m.d.comb += [sched.cfg.priority_we.eq(1),
                                 sched.cfg.priority.eq(csr.w_data[CTRL_PRIORITY_SHIFT:][:2])]
                    m.d.sync += enable.bit_select(c_ring, 1).eq(csr.w_data[0])
                    with m.If(csr.w_data[31]):
                        m.d.sync += reset_req.bit_select(c_ring, 1).eq(1)
                with m.Case(MAXBW):
                    m.d.comb += [sched.cfg.rate_we.eq(1),
                                 sched.cfg.rate.eq(csr.w_data[:RATE_BITS])]
                with m.Case(IRQ_STATUS):
                    with m.If(csr.w_data[0]):
                        m.d.sync += irq_status.bit_select(c_ring, 1).eq(0)
                with m.Case(IRQ_MASK):
                    m.d.sync += irq_mask.bit_select(c_ring, 1).eq(csr.w_data[0])

        # reads: the word is chosen in the second clock, from memories addressed in the first
        hi_latch = Signal(32)
        cnt_read = Signal()
        m.d.sync += cnt_read.eq(csr.r_stb & (c_word >= FRAMES) & ~c_word[0])
        with m.If(cnt_read):
            m.d.sync += hi_latch.eq(cnt_r.data[32:])
        word = Signal(32)
        with m.Switch(c_word):
            for k in range(8):
                with m.Case(k):
                    m.d.comb += word.eq(cfg_rc.data)
                    if k == CTRL:
                        m.d.comb += word[31].eq(reset_req.bit_select(c_ring, 1))
            with m.Case(MAXBW):
                m.d.comb += word.eq(sched.cfg.rate_rdata)
            with m.Case(HEAD):
                m.d.comb += word.eq(head_rc.data)
            with m.Case(IRQ_STATUS):
                m.d.comb += word.eq(irq_status.bit_select(c_ring, 1))
            with m.Case(IRQ_MASK):
                m.d.comb += word.eq(irq_mask.bit_select(c_ring, 1))
            with m.Case(FETCH):
                m.d.comb += word.eq(fetch_rc.data)
            with m.Case(FRAMES, BYTES, ERRORS):
                m.d.comb += word.eq(cnt_r.data[:32])
            with m.Case(FRAMES + 1, BYTES + 1, ERRORS + 1):
                m.d.comb += word.eq(hi_latch)
        m.d.sync += csr.r_data.eq(word)

        # Set after the register writes and the write-back scan's clear, so that neither a
        # W1C nor a scan in the same clock loses an interrupt or a write-back.
        with m.If(irq_set):
            m.d.sync += irq_status.bit_select(w_ring, 1).eq(1)
        with m.If(head_pend):          # (a clock after `done`, like the head itself)
            m.d.sync += wb_due.bit_select(head_pend_ring, 1).eq(1)
        return m

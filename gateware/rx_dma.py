# Ref: ../shared/DESIGN.md "Host interface" (rings, descriptors, completions, phase bit);
#      ARM IHI 0022 (AXI4: INCR bursts of at most 256 beats that never cross 4 KB, A3.4.1)
"""RxDmaEngine: classified frames into per-ring host buffers over AXI4, with completions.

::

    i --> StreamWidener --> data FIFO --------------------+
    info --> info FIFO --> A: admit, fetch descriptor --> B: write data, then completion --> C
                           (AR/R)          job register    (AW/W, waits for B)     retire FIFO
    C: retire (waits for the completion's B): head indices, per-ring counters, interrupts

Each frame is paired, in order, with one :class:`~crossnic.gateware.layouts.ClassResult`
(``info``; it may come before or after the frame's first beat). Three stages overlap, so the
descriptor of frame N+1 is fetched on the read channel while frame N goes out on the write
channel, and frame N retires while frame N+1 is written:

* **A (admit)** reads the ring's settings (eight words, one per clock; again if the host
  writes them meanwhile) and its reserved indices, decides the early drops, fetches the
  descriptor (one INCR burst of 16 bytes) and checks it, then hands a job to B. A delivered
  frame *reserves* its descriptor and completion slot at once (``desc``/``cpl`` in the
  reservation memory), so a later frame for the same ring uses the next ones before the first
  has retired.
* **B (write)** writes the frame into the buffer in INCR bursts (at most 256 beats, never over
  a 4 KB boundary), waits until every write response is back, then writes the 16-byte
  completion, so a host that sees a completion sees its data. Dropped frames are drained from
  the data FIFO: nothing of them reaches host memory.
* **C (retire)** waits for the completion's write response, then publishes ``desc_head`` and
  ``cpl_head``, adds to the per-ring counters and tells the interrupt moderation.

Drop rules, first match wins (every drop discards the whole frame and is counted globally
under its reason; the ones marked *ring* also count in that ring's ``drops``):

1. ``info.drop`` is not ``NONE``: the classifier's reason (global only).
2. ``RING_DISABLED``: ``info.ring`` >= ``rings`` (global only) or the ring's ``ctrl.enable``
   is 0 (*ring*).
3. ``NO_DESCRIPTOR``: ``desc_tail - desc_head == 0`` (heads counting frames in flight) (*ring*).
4. ``COMPLETION_FULL``: ``cpl_head - cpl_tail >= size`` (*ring*).
5. ``BAD_DESCRIPTOR``: the fetched buffer address is not 8-byte aligned or does not fit the
   AXI address width, or the descriptor read was answered with an error (*ring*).
6. ``TOO_LONG``: ``info.length`` > the descriptor's ``length`` (*ring*).

Drops 1-4 fetch no descriptor; 5-6 leave it posted (it is consumed only when a frame is written
into it, so the next frame for the ring gets it again).

The frame is written as ``info.length`` bytes (the burst is sized from it). Should the stream
disagree (ends early: the rest of the burst goes out with ``wstrb`` 0; runs long: the rest is
drained, not written), end with ``error``, or a data write be answered with an error, the
frame is *aborted*: its descriptor is already committed, so it is completed with ``length`` 0
("buffer returned, no frame"), counted in ``aborted`` (global) and the ring's ``drops``.
Nothing is ever written outside the descriptor's buffer. (``PacketFifo`` in front never emits
such frames; this keeps the rings consistent if something upstream ever does.)

Rings: ``size = 2**ctrl.size_log2`` entries (0..15); indices are free-running 16-bit
counters, slot = index mod size; descriptor *k* at ``desc_base + 16*slot``, completion at
``cpl_base + 16*slot``. A completion's ``phase`` is 1 on the first pass (``cpl_head`` in
0..size-1), 0 on the second, and so on (``phase = ~(index >> size_log2) & 1``). Writing
``ctrl.reset`` = 1 sets the ring's ``desc_head``, ``cpl_head`` and moderation state back to 0,
in order after every frame already accepted for it (``ctrl.reset`` reads 1 until then): to
(re)start a ring, write ``ctrl`` = reset with enable 0, wait for ``reset`` to read 0, set the
bases and tails (0), zero the completion ring, then enable it.

Interrupts (per ring, ``irq[n]`` is high while ``irq_status`` is set and ``irq_mask`` is 0;
the status is set even when masked):

* A completion is *unacknowledged* when it is written while the ring's status bit is clear;
  completions written while it is set are covered by that interrupt (the host acknowledges by
  writing 1 to ``irq_status``, then reads the ring until it finds no new entry).
* The status is set when the number of unacknowledged completions reaches ``irq_moder.count``
  (``count`` 0 or 1: at every completion), or once more than ``irq_moder.time`` µs (``time`` 0:
  never) have passed since the first of them (µs tick of ``us_clocks`` clocks; a scan visits
  each ring every ``rings`` clocks, so it is late by at most 1 µs + ``rings`` clocks).
  Either way the count restarts from 0.

State lives in memories indexed by ring number, each with one writer: ``cfg`` (host-written
settings: 8 words per ring, written by the register port), ``rsv`` (reserved indices: stage
A), ``head`` (published indices: stage C), ``cnt`` (per-ring counters: stage C), ``irq``
(moderation: the interrupt unit). Only the interrupt status and mask bits and the reset
requests are flip-flops (one bit per ring each). After reset every memory is swept to zero
(``rings * 8`` clocks) before the engine accepts frames or register writes.

Registers (:meth:`RxDmaEngine.block`, set *n* at word ``32*n``):

====  ==============  ======  ==========================================================
word  name            access  meaning
====  ==============  ======  ==========================================================
0/1   desc_base lo/hi RW      descriptor ring base (16-byte aligned, bits 3:0 read 0)
2/3   cpl_base lo/hi  RW      completion ring base (16-byte aligned)
4     ctrl            RW      [0] enable, [11:8] size_log2, [31] reset (write 1; reads 1
                              until done)
5     desc_tail       RW      host producer index of descriptors (16 bits)
6     cpl_tail        RW      host consumer index of completions (16 bits)
7     irq_moder       RW      [15:0] count, [30:16] time in µs
8     desc_head       RO      card consumer index: descriptors completed
9     cpl_head        RO      card producer index: completions written
10    irq_status      W1C     [0] interrupt pending
11    irq_mask        RW      [0] mask the line
16-21 frames, bytes,  RO      per-ring 64-bit counters (low word first: reading it latches
      drops lo/hi             the high word); drops = this ring's drops and aborted frames
====  ==============  ======  ==========================================================

Statistics (:meth:`RxDmaEngine.stats_block`, a :class:`~crossnic.gateware.csr.CounterBank`):
``frames``, ``bytes``, one ``drop_<reason>`` per :class:`DropReason`, ``aborted`` and
``axi_errors`` (write or read responses other than OKAY).

Register reads: the first clock addresses the memories (the counter port is shared with stage
C, which waits while ``r_stb`` is high), the second registers every block RAM output as it is,
and ``r_data`` in the third (``read_latency`` = 2) is an AND-OR of those registers with one-hot
selects: nothing but a register ever sits behind a block RAM's clock-to-output.

Measured (``tb_rx_dma.throughput``: cocotb + Verilator, ``AxiRam``, 64-bit AXI, 32-bit input,
infos queued ahead of the frames, 8 rings): 64-byte frames back to back take 21.1 clocks each
(16 of them are input beats; line rate of two 1 Gb/s ports needs 42), 1518-byte frames 380.3
(380 input beats; line rate needs 769). Per frame the write channel carries AW + data beats,
then waits for the data's write responses (about 4 clocks with ``AxiRam``), then AW + 2 beats
of completion. With 64 rings, on an LFE5UM5G-45F-class part (nextpnr-ecp5 ``--45k --speed 6``,
``benchmarks/components.py``'s harness): 127 MHz, 5.6k LUT4, 4.7k FF, 8 block RAMs, 91
distributed-RAM cells.
"""

from amaranth import *
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .axi import BURST_INCR, CACHE_MODIFIABLE, PROT_NONSECURE, RESP_OKAY, AxiSignature, axi_size
from .csr import Counter, CounterBank, CsrSignature
from .layouts import (
    COMPLETION_BYTES,
    DESCRIPTOR_BYTES,
    ClassResult,
    DropReason,
    RxCompletion,
    RxDescriptor,
)
from .packet import PacketSignature
from .regmap import Access, Block, Field, Register
from .skid_buffer import SkidBuffer
from .width import StreamWidener

__all__ = ["RxDmaEngine", "RX_DMA_COUNTERS", "RING_STRIDE",
           "DESC_BASE_LO", "DESC_BASE_HI", "CPL_BASE_LO", "CPL_BASE_HI", "CTRL", "DESC_TAIL",
           "CPL_TAIL", "IRQ_MODER", "DESC_HEAD", "CPL_HEAD", "IRQ_STATUS", "IRQ_MASK",
           "FRAMES", "BYTES", "DROPS", "CTRL_ENABLE", "CTRL_SIZE_SHIFT", "CTRL_RESET"]

# Word offsets inside a ring's register set. Words 0..7 are the ring's `cfg` memory row.
DESC_BASE_LO, DESC_BASE_HI, CPL_BASE_LO, CPL_BASE_HI, CTRL, DESC_TAIL, CPL_TAIL, IRQ_MODER = \
    range(8)
DESC_HEAD, CPL_HEAD, IRQ_STATUS, IRQ_MASK = 8, 9, 10, 11
FRAMES, BYTES, DROPS = 16, 18, 20          # low words; the high word follows each
RING_STRIDE = 32
CTRL_ENABLE = 1 << 0
CTRL_SIZE_SHIFT = 8
CTRL_RESET = 1 << 31

#: What the host may store in each settings word (the rest reads 0).
_CFG_MASKS = {
    DESC_BASE_LO: 0xFFFF_FFF0, DESC_BASE_HI: 0xFFFF_FFFF,
    CPL_BASE_LO: 0xFFFF_FFF0, CPL_BASE_HI: 0xFFFF_FFFF,
    CTRL: CTRL_ENABLE | 0xF << CTRL_SIZE_SHIFT,
    DESC_TAIL: 0xFFFF, CPL_TAIL: 0xFFFF, IRQ_MODER: 0x7FFF_FFFF,
}

_DROP_DOCS = {
    DropReason.UNKNOWN_UNICAST: "classifier: unicast to no MAC-table entry",
    DropReason.MULTICAST_FILTER: "classifier: multicast not passed by the filter",
    DropReason.VNIC_DISABLED: "classifier: the frame's VNIC is disabled",
    DropReason.FLOW_DROP: "classifier: a flow entry with the drop action matched",
    DropReason.RING_DISABLED: "target ring not enabled, or not a ring of this engine",
    DropReason.NO_DESCRIPTOR: "target ring had no posted buffer",
    DropReason.COMPLETION_FULL: "target ring's completion ring had no free entry",
    DropReason.TOO_LONG: "frame longer than the posted buffer",
    DropReason.BAD_DESCRIPTOR: "posted buffer address not 8-byte aligned (or the fetch failed)",
    DropReason.STUB_VLAN: "classifier: from a wire port, tagged with an etherstub VLAN",
}

#: The engine's global statistics, in register order.
RX_DMA_COUNTERS = [
    Counter("frames", "frames written to host memory and completed"),
    Counter("bytes", "bytes of the frames in frames", inc_width=16),
    *[Counter(f"drop_{r.name.lower()}", f"frames dropped: {_DROP_DOCS[r]}")
      for r in DropReason if r != DropReason.NONE],
    Counter("aborted", "frames whose stream disagreed with info.length, ended with error, or "
                       "whose data write failed: completed with length 0"),
    Counter("axi_errors", "AXI write or read responses other than OKAY", inc_width=2),
]


class _Kind(enum.Enum, shape=2):
    DELIVER = 0
    DROP = 1
    RESET = 2


#: Counter words in a ring's row of the `cnt` memory (register word FRAMES + 2k).
FRAMES_K, BYTES_K, DROPS_K = 0, 1, 2

_Indices = data.StructLayout({"desc": 16, "cpl": 16})
#: Moderation state of a ring: unacknowledged completions and, when the timer is on, the µs
#: tick at which they raise (first one's tick + time + 1; compared by the sign of now - deadline,
#: hence time < 2**15).
_IrqState = data.StructLayout({"unacked": 16, "deadline": 16, "timed": 1})


class RxDmaEngine(wiring.Component):
    """Receive DMA ring engine (``sync`` domain).

    Parameters
    ----------
    width : int
        Bytes per beat of ``i`` (4: the 32-bit core datapath); must divide the AXI beat.
    rings : int
        Number of rings, a power of two 2..256.
    data_width : int
        AXI data bits, 32 or 64 (buffers are 8-byte aligned, so a beat never straddles one).
    addr_width : int
        AXI address bits (64 for PCIe).
    id_width : int
        AXI ID bits (the engine uses ID 0 and keeps its transactions in order).
    fifo_depth : int
        Beats (AXI-wide) of the data FIFO in front of the write stage, a power of two; it lets
        the input keep flowing while a descriptor is fetched.
    us_clocks : int
        Clocks per µs of the interrupt moderation timer (125 at 125 MHz).

    Attributes
    ----------
    i : In(PacketSignature(width))
    info : In(stream of ClassResult), one per frame, in frame order
    axi : Out(AxiSignature(addr_width, data_width, id_width, ring bits)), the host-memory
        master; ``aruser``/``awuser`` carry the ring each request serves
    csr : In(CsrSignature), the ring registers (:meth:`block`), ``read_latency`` = 2
    stats : In(CsrSignature), the global counters (:meth:`stats_block`), ``read_latency`` = 2
    irq : Out(rings), level interrupt per ring
    """

    #: clocks from ``r_stb`` to valid ``r_data``, on ``csr`` and on ``stats``
    read_latency = 2

    def __init__(self, width: int = 4, *, rings: int = 64, data_width: int = 64,
                 addr_width: int = 64, id_width: int = 1, fifo_depth: int = 256,
                 us_clocks: int = 125):
        if data_width not in (32, 64):
            raise ValueError(f"data_width must be 32 or 64, not {data_width}")
        if width < 1 or (data_width // 8) % width:
            raise ValueError(f"stream width {width} must divide the AXI beat "
                             f"({data_width // 8} bytes)")
        if not 2 <= rings <= 256 or rings & (rings - 1):
            raise ValueError(f"rings must be a power of two 2..256, not {rings}")
        if fifo_depth < 4 or fifo_depth & (fifo_depth - 1):
            raise ValueError(f"fifo_depth must be a power of two >= 4, not {fifo_depth}")
        if us_clocks < 1:
            raise ValueError(f"us_clocks must be at least 1, not {us_clocks}")
        self._width = width
        self._rings = rings
        self._ring_bits = (rings - 1).bit_length()
        self._data_width = data_width
        self._addr_width = addr_width
        self._fifo_depth = fifo_depth
        self._us_clocks = us_clocks
        self._stats_addr_width = max(1, (2 * len(RX_DMA_COUNTERS) - 1).bit_length())
        super().__init__({
            "i": In(PacketSignature(width)),
            "info": In(stream.Signature(ClassResult)),
            "axi": Out(AxiSignature(addr_width, data_width, id_width, self._ring_bits)),
            "csr": In(CsrSignature(self._ring_bits + 5)),
            "stats": In(CsrSignature(self._stats_addr_width)),
            "irq": Out(rings),
        })

    @property
    def rings(self) -> int:
        return self._rings

    def block(self, name: str = "rx_ring") -> Block:
        """The per-ring register sets, for the register map."""
        rw, ro = Access.RW, Access.RO
        regs = [
            Register("desc_base", DESC_BASE_LO, "descriptor ring base address", (
                Field("addr", 4, 28, rw, "bits 31:4 (16-byte aligned)"),), part="lo"),
            Register.word("desc_base", DESC_BASE_HI, rw, "descriptor ring base address",
                          part="hi"),
            Register("cpl_base", CPL_BASE_LO, "completion ring base address", (
                Field("addr", 4, 28, rw, "bits 31:4 (16-byte aligned)"),), part="lo"),
            Register.word("cpl_base", CPL_BASE_HI, rw, "completion ring base address",
                          part="hi"),
            Register("ctrl", CTRL, "ring control.", (
                Field("enable", 0, 1, rw, "deliver frames to this ring (else RING_DISABLED)"),
                Field("size_log2", CTRL_SIZE_SHIFT, 4, rw, "both rings have 2**size_log2 "
                      "entries"),
                Field("reset", 31, 1, rw, "write 1: desc_head, cpl_head and the moderation "
                      "state return to 0 after the frames already accepted; reads 1 until "
                      "done"))),
            Register.word("desc_tail", DESC_TAIL, rw, "host producer index of descriptors "
                          "(free-running)", width=16),
            Register.word("cpl_tail", CPL_TAIL, rw, "host consumer index of completions "
                          "(free-running)", width=16),
            Register("irq_moder", IRQ_MODER, "interrupt moderation.", (
                Field("count", 0, 16, rw, "raise after this many unacknowledged completions "
                      "(0, 1: every completion)"),
                Field("time", 16, 15, rw, "raise more than this many µs after the first "
                      "unacknowledged completion (0: off)"))),
            Register.word("desc_head", DESC_HEAD, ro, "card consumer index: descriptors "
                          "filled and completed (free-running)", width=16),
            Register.word("cpl_head", CPL_HEAD, ro, "card producer index: completions "
                          "written (free-running)", width=16),
            Register("irq_status", IRQ_STATUS, "interrupt status.", (
                Field("pending", 0, 1, Access.W1C, "interrupt raised; write 1 to "
                      "acknowledge"),)),
            Register("irq_mask", IRQ_MASK, "interrupt mask.", (
                Field("mask", 0, 1, rw, "1: irq line held low (status still set)"),)),
        ]
        for offset, cname, doc in ((FRAMES, "frames", "frames delivered to this ring"),
                                   (BYTES, "bytes", "bytes delivered to this ring"),
                                   (DROPS, "drops", ("frames for this ring dropped by the "
                                                     "engine or aborted"))):
            regs.append(Register.word(cname, offset, ro, doc + " (reading the low word "
                                      "latches the high word)", part="lo"))
            regs.append(Register.word(cname, offset + 1, ro, doc, part="hi"))
        return Block(name, f"receive DMA rings, {self._rings} register sets", tuple(regs),
                     self.read_latency, count=self._rings, stride=RING_STRIDE)

    def stats_block(self, name: str = "rx_dma") -> Block:
        """The global statistics block, for the register map."""
        return Block.from_counters(name, "receive DMA engine statistics", RX_DMA_COUNTERS)

    def elaborate(self, platform):
        m = Module()
        rings, rb = self._rings, self._ring_bits
        db = self._data_width // 8                 # bytes per AXI beat
        beat_bits = (db - 1).bit_length()
        aw_bits = self._addr_width
        desc_beats = DESCRIPTOR_BYTES // db
        cpl_beats = COMPLETION_BYTES // db
        axi = self.axi

        # --- after reset, sweep every memory to zero ---------------------------------------
        sweep = Signal(rb + 3)
        ready = Signal()
        with m.If(~ready):
            m.d.sync += sweep.eq(sweep + 1)
            with m.If(sweep == rings * 8 - 1):
                m.d.sync += ready.eq(1)

        # `no_rw_check`: no collision bypass behind these block RAMs (it would share a clock
        # with their slow clock-to-output). Stage A restarts its reads of a ring's settings
        # when the host writes that ring meanwhile; the register port never reads while it
        # writes; stage A never uses the `rsv` word it reads while writing it.
        m.submodules.cfg = cfg = Memory(shape=32, depth=rings * 8, init=[],
                                        attrs={"no_rw_check": 1})
        cfg_w = cfg.write_port()
        cfg_ra = cfg.read_port()                   # stage A
        cfg_rc = cfg.read_port()                   # register reads
        m.submodules.rsv = rsv = Memory(shape=_Indices, depth=rings, init=[],
                                        attrs={"no_rw_check": 1})
        rsv_w = rsv.write_port()
        rsv_r = rsv.read_port()
        m.submodules.head = head = Memory(shape=_Indices, depth=rings, init=[],
                                          attrs={"no_rw_check": 1})
        head_w = head.write_port()
        head_rc = head.read_port()
        m.submodules.cnt = cnt = Memory(shape=64, depth=rings * 4, init=[],
                                        attrs={"no_rw_check": 1})
        cnt_w = cnt.write_port()
        cnt_r = cnt.read_port()                    # shared: register reads win
        # Small, and read behind a registered address into a register: kept in distributed RAM
        # (in a block RAM its clock-to-output would eat the clock of the arithmetic after it).
        m.submodules.irqm = irqm = Memory(shape=_IrqState, depth=rings, init=[],
                                          attrs={"ram_style": "distributed"})
        irq_w = irqm.write_port()
        irq_r = irqm.read_port(domain="comb")

        m.submodules.stats = bank = CounterBank(RX_DMA_COUNTERS)
        wiring.connect(m, wiring.flipped(self.stats), bank.csr)
        # Counter pulses are registered on their way to the bank (its 64-bit adders take a
        # clock of their own).
        inc = Signal.like(bank.inc)
        m.d.sync += bank.inc.eq(inc)

        # AXI constants.
        m.d.comb += [
            axi.awid.eq(0), axi.awsize.eq(axi_size(self._data_width)), axi.awburst.eq(BURST_INCR),
            axi.awcache.eq(CACHE_MODIFIABLE), axi.awprot.eq(PROT_NONSECURE),
            axi.arid.eq(0), axi.arsize.eq(axi_size(self._data_width)), axi.arburst.eq(BURST_INCR),
            axi.arcache.eq(CACHE_MODIFIABLE), axi.arprot.eq(PROT_NONSECURE),
            axi.arlen.eq(desc_beats - 1),
            axi.bready.eq(1),
        ]

        # The write address and data channels leave through register slices, so nothing
        # combinational reaches the bus (nor comes back from awready/wready).
        m.submodules.aw_out = aw_out = SkidBuffer(data.StructLayout({"addr": aw_bits, "len": 8,
                                                                    "ring": rb}))
        m.submodules.w_out = w_out = SkidBuffer(data.StructLayout({"data": 8 * db, "strb": db,
                                                                  "last": 1}))
        aw_o, w_o = aw_out.i, w_out.i
        m.d.comb += [
            axi.awvalid.eq(aw_out.o.valid), axi.awaddr.eq(aw_out.o.p.addr),
            axi.awlen.eq(aw_out.o.p.len), axi.awuser.eq(aw_out.o.p.ring),
            aw_out.o.ready.eq(axi.awready),
            axi.wvalid.eq(w_out.o.valid), axi.wdata.eq(w_out.o.p.data),
            axi.wstrb.eq(w_out.o.p.strb), axi.wlast.eq(w_out.o.p.last),
            w_out.o.ready.eq(axi.wready),
        ]

        # Write responses: counted in order (the engine issues every AW, in order, with ID 0).
        aw_count = Signal(8)           # AWs issued
        b_count = Signal(8)            # Bs received
        b_err = Signal()
        with m.If(axi.bvalid):
            m.d.sync += b_count.eq(b_count + 1)
            m.d.comb += b_err.eq(axi.bresp != RESP_OKAY)
        r_err = Signal()
        m.d.comb += inc.axi_errors.eq(b_err + r_err)

        # --- input: widen to AXI beats, queue -----------------------------------------------
        beat_layout = data.StructLayout({"data": 8 * db, "nbytes": range(db + 1), "last": 1,
                                         "error": 1})
        if db > self._width:
            m.submodules.widen = widen = StreamWidener(self._width, db)
            wiring.connect(m, wiring.flipped(self.i), widen.i)
            src = widen.o
        else:
            src = self.i
        # The data FIFO, read as PacketFifo reads its RAM: a beat is read only once written,
        # so a read never meets a write to the same address (`no_rw_check` spares Yosys's
        # collision bypass behind the block RAM); the asynchronous read port plus a reset-less
        # register is what Yosys folds into the block RAM, and a skid buffer follows, so the
        # RAM's slow clock-to-output never shares a cycle with stage B's logic.
        depth = self._fifo_depth
        m.submodules.dfifo = dfifo = Memory(shape=beat_layout, depth=depth, init=[],
                                            attrs={"no_rw_check": 1})
        dfifo_w = dfifo.write_port()
        dfifo_r = dfifo.read_port(domain="comb")
        ptr_bits = depth.bit_length()            # one wrap bit
        wr_ptr = Signal(ptr_bits)
        rd_ptr = Signal(ptr_bits)
        # Room for a beat, registered (so no pointer arithmetic reaches i.ready): at most one
        # beat is written per clock, so "fewer than depth - 1 last clock" is safe now.
        room = Signal()
        m.d.sync += room.eq((wr_ptr - rd_ptr)[:ptr_bits] < depth - 1)
        m.d.comb += [
            dfifo_w.addr.eq(wr_ptr[:-1]),
            dfifo_w.data.data.eq(src.p.data),
            dfifo_w.data.nbytes.eq(sum(src.p.keep[k] for k in range(db))),
            dfifo_w.data.last.eq(src.p.last),
            dfifo_w.data.error.eq(src.p.error),
            src.ready.eq(room),
            dfifo_w.en.eq(src.valid & src.ready),
            dfifo_r.addr.eq(rd_ptr[:-1]),
        ]
        with m.If(dfifo_w.en):
            m.d.sync += wr_ptr.eq(wr_ptr + 1)
        m.submodules.dskid = dskid = SkidBuffer(beat_layout)
        ram_out = Signal(beat_layout, reset_less=True)
        fifo_head = dskid.i
        m.d.comb += fifo_head.p.eq(ram_out)
        with m.If((rd_ptr != wr_ptr) & (~fifo_head.valid | fifo_head.ready)):
            m.d.sync += [rd_ptr.eq(rd_ptr + 1), fifo_head.valid.eq(1), ram_out.eq(dfifo_r.data)]
        with m.Elif(fifo_head.ready):
            m.d.sync += fifo_head.valid.eq(0)
        beat = dskid.o.p
        beat_valid = dskid.o.valid

        m.submodules.ififo = ififo = SyncFIFOBuffered(width=Shape.cast(ClassResult).width,
                                                      depth=4)
        m.d.comb += [
            ififo.w_data.eq(self.info.payload),
            ififo.w_en.eq(self.info.valid),
            self.info.ready.eq(ififo.w_rdy),
        ]
        in_info = data.View(ClassResult, ififo.r_data)

        # --- ring control flops ------------------------------------------------------------
        reset_req = Signal(rings)      # host asked for a ring reset, stage A has not taken it
        reset_busy = Signal(rings)     # ... and it has not retired yet
        irq_status = Signal(rings)
        irq_mask = Signal(rings)
        m.d.sync += self.irq.eq(irq_status & ~irq_mask)

        # --- stage A: admit ----------------------------------------------------------------
        job_layout = data.StructLayout({
            "kind": _Kind, "reason": DropReason, "ring_ok": 1, "info": ClassResult,
            "buf_addr": aw_bits, "cpl_addr": aw_bits, "desc_idx": 16, "cpl_idx": 16,
            "phase": 1, "irq_count": 16, "irq_time": 16,
        })
        job = Signal(job_layout)       # A -> B; B works on it in place
        job_valid = Signal()

        a_info = Signal(ClassResult)
        a_ring = Signal(rb)
        a_ring_ok = Signal()
        a_k = Signal(4)
        words = [Signal(32, name=f"a_word{k}") for k in range(8)]
        a_rsv = Signal(_Indices)
        a_reason = Signal(DropReason)
        a_mask = Signal(16)            # size - 1
        a_dslot = Signal(16)
        a_cslot = Signal(16)
        a_phase = Signal()
        a_desc_addr = Signal(64)
        a_cpl_addr = Signal(64)
        a_beat = Signal(range(desc_beats))
        a_desc = Signal(RxDescriptor)
        a_rerr = Signal()
        a_kind = Signal(_Kind)
        # Reset requests are looked for one ring per clock, registered (rst_hit: rst_ring has one).
        rst_scan = Signal(rb)
        rst_ring = Signal(rb)
        rst_hit = Signal()
        m.d.sync += [rst_scan.eq(rst_scan + 1), rst_ring.eq(rst_scan),
                     rst_hit.eq(reset_req.bit_select(rst_scan, 1))]

        ctrl = words[CTRL]
        # Registered every clock from the captured words: CPL_TAIL, the last word they need, is
        # the third read, so a_full is ready three clocks before DECIDE.
        a_used = Signal(16)
        a_empty = Signal()             # no descriptor: desc_tail == desc_head (reserved)
        a_full = Signal()              # completion ring full: cpl_head - cpl_tail >= size
        m.d.sync += [
            a_mask.eq((Const(1, 17) << ctrl[CTRL_SIZE_SHIFT:CTRL_SIZE_SHIFT + 4]) - 1),
            a_empty.eq(words[DESC_TAIL][:16] == a_rsv.desc),
            a_used.eq(a_rsv.cpl - words[CPL_TAIL][:16]),
            a_full.eq((a_used & ~a_mask) != 0),
        ]
        # The words the decision needs first. The block RAM outputs go straight into a register
        # (nothing else fits behind their clock-to-output), so each word reaches its place two
        # clocks after it is addressed.
        cfg_word = Signal(32)
        rsv_word = Signal(_Indices)
        m.d.sync += [cfg_word.eq(cfg_ra.data), rsv_word.eq(rsv_r.data)]
        order = [CTRL, DESC_TAIL, CPL_TAIL, DESC_BASE_LO, DESC_BASE_HI, CPL_BASE_LO, CPL_BASE_HI,
                 IRQ_MODER]
        word_addr = Signal(3)
        m.d.comb += [
            cfg_ra.addr.eq(Cat(word_addr, a_ring)),
            rsv_r.addr.eq(a_ring),
            axi.araddr.eq(a_desc_addr),
            axi.aruser.eq(a_ring),
        ]
        with m.Switch(a_k):
            for k, word in enumerate(order):
                with m.Case(k):
                    m.d.comb += word_addr.eq(word)
        with m.Switch(a_k):
            for k, word in enumerate(order):
                with m.Case(k + 2):
                    m.d.sync += words[word].eq(cfg_word)
        with m.If(a_k == 2):
            m.d.sync += a_rsv.eq(rsv_word)

        with m.FSM(name="admit"):
            with m.State("IDLE"):
                m.d.sync += a_k.eq(0)
                with m.If(~ready):
                    pass
                with m.Elif(rst_hit):
                    m.d.sync += [a_kind.eq(_Kind.RESET), a_ring.eq(rst_ring),
                                 a_info.ring.eq(rst_ring)]
                    m.next = "PUSH"
                with m.Elif(ififo.r_rdy):
                    m.d.comb += ififo.r_en.eq(1)
                    m.d.sync += [a_info.eq(in_info), a_ring.eq(in_info.ring[:rb]),
                                 a_ring_ok.eq(in_info.ring < rings)]
                    m.next = "READ"
            with m.State("READ"):
                # The ring's eight settings words, one per clock; all again if the host writes
                # one of them meanwhile.
                m.d.sync += a_k.eq(a_k + 1)
                with m.If(cfg_w.en & (cfg_w.addr[3:] == a_ring)):
                    m.d.sync += a_k.eq(0)
                with m.Elif(a_k == 9):
                    m.d.sync += a_k.eq(0)
                    m.next = "DECIDE"
            with m.State("DECIDE"):
                mask = a_mask
                m.d.sync += [
                    a_dslot.eq(a_rsv.desc & mask),
                    a_cslot.eq(a_rsv.cpl & mask),
                    a_phase.eq((a_rsv.cpl & (mask + 1)) == 0),
                    a_kind.eq(_Kind.DROP),
                ]
                with m.If(a_info.drop != DropReason.NONE):
                    m.d.sync += a_reason.eq(a_info.drop)
                with m.Elif(~a_ring_ok | ~ctrl[0]):
                    m.d.sync += a_reason.eq(DropReason.RING_DISABLED)
                with m.Elif(a_empty):
                    m.d.sync += a_reason.eq(DropReason.NO_DESCRIPTOR)
                with m.Elif(a_full):
                    m.d.sync += a_reason.eq(DropReason.COMPLETION_FULL)
                with m.Else():
                    m.d.sync += [a_reason.eq(DropReason.NONE), a_kind.eq(_Kind.DELIVER)]
                m.next = "ADDR"
            with m.State("ADDR"):
                m.d.sync += [
                    a_desc_addr.eq(Cat(words[DESC_BASE_LO], words[DESC_BASE_HI]) +
                                   (a_dslot << 4)),
                    a_cpl_addr.eq(Cat(words[CPL_BASE_LO], words[CPL_BASE_HI]) + (a_cslot << 4)),
                    a_beat.eq(0),
                    a_rerr.eq(0),
                ]
                with m.If(a_kind == _Kind.DELIVER):
                    m.next = "AR"
                with m.Else():
                    m.next = "PUSH"
            with m.State("AR"):
                m.d.comb += axi.arvalid.eq(1)
                with m.If(axi.arready):
                    m.next = "R"
            with m.State("R"):
                m.d.comb += axi.rready.eq(1)
                with m.If(axi.rvalid):
                    m.d.sync += [a_desc.as_value().word_select(a_beat, 8 * db).eq(axi.rdata),
                                 a_beat.eq(a_beat + 1)]
                    with m.If(axi.rresp != RESP_OKAY):
                        m.d.sync += a_rerr.eq(1)
                        m.d.comb += r_err.eq(1)
                    with m.If(a_beat == desc_beats - 1):
                        m.next = "CHECK"
            with m.State("CHECK"):
                with m.If(a_rerr | (a_desc.addr[:3] != 0) |
                          (a_desc.addr[aw_bits:] != 0 if aw_bits < 64 else C(0))):
                    m.d.sync += [a_kind.eq(_Kind.DROP),
                                 a_reason.eq(DropReason.BAD_DESCRIPTOR)]
                with m.Elif(a_info.length > a_desc.length):
                    m.d.sync += [a_kind.eq(_Kind.DROP), a_reason.eq(DropReason.TOO_LONG)]
                m.next = "PUSH"
            with m.State("PUSH"):
                with m.If(~job_valid):
                    m.d.sync += [
                        job_valid.eq(1),
                        job.kind.eq(a_kind),
                        job.reason.eq(a_reason),
                        job.ring_ok.eq(a_ring_ok),
                        job.info.eq(a_info),
                        job.buf_addr.eq(a_desc.addr),
                        job.cpl_addr.eq(a_cpl_addr),
                        job.desc_idx.eq(a_rsv.desc),
                        job.cpl_idx.eq(a_rsv.cpl),
                        job.phase.eq(a_phase),
                        job.irq_count.eq(words[IRQ_MODER][:16]),
                        job.irq_time.eq(words[IRQ_MODER][16:]),
                    ]
                    with m.If(a_kind == _Kind.DELIVER):
                        m.d.comb += [rsv_w.addr.eq(a_ring), rsv_w.en.eq(1),
                                     rsv_w.data.desc.eq(a_rsv.desc + 1),
                                     rsv_w.data.cpl.eq(a_rsv.cpl + 1)]
                    with m.Elif(a_kind == _Kind.RESET):
                        m.d.comb += [rsv_w.addr.eq(a_ring), rsv_w.en.eq(1)]
                        m.d.sync += [reset_req.bit_select(a_ring, 1).eq(0), rst_hit.eq(0)]
                    m.next = "IDLE"
        with m.If(~ready):
            m.d.comb += [rsv_w.addr.eq(sweep), rsv_w.data.eq(0), rsv_w.en.eq(1)]

        # --- stage B: write data, then the completion ----------------------------------------
        retire_layout = data.StructLayout({
            "kind": _Kind, "reason": DropReason, "ring_ok": 1, "ring": 8, "aborted": 1,
            "length": 16, "desc_idx": 16, "cpl_idx": 16, "cpl_seq": 8, "irq_count": 16,
            "irq_time": 16,
        })
        m.submodules.rfifo = rfifo = SyncFIFOBuffered(width=retire_layout.size, depth=4)
        retire_in = Signal(retire_layout)
        m.d.comb += rfifo.w_data.eq(retire_in)

        b_addr = Signal(aw_bits)
        b_beats_left = Signal(17 - beat_bits)          # beats of the frame not yet in a burst
        b_final_mask = Signal(db)                      # strobes of the frame's last beat
        b_last_burst = Signal()                        # the burst under way is the last
        b_one = Signal()                               # one beat left in the burst
        b_burst = Signal(range(257))
        b_cap = Signal(range(257))
        b_to_4k = Signal(range(4096 // db + 1))
        b_in_burst = Signal(range(257))
        b_ended = Signal()                             # the frame's last beat has been taken
        b_ferr = Signal()                              # ... and it carried error
        b_got = Signal(17)                             # bytes the stream actually carried
        b_first_seq = Signal(8)                        # first AW of this frame's data
        b_data_err = Signal()                          # a data burst was answered with an error
        b_aborted = Signal()
        b_cpl_beat = Signal(range(cpl_beats + 1))
        b_aw_done = Signal()
        b_cpl_seq = Signal(8)
        length = job.info.length

        with m.If(b_err & ~(b_count - b_first_seq)[7]):
            m.d.sync += b_data_err.eq(1)

        pad = b_ended
        keep_mask = Cat(beat.nbytes > k for k in range(db))
        len_mask = Mux(b_last_burst & b_one, b_final_mask, (1 << db) - 1)

        # The completion, registered when the data's write responses are all back.
        cpl = Signal(RxCompletion)
        info = job.info
        aborted = b_ferr | (b_got != length) | b_data_err
        load_cpl = Signal()
        with m.If(load_cpl):
            m.d.sync += [
                cpl.length.eq(Mux(aborted, 0, info.length)),
                cpl.vlan_tci.eq(info.vlan_tci),
                cpl.ring.eq(info.ring),
                cpl.vnic.eq(info.vnic),
                cpl.vns_id.eq(info.vns_id),
                cpl.flow_id.eq(info.flow_id),
                cpl.flow_hash.eq(info.flow_hash),
                cpl.cls.eq(info.cls),
                cpl.cast.eq(info.cast),
                cpl.ip_csum.eq(info.ip_csum),
                cpl.l4_csum.eq(info.l4_csum),
                cpl.flow_hit.eq(info.flow_hit),
                cpl.vlan_tagged.eq(info.vlan_tagged),
                cpl.priority.eq(info.priority),
                cpl.port.eq(info.port),
                cpl.phase.eq(job.phase),
            ]

        def take_beat():
            """Pop the data FIFO's head beat (its bytes count, its last ends the frame)."""
            m.d.comb += dskid.o.ready.eq(1)
            m.d.sync += b_got.eq(b_got + beat.nbytes)
            with m.If(beat.last):
                m.d.sync += [b_ended.eq(1), b_ferr.eq(beat.error)]

        with m.FSM(name="write"):
            with m.State("IDLE"):
                m.d.sync += [
                    b_addr.eq(job.buf_addr),
                    b_beats_left.eq((length + db - 1) >> beat_bits),
                    b_final_mask.eq(Mux(length[:beat_bits] == 0, (1 << db) - 1,
                                        Cat(length[:beat_bits] > k for k in range(db)))),
                    b_ended.eq(0), b_ferr.eq(0), b_got.eq(0),
                    b_first_seq.eq(aw_count), b_data_err.eq(0),
                ]
                with m.If(job_valid):
                    with m.Switch(job.kind):
                        with m.Case(_Kind.DELIVER):
                            m.next = "BURST"
                        with m.Case(_Kind.DROP):
                            m.next = "DRAIN"
                        with m.Default():
                            m.next = "PUSH"
            with m.State("BURST"):
                # The next burst: what is left, at most 256 beats, not past a 4 KB boundary
                # (two clocks of comparisons).
                m.d.sync += [b_to_4k.eq((0x1000 - b_addr[:12])[beat_bits:]),
                             b_cap.eq(Mux(b_beats_left < 256, b_beats_left, 256))]
                with m.If(b_beats_left == 0):
                    m.next = "TAIL"
                with m.Else():
                    m.next = "BURST2"
            with m.State("BURST2"):
                burst = Mux(b_cap < b_to_4k, b_cap, b_to_4k)
                m.d.sync += [b_burst.eq(burst), b_in_burst.eq(burst), b_one.eq(burst == 1)]
                m.next = "AW"
            with m.State("AW"):
                m.d.comb += [aw_o.valid.eq(1), aw_o.p.addr.eq(b_addr),
                             aw_o.p.len.eq(b_burst - 1), aw_o.p.ring.eq(info.ring[:rb])]
                with m.If(aw_o.ready):
                    m.d.sync += [aw_count.eq(aw_count + 1),
                                 b_addr.eq(b_addr + (b_burst << beat_bits)),
                                 b_beats_left.eq(b_beats_left - b_burst),
                                 b_last_burst.eq(b_beats_left == b_burst)]
                    m.next = "W"
            with m.State("W"):
                m.d.comb += [
                    w_o.valid.eq(pad | beat_valid),
                    w_o.p.data.eq(Mux(pad, 0, beat.data)),
                    w_o.p.strb.eq(Mux(pad, 0, keep_mask & len_mask)),
                    w_o.p.last.eq(b_one),
                ]
                with m.If(w_o.valid & w_o.ready):
                    with m.If(~pad):
                        take_beat()
                    m.d.sync += [b_in_burst.eq(b_in_burst - 1), b_one.eq(b_in_burst == 2)]
                    with m.If(b_one):
                        m.next = "BURST"
            with m.State("TAIL"):
                # A stream longer than info.length: drain the rest.
                with m.If(b_ended):
                    m.next = "WAIT_B"
                with m.Elif(beat_valid):
                    take_beat()
            with m.State("WAIT_B"):
                m.d.comb += load_cpl.eq(1)       # final on the clock the responses are in
                with m.If(b_count == aw_count):
                    m.d.sync += [
                        b_aborted.eq(aborted),
                        b_aw_done.eq(0),
                        b_cpl_beat.eq(0),
                    ]
                    m.next = "CPL"
            with m.State("CPL"):
                m.d.comb += [
                    aw_o.valid.eq(~b_aw_done), aw_o.p.addr.eq(job.cpl_addr),
                    aw_o.p.len.eq(cpl_beats - 1), aw_o.p.ring.eq(info.ring[:rb]),
                    w_o.valid.eq(b_cpl_beat != cpl_beats),
                    w_o.p.data.eq(cpl.as_value().word_select(b_cpl_beat, 8 * db)),
                    w_o.p.strb.eq((1 << db) - 1),
                    w_o.p.last.eq(b_cpl_beat == cpl_beats - 1),
                ]
                with m.If(aw_o.valid & aw_o.ready):
                    m.d.sync += [b_aw_done.eq(1), b_cpl_seq.eq(aw_count),
                                 aw_count.eq(aw_count + 1)]
                with m.If(w_o.valid & w_o.ready):
                    m.d.sync += b_cpl_beat.eq(b_cpl_beat + 1)
                with m.If(b_aw_done & (b_cpl_beat == cpl_beats)):
                    m.next = "PUSH"
            with m.State("DRAIN"):
                with m.If(b_ended):
                    m.next = "PUSH"
                with m.Elif(beat_valid):
                    take_beat()
            with m.State("PUSH"):
                m.d.comb += [
                    retire_in.kind.eq(job.kind),
                    retire_in.reason.eq(job.reason),
                    retire_in.ring_ok.eq(job.ring_ok),
                    retire_in.ring.eq(info.ring),
                    retire_in.aborted.eq(b_aborted),
                    retire_in.length.eq(length),
                    retire_in.desc_idx.eq(job.desc_idx),
                    retire_in.cpl_idx.eq(job.cpl_idx),
                    retire_in.cpl_seq.eq(b_cpl_seq),
                    retire_in.irq_count.eq(job.irq_count),
                    retire_in.irq_time.eq(job.irq_time),
                    rfifo.w_en.eq(1),
                ]
                with m.If(rfifo.w_rdy):
                    m.d.sync += [job_valid.eq(0), b_aborted.eq(0)]
                    m.next = "IDLE"

        # --- stage C: retire ---------------------------------------------------------------
        c = Signal(retire_layout)
        c_k = Signal(2)                # counter word: 0 frames, 1 bytes, 2 drops
        c_inc = Signal(16)
        cnt_word = Signal(64)          # the counter port's output, registered every clock
        m.d.sync += cnt_word.eq(cnt_r.data)
        ev_valid = Signal()            # to the interrupt unit
        ev_reset = Signal()
        c_ring = c.ring[:rb]
        # A register read this clock: it has the counter port, and C writes neither `head` nor
        # `cnt` meanwhile, so a read never meets a write (`no_rw_check` on both).
        csr_reads = Signal()
        m.d.comb += csr_reads.eq(self.csr.r_stb)
        c_cnt_addr = Cat(c_k, c_ring)
        # The completion's write response is back (registered; forced low while c changes).
        c_b_done = Signal()
        m.d.sync += c_b_done.eq(~(b_count - c.cpl_seq - 1)[7])

        with m.FSM(name="retire"):
            with m.State("IDLE"):
                with m.If(rfifo.r_rdy):
                    m.d.comb += rfifo.r_en.eq(1)
                    rec = data.View(retire_layout, rfifo.r_data)
                    m.d.sync += [c.eq(rec), c_b_done.eq(0)]
                    with m.Switch(rec.kind):
                        with m.Case(_Kind.DELIVER):
                            m.next = "WAIT_B"
                        with m.Case(_Kind.DROP):
                            m.next = "DROP"
                        with m.Default():
                            m.next = "RESET"
            with m.State("DROP"):
                for r in DropReason:
                    if r != DropReason.NONE:
                        m.d.comb += getattr(inc, f"drop_{r.name.lower()}").eq(c.reason == r)
                m.d.sync += [c_k.eq(DROPS_K), c_inc.eq(1)]
                # Only the engine's own reasons concern the ring; the classifier's do not.
                engine_reason = c.reason.as_value() >= DropReason.RING_DISABLED.value
                with m.If(c.ring_ok & engine_reason):
                    m.next = "CNT_RD"
                with m.Else():
                    m.next = "IDLE"
            with m.State("RESET"):
                with m.If(~csr_reads):
                    m.d.comb += [head_w.addr.eq(c_ring), head_w.data.eq(0), head_w.en.eq(1),
                                 ev_valid.eq(1), ev_reset.eq(1)]
                    m.d.sync += reset_busy.bit_select(c_ring, 1).eq(0)
                    m.next = "IDLE"
            with m.State("WAIT_B"):
                with m.If(c_b_done):
                    m.next = "COMMIT"
            with m.State("COMMIT"):
                with m.If(~csr_reads):
                    m.d.comb += [
                        head_w.addr.eq(c_ring), head_w.en.eq(1),
                        head_w.data.desc.eq(c.desc_idx + 1), head_w.data.cpl.eq(c.cpl_idx + 1),
                        ev_valid.eq(1),
                    ]
                    with m.If(c.aborted):
                        m.d.comb += inc.aborted.eq(1)
                        m.d.sync += [c_k.eq(DROPS_K), c_inc.eq(1)]
                    with m.Else():
                        m.d.comb += [inc.frames.eq(1), inc.bytes.eq(c.length)]
                        m.d.sync += [c_k.eq(FRAMES_K), c_inc.eq(1)]
                    m.next = "CNT_RD"
            with m.State("CNT_RD"):
                with m.If(~csr_reads):                  # the port is the register read's
                    m.next = "CNT_ADD"
            with m.State("CNT_ADD"):                 # the RAM answers; cnt_word takes it
                m.next = "CNT_WR"
            with m.State("CNT_WR"):
                with m.If(~csr_reads):
                    m.d.comb += [cnt_w.addr.eq(c_cnt_addr), cnt_w.data.eq(cnt_word + c_inc),
                                 cnt_w.en.eq(1)]
                    with m.If(c_k == FRAMES_K):
                        m.d.sync += [c_k.eq(BYTES_K), c_inc.eq(c.length)]
                        m.next = "CNT_RD"
                    with m.Else():
                        m.next = "IDLE"
        with m.If(~ready):
            m.d.comb += [head_w.addr.eq(sweep), head_w.data.eq(0), head_w.en.eq(1),
                         cnt_w.addr.eq(sweep), cnt_w.data.eq(0), cnt_w.en.eq(1)]

        # --- interrupt moderation ------------------------------------------------------------
        prescale = Signal(range(self._us_clocks))
        now = Signal(16)               # µs
        with m.If(prescale == self._us_clocks - 1):
            m.d.sync += [prescale.eq(0), now.eq(now + 1)]
        with m.Else():
            m.d.sync += prescale.eq(prescale + 1)

        # Four steps, one ring per clock: pick the ring (C's event, else the next one of the
        # scan); read its state (distributed RAM behind a registered address) into registers;
        # do the arithmetic into registers; decide and write. An operation reads two clocks
        # before the one ahead of it writes, so:
        # * C's events for one ring are at least four clocks apart: two never overlap;
        # * a scan is dropped (the next round looks again) when an event for its ring is
        #   within two steps of it either way, or when a write to its ring (an event, or a
        #   scan that raised) happened in the two clocks before it decides;
        # * an event needs nothing more: scans that could disturb it are dropped.
        scan = Signal(rb)
        s1_ev, s1_reset, s1_ring = Signal(), Signal(), Signal(rb)
        s1_every = Signal()            # count <= 1: every completion raises
        s1_count_m1 = Signal(16)       # count - 1
        s1_time = Signal(15)
        m.d.sync += [
            s1_ev.eq(ev_valid), s1_reset.eq(ev_reset), s1_ring.eq(Mux(ev_valid, c_ring, scan)),
            s1_every.eq(c.irq_count <= 1), s1_count_m1.eq(c.irq_count - 1),
            s1_time.eq(c.irq_time[:15]),
        ]
        with m.If(~ev_valid):
            m.d.sync += scan.eq(scan + 1)

        s2_ev, s2_reset, s2_ring = Signal(), Signal(), Signal(rb)
        s2_every, s2_count_m1, s2_time = Signal(), Signal(16), Signal(15)
        s2_e = Signal(_IrqState)
        m.d.comb += irq_r.addr.eq(s1_ring)
        m.d.sync += [
            s2_ev.eq(s1_ev), s2_reset.eq(s1_reset), s2_ring.eq(s1_ring),
            s2_every.eq(s1_every), s2_count_m1.eq(s1_count_m1), s2_time.eq(s1_time),
            s2_e.eq(irq_r.data),
        ]

        s3_ev, s3_reset, s3_ring = Signal(), Signal(), Signal(rb)
        s3_e = Signal(_IrqState)
        s3_unacked = Signal(16)        # saturating unacked + 1
        s3_fresh = Signal()            # unacked == 0: this completion starts the count
        s3_hit = Signal()              # unacked + 1 >= count
        s3_expired = Signal()          # counting, the timer is on and now >= deadline
        s3_deadline = Signal(16)       # deadline for a fresh count: now + time + 1
        s3_timed = Signal()
        s3_raised = Signal()           # the status bit when this operation reached step 3
        s3_drop = Signal()             # a scan that must not act (see above)
        wrote = Signal()               # step 4 writes the state memory this clock
        h1_wrote, h1_ring = Signal(), Signal(rb)
        m.d.sync += [h1_wrote.eq(wrote), h1_ring.eq(s3_ring)]

        def hit(valid, ring):
            return valid & (ring == s2_ring)

        e2 = s2_e
        m.d.sync += [
            s3_ev.eq(s2_ev), s3_reset.eq(s2_reset), s3_ring.eq(s2_ring), s3_e.eq(e2),
            s3_unacked.eq(Mux(e2.unacked == 0xFFFF, 0xFFFF, e2.unacked + 1)),
            s3_fresh.eq(e2.unacked == 0),
            s3_hit.eq(s2_every | (e2.unacked >= s2_count_m1)),
            s3_expired.eq(e2.timed & (e2.unacked != 0) & ~(now - e2.deadline)[15]),
            s3_deadline.eq(now + s2_time + 1),
            s3_timed.eq(s2_time != 0),
            s3_raised.eq(irq_status.bit_select(s2_ring, 1)),
            s3_drop.eq(hit(ev_valid, c_ring) | hit(s1_ev, s1_ring) | hit(wrote, s3_ring) |
                       hit(h1_wrote, h1_ring) | hit(s3_ev, s3_ring)),
        ]
        e = s3_e
        do_raise = Signal()
        irq_ring = s3_ring
        m.d.comb += irq_w.addr.eq(s3_ring)
        with m.If(~ready):
            m.d.comb += [irq_w.addr.eq(sweep), irq_w.data.eq(0), irq_w.en.eq(1)]
        with m.Elif(s3_ev & s3_reset):
            m.d.comb += [irq_w.data.eq(0), irq_w.en.eq(1), wrote.eq(1)]
        with m.Elif(s3_ev):
            # A completion while the status is set is covered by that interrupt. (One
            # acknowledged during steps 3-4 is missed the same way: the host's poll after its
            # acknowledge finds the completion.)
            with m.If(~s3_raised):
                m.d.comb += [irq_w.en.eq(1), wrote.eq(1)]
                with m.If(s3_hit):
                    m.d.comb += [do_raise.eq(1), irq_w.data.eq(0)]
                with m.Else():
                    m.d.comb += [irq_w.data.unacked.eq(s3_unacked),
                                 irq_w.data.deadline.eq(Mux(s3_fresh, s3_deadline, e.deadline)),
                                 irq_w.data.timed.eq(Mux(s3_fresh, s3_timed, e.timed))]
        with m.Elif(~s3_drop & ~s3_raised & s3_expired):
            m.d.comb += [do_raise.eq(1), irq_w.data.eq(0), irq_w.en.eq(1), wrote.eq(1)]

        # --- registers ---------------------------------------------------------------------
        csr = self.csr
        r_ring = csr.addr[5:]
        r_off = csr.addr[:5]
        m.d.comb += [cfg_rc.addr.eq(Cat(r_off[:3], r_ring)),
                     head_rc.addr.eq(r_ring),
                     cnt_r.addr.eq(Mux(csr_reads, Cat(r_off[1:3], r_ring), c_cnt_addr))]

        with m.If(~ready):
            m.d.comb += [cfg_w.addr.eq(sweep), cfg_w.data.eq(0), cfg_w.en.eq(1)]
        with m.Elif(csr.w_stb):
            with m.If(r_off < 8):
                wmask = Signal(32)
                with m.Switch(r_off[:3]):
                    for k, mask in _CFG_MASKS.items():
                        with m.Case(k):
                            m.d.comb += wmask.eq(mask)
                m.d.comb += [cfg_w.addr.eq(Cat(r_off[:3], r_ring)),
                             cfg_w.data.eq(csr.w_data & wmask), cfg_w.en.eq(1)]
            with m.If((r_off == CTRL) & csr.w_data[31]):
                m.d.sync += [reset_req.bit_select(r_ring, 1).eq(1),
                             reset_busy.bit_select(r_ring, 1).eq(1)]
            with m.If((r_off == IRQ_STATUS) & csr.w_data[0]):
                m.d.sync += irq_status.bit_select(r_ring, 1).eq(0)
            with m.If(r_off == IRQ_MASK):
                m.d.sync += irq_mask.bit_select(r_ring, 1).eq(csr.w_data[0])
        with m.If(do_raise):
            m.d.sync += irq_status.bit_select(irq_ring, 1).eq(1)

        # Reads. Clock 1: the memories are addressed (their ports follow `addr`; the shared
        # counter port only on r_stb), the source is decoded and the flip-flop-only values are
        # picked. Clock 2: every block RAM output goes straight into a register, nothing else
        # (a block RAM's clock-to-output leaves no room for a multiplexer behind it at 125
        # MHz). r_data, due in clock 3, is an AND-OR of those registers with one-hot selects.
        sel_cfg, sel_dhead, sel_chead, sel_lo, sel_other = (Signal(name=f"rd_{n}") for n in
                                                            ("cfg", "dhead", "chead", "lo",
                                                             "other"))
        sel = Cat(sel_cfg, sel_dhead, sel_chead, sel_lo, sel_other)
        sel_q = Signal(5)
        other = Signal(32)             # irq_status / irq_mask bit, ctrl.reset, counter high word
        other_q = Signal(32)
        want_hi = Signal()
        bit = Signal()
        busy = Signal()
        hi_latch = Signal(32)
        latch_hi = Signal()
        cfg_q = Signal(32)
        head_q = Signal(_Indices)
        m.d.sync += [sel.eq(0), bit.eq(0), want_hi.eq(0), latch_hi.eq(0),
                     busy.eq(reset_busy.bit_select(r_ring, 1) & (r_off == CTRL))]
        with m.Switch(r_off):
            with m.Case(*range(8)):
                m.d.sync += sel_cfg.eq(1)
            with m.Case(DESC_HEAD):
                m.d.sync += sel_dhead.eq(1)
            with m.Case(CPL_HEAD):
                m.d.sync += sel_chead.eq(1)
            with m.Case(IRQ_STATUS):
                m.d.sync += [sel_other.eq(1), bit.eq(irq_status.bit_select(r_ring, 1))]
            with m.Case(IRQ_MASK):
                m.d.sync += [sel_other.eq(1), bit.eq(irq_mask.bit_select(r_ring, 1))]
            with m.Case(FRAMES, BYTES, DROPS):
                m.d.sync += [sel_lo.eq(1), latch_hi.eq(csr.r_stb)]
            with m.Case(FRAMES + 1, BYTES + 1, DROPS + 1):
                m.d.sync += [sel_other.eq(1), want_hi.eq(1)]
        m.d.comb += other.eq(Mux(want_hi, hi_latch, bit))
        m.d.sync += [sel_q.eq(sel), other_q.eq(other), cfg_q.eq(cfg_rc.data),
                     head_q.eq(head_rc.data)]
        latch_hi_q = Signal()
        m.d.sync += latch_hi_q.eq(latch_hi)
        with m.If(latch_hi_q):
            m.d.sync += hi_latch.eq(cnt_word[32:])
        busy_q = Signal()
        m.d.sync += busy_q.eq(busy)
        m.d.comb += csr.r_data.eq(
            ((cfg_q | busy_q << 31) & sel_q[0].replicate(32)) |
            (head_q.desc & sel_q[1].replicate(16)) |
            (head_q.cpl & sel_q[2].replicate(16)) |
            (cnt_word[:32] & sel_q[3].replicate(32)) |
            (other_q & sel_q[4].replicate(32)))
        return m


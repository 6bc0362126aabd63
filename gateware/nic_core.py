# Ref: ../shared/DESIGN.md "Data path" and "Host interface"
"""NicCore: the whole card between the PHYs and the host bus.

::

    gmii rx k --> RxPort k --\\
    hairpin ---> PacketFifo --> FrameMerger --> HeaderParser --> frame queue --> RxDmaEngine
                                    |              | meta          ^                | AXI4
                                    | source ------+--> Classifier --- result       v
                                                          | MAC table (tx port)   AxiArbiter
    TxDmaEngine --> TxSwitch --> TxPort k --> gmii tx k   |                         ^   |
         |             +-------> hairpin  <---------------+                         |   v
         +---------------------------------------------------------------- AXI4 ----+  axi
    axil --> AxiLiteCsrBridge --> CsrDecoder --> every block's registers (:meth:`regmap`)

One header parser and one classifier serve both ports and the hairpin: the merged stream
(32 bits at 125 MHz, 4 Gb/s) has twice the bandwidth of two 1 Gb/s ports. Frames wait in the
frame queue while the classifier decides; the merger starts a frame only when the queue has
room for a whole one, so nothing is lost after the ports' own buffers (which drop and count
when the card falls behind).

Domains: ``sync`` (core, 125 MHz), ``eth{k}_rx`` / ``eth{k}_tx`` per port.
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from .axi import AxiSignature
from .axi_arbiter import AxiArbiter
from .axil import AxiLiteCsrBridge, AxiLiteSignature
from .classifier import Classifier
from .crypto.offload import OffloadEngine
from .csr import CsrSignature
from .csr_decoder import CsrDecoder
from .dma_guard import DmaGuard, connect_unguarded
from .frame_merger import FrameMerger
from .gmii import GmiiSignature
from .header_parser import HeaderParser
from .packet_fifo import PacketFifo
from .regmap import Access, Block, Field, Register, RegisterMap
from .rx_dma import RxDmaEngine
from .rx_port import RX_COUNTERS, RxPort
from .skid_buffer import SkidBuffer
from .tx_dma import TxDmaEngine
from .tx_port import TX_COUNTERS, TxPort
from .tx_spoof_check import TxSpoofCheck
from .tx_switch import TX_SWITCH_COUNTERS, TxSwitch
from .vf_control import VfControl
from .vf_windows import VfWindows

__all__ = ["NicCore", "NicInfo", "NIC_ID", "FULL_OPTIONS"]

#: ``nic.id``: the bytes "XNIC" (little-endian), so a driver knows what it found.
NIC_ID = 0x43494E58
NIC_VERSION = 5
#: ``nic.features`` bits.
FEATURE_OFFLOAD = 1
FEATURE_VFS = 2
#: The build with every option: the simulated card (``crossnic sim --serve``) and the map the
#: driver knows (``nic.features`` says which of these a card has).
FULL_OPTIONS = {"offload": True, "vfs": 8}
#: Beats of the frame queue behind the parser, and the room a frame needs to be started
#: (a 1522-byte frame is 381 beats; the parser holds up to 16 more in flight).
QUEUE_BEATS = 2048
ROOM_BEATS = 381 + 24


class NicInfo(wiring.Component):
    """Identification and build parameters, a scratch register, the count of register
    accesses the AXI4-Lite bridge refused, and a free-running cycle counter (read latency 2).

    ``errors`` takes the bridge's pulses (bit 0 SLVERR: misaligned or partial-strobe access;
    bit 1 DECERR: no register there), so the host can see bad accesses, not only the
    initiator that made them. ``link`` is each port's link status (synchronous), shown in
    ``link`` so a driver can tell a pulled cable from a quiet wire."""

    read_latency = 2

    def __init__(self, *, ports: int, rings: int, vnics: int, features: int = 0):
        self._params = ports | rings << 8 | vnics << 20
        self._features = features
        super().__init__({"csr": In(CsrSignature(4)), "errors": In(2), "link": In(ports)})

    @classmethod
    def block(cls, params: int, name: str = "nic", features: int = 0) -> Block:
        ro = Access.RO
        return Block(name, "Card identification and build parameters.", (
            Register.word("id", 0, ro, "reads 0x43494e58: the bytes 'XNIC' (little-endian)",
                          reset=NIC_ID),
            Register.word("version", 1, ro, "register-map version", reset=NIC_VERSION),
            Register("params", 2, "Build-time parameters.", (
                Field("ports", 0, 8, ro, "Ethernet ports", params & 0xFF),
                Field("rings", 8, 12, ro, "receive rings (and transmit rings)",
                      params >> 8 & 0xFFF),
                Field("vnics", 20, 12, ro, "VNICs", params >> 20))),
            Register.word("scratch", 3, Access.RW, "read/write, for testing the register path"),
            Register.word("slverr", 4, Access.WC, "register accesses answered SLVERR: "
                          "misaligned, or a write with partial strobes (write clears)"),
            Register.word("decerr", 5, Access.WC, "register accesses answered DECERR: no "
                          "register at that address (write clears)"),
            Register.word("cycles", 6, ro, "core clock cycles since reset (free-running, "
                          "wraps): the card's time, for rates measured in card time"),
            Register("features", 7, "Optional blocks this build has.", (
                Field("offload", 0, 1, ro, "the handshake offload engine (block `offload`)",
                      features & FEATURE_OFFLOAD),
                Field("vfs", 8, 8, ro, "virtual functions (blocks `vf`, `vf_port`; their "
                      "windows above this map)", features >> 8 & 0xFF))),
            Register("link", 8, "Link status of the Ethernet ports (the PHY's).", tuple(
                Field(f"port{k}", k, 1, ro, f"port {k} has link") for k in
                range(params & 0xFF))),
        ), cls.read_latency)

    def elaborate(self, platform):
        m = Module()
        scratch = Signal(32)
        refused = [Signal(32, name="slverr"), Signal(32, name="decerr")]
        word = Signal(32)
        cycles = Signal(32)
        m.d.sync += cycles.eq(cycles + 1)
        with m.Switch(self.csr.addr):
            for addr, value in enumerate([C(NIC_ID, 32), C(NIC_VERSION, 32),
                                          C(self._params, 32), scratch, *refused, cycles,
                                          C(self._features, 32), self.link]):
                with m.Case(addr):
                    m.d.sync += word.eq(value)
            with m.Default():
                m.d.sync += word.eq(0)
        m.d.sync += self.csr.r_data.eq(word)
        with m.If(self.csr.w_stb & (self.csr.addr == 3)):
            m.d.sync += scratch.eq(self.csr.w_data)
        for k, count in enumerate(refused):
            with m.If(self.csr.w_stb & (self.csr.addr == 4 + k)):
                m.d.sync += count.eq(0)
            with m.Elif(self.errors[k]):
                m.d.sync += count.eq(count + 1)
        return m


class NicCore(wiring.Component):
    """The card: ``ports`` GMII ports, AXI4-Lite registers, an AXI4 host-memory master.

    Parameters
    ----------
    ports, rings, vnics, mac_entries, local_ips, flows : int
    offload : bool
        Include the handshake offload engine (:class:`~.crypto.offload.OffloadEngine`: about
        25,000 LUT4 more, so the whole card with it needs a part larger than the versa's 45F).
    vfs : int
        Virtual functions (0: none): grants and mailboxes (:class:`~.vf_control.VfControl`),
        their register windows above the PF's map (:class:`~.vf_windows.VfWindows`) and a
        :class:`~.dma_guard.DmaGuard` behind each DMA engine.

    Attributes
    ----------
    gmii_rx{k} : In(GmiiSignature()), domain ``eth{k}_rx``
    gmii_tx{k} : Out(GmiiSignature()), domain ``eth{k}_tx``
    axil : In(AxiLiteSignature), registers (byte address = 4 x word address of :meth:`regmap`;
        with ``vfs``, one more address bit: the VF windows, :meth:`vf_window`)
    axi : Out(AxiSignature(64, 64, 2 or 3)), host memory (the top ID bits name the manager:
        0 receive, 1 transmit engine, 2 offload engine)
    rx_irq, tx_irq : Out(rings), one interrupt line per ring
    tx_work : Out(1), a transmit ring holds descriptors the card has not taken yet (also while
        a rate-limited ring waits for its tokens): an activity signal
    offload_irq, offload_busy : Out(1), with ``offload``: a completion was written; a command
        is in progress
    mbox_irq : Out(1), vf_irq : Out(vfs), with ``vfs``: a VF's mailbox request waits for the
        PF; the PF's reply waits for VF *n*
    link : In(ports), each port's link status from its PHY (any domain: synchronised here);
        shown to the PF in ``nic.link`` and to each VF in its ``port.info``
    """

    def __init__(self, *, ports: int = 2, rings: int = 64, vnics: int = 64,
                 mac_entries: int = 32, local_ips: int = 16, flows: int = 64,
                 offload: bool = False, vfs: int = 0):
        if not 1 <= ports <= 3:
            raise ValueError(f"ports must be 1..3 (the hairpin is the last source), not {ports}")
        self._ports = ports
        self._rings = rings
        self._vnics = vnics
        self.classifier = Classifier(vnics=vnics, mac_entries=mac_entries, local_ips=local_ips,
                                     flows=flows, ports=ports)
        self.rx_dma = RxDmaEngine(4, rings=rings)
        self.tx_dma = TxDmaEngine(rings=rings)
        self.tx_switch = TxSwitch(ports, self.classifier.mac_table.signature
                                  .members["tx_result"].signature.members["payload"].shape)
        self.offload = OffloadEngine() if offload else None
        self.vf_control = VfControl(vfs, ports) if vfs else None
        self._vfs = vfs
        self._features = (FEATURE_OFFLOAD if offload else 0) | vfs << 8
        self._params = ports | rings << 8 | vnics << 20
        self._regmap = self._describe()
        self.vf_windows = VfWindows(self._regmap, vfs) if vfs else None
        members = {f"gmii_rx{k}": In(GmiiSignature()) for k in range(ports)}
        members.update({f"gmii_tx{k}": Out(GmiiSignature()) for k in range(ports)})
        members["axil"] = In(AxiLiteSignature(self._regmap.addr_width + 2 + bool(vfs)))
        members["axi"] = Out(AxiSignature(64, 64, 3 if offload else 2))
        members["rx_irq"] = Out(rings)
        members["tx_irq"] = Out(rings)
        members["tx_work"] = Out(1)
        members["link"] = In(ports)
        if offload:
            members["offload_irq"] = Out(1)
            members["offload_busy"] = Out(1)
        if vfs:
            members["mbox_irq"] = Out(1)
            members["vf_irq"] = Out(vfs)
        super().__init__(members)

    def regmap(self) -> RegisterMap:
        return self._regmap

    def vf_window(self) -> RegisterMap:
        """The map of one VF's window (VF *n*'s at word :meth:`vf_base` (n))."""
        if self.vf_windows is None:
            raise ValueError("this card has no virtual functions")
        return self.vf_windows.window

    def vf_base(self, n: int) -> int:
        """Word address of VF ``n``'s window in BAR0."""
        if not 0 <= n < self._vfs:
            raise ValueError(f"no VF {n}: this card has {self._vfs}")
        return self.vf_windows.region + n * self.vf_windows.window_words

    def _describe(self) -> RegisterMap:
        blocks = [NicInfo.block(self._params, features=self._features)]
        for k in range(self._ports):
            blocks.append(Block.from_counters(f"eth{k}_rx", f"Port {k} receive statistics.",
                                              RX_COUNTERS))
            blocks.append(Block.from_counters(f"eth{k}_tx", f"Port {k} transmit statistics.",
                                              TX_COUNTERS))
        blocks += self.classifier.blocks()
        blocks += [self.rx_dma.stats_block("rx_dma"),
                   Block.from_counters("tx_switch", "On-card switching of transmitted frames.",
                                       TX_SWITCH_COUNTERS),
                   self.rx_dma.block("rx_ring"), self.tx_dma.block("tx_ring")]
        if self.offload is not None:
            blocks.append(self.offload.block("offload"))
        if self.vf_control is not None:
            blocks += [self.vf_control.pf_block("vf"), self.vf_control.port_block("vf_port")]
        return RegisterMap("crossnic NIC registers (BAR0)", blocks)

    def elaborate(self, platform):
        m = Module()
        n = self._ports
        csr_ports = []

        m.submodules.info = info = NicInfo(ports=n, rings=self._rings, vnics=self._vnics,
                                           features=self._features)
        csr_ports.append(info.csr)
        link = Signal(n)
        m.submodules.link_sync = FFSynchronizer(self.link, link)
        m.d.comb += info.link.eq(link)

        # --- receive: ports and hairpin -> merger -> parser -> queue + classifier -> DMA --
        m.submodules.merger = merger = FrameMerger(n + 1, 4)
        m.submodules.tx_switch = switch = self.tx_switch
        for k in range(n):
            port = DomainRenamer({"rx": f"eth{k}_rx"})(RxPort(4, fifo_depth=1024))
            m.submodules[f"eth{k}_rx"] = port
            wiring.connect(m, wiring.flipped(getattr(self, f"gmii_rx{k}")), port.gmii)
            wiring.connect(m, port.o, getattr(merger, f"i{k}"))
            tx = DomainRenamer({"tx": f"eth{k}_tx"})(TxPort(4, fifo_depth=2048))
            m.submodules[f"eth{k}_tx"] = tx
            wiring.connect(m, tx.gmii, wiring.flipped(getattr(self, f"gmii_tx{k}")))
            wiring.connect(m, getattr(switch, f"port{k}"), tx.i)
            csr_ports += [port.csr, tx.csr]
        m.submodules.hairpin = hairpin = PacketFifo(4, 1024)
        wiring.connect(m, hairpin.o, getattr(merger, f"i{n}"))
        wiring.connect(m, switch.hairpin, hairpin.i)
        m.d.comb += switch.hairpin_overflow.eq(hairpin.overflow)

        m.submodules.parser = parser = HeaderParser(width=4)
        m.submodules.queue = queue = PacketFifo(4, QUEUE_BEATS)
        wiring.connect(m, merger.o, parser.i)
        wiring.connect(m, parser.o, queue.i)
        room = Signal()
        m.d.sync += room.eq(queue.depth - queue.level >= ROOM_BEATS)
        m.d.comb += merger.room.eq(room)

        m.submodules.classifier = cls = self.classifier
        # Join a frame's headers with its source port, with a register slice on each side:
        # the port numbers come through one, the joined record goes into another in front of
        # the classifier. The parser's and the merger's handshakes then depend only on
        # registers of slices placed beside them, not on the classifier's `ready` across the
        # die (without the slices that round trip was the whole core's critical path: 101 MHz,
        # then 105 and 117 MHz with other placements).
        m.submodules.source_slice = source = SkidBuffer(merger.source.payload.shape())
        m.submodules.join_slice = joined = SkidBuffer(cls.i.payload.shape())
        wiring.connect(m, merger.source, source.i)
        wiring.connect(m, joined.o, cls.i)
        m.d.comb += [
            joined.i.payload.meta.eq(parser.meta.payload),
            joined.i.payload.port.eq(source.o.payload),
            joined.i.valid.eq(parser.meta.valid & source.o.valid),
            parser.meta.ready.eq(source.o.valid & joined.i.ready),
            source.o.ready.eq(parser.meta.valid & joined.i.ready),
        ]
        csr_ports += cls.csr_ports()

        m.submodules.rx_dma = rx_dma = self.rx_dma
        wiring.connect(m, queue.o, rx_dma.i)
        wiring.connect(m, cls.result, rx_dma.info)
        m.d.comb += self.rx_irq.eq(rx_dma.irq)

        # --- transmit: rings -> switch -> ports or hairpin ---------------------------------
        m.submodules.tx_dma = tx_dma = self.tx_dma
        tx_frames, tx_info = tx_dma.o, tx_dma.o_info
        if self.vf_control is not None:
            # A VF's frames pass its anti-spoofing checks on their way to the switch.
            m.submodules.vf_control = vfc = self.vf_control
            m.submodules.tx_spoof = spoof = TxSpoofCheck(self._vfs)
            wiring.connect(m, tx_dma.o, spoof.i)
            wiring.connect(m, tx_dma.o_info, spoof.i_info)
            m.d.comb += [spoof.grants.eq(vfc.grants), spoof.spoof.eq(vfc.spoof),
                         vfc.spoofed.eq(spoof.spoofed), vfc.link.eq(link)]
            tx_frames, tx_info = spoof.o, spoof.o_info
        wiring.connect(m, tx_frames, switch.i)
        m.d.comb += [
            switch.route.p.port.eq(tx_info.p.port),
            switch.route.p.vnic.eq(tx_info.p.vnic),
            switch.route.valid.eq(tx_info.valid),
            switch.stub_vlan_base.eq(cls.stub_vlan_base),
            tx_info.ready.eq(switch.route.ready),
            self.tx_irq.eq(tx_dma.irq),
            self.tx_work.eq(tx_dma.work),
        ]
        # The transmit-side MAC lookup goes through register slices both ways: the table sits
        # with the classifier, across the die from the switch, and without them the switch's
        # input handshake waited on a round trip to it (the core's critical path, 102.5 MHz).
        m.submodules.tx_lookup_slice = lookup = SkidBuffer(switch.mac_lookup.p.shape())
        m.submodules.tx_result_slice = result = SkidBuffer(cls.mac_tx_result.p.shape())
        wiring.connect(m, switch.mac_lookup, lookup.i)
        wiring.connect(m, lookup.o, cls.mac_tx_lookup)
        wiring.connect(m, cls.mac_tx_result, result.i)
        wiring.connect(m, result.o, switch.mac_result)
        csr_ports += [rx_dma.stats, switch.csr, rx_dma.csr, tx_dma.csr]

        managers = []
        if self.vf_control is not None:
            csr_ports_vf = [vfc.pf, vfc.port]
            m.d.comb += [self.mbox_irq.eq(vfc.mbox_irq), self.vf_irq.eq(vfc.vf_irq)]
            for k, (name, engine) in enumerate((("rx", rx_dma), ("tx", tx_dma))):
                guard = DmaGuard(vfs=self._vfs, ring_bits=len(engine.axi.aruser))
                m.submodules[f"{name}_guard"] = guard
                wiring.connect(m, engine.axi, guard.i)
                m.d.comb += [guard.grants.eq(vfc.grants),
                             vfc.dma_denied[2 * k].eq(guard.denied_r),
                             vfc.dma_denied[2 * k + 1].eq(guard.denied_w)]
                managers.append(guard.o)
        else:
            csr_ports_vf = []
            for name, engine in (("rx", rx_dma), ("tx", tx_dma)):
                port = AxiSignature(64, 64, 1).create(path=(f"{name}_bus",))
                connect_unguarded(m, engine.axi, port)
                managers.append(port)
        if self.offload is not None:
            m.submodules.offload = offload = self.offload
            managers.append(offload.axi)
            csr_ports.append(offload.csr)
            m.d.comb += [self.offload_irq.eq(offload.irq),
                         self.offload_busy.eq(offload.busy)]
        m.submodules.axi_arbiter = arbiter = AxiArbiter(len(managers), 64, 64, 1)
        for k, port in enumerate(managers):
            wiring.connect(m, port, getattr(arbiter, f"m{k}"))
        wiring.connect(m, arbiter.o, wiring.flipped(self.axi))

        csr_ports += csr_ports_vf

        # --- registers ----------------------------------------------------------------------
        regmap = self._regmap
        assert len(csr_ports) == len(regmap.blocks)
        assert {b.read_latency for b in regmap.blocks} == {2}
        m.submodules.decoder = decoder = CsrDecoder([len(c.addr) for c in csr_ports],
                                                    regmap.block_bits, block_latency=2)
        m.submodules.bridge = bridge = AxiLiteCsrBridge(regmap, decoder.read_latency)
        if self.vf_windows is not None:
            m.submodules.vf_windows = windows = self.vf_windows
            wiring.connect(m, wiring.flipped(self.axil), windows.i)
            wiring.connect(m, windows.o, bridge.axil)
            m.d.comb += [windows.grants.eq(vfc.grants), vfc.reg_denied.eq(windows.denied)]
        else:
            wiring.connect(m, wiring.flipped(self.axil), bridge.axil)
        wiring.connect(m, bridge.csr, decoder.bus)
        m.d.comb += info.errors.eq(bridge.errors)
        for k, c in enumerate(csr_ports):
            wiring.connect(m, decoder.block(k), c)
        return m

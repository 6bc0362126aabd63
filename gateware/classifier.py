# Ref: ../shared/DESIGN.md "Data path"; Crossbow (hardware classification into per-VNIC rings);
#      IEEE 802.1Q (a bridge floods broadcast and unknown multicast within the VLAN)
"""Classifier: decides, from a frame's parsed headers, which receive ring it goes to.

For each :class:`~crossnic.gateware.layouts.FrameMetadata` (with the port it came from) it
produces one :class:`~crossnic.gateware.layouts.ClassResult`, in order:

1. **VNIC** (``MacTable``, key destination MAC + VLAN ID, 0 when untagged):

   * a hit gives the VNIC (unicast, or a multicast address a VNIC subscribed to);
   * unicast that misses is dropped (``UNKNOWN_UNICAST``), or given to ``policy.default_vnic``
     when ``policy.unknown_to_default`` is set;
   * broadcast, and multicast that misses but passes the multicast filter (``policy.mcast_all``,
     or bit ``mcast_hash(dst)`` of the 256-bit ``mcast_filter``), is *flooded*: it goes to the
     ``policy.flood_ring`` with ``vnic`` = :data:`FLOOD_VNIC`, and the driver hands a copy to
     every VNIC of the completion's VLAN (the documented broadcast ring: a switch's flooding
     done by the host). Multicast that fails the filter is dropped (``MULTICAST_FILTER``).
2. **Settings** of the VNIC (``VnicTable``): disabled -> ``VNIC_DISABLED``; its VNS instance,
   default priority and its local and forwarding rings.
3. **Class** (``LocalIpTable``): ``LOCAL`` when the destination IP (ARP: target address) is an
   address registered for this very VNIC in the frame's VLAN, else ``FORWARD``; the ring is
   the VNIC's local or forwarding ring accordingly.
4. **Flow** (``FlowTable``, masked match on VNIC, VLAN, family, protocol, addresses, ports,
   DSCP): the first matching entry overrides ring and priority (or drops: ``FLOW_DROP``).
   Flooded and already dropped frames keep their decision.

**Etherstub VLANs**: VLAN IDs from ``stub_vlans.base`` up (0: none) belong to the card's
etherstubs, switches with no wire. A frame that comes in on a wire port tagged with one of
them is dropped (``STUB_VLAN``) whatever its address, so nothing outside the card reaches an
etherstub's VNICs; the transmit switch keeps the other direction (``TxSwitch``).

The result also carries what the completion reports (length, port, VLAN tag, checksum verdicts)
and :func:`flow_hash` of the frame's addresses, protocol and ports.

Throughput: one frame per flow-table scan (``FlowTable.interval`` clocks); the MAC, local-IP
and VNIC lookups of the next frame overlap the scan of the current one.
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .csr import Counter, CounterBank, CsrSignature
from .flow_table import FlowTable
from .layouts import (
    Cast,
    ClassifierInput,
    ClassResult,
    DropReason,
    FrameClass,
    L3Proto,
)
from .local_ip_table import FAMILY_IPV4, FAMILY_IPV6, LocalIpTable
from .mac_table import MacTable
from .regmap import Access, Block, Field, Register
from .vnic_table import VnicTable

__all__ = ["ClassifierInput", "Classifier", "CLASSIFIER_COUNTERS", "FLOOD_VNIC",
           "flow_hash", "mcast_hash"]

#: The ``vnic`` of a flooded frame (broadcast or filtered multicast): every VNIC of its VLAN.
FLOOD_VNIC = 0xFF

CLASSIFIER_COUNTERS = [
    Counter("frames", "frames classified"),
    Counter("mac_hits", "frames whose (MAC, VLAN) matched a MAC-table entry"),
    Counter("unknown_unicast", "unicast frames matching no MAC-table entry"),
    Counter("flooded", "broadcast and filter-passed multicast frames sent to the flood ring"),
    Counter("local", "frames of class LOCAL"),
    Counter("flow_hits", "frames a flow-table entry steered or dropped"),
    Counter("dropped", "frames the classifier marked for dropping (any reason)"),
]

_POLICY, _STUB_VLANS, _MCAST_FILTER0 = 0, 1, 8


def _rotl(v: Value, n: int) -> Value:
    return Cat(v[32 - n:], v[:32 - n])


def flow_hash(src_ip: Value, dst_ip: Value, proto: Value, src_port: Value,
              dst_port: Value) -> Value:
    """32-bit hash for spreading flows: ``h = rotl5(h) ^ w`` over the words src_ip[31:0],
    [63:32], [95:64], [127:96], the same of dst_ip, ``src_port << 16 | dst_port``, ``proto``
    (``h`` starts at 0). Pure XOR of rotations: cheap, and equal for all frames of a flow."""
    words = [src_ip[32 * k:32 * k + 32] for k in range(4)]
    words += [dst_ip[32 * k:32 * k + 32] for k in range(4)]
    words += [Cat(dst_port, src_port), proto.as_unsigned() | C(0, 32)]
    h = C(0, 32)
    for w in words:
        h = _rotl(h, 5) ^ w
    return h


def mcast_hash(mac: Value) -> Value:
    """Bit of the 256-bit multicast filter a destination MAC selects: XOR of its six octets."""
    octets = [mac[8 * k:8 * k + 8] for k in range(6)]
    h = octets[0]
    for o in octets[1:]:
        h = h ^ o
    return h


class Classifier(wiring.Component):
    """MacTable + VnicTable + LocalIpTable + FlowTable + flooding policy, one result per frame.

    Parameters
    ----------
    vnics, mac_entries, local_ips, flows : int
        Table sizes.
    ports : int
        Wire ports: sources 0 .. ports-1 of :attr:`i` (the hairpin comes after them).

    Attributes
    ----------
    i : In(stream of ClassifierInput)
    result : Out(stream of ClassResult)
    mac_csr, vnic_csr, local_ip_csr, flow_csr, policy_csr, stats_csr : In(CsrSignature)
        One register bus per block of :meth:`blocks`, in that order; read latency 2 each.
    stub_vlan_base : Out(12), ``stub_vlans.base`` for the transmit switch
    """

    read_latency = 2

    def __init__(self, *, vnics: int = 64, mac_entries: int = 32, local_ips: int = 16,
                 flows: int = 64, ports: int = 2):
        vnic_bits = max(1, (vnics - 1).bit_length())
        self.mac_table = MacTable(mac_entries, vnic_bits, tx_port=True)
        self.vnic_table = VnicTable(vnics)
        self.local_ip = LocalIpTable(local_ips, vnic_bits)
        self.flow_table = FlowTable(flows)
        self.stats = CounterBank(CLASSIFIER_COUNTERS)
        self._vnics = vnics
        self._ports = ports
        super().__init__({
            "i": In(stream.Signature(ClassifierInput)),
            "result": Out(stream.Signature(ClassResult)),
            "mac_csr": In(CsrSignature(len(self.mac_table.csr.addr))),
            "vnic_csr": In(CsrSignature(len(self.vnic_table.csr.addr))),
            "local_ip_csr": In(CsrSignature(len(self.local_ip.csr.addr))),
            "flow_csr": In(CsrSignature(len(self.flow_table.csr.addr))),
            "policy_csr": In(CsrSignature(4)),
            "stats_csr": In(CsrSignature(len(self.stats.csr.addr))),
            # the MAC table's transmit-side port, for the TxSwitch's hairpin decision
            "mac_tx_lookup": In(self.mac_table.signature.members["tx_lookup"].signature
                                .flip()),
            "mac_tx_result": Out(self.mac_table.signature.members["tx_result"].signature),
            "stub_vlan_base": Out(12),
        })

    def csr_ports(self) -> list:
        """The register buses, in the order of :meth:`blocks`."""
        return [self.mac_csr, self.vnic_csr, self.local_ip_csr, self.flow_csr,
                self.policy_csr, self.stats_csr]

    def blocks(self) -> list[Block]:
        rw = Access.RW
        policy = Block("classifier", "Flooding and unknown-unicast policy.", (
            Register("policy", _POLICY, "what happens to frames no MAC-table entry claims", (
                Field("unknown_to_default", 0, 1, rw,
                      "unknown unicast goes to default_vnic (else dropped, UNKNOWN_UNICAST)"),
                Field("mcast_all", 1, 1, rw, "flood every multicast frame (no filter)"),
                Field("default_vnic", 8, 8, rw, "VNIC for unknown unicast"),
                Field("flood_ring", 16, 8, rw, "ring for broadcast and passed multicast"))),
            *(Register.word(f"mcast_filter{k}", _MCAST_FILTER0 + k, rw,
                            f"multicast filter bits {32 * k + 31}:{32 * k}: bit "
                            "mcast_hash(dst MAC) set floods a multicast frame")
              for k in range(8)),
            Register("stub_vlans", _STUB_VLANS, "the card's etherstub VLANs", (
                Field("base", 0, 12, rw,
                      "VLAN IDs base..4094 are etherstub VLANs (0: none): refused from the "
                      "wire (STUB_VLAN) and to it (tx_switch.stub_refused)"),)),
        ), self.read_latency)
        return [self.mac_table.block("mac_table"), self.vnic_table.block("vnic"),
                self.local_ip.block("local_ip"), self.flow_table.block("flow_table"), policy,
                Block.from_counters("classifier_stats", "Classifier counters.",
                                    CLASSIFIER_COUNTERS)]

    def elaborate(self, platform):
        m = Module()
        m.submodules.mac_table = mac = self.mac_table
        m.submodules.vnic_table = vt = self.vnic_table
        m.submodules.local_ip = lip = self.local_ip
        m.submodules.flow_table = ft = self.flow_table
        m.submodules.stats = stats = self.stats
        wiring.connect(m, wiring.flipped(self.mac_csr), mac.csr)
        wiring.connect(m, wiring.flipped(self.vnic_csr), vt.csr)
        wiring.connect(m, wiring.flipped(self.local_ip_csr), lip.csr)
        wiring.connect(m, wiring.flipped(self.flow_csr), ft.csr)
        wiring.connect(m, wiring.flipped(self.stats_csr), stats.csr)
        wiring.connect(m, wiring.flipped(self.mac_tx_lookup), mac.tx_lookup)
        wiring.connect(m, mac.tx_result, wiring.flipped(self.mac_tx_result))
        policy = self._policy(m)

        # --- 1. fork: MAC and local-IP lookups, and the frame's context into a FIFO ----------
        ctx_layout = data.StructLayout({
            "port": 2, "length": 16, "cast": Cast, "vlan_tagged": 1, "vlan_tci": 16,
            "vlan": 12, "ip_csum": 2, "l4_csum": 2, "family": 2, "proto": 8,
            "src_ip": 128, "dst_ip": 128, "src_port": 16, "dst_port": 16, "dscp": 6,
            "mcast_bit": 8, "hash": 32,
        })
        m.submodules.ctx_fifo = ctx_fifo = SyncFIFOBuffered(width=ctx_layout.size, depth=4)
        meta = self.i.payload.meta
        ctx = Signal(ctx_layout)
        is_v4 = (meta.l3 == L3Proto.IPV4) | (meta.l3 == L3Proto.ARP)
        family = Mux(is_v4, FAMILY_IPV4, Mux(meta.l3 == L3Proto.IPV6, FAMILY_IPV6, 0))
        vid = Mux(meta.vlan_tagged, meta.vlan_vid, 0)
        m.d.comb += [
            ctx.port.eq(self.i.payload.port),
            ctx.length.eq(meta.frame_len),
            ctx.cast.eq(Mux(meta.broadcast, Cast.BROADCAST,
                            Mux(meta.multicast, Cast.MULTICAST, Cast.UNICAST))),
            ctx.vlan_tagged.eq(meta.vlan_tagged),
            ctx.vlan_tci.eq(Cat(meta.vlan_vid, meta.vlan_dei, meta.vlan_pcp)),
            ctx.vlan.eq(vid),
            ctx.ip_csum.eq(meta.ip_csum),
            ctx.l4_csum.eq(meta.l4_csum),
            ctx.family.eq(family),
            ctx.proto.eq(meta.ip_proto),
            ctx.src_ip.eq(meta.ip_src),
            ctx.dst_ip.eq(meta.ip_dst),
            ctx.src_port.eq(meta.l4_src_port),
            ctx.dst_port.eq(meta.l4_dst_port),
            ctx.dscp.eq(meta.ip_dscp),
            ctx.mcast_bit.eq(mcast_hash(meta.dst_mac)),
            ctx.hash.eq(flow_hash(meta.ip_src, meta.ip_dst, meta.ip_proto,
                                  meta.l4_src_port, meta.l4_dst_port)),
            mac.lookup.payload.mac.eq(meta.dst_mac),
            mac.lookup.payload.vlan.eq(vid),
            lip.lookup.payload.family.eq(family),
            lip.lookup.payload.addr.eq(meta.ip_dst),
            lip.lookup.payload.vlan.eq(vid),
            ctx_fifo.w_data.eq(ctx),
        ]
        fork_ok = mac.lookup.ready & lip.lookup.ready & ctx_fifo.w_rdy
        m.d.comb += [
            self.i.ready.eq(fork_ok),
            mac.lookup.valid.eq(self.i.valid & fork_ok),
            lip.lookup.valid.eq(self.i.valid & fork_ok),
            ctx_fifo.w_en.eq(self.i.valid & fork_ok),
        ]

        # --- 2. join: VNIC decision (registered), then the VNIC's settings ---------------
        # s2 holds a frame whose VNIC is known (the VNIC table read is in flight); s3 holds it
        # with the settings, and hands it to the flow table and the second context FIFO.
        # s2 is loaded only when empty, so the lookups' `ready` does not wait on the flow
        # table's through two stages (a path across the die); the bubble this costs is nothing
        # beside the 18-clock lookups.
        s2_valid, s3_valid = Signal(), Signal()
        s3_free = Signal()
        s2_free = ~s2_valid
        join = ctx_fifo.r_rdy & mac.result.valid & lip.result.valid
        take = join & s2_free
        m.d.comb += [mac.result.ready.eq(take), lip.result.ready.eq(take),
                     ctx_fifo.r_en.eq(take)]
        c1 = Signal(ctx_layout)
        m.d.comb += c1.eq(ctx_fifo.r_data)
        decide = data.StructLayout({"vnic": 8, "flood": 1, "local": 1, "drop": DropReason,
                                    "mac_hit": 1})
        d1 = Signal(decide)
        unicast = c1.cast == Cast.UNICAST
        mcast_pass = policy.mcast_all | policy.filter.bit_select(c1.mcast_bit, 1)
        with m.If(mac.result.payload.hit):
            m.d.comb += [d1.vnic.eq(mac.result.payload.vnic), d1.mac_hit.eq(1)]
        with m.Elif(unicast):
            m.d.comb += d1.vnic.eq(policy.default_vnic)
            with m.If(~policy.unknown_to_default):
                m.d.comb += d1.drop.eq(DropReason.UNKNOWN_UNICAST)
        with m.Elif((c1.cast == Cast.BROADCAST) | mcast_pass):
            m.d.comb += [d1.vnic.eq(FLOOD_VNIC), d1.flood.eq(1)]
        with m.Else():
            m.d.comb += [d1.vnic.eq(FLOOD_VNIC), d1.drop.eq(DropReason.MULTICAST_FILTER)]
        # An etherstub VLAN from a wire: refused, whatever the address says.
        with m.If((c1.port < self._ports) & c1.vlan_tagged & (policy.stub_vlan_base != 0)
                  & (c1.vlan >= policy.stub_vlan_base)):
            m.d.comb += d1.drop.eq(DropReason.STUB_VLAN)
        m.d.comb += d1.local.eq(lip.result.payload.hit & ~d1.flood
                                & (lip.result.payload.vnic == d1.vnic))
        c2, d2 = Signal(ctx_layout), Signal(decide)
        with m.If(take):
            m.d.sync += [s2_valid.eq(1), c2.eq(c1), d2.eq(d1)]
        with m.Elif(s2_valid & s3_free):
            m.d.sync += s2_valid.eq(0)
        # The VNIC table answers one clock after the read: read it as s2 is loaded, and keep
        # its output while s2 waits.
        m.d.comb += [vt.read_addr.eq(d1.vnic), vt.read_en.eq(take)]

        c3, d3 = Signal(ctx_layout), Signal(decide)
        r3 = Signal(ClassResult)
        settings = vt.read_data
        r2 = Signal(ClassResult)
        in_range = d2.vnic < self._vnics
        enabled = in_range & settings.enable
        m.d.comb += [
            r2.length.eq(c2.length), r2.port.eq(c2.port), r2.cast.eq(c2.cast),
            r2.vlan_tagged.eq(c2.vlan_tagged), r2.vlan_tci.eq(c2.vlan_tci),
            r2.ip_csum.eq(c2.ip_csum), r2.l4_csum.eq(c2.l4_csum), r2.flow_hash.eq(c2.hash),
            r2.vnic.eq(d2.vnic),
            r2.cls.eq(Mux(d2.local, FrameClass.LOCAL, FrameClass.FORWARD)),
        ]
        with m.If(d2.flood):
            m.d.comb += r2.ring.eq(policy.flood_ring)
        with m.Elif(in_range):             # a VNIC number past the table has all-zero settings
            m.d.comb += [
                r2.ring.eq(Mux(d2.local, settings.local_ring, settings.forward_ring)),
                r2.vns_id.eq(settings.vns_id),
                r2.priority.eq(settings.priority),
            ]
        with m.If(d2.drop != DropReason.NONE):
            m.d.comb += r2.drop.eq(d2.drop)
        with m.Elif(~d2.flood & ~enabled):
            m.d.comb += r2.drop.eq(DropReason.VNIC_DISABLED)
        with m.If(s3_free):
            m.d.sync += s3_valid.eq(s2_valid)
            with m.If(s2_valid):
                m.d.sync += [c3.eq(c2), d3.eq(d2), r3.eq(r2)]

        # --- 3. fork to the flow table, then join its answer with the frame --------------
        m.submodules.res_fifo = res_fifo = SyncFIFOBuffered(width=ClassResult.as_shape().size,
                                                            depth=4)
        key = ft.lookup.payload
        m.d.comb += [
            key.vnic.eq(d3.vnic), key.vlan.eq(c3.vlan), key.family.eq(c3.family),
            key.proto.eq(c3.proto), key.src_ip.eq(c3.src_ip), key.dst_ip.eq(c3.dst_ip),
            key.src_port.eq(c3.src_port), key.dst_port.eq(c3.dst_port), key.dscp.eq(c3.dscp),
            res_fifo.w_data.eq(r3),
        ]
        fork2_ok = ft.lookup.ready & res_fifo.w_rdy
        m.d.comb += [
            s3_free.eq(~s3_valid | fork2_ok),
            ft.lookup.valid.eq(s3_valid & fork2_ok),
            res_fifo.w_en.eq(s3_valid & fork2_ok),
        ]

        out = Signal(ClassResult)
        flow = ft.result.payload
        r4 = Signal(ClassResult)
        m.d.comb += r4.eq(res_fifo.r_data)
        applies = flow.hit & (r4.drop == DropReason.NONE) & (r4.vnic != FLOOD_VNIC)
        m.d.comb += out.eq(r4)
        with m.If(applies):
            m.d.comb += [out.flow_hit.eq(1), out.flow_id.eq(flow.index)]
            with m.If(flow.drop):
                m.d.comb += out.drop.eq(DropReason.FLOW_DROP)
            with m.Else():
                m.d.comb += [out.ring.eq(flow.ring), out.priority.eq(flow.priority)]
        out_free = ~self.result.valid | self.result.ready
        join2 = res_fifo.r_rdy & ft.result.valid & out_free
        m.d.comb += [ft.result.ready.eq(join2), res_fifo.r_en.eq(join2)]
        with m.If(out_free):
            m.d.sync += self.result.valid.eq(join2)
            with m.If(join2):
                m.d.sync += self.result.payload.eq(out)

        # --- counters -----------------------------------------------------------------------
        with m.If(take):
            m.d.comb += [stats.inc.mac_hits.eq(d1.mac_hit),
                         stats.inc.unknown_unicast.eq(unicast & ~d1.mac_hit)]
        done = self.result.valid & self.result.ready
        res = self.result.payload
        with m.If(done):
            m.d.comb += [
                stats.inc.frames.eq(1),
                stats.inc.flooded.eq((res.vnic == FLOOD_VNIC) & (res.drop == DropReason.NONE)),
                stats.inc.local.eq(res.cls == FrameClass.LOCAL),
                stats.inc.flow_hits.eq(res.flow_hit),
                stats.inc.dropped.eq(res.drop != DropReason.NONE),
            ]
        return m

    def _policy(self, m: Module):
        """The policy registers; returns them as a record of signals."""
        csr = self.policy_csr
        p = Signal(data.StructLayout({"unknown_to_default": 1, "mcast_all": 1,
                                      "default_vnic": 8, "flood_ring": 8, "filter": 256,
                                      "stub_vlan_base": 12}))
        m.d.comb += self.stub_vlan_base.eq(p.stub_vlan_base)
        with m.If(csr.w_stb):
            with m.If(csr.addr == _POLICY):
                m.d.sync += [p.unknown_to_default.eq(csr.w_data[0]),
                             p.mcast_all.eq(csr.w_data[1]),
                             p.default_vnic.eq(csr.w_data[8:16]),
                             p.flood_ring.eq(csr.w_data[16:24])]
            with m.If(csr.addr == _STUB_VLANS):
                m.d.sync += p.stub_vlan_base.eq(csr.w_data[:12])
            for k in range(8):
                with m.If(csr.addr == _MCAST_FILTER0 + k):
                    m.d.sync += p.filter[32 * k:32 * k + 32].eq(csr.w_data)
        word = Signal(32)
        m.d.sync += word.eq(0)
        with m.If(csr.addr == _POLICY):
            m.d.sync += word.eq(Cat(p.unknown_to_default, p.mcast_all, C(0, 6),
                                    p.default_vnic, p.flood_ring))
        with m.If(csr.addr == _STUB_VLANS):
            m.d.sync += word.eq(p.stub_vlan_base)
        for k in range(8):
            with m.If(csr.addr == _MCAST_FILTER0 + k):
                m.d.sync += word.eq(p.filter[32 * k:32 * k + 32])
        m.d.sync += csr.r_data.eq(word)
        return p

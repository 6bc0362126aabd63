# Ref: Solaris flowadm(8) flow attributes (local_ip, remote_ip, transport, local_port,
#      remote_port, dsfield); RFC 4632 (prefix length); RFC 2474 (DS field)
"""FlowTable: the flow classifier, a masked match of a frame's flow key -> ring, priority, drop.

An entry compares any of: the VNIC and VLAN the frame is on, the IP family, the transport
(IP protocol), the source and destination ports, the source and destination address under a
prefix length, and the DSCP under a 6-bit mask. That covers every flowadm attribute combination
(``local_ip`` is the destination, ``remote_ip`` the source). The lowest matching index wins: the
driver orders entries by precedence.

Matching rules: a field takes part when its enable bit is set (the DSCP when its mask is not 0,
an address when its prefix length is not 0). Prefix lengths apply in the entry's ``family``:
an IPv4 entry (family 1) compares the top bits of the 32-bit address in bits 31:0, any other
the top bits of all 128; a length beyond the address compares all of it. An address prefix
implies the family check, so an IPv4 prefix never matches an IPv6 frame.

A parallel CAM of entries this wide (364 bits) would take thousands of LUTs, but the classifier
sees at most one frame every 42 clocks (two ports of 64-byte frames at 125 MHz). So entries live
in block RAM, ``lanes`` memories side by side (entry *k* in memory *k* % lanes, row *k* // lanes),
and a lookup scans the rows, ``lanes`` entries per clock. The IP masks are stored as prefix
lengths and expanded in the compare pipeline, byte by byte, instead of as 2 x 128 mask bits.

Timing, with ``rows = ceil(entries / lanes)`` (32 for the defaults):

* throughput: a lookup is accepted every ``rows`` clocks (the next scan starts the clock after
  the previous one read its last row, while that one is still in the compare pipeline);
  a ``cmd`` (store or load) takes one clock from the scan;
* latency: ``rows + 6`` clocks from the clock a lookup is accepted to the clock its result is
  valid (38 for the defaults): the rows are read in ``rows`` clocks, the last one then passes
  the block RAM's output register, two fabric registers, the compare, the match reduction and
  the choice of the winner, and the result a small FIFO.

The FIFO is sized so that, with ``result.ready`` held, the scanner never waits; a lookup is only
accepted when its result has room, so back-pressure never stalls the pipeline.

Programming is as in :class:`~crossnic.gateware.mac_table.MacTable`: staging registers, ``index``
and ``cmd``. A store is one memory write in a clock the scan does not read, so a lookup sees the
whole old entry or the whole new one, never a mix. Each entry counts its hits (a RAM,
read-modify-write with a bypass so back-to-back hits are all counted); misses are counted too.
See :meth:`FlowTable.block` for the registers and what bad writes do (nothing harmful).
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .csr import CsrSignature
from .regmap import Access, Block, Field, Register

__all__ = [
    "FlowKey", "FlowEntry", "FlowTable", "flow_result_layout",
    "CMD_STORE", "CMD_LOAD", "FAMILY_NONE", "FAMILY_IPV4", "FAMILY_IPV6",
    "PRIORITY_LOW", "PRIORITY_MEDIUM", "PRIORITY_HIGH",
]

#: The lookup key. IP addresses and ports as read in network byte order (as in
#: :class:`~crossnic.gateware.layouts.FrameMetadata`); an IPv4 address sits in the low 32 bits.
#: Fields a frame does not have (ports of a non-TCP/UDP frame, addresses of a non-IP one) are 0.
FlowKey = data.StructLayout({
    "vnic": 8,          # the link the frame is on (the MAC table's answer)
    "vlan": 12,         # VLAN ID, 0 untagged
    "family": 2,        # FAMILY_*
    "proto": 8,         # IPv4 protocol / IPv6 next header
    "src_ip": 128,
    "dst_ip": 128,
    "src_port": 16,
    "dst_port": 16,
    "dscp": 6,
})

FAMILY_NONE, FAMILY_IPV4, FAMILY_IPV6 = 0, 1, 2
PRIORITY_LOW, PRIORITY_MEDIUM, PRIORITY_HIGH = 0, 1, 2
CMD_STORE, CMD_LOAD = 1, 2

#: One table entry, as stored (one memory word) and as staged.
FlowEntry = data.StructLayout({
    "valid": 1,
    "vnic_en": 1, "vlan_en": 1, "family_en": 1, "proto_en": 1, "src_port_en": 1,
    "dst_port_en": 1,
    "vnic": 8, "vlan": 12, "family": 2, "proto": 8, "src_port": 16, "dst_port": 16,
    "dscp": 6, "dscp_mask": 6,
    "src_ip": 128, "src_prefix": 8,
    "dst_ip": 128, "dst_prefix": 8,
    "ring": 8, "priority": 2, "drop": 1,
})

_Action = data.StructLayout({"ring": 8, "priority": 2, "drop": 1})


def flow_result_layout(entries: int) -> data.StructLayout:
    """Result of a lookup: ``hit``, the matching entry's ``index`` (the flow id) and its action
    (``ring``, ``priority`` 0 low / 1 medium / 2 high, ``drop``); all zero on a miss."""
    return data.StructLayout({"hit": 1, "index": range(entries), "ring": 8, "priority": 2,
                              "drop": 1})


# Register word offsets.
_INDEX, _CMD, _HITS, _MISSES, _MATCH, _LINK, _L3, _PORTS, _PREFIX, _ACTION = range(10)
_SRC_IP, _DST_IP = 16, 20

# The staging registers: (name, word, doc, fields (entry field, bit, width, doc)). One table
# serves the register block, the write decoder and the read multiplexer.
_STAGING = (
    ("match", _MATCH, "staging: which fields the entry compares, and whether it is in use.", (
        ("vnic_en", 0, 1, "compare vnic (else any link)"),
        ("vlan_en", 1, 1, "compare vlan (else any VLAN)"),
        ("family_en", 2, 1, "compare family (implied by a non-zero src/dst prefix)"),
        ("proto_en", 3, 1, "compare proto (flowadm transport)"),
        ("src_port_en", 4, 1, "compare src_port (flowadm remote_port)"),
        ("dst_port_en", 5, 1, "compare dst_port (flowadm local_port)"),
        ("valid", 31, 1, "the entry takes part in lookups"))),
    ("link", _LINK, "staging: the link the flow is on.", (
        ("vnic", 0, 8, "VNIC"),
        ("vlan", 16, 12, "VLAN ID (0: untagged)"))),
    ("l3", _L3, "staging: IP family, transport and DS field.", (
        ("family", 0, 2, ("0 not IP, 1 IPv4, 2 IPv6 (3 matches nothing); 1 also makes the "
                          "prefixes apply to the IPv4 address in bits 31:0")),
        ("proto", 8, 8, "IP protocol / IPv6 next header (6 TCP, 17 UDP, ...)"),
        ("dscp", 16, 6, "DSCP value (flowadm dsfield)"),
        ("dscp_mask", 24, 6, "DSCP bits compared (0: any DSCP)"))),
    ("ports", _PORTS, "staging: transport ports.", (
        ("src_port", 0, 16, "source port (flowadm remote_port)"),
        ("dst_port", 16, 16, "destination port (flowadm local_port)"))),
    ("prefix", _PREFIX, ("staging: address prefix lengths (0: any address). IPv4 entries "
                         "(family 1) compare the top bits of the 32-bit address; lengths "
                         "beyond the address (33+ for IPv4, 129+ for IPv6) compare all of it."), (
        ("src_prefix", 0, 8, "source address prefix length (flowadm remote_ip)"),
        ("dst_prefix", 16, 8, "destination address prefix length (flowadm local_ip)"))),
    ("action", _ACTION, "staging: what a match returns.", (
        ("ring", 0, 8, "receive ring"),
        ("priority", 8, 2, "0 low, 1 medium, 2 high (3 reserved, returned as written)"),
        ("drop", 16, 1, "drop the frame"))),
)


def _first_match(items: list[tuple[Value, ...]]) -> tuple[Value, ...]:
    """(any, values...) of the first item whose flag (item[0]) is set: a balanced tree of 2:1
    choices."""
    while len(items) > 1:
        pairs = [items[k:k + 2] for k in range(0, len(items), 2)]
        items = [(p[0][0] | p[1][0], *(Mux(p[0][0], a, b) for a, b in zip(p[0][1:], p[1][1:],
                                                                             strict=True)))
                 if len(p) == 2 else p[0] for p in pairs]
    return items[0]


def _prefix_terms(key_ip: Value, ip: Value, prefix: Value, ipv4: Value) -> list[Value]:
    """For each byte of a 128-bit address: (byte wholly under the prefix, byte partly under it,
    bytes equal, bits under the prefix equal). The byte is fine when neither flag is set or the
    matching equality holds; the caller registers the terms and reduces them a clock later.

    Only one byte can be partly covered, by its top ``prefix % 8`` bits; which byte that is and
    which are wholly covered follows from ``prefix // 8``, counted from byte 15 (IPv6) or byte 3
    (IPv4, whose bytes 4..15 are not compared)."""
    hi, lo = prefix[3:], prefix[:3]
    partial_mask = Cat(lo > 7 - b for b in range(8))
    terms = []
    for j in range(16):
        k, e = key_ip[8 * j:8 * j + 8], ip[8 * j:8 * j + 8]
        if j < 4:
            full = Mux(ipv4, hi > 3 - j, hi > 15 - j)
            part = Mux(ipv4, hi == 3 - j, hi == 15 - j)
        else:
            full = ~ipv4 & (hi > 15 - j)
            part = ~ipv4 & (hi == 15 - j)
        terms += [full, part, k == e, ((k ^ e) & partial_mask) == 0]
    return terms


class FlowTable(wiring.Component):
    """Masked flow key -> (ring, priority, drop) table, lowest matching index first.

    Parameters
    ----------
    entries : int
        Table size (64 in the card; 1..1024 here).
    lanes : int
        Entries compared per clock, each from its own memory (a power of two, 1..16): a lookup
        takes ``ceil(entries / lanes)`` clocks of the scanner.

    Attributes
    ----------
    lookup : In(stream of FlowKey)
    result : Out(stream of flow_result_layout), one per lookup, in order, ``rows + 6`` clocks
        after it was accepted when ``result.ready`` is held
    csr : In(CsrSignature), ``read_latency`` = 2 like the counter banks
    """

    read_latency = 2
    #: Clocks from the one that reads a lookup's last row to the one its result is valid.
    TAIL = 7

    def __init__(self, entries: int = 64, lanes: int = 2):
        if not 1 <= entries <= 1024:
            raise ValueError(f"entries must be 1..1024, not {entries}")
        if lanes not in (1, 2, 4, 8, 16) or lanes > entries:
            raise ValueError(f"lanes must be a power of two 1..16, at most entries, not {lanes}")
        self._entries = entries
        self._lanes = lanes
        self._rows = -(-entries // lanes)
        # Results in flight (accepted, not yet taken) that keep the scanner busy: one being
        # scanned and those whose tail overlaps it; the result FIFO holds that many.
        self._depth = 2 + (self.TAIL - 1) // self._rows
        super().__init__({
            "lookup": In(stream.Signature(FlowKey)),
            "result": Out(stream.Signature(flow_result_layout(entries))),
            "csr": In(CsrSignature(5)),
        })

    @property
    def entries(self) -> int:
        return self._entries

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def rows(self) -> int:
        """Clocks the scanner spends on one lookup: a new one is accepted this often."""
        return self._rows

    @property
    def interval(self) -> int:
        """Clocks between lookups accepted back to back (``rows``; one more per ``cmd``)."""
        return self._rows

    @property
    def latency(self) -> int:
        """Clocks from accepting a lookup to its result being valid (``result.ready`` held)."""
        return self._rows + self.TAIL - 1

    def block(self, name: str = "flow_table") -> Block:
        """The register block, for the register map."""
        rw = Access.RW
        regs = [
            Register.word("index", _INDEX, rw, "entry that cmd and hits refer to; writes of "
                          f"{self._entries} or more are ignored",
                          width=max(1, (self._entries - 1).bit_length())),
            Register.word("cmd", _CMD, rw, "write 1: store staging into entry[index] (atomic); "
                          "2: load entry[index] into staging. Other values, and writes while a "
                          "command is under way, are ignored. Reads 1 while one is under way, "
                          "else 0: poll it before reading a loaded entry (reads strobed 4 "
                          "clocks after the write or later see it); staging writes made during "
                          "a load are lost", width=2),
            Register.word("hits", _HITS, Access.WC, "lookups that matched entry[index] first "
                          "(a write clears it; reads strobed 5 clocks later or more see that)"),
            Register.word("misses", _MISSES, Access.WC, "lookups that matched no entry "
                          "(write clears)"),
        ]
        for reg, offset, doc, fields in _STAGING:
            regs.append(Register(reg, offset, doc, tuple(Field(f, bit, width, rw, fdoc)
                                                         for f, bit, width, fdoc in fields)))
        for base, what, flowadm in ((_SRC_IP, "src", "remote_ip"), (_DST_IP, "dst", "local_ip")):
            for k in range(4):
                regs.append(Register.word(
                    f"{what}_ip{k}", base + k, rw, f"staging: {what} address (flowadm {flowadm}) "
                    f"bits {32 * k + 31}:{32 * k}" + (" (an IPv4 address)" if k == 0 else "")))
        return Block(name, f"Flow table: masked (link, family, transport, addresses, ports, "
                           f"DSCP) -> ring, priority, drop; {self._entries} entries, lowest "
                           f"index first. Words 10-15 and 24-31 read 0 and ignore writes.",
                     tuple(regs), self.read_latency)

    def elaborate(self, platform):
        m = Module()
        n, lanes, rows = self._entries, self._lanes, self._rows
        lane_bits = lanes.bit_length() - 1
        csr = self.csr

        # --- commands from the register side (registered: the scan gives up this clock) ----
        sel = Signal(range(n))                      # the index register
        stage = Signal(FlowEntry)                   # the staging registers
        cmd_store, cmd_load = Signal(), Signal()
        cmd_row, cmd_lane = Signal(range(rows)), Signal(lane_bits)
        cmd_now = cmd_store | cmd_load

        # --- scanner: one row of every lane per clock --------------------------------------
        busy = Signal()                             # rows after the first still to read
        row = Signal(range(rows))                   # 0 whenever not busy
        key = Signal(FlowKey)
        pending = Signal(range(self._depth + 1))    # accepted, result not yet taken
        accept = Signal()
        m.d.comb += [
            self.lookup.ready.eq(~busy & ~cmd_now & (pending != self._depth)),
            accept.eq(self.lookup.valid & self.lookup.ready),
        ]
        issue = accept | (busy & ~cmd_now)          # read `row` this clock
        last = row == rows - 1
        with m.If(accept):
            m.d.sync += key.eq(self.lookup.payload)
        with m.If(issue):
            m.d.sync += [row.eq(Mux(last, 0, row + 1)), busy.eq(~last)]
        m.d.sync += pending.eq(pending + accept - (self.result.valid & self.result.ready))

        # Slot flags travel with the rows through the stages M (the block RAM's output
        # register), R and Q (registered twice in the fabric), C (compared), D (reduced to a
        # match per lane).
        def slot(s: str) -> tuple[Signal, Signal, Signal, Signal]:
            return (Signal(name=f"{s}_valid"), Signal(name=f"{s}_first"),
                    Signal(name=f"{s}_last"), Signal(range(rows), name=f"{s}_row"))

        m_slot, r_slot, q_slot, c_slot, d_slot = (slot(s) for s in "mrqcd")
        m.d.sync += [a.eq(b) for a, b in zip(m_slot, (issue, accept, last, row), strict=True)]
        for a_slot, b_slot in ((r_slot, m_slot), (q_slot, r_slot), (c_slot, q_slot),
                               (d_slot, c_slot)):
            m.d.sync += [a.eq(b) for a, b in zip(a_slot, b_slot, strict=True)]

        # --- the entry memories --------------------------------------------------------------
        # The block RAM's clock-to-output takes most of a clock (5.8 ns at -6), and a lane's
        # words sit in eleven block RAMs along the die: R, a register with one load per bit,
        # can sit next to each RAM; Q then takes the entry to the comparators.
        entry_r, entry_q = [], []
        for lane in range(lanes):
            # The scan never reads the row being written (a store takes a clock from it), so
            # read/write collisions cannot happen: `no_rw_check` spares Yosys the bypass logic
            # it would put after the block RAM's (slow) output. Yosys honours it when it merges
            # the output register into the read port itself, hence the asynchronous port.
            mem = Memory(shape=FlowEntry, depth=rows, init=[],
                         attrs={"ram_style": "block", "no_rw_check": 1})
            m.submodules[f"lane{lane}"] = mem
            rd, wr = mem.read_port(domain="comb"), mem.write_port()
            m.d.comb += [
                rd.addr.eq(Mux(cmd_load, cmd_row, row)),
                wr.addr.eq(cmd_row),
                wr.data.eq(stage),
                wr.en.eq(cmd_store & (cmd_lane == lane)),
            ]
            data_m = Signal(FlowEntry, name=f"entry{lane}_m")
            with m.If(~cmd_store):                  # M: the block RAM's output register
                m.d.sync += data_m.eq(rd.data)
            entry_r.append(e := Signal(FlowEntry, name=f"entry{lane}_r"))
            entry_q.append(q := Signal(FlowEntry, name=f"entry{lane}_q"))
            m.d.sync += [e.eq(data_m), q.eq(e)]

        # The key travels with the first row of its scan: the scanner takes the next lookup
        # (into `key`) `rows` clocks after this one, before the last rows of this one are
        # compared. Q's copy is taken when the first row enters Q, two clocks after the scan
        # began; a one-row scan needs a copy on the way.
        key_q = Signal(FlowKey)
        key_src = key
        if rows < 2:
            key_src = Signal(FlowKey)
            with m.If(m_slot[1]):
                m.d.sync += key_src.eq(key)
        with m.If(r_slot[1]):
            m.d.sync += key_q.eq(key_src)

        # --- C: compare every field, per byte for the addresses; register the terms ---------
        # --- D: reduce the terms to one match per lane ---------------------------------------
        d_match = Signal(lanes)
        d_action = [Signal(_Action, name=f"d_action{lane}") for lane in range(lanes)]
        for lane, e in enumerate(entry_q):
            k = key_q
            any_prefix = (e.src_prefix != 0) | (e.dst_prefix != 0)
            ipv4 = e.family == FAMILY_IPV4
            fields = Cat(
                e.valid,
                ~e.vnic_en | (k.vnic == e.vnic),
                ~e.vlan_en | (k.vlan == e.vlan),
                ~(e.family_en | any_prefix) | (k.family == e.family),
                ~e.proto_en | (k.proto == e.proto),
                ~e.src_port_en | (k.src_port == e.src_port),
                ~e.dst_port_en | (k.dst_port == e.dst_port),
                ((k.dscp ^ e.dscp) & e.dscp_mask) == 0,
            )
            terms = Cat(*_prefix_terms(k.src_ip, e.src_ip, e.src_prefix, ipv4),
                        *_prefix_terms(k.dst_ip, e.dst_ip, e.dst_prefix, ipv4))
            c_fields = Signal(len(fields), name=f"c_fields{lane}")
            c_terms = Signal(len(terms), name=f"c_terms{lane}")
            c_action = Signal(_Action, name=f"c_action{lane}")
            m.d.sync += [c_fields.eq(fields), c_terms.eq(terms),
                         c_action.eq(Cat(e.ring, e.priority, e.drop))]

            bytes_ok = Cat((~c_terms[j] | c_terms[j + 2]) & (~c_terms[j + 1] | c_terms[j + 3])
                           for j in range(0, len(c_terms), 4))
            m.d.sync += [d_match[lane].eq(c_slot[0] & c_fields.all() & bytes_ok.all()),
                         d_action[lane].eq(c_action)]

        # --- E: the winner: the lowest lane of the first row with a match --------------------
        d_valid, d_first, d_last, d_row = d_slot
        any_lane, lane_index, action = _first_match(
            [(d_match[lane], C(lane, lane_bits), d_action[lane].as_value())
             for lane in range(lanes)])
        found = Signal()
        best_index = Signal(range(n))
        best_action = Signal(_Action)
        had = found & ~d_first                      # an earlier row of this scan matched
        take = any_lane & ~had
        hit_now = had | any_lane
        index_now = Mux(take, Cat(lane_index, d_row), best_index)
        action_now = Mux(take, action, best_action)
        with m.If(d_valid):
            m.d.sync += [found.eq(hit_now), best_index.eq(index_now), best_action.eq(action_now)]

        res_valid = Signal()
        res = Signal(flow_result_layout(n))
        res_action = _Action(Mux(hit_now, action_now, 0))
        m.d.sync += [
            res_valid.eq(d_valid & d_last),
            res.hit.eq(hit_now),
            res.index.eq(Mux(hit_now, index_now, 0)),
            res.ring.eq(res_action.ring),
            res.priority.eq(res_action.priority),
            res.drop.eq(res_action.drop),
        ]
        m.submodules.fifo = fifo = SyncFIFO(width=len(res.as_value()), depth=self._depth)
        m.d.comb += [
            fifo.w_data.eq(res),
            fifo.w_en.eq(res_valid),                # room guaranteed by `pending`
            self.result.valid.eq(fifo.r_rdy),
            self.result.payload.eq(fifo.r_data),
            fifo.r_en.eq(self.result.ready),
        ]

        # --- hit counters: RAM, read-modify-write in four steps ------------------------------
        # P0 reads the count of the hit entry, P1 registers the RAM output (its clock-to-output
        # is most of a clock on the ECP5), P2 adds one, P3 writes. An operation on the same
        # entry one, two or three steps ahead has not reached the RAM in time: P2 takes its
        # value instead (P1 picks which). A clear goes down the same pipe, so increments in
        # flight cannot undo it: alone, or merged with a hit on its entry (the count restarts
        # at 1). Only a hit on another entry in the same clock makes it wait, which needs a hit
        # every clock (a one-row table).
        # Reads that collide with a write are not used (P2 bypasses them; the register port
        # below replaces them), hence `no_rw_check` and the ports built as for the entries.
        m.submodules.hits = hits = Memory(shape=32, depth=n, init=[], attrs={"no_rw_check": 1})
        rmw_read, csr_read = hits.read_port(domain="comb"), hits.read_port(domain="comb")
        write = hits.write_port()
        rmw_data, csr_data = Signal(32), Signal(32)     # the block RAM's output registers
        m.d.sync += [rmw_data.eq(rmw_read.data), csr_data.eq(csr_read.data)]
        clear_pending = Signal()
        clear_index = Signal(range(n))

        def op(p: int) -> tuple[Signal, Signal, Signal, Signal]:
            return (Signal(name=f"p{p}_valid"), Signal(range(n), name=f"p{p}_index"),
                    Signal(name=f"p{p}_clear"), Signal(name=f"p{p}_hit"))

        (v0, idx0, clr0, inc0), (v1, idx1, clr1, inc1), (v2, idx2, clr2, inc2) = (op(p)
                                                                                for p in range(3))
        v3, idx3, new3 = Signal(), Signal(range(n)), Signal(32)
        v4, idx4 = Signal(), Signal(range(n))         # the operation P3 wrote last clock
        written1, written2 = Signal(32), Signal(32)  # values P3 wrote one and two clocks ago
        data2 = Signal(32)
        ahead1, ahead2, ahead3 = Signal(), Signal(), Signal()   # P2's bypass choices
        counted = res_valid & res.hit
        m.d.comb += [
            clr0.eq(clear_pending & (~counted | (res.index == clear_index))),
            inc0.eq(counted),
            v0.eq(counted | clr0),
            idx0.eq(Mux(counted, res.index, clear_index)),
            rmw_read.addr.eq(idx0),
        ]
        with m.If(clr0):
            m.d.sync += clear_pending.eq(0)
        base = Mux(ahead1, new3, Mux(ahead2, written1, Mux(ahead3, written2, data2)))
        m.d.sync += [
            Cat(v1, idx1, clr1, inc1).eq(Cat(v0, idx0, clr0, inc0)),
            Cat(v2, idx2, clr2, inc2).eq(Cat(v1, idx1, clr1, inc1)),
            data2.eq(rmw_data),
            ahead1.eq(v2 & (idx2 == idx1)),
            ahead2.eq(v3 & (idx3 == idx1)),
            ahead3.eq(v4 & (idx4 == idx1)),
            v3.eq(v2), idx3.eq(idx2),
            new3.eq(Mux(clr2, inc2, base + 1)),
            v4.eq(v3), idx4.eq(idx3),
            written1.eq(new3), written2.eq(written1),
        ]
        m.d.comb += [write.addr.eq(idx3), write.data.eq(new3), write.en.eq(v3)]
        misses = Signal(32)
        with m.If(res_valid & ~res.hit):
            m.d.sync += misses.eq(misses + 1)

        # --- registers ------------------------------------------------------------------------
        # A load reads through the scan's port (in the clock given up by the scan) and copies
        # the registered output of the lane into staging two clocks later.
        m_load, r_load = Signal(), Signal()
        m_lane, r_lane = Signal(lane_bits), Signal(lane_bits)
        m.d.sync += [m_load.eq(cmd_load), r_load.eq(m_load), m_lane.eq(cmd_lane),
                     r_lane.eq(m_lane), cmd_store.eq(0), cmd_load.eq(0)]
        cmd_busy = cmd_now | m_load | r_load
        words: dict[int, list[tuple[int, Value]]] = {
            offset: [(bit, getattr(stage, f)) for f, bit, _w, _d in fields]
            for _r, offset, _d, fields in _STAGING}
        for k in range(4):
            words[_SRC_IP + k] = [(0, stage.src_ip[32 * k:32 * k + 32])]
            words[_DST_IP + k] = [(0, stage.dst_ip[32 * k:32 * k + 32])]

        # The hit RAM's register port reads entry[index] every clock, from the clock `index`
        # is written, so its slow output can be registered before the read multiplexer.
        sel_next = Signal(range(n))
        m.d.comb += [sel_next.eq(sel), csr_read.addr.eq(sel_next)]
        m.d.sync += sel.eq(sel_next)
        with m.If(csr.w_stb):
            with m.Switch(csr.addr):
                with m.Case(_INDEX):
                    with m.If(csr.w_data < n):
                        m.d.comb += sel_next.eq(csr.w_data)
                with m.Case(_CMD):
                    with m.If(~cmd_busy):
                        m.d.sync += [cmd_store.eq(csr.w_data == CMD_STORE),
                                     cmd_load.eq(csr.w_data == CMD_LOAD),
                                     cmd_row.eq(sel[lane_bits:]), cmd_lane.eq(sel[:lane_bits])]
                with m.Case(_HITS):
                    m.d.sync += [clear_pending.eq(1), clear_index.eq(sel)]
                with m.Case(_MISSES):
                    m.d.sync += misses.eq(0)
                for offset, parts in words.items():
                    with m.Case(offset):
                        m.d.sync += [v.eq(csr.w_data[bit:bit + len(v)]) for bit, v in parts]
        with m.If(r_load):                          # after the register writes: it wins
            with m.Switch(r_lane):
                for lane, e in enumerate(entry_r):
                    with m.Case(lane):
                        m.d.sync += stage.eq(e)

        # Reads: the word is chosen in the first clock; the hit count is the one registered
        # then too, or, if that read met a write to the entry, the value written.
        word = Signal(32)
        from_ram = Signal()
        m.d.sync += [word.eq(0), from_ram.eq(csr.addr == _HITS)]
        hits_r, collided_m, collided_r = Signal(32), Signal(), Signal()
        written_m, written_r = Signal(32), Signal(32)
        m.d.sync += [
            collided_m.eq(write.en & (write.addr == csr_read.addr)), written_m.eq(write.data),
            collided_r.eq(collided_m), written_r.eq(written_m),
            hits_r.eq(csr_data),
        ]
        with m.Switch(csr.addr):
            with m.Case(_INDEX):
                m.d.sync += word.eq(sel)
            with m.Case(_CMD):
                m.d.sync += word.eq(cmd_busy)
            with m.Case(_MISSES):
                m.d.sync += word.eq(misses)
            for offset, parts in words.items():
                with m.Case(offset):
                    m.d.sync += [word[bit:bit + len(v)].eq(v) for bit, v in parts]
        m.d.sync += csr.r_data.eq(Mux(from_ram, Mux(collided_r, written_r, hits_r), word))
        return m

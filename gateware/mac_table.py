"""MacTable: exact match of (destination MAC, VLAN) to a VNIC, programmable under traffic.

Entries are registers compared in parallel (lowest matching index wins); a lookup takes two
clocks (compare, then a priority tree), one lookup per clock. Software writes an entry through
staging registers and a ``store`` command that replaces the whole entry in one clock: a lookup
sees the old entry or the new one, never a mix, so the table can change while traffic flows.
Each entry counts its hits (in a small RAM, read-modify-write with a bypass so back-to-back hits
are all counted); misses are counted too.

Register block (word offsets; see :meth:`MacTable.block`): ``index``, ``mac_lo``, ``mac_hi``,
``ctrl`` (vlan, vnic, valid), ``cmd`` (1 store staging -> entry[index], 2 load entry[index] ->
staging), ``hits`` (of entry[index]; a write clears it), ``misses``.
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .csr import CsrSignature
from .regmap import Access, Block, Field, Register

__all__ = ["MacKey", "MacTable", "mac_match_layout", "CMD_STORE", "CMD_LOAD"]

#: The lookup key: destination MAC in network byte order (first octet in bits 47:40), VLAN ID
#: (0 for untagged frames).
MacKey = data.StructLayout({"mac": 48, "vlan": 12})

CMD_STORE, CMD_LOAD = 1, 2

# Register word offsets.
_INDEX, _MAC_LO, _MAC_HI, _CTRL, _CMD, _HITS, _MISSES = range(7)


def _lowest_match(items: list[tuple[Value, Value, Value]]) -> tuple[Value, Value, Value]:
    """(any, index, vnic) of the first item whose flag is set: a balanced tree of 2:1 choices,
    log2(n) levels deep instead of an n-long priority chain."""
    while len(items) > 1:
        pairs = [items[k:k + 2] for k in range(0, len(items), 2)]
        items = [(a[0] | b[0], Mux(a[0], a[1], b[1]), Mux(a[0], a[2], b[2])) if b else a
                 for a, b in ((p[0], p[1] if len(p) > 1 else None) for p in pairs)]
    return items[0]


def mac_match_layout(entries: int, vnic_bits: int) -> data.StructLayout:
    """Result of a lookup: ``hit``, the matching entry's ``index`` and ``vnic``."""
    return data.StructLayout({"hit": 1, "index": range(entries), "vnic": vnic_bits})


class MacTable(wiring.Component):
    """Exact-match (MAC, VLAN) -> VNIC table.

    Parameters
    ----------
    entries : int
        Table size (at least 32 in the card; any size 1..256 here).
    vnic_bits : int
        Width of the VNIC number an entry returns.

    Attributes
    ----------
    lookup : In(stream of MacKey)
    result : Out(stream of mac_match_layout), one per lookup, two clocks later (registered)
    csr : In(CsrSignature), ``read_latency`` = 2 like the counter banks
    """

    read_latency = 2

    def __init__(self, entries: int = 32, vnic_bits: int = 6):
        if not 1 <= entries <= 256:
            raise ValueError(f"entries must be 1..256, not {entries}")
        if not 1 <= vnic_bits <= 8:
            raise ValueError(f"vnic_bits must be 1..8, not {vnic_bits}")
        self._entries = entries
        self._vnic_bits = vnic_bits
        super().__init__({
            "lookup": In(stream.Signature(MacKey)),
            "result": Out(stream.Signature(mac_match_layout(entries, vnic_bits))),
            "csr": In(CsrSignature(3)),
        })

    @property
    def entries(self) -> int:
        return self._entries

    def block(self, name: str = "mac_table") -> Block:
        """The register block, for the register map."""
        rw, vb = Access.RW, self._vnic_bits
        return Block(name, f"MAC table: (destination MAC, VLAN) -> VNIC, {self._entries} "
                           "entries.", (
            Register.word("index", _INDEX, rw, "entry that cmd and hits refer to",
                          width=max(1, (self._entries - 1).bit_length())),
            Register.word("mac_lo", _MAC_LO, rw, "staging: MAC bits 31:0 (last four octets)"),
            Register.word("mac_hi", _MAC_HI, rw, "staging: MAC bits 47:32 (first two octets)",
                          width=16),
            Register("ctrl", _CTRL, "staging: the rest of the entry.", (
                Field("vlan", 0, 12, rw, "VLAN ID to match (0: untagged)"),
                Field("vnic", 16, vb, rw, "VNIC the frame belongs to"),
                Field("valid", 31, 1, rw, "the entry takes part in lookups"))),
            Register.word("cmd", _CMD, Access.RW, "write 1: store staging into entry[index] "
                          "(atomic); 2: load entry[index] into staging; reads 0", width=2),
            Register.word("hits", _HITS, Access.WC, "lookups that matched entry[index] "
                          "(write clears)"),
            Register.word("misses", _MISSES, Access.WC, "lookups that matched no entry "
                          "(write clears)"),
        ), self.read_latency)

    def elaborate(self, platform):
        m = Module()
        n = self._entries
        entry = data.StructLayout({"valid": 1, "mac": 48, "vlan": 12, "vnic": self._vnic_bits})
        table = [Signal(entry, name=f"entry{k}") for k in range(n)]

        # --- lookup: two registered stages ------------------------------------------------
        # 1: compare the key with every entry; register the match vector together with a
        #    snapshot of the entries' VNICs (so a result never mixes two versions of an entry).
        # 2: a priority tree picks the lowest matching index; register the result.
        advance = Signal()
        m.d.comb += [advance.eq(~self.result.valid | self.result.ready),
                     self.lookup.ready.eq(advance)]
        key = self.lookup.payload
        s1_valid = Signal()
        s1_match = Signal(n)
        s1_vnic = [Signal(self._vnic_bits, name=f"s1_vnic{k}") for k in range(n)]
        with m.If(advance):
            m.d.sync += s1_valid.eq(self.lookup.valid)
            for k, e in enumerate(table):
                m.d.sync += [s1_match[k].eq(e.valid & (e.mac == key.mac) & (e.vlan == key.vlan)),
                             s1_vnic[k].eq(e.vnic)]
        hit, index, vnic = _lowest_match([(s1_match[k], C(k, range(n)), s1_vnic[k])
                                          for k in range(n)])
        take = advance & s1_valid                 # a stage-2 lookup completes this clock
        with m.If(advance):
            m.d.sync += [
                self.result.valid.eq(s1_valid),
                self.result.payload.hit.eq(hit),
                self.result.payload.index.eq(index),
                self.result.payload.vnic.eq(vnic),
            ]

        # --- hit counters: RAM, read-modify-write in three registered steps -------------
        # P0 reads the count of the hit entry, P1 adds one (taking the value from a hit one or
        # two steps ahead when it is the same entry: those are not in the RAM yet), P2 writes.
        m.submodules.hits = hits = Memory(shape=32, depth=n, init=[])
        rmw_read = hits.read_port()
        csr_read = hits.read_port()
        write = hits.write_port()
        v0, idx0 = Signal(), Signal(range(n))          # P0: a hit to count
        v1, idx1 = Signal(), Signal(range(n))          # P1
        v2, idx2, new2 = Signal(), Signal(range(n)), Signal(32)   # P2: write new2
        last_w = Signal(32)                            # what P2 wrote last clock
        from_p2, from_last = Signal(), Signal()        # P1's bypass choices, decided in P0
        m.d.sync += [v0.eq(take & hit), idx0.eq(index)]
        m.d.comb += rmw_read.addr.eq(idx0)
        m.d.sync += [
            v1.eq(v0), idx1.eq(idx0),
            from_p2.eq(v1 & (idx1 == idx0)),
            from_last.eq(v2 & (idx2 == idx0)),
            v2.eq(v1), idx2.eq(idx1),
            new2.eq(Mux(from_p2, new2, Mux(from_last, last_w, rmw_read.data)) + 1),
            last_w.eq(new2),
        ]
        clear_pending = Signal()
        clear_index = Signal(range(n))
        with m.If(v2):
            m.d.comb += [write.addr.eq(idx2), write.data.eq(new2), write.en.eq(1)]
        with m.Elif(clear_pending):
            m.d.comb += [write.addr.eq(clear_index), write.data.eq(0), write.en.eq(1)]
            m.d.sync += clear_pending.eq(0)
        misses = Signal(32)
        with m.If(take & ~hit):
            m.d.sync += misses.eq(misses + 1)

        # --- registers ----------------------------------------------------------------------
        csr = self.csr
        sel = Signal(range(n))
        stage = Signal(entry)
        m.d.comb += csr_read.addr.eq(sel)
        # A copy of the table in a small RAM serves `load`, instead of an n-way multiplexer.
        m.submodules.shadow = shadow = Memory(shape=entry, depth=n, init=[])
        shadow_w = shadow.write_port()
        shadow_r = shadow.read_port(domain="comb")     # distributed RAM, read as addressed
        m.d.comb += [shadow_w.addr.eq(sel), shadow_w.data.eq(stage), shadow_r.addr.eq(sel)]
        with m.If(csr.w_stb):
            with m.Switch(csr.addr):
                with m.Case(_INDEX):
                    m.d.sync += sel.eq(Mux(csr.w_data < n, csr.w_data, sel))
                with m.Case(_MAC_LO):
                    m.d.sync += stage.mac[:32].eq(csr.w_data)
                with m.Case(_MAC_HI):
                    m.d.sync += stage.mac[32:].eq(csr.w_data[:16])
                with m.Case(_CTRL):
                    m.d.sync += [stage.vlan.eq(csr.w_data[:12]),
                                 stage.vnic.eq(csr.w_data[16:16 + self._vnic_bits]),
                                 stage.valid.eq(csr.w_data[31])]
                with m.Case(_CMD):
                    with m.If(csr.w_data[:2] == CMD_STORE):
                        m.d.comb += shadow_w.en.eq(1)
                        with m.Switch(sel):
                            for k, e in enumerate(table):
                                with m.Case(k):
                                    m.d.sync += e.eq(stage)
                    with m.Elif(csr.w_data[:2] == CMD_LOAD):
                        m.d.sync += stage.eq(shadow_r.data)
                with m.Case(_HITS):
                    m.d.sync += [clear_pending.eq(1), clear_index.eq(sel)]
                with m.Case(_MISSES):
                    m.d.sync += misses.eq(0)

        # Reads: the word is chosen in the first clock (the hit RAM answers in the second).
        word = Signal(32)
        from_ram = Signal()
        m.d.sync += [word.eq(0), from_ram.eq(csr.addr == _HITS)]
        with m.Switch(csr.addr):
            with m.Case(_INDEX):
                m.d.sync += word.eq(sel)
            with m.Case(_MAC_LO):
                m.d.sync += word.eq(stage.mac[:32])
            with m.Case(_MAC_HI):
                m.d.sync += word.eq(stage.mac[32:])
            with m.Case(_CTRL):
                m.d.sync += word.eq(Cat(stage.vlan, C(0, 4), stage.vnic,
                                        C(0, 15 - self._vnic_bits), stage.valid))
            with m.Case(_MISSES):
                m.d.sync += word.eq(misses)
        m.d.sync += csr.r_data.eq(Mux(from_ram, csr_read.data, word))
        return m

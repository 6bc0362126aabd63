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
from .match import HitCounters, lowest_match
from .regmap import Access, Block, Field, Register

__all__ = ["MacKey", "MacTable", "mac_match_layout", "CMD_STORE", "CMD_LOAD"]

#: The lookup key: destination MAC in network byte order (first octet in bits 47:40), VLAN ID
#: (0 for untagged frames).
MacKey = data.StructLayout({"mac": 48, "vlan": 12})

CMD_STORE, CMD_LOAD = 1, 2

# Register word offsets.
_INDEX, _MAC_LO, _MAC_HI, _CTRL, _CMD, _HITS, _MISSES = range(7)


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
    tx_lookup, tx_result : the same, a second port (``tx_port=True``) for the transmit path's
        hairpin decision; its lookups are not counted in ``hits``/``misses``
    csr : In(CsrSignature), ``read_latency`` = 2 like the counter banks
    """

    read_latency = 2

    def __init__(self, entries: int = 32, vnic_bits: int = 6, *, tx_port: bool = False):
        if not 1 <= entries <= 256:
            raise ValueError(f"entries must be 1..256, not {entries}")
        if not 1 <= vnic_bits <= 8:
            raise ValueError(f"vnic_bits must be 1..8, not {vnic_bits}")
        self._entries = entries
        self._vnic_bits = vnic_bits
        self._tx_port = tx_port
        members = {
            "lookup": In(stream.Signature(MacKey)),
            "result": Out(stream.Signature(mac_match_layout(entries, vnic_bits))),
            "csr": In(CsrSignature(3)),
        }
        if tx_port:
            members["tx_lookup"] = In(stream.Signature(MacKey))
            members["tx_result"] = Out(stream.Signature(mac_match_layout(entries, vnic_bits)))
        super().__init__(members)

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

    def _lookup_port(self, m: Module, table: list, lookup, result, prefix: str):
        """Compare, then pick: two registered stages. Returns (hit, index, take) of the
        second stage, ``take`` when a lookup completes this clock."""
        n = self._entries
        # 1: compare the key with every entry; register the match vector together with a
        #    snapshot of the entries' VNICs (so a result never mixes two versions of an entry).
        # 2: a priority tree picks the lowest matching index; register the result.
        advance = Signal(name=f"{prefix}advance")
        m.d.comb += [advance.eq(~result.valid | result.ready), lookup.ready.eq(advance)]
        key = lookup.payload
        s1_valid = Signal(name=f"{prefix}s1_valid")
        s1_match = Signal(n, name=f"{prefix}s1_match")
        s1_vnic = [Signal(self._vnic_bits, name=f"{prefix}s1_vnic{k}") for k in range(n)]
        with m.If(advance):
            m.d.sync += s1_valid.eq(lookup.valid)
            for k, e in enumerate(table):
                m.d.sync += [s1_match[k].eq(e.valid & (e.mac == key.mac) & (e.vlan == key.vlan)),
                             s1_vnic[k].eq(e.vnic)]
        hit, index, vnic = lowest_match([(s1_match[k], C(k, range(n)), s1_vnic[k])
                                         for k in range(n)])
        with m.If(advance):
            m.d.sync += [
                result.valid.eq(s1_valid),
                result.payload.hit.eq(hit),
                result.payload.index.eq(index),
                result.payload.vnic.eq(vnic),
            ]
        return hit, index, advance & s1_valid

    def elaborate(self, platform):
        m = Module()
        n = self._entries
        entry = data.StructLayout({"valid": 1, "mac": 48, "vlan": 12, "vnic": self._vnic_bits})
        table = [Signal(entry, name=f"entry{k}") for k in range(n)]

        # --- lookup: two registered stages per port ------------------------------------------
        hit, index, take = self._lookup_port(m, table, self.lookup, self.result, "")
        if self._tx_port:
            self._lookup_port(m, table, self.tx_lookup, self.tx_result, "tx_")

        # --- hit counters ------------------------------------------------------------------
        m.submodules.hits = hits = HitCounters(n)
        m.d.comb += [hits.hit.eq(take & hit), hits.hit_index.eq(index)]
        misses = Signal(32)
        with m.If(take & ~hit):
            m.d.sync += misses.eq(misses + 1)

        # --- registers ----------------------------------------------------------------------
        csr = self.csr
        sel = Signal(range(n))
        stage = Signal(entry)
        m.d.comb += hits.read_index.eq(sel)
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
                    m.d.comb += [hits.clear.eq(1), hits.clear_index.eq(sel)]
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
        m.d.sync += csr.r_data.eq(Mux(from_ram, hits.read_data, word))
        return m

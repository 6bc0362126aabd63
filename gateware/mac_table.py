"""MacTable: exact match of (destination MAC, VLAN) to a VNIC, programmable under traffic.

Entries live in distributed RAM and a lookup scans them (:class:`~crossnic.gateware.match.
ScannedTable`, lowest matching index wins): ``entries / lanes`` clocks plus two, 18 for the
card's 32 entries in 2 lanes, well inside the classifier's 32 clocks per frame. Software writes
an entry through staging registers and a ``store`` command that replaces the whole entry in one
clock: a lookup sees the old entry or the new one, never a mix, so the table can change while
traffic flows.
Each entry counts its hits (in a small RAM, read-modify-write with a bypass so back-to-back hits
are all counted); misses are counted too.

Register block (word offsets; see :meth:`MacTable.block`): ``index``, ``mac_lo``, ``mac_hi``,
``ctrl`` (vlan, vnic, valid), ``cmd`` (1 store staging -> entry[index], 2 load entry[index] ->
staging), ``hits`` (of entry[index]; a write clears it), ``misses``.
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .csr import CsrSignature
from .match import CMD_LOAD, CMD_STORE, ScannedTable, scan_latency, table_registers
from .regmap import Access, Block, Field, Register

__all__ = ["MacKey", "MacTable", "mac_match_layout", "CMD_STORE", "CMD_LOAD"]

#: The lookup key: destination MAC in network byte order (first octet in bits 47:40), VLAN ID
#: (0 for untagged frames).
MacKey = data.StructLayout({"mac": 48, "vlan": 12})

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
    result : Out(stream of mac_match_layout), one per lookup, :attr:`latency` clocks later
    tx_lookup, tx_result : the same, a second port (``tx_port=True``) for the transmit path's
        hairpin decision; its lookups are not counted in ``hits``/``misses``
    csr : In(CsrSignature), ``read_latency`` = 2 like the counter banks
    """

    read_latency = 2

    def __init__(self, entries: int = 32, vnic_bits: int = 6, *, tx_port: bool = False,
                 lanes: int = 2):
        if not 1 <= entries <= 256:
            raise ValueError(f"entries must be 1..256, not {entries}")
        if entries % lanes:
            raise ValueError(f"lanes ({lanes}) must divide entries ({entries})")
        self._lanes = lanes
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

    @property
    def latency(self) -> int:
        """Clocks from a lookup's acceptance to its result (and between two lookups, +1)."""
        return scan_latency(self._entries, self._lanes)

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
        m.submodules.table = table = ScannedTable(
            n, self._lanes, entry, MacKey,
            lambda e, key: (e.mac == key.mac) & (e.vlan == key.vlan),
            ports=2 if self._tx_port else 1)
        wiring.connect(m, wiring.flipped(self.lookup), table.lookup0)
        wiring.connect(m, table.result0, wiring.flipped(self.result))
        if self._tx_port:
            wiring.connect(m, wiring.flipped(self.tx_lookup), table.lookup1)
            wiring.connect(m, table.result1, wiring.flipped(self.tx_result))

        table_registers(m, self.csr, table, entry, lambda stage: {
            _MAC_LO: [(0, stage.mac[:32])],
            _MAC_HI: [(0, stage.mac[32:])],
            _CTRL: [(0, stage.vlan), (16, stage.vnic), (31, stage.valid)],
        }, index=_INDEX, cmd=_CMD, hits=_HITS, misses=_MISSES, count_miss=C(1))
        return m

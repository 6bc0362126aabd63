# Ref: Crossbow / the seed's NIC classifier with a local-IP lookup table (local vs forwarding
#      receive rings); RFC 791 / RFC 8200 addresses
"""LocalIpTable: the IPv4 and IPv6 addresses owned by the card's local VNS instances.

An address is kept with the VLAN it lives in (its VNIC's): separate networks on one card, two
virtual wires say, may use the same addresses. A frame whose destination IP (for ARP: the target
protocol address) in its VLAN is in the table *for the VNIC the frame belongs to* is class
``LOCAL`` (it goes up that VNS instance's stack, on the
VNIC's local ring); anything else addressed to the VNIC is ``FORWARD`` (the VNIC routes it).
The table returns the owner; the classifier compares it with the frame's VNIC.

Entries are scanned in distributed RAM like :class:`~crossnic.gateware.mac_table.MacTable`
(:class:`~crossnic.gateware.match.ScannedTable`: lowest matching index wins, one entry per
clock, 18 clocks for 16 entries; atomic whole-entry updates under traffic, per-entry hit
counters and a miss counter).

Register block (word offsets): ``index``, ``addr0``..``addr3`` (address bits 31:0 .. 127:96:
an IPv4 address is ``addr0`` alone), ``ctrl`` (family, vnic, vlan, valid), ``cmd`` (1 store,
2 load), ``hits`` (of entry[index]; a write clears it), ``misses``.
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .csr import CsrSignature
from .match import ScannedTable, scan_latency, table_registers
from .regmap import Access, Block, Field, Register

__all__ = ["IpKey", "LocalIpTable", "local_ip_result_layout", "FAMILY_IPV4", "FAMILY_IPV6"]

#: Address family codes used by the classifier's keys (0: not IP).
FAMILY_IPV4, FAMILY_IPV6 = 1, 2

#: Lookup key: family, destination address (IPv4 in bits 31:0, the rest zero) and the frame's
#: VLAN ID (0: untagged).
IpKey = data.StructLayout({"family": 2, "addr": 128, "vlan": 12})

_INDEX, _ADDR0, _CTRL, _CMD, _HITS, _MISSES = 0, 1, 5, 6, 7, 8


def _is_ip(family: Value) -> Value:
    return (family == FAMILY_IPV4) | (family == FAMILY_IPV6)


def local_ip_result_layout(entries: int, vnic_bits: int) -> data.StructLayout:
    """Result of a lookup: ``hit``, the matching entry's ``index`` and owning ``vnic``."""
    return data.StructLayout({"hit": 1, "index": range(entries), "vnic": vnic_bits})


class LocalIpTable(wiring.Component):
    """(family, address, VLAN) -> owning VNIC, ``entries`` addresses.

    Attributes
    ----------
    lookup : In(stream of IpKey); a key of family 0 never matches
    result : Out(stream of local_ip_result_layout), :attr:`latency` clocks after its lookup
    csr : In(CsrSignature), ``read_latency`` = 2
    """

    read_latency = 2

    def __init__(self, entries: int = 16, vnic_bits: int = 8, *, lanes: int = 1):
        if not 1 <= entries <= 256:
            raise ValueError(f"entries must be 1..256, not {entries}")
        if entries % lanes:
            raise ValueError(f"lanes ({lanes}) must divide entries ({entries})")
        self._lanes = lanes
        if not 1 <= vnic_bits <= 8:
            raise ValueError(f"vnic_bits must be 1..8, not {vnic_bits}")
        self._entries = entries
        self._vnic_bits = vnic_bits
        super().__init__({
            "lookup": In(stream.Signature(IpKey)),
            "result": Out(stream.Signature(local_ip_result_layout(entries, vnic_bits))),
            "csr": In(CsrSignature(4)),
        })

    @property
    def entries(self) -> int:
        return self._entries

    @property
    def latency(self) -> int:
        """Clocks from a lookup's acceptance to its result."""
        return scan_latency(self._entries, self._lanes)

    def block(self, name: str = "local_ip") -> Block:
        rw = Access.RW
        regs = [Register.word("index", _INDEX, rw, "entry that cmd and hits refer to",
                              width=max(1, (self._entries - 1).bit_length()))]
        regs += [Register.word(f"addr{k}", _ADDR0 + k, rw,
                               f"staging: address bits {32 * k + 31}:{32 * k}"
                               + (" (the IPv4 address)" if k == 0 else ""))
                 for k in range(4)]
        regs += [
            Register("ctrl", _CTRL, "staging: the rest of the entry.", (
                Field("family", 0, 2, rw, "1 IPv4, 2 IPv6 (0, 3: never matches)"),
                Field("vnic", 8, self._vnic_bits, rw, "VNIC whose VNS instance owns the address"),
                Field("vlan", 16, 12, rw, "VLAN ID the address lives in (its VNIC's; 0: "
                                          "untagged)"),
                Field("valid", 31, 1, rw, "the entry takes part in lookups"))),
            Register.word("cmd", _CMD, rw, "write 1: store staging into entry[index] (atomic); "
                          "2: load entry[index] into staging; reads 0", width=2),
            Register.word("hits", _HITS, Access.WC, "lookups that matched entry[index] "
                          "(write clears)"),
            Register.word("misses", _MISSES, Access.WC, "IP lookups that matched no entry "
                          "(write clears)"),
        ]
        return Block(name, f"Local-IP table: addresses of local VNS instances, "
                           f"{self._entries} entries.", tuple(regs), self.read_latency)

    def elaborate(self, platform):
        m = Module()
        n = self._entries
        entry = data.StructLayout({"valid": 1, "family": 2, "addr": 128, "vlan": 12,
                                   "vnic": self._vnic_bits})
        # A key of another family, or of none (not IP), never matches.
        m.submodules.table = table = ScannedTable(
            n, self._lanes, entry, IpKey,
            lambda e, key: ((e.family == key.family) & (e.addr == key.addr)
                            & (e.vlan == key.vlan) & _is_ip(key.family)))
        wiring.connect(m, wiring.flipped(self.result), table.result0)
        wiring.connect(m, wiring.flipped(self.lookup), table.lookup0)
        # Misses count IP lookups only: remember whether the lookup in flight is one.
        is_ip = Signal()
        with m.If(self.lookup.valid & self.lookup.ready):
            m.d.sync += is_ip.eq(_is_ip(self.lookup.payload.family))
        table_registers(m, self.csr, table, entry, lambda stage: {
            **{_ADDR0 + k: [(0, stage.addr[32 * k:32 * k + 32])] for k in range(4)},
            _CTRL: [(0, stage.family), (8, stage.vnic), (16, stage.vlan), (31, stage.valid)],
        }, index=_INDEX, cmd=_CMD, hits=_HITS, misses=_MISSES, count_miss=is_ip)
        return m

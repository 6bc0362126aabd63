"""The classifier's configuration as the driver holds it, and the register writes that load it.

The dataclasses here are what the driver keeps per VNIC, address and flow; :func:`writes` turns
a whole :class:`ClassifierConfig` (or one entry) into ``(register path, value)`` pairs through
the register description, so the daemon (with :class:`~crossnic.host.registers.Registers`),
the testbenches and the reference model (:mod:`crossnic.sim.model.classifier`) all program and
read the same thing.
"""

import ipaddress
from dataclasses import dataclass, field

from crossnic.gateware.layouts import Priority

__all__ = ["MacEntry", "VnicSettings", "LocalIp", "FlowEntry", "Policy", "ClassifierConfig",
           "FAMILY_IPV4", "FAMILY_IPV6", "ip_key", "mac_writes", "vnic_writes",
           "local_ip_writes", "flow_writes", "policy_writes", "writes"]

FAMILY_IPV4, FAMILY_IPV6 = 1, 2
_CMD_STORE = 1


def ip_key(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> tuple[int, int]:
    """(family, value) of an address as the tables hold it."""
    a = ipaddress.ip_address(address)
    return (FAMILY_IPV4 if a.version == 4 else FAMILY_IPV6), int(a)


@dataclass(frozen=True)
class MacEntry:
    mac: int                       # network byte order, first octet in bits 47:40
    vlan: int                      # 0: untagged
    vnic: int
    valid: bool = True


@dataclass(frozen=True)
class VnicSettings:
    enable: bool = False
    priority: Priority = Priority.MEDIUM
    vns_id: int = 0
    local_ring: int = 0
    forward_ring: int = 0


@dataclass(frozen=True)
class LocalIp:
    family: int
    addr: int
    vnic: int
    valid: bool = True
    vlan: int = 0                  # the VLAN the address lives in (its VNIC's)

    @classmethod
    def of(cls, address: str, vnic: int, vlan: int = 0) -> "LocalIp":
        return cls(*ip_key(address), vnic, vlan=vlan)


@dataclass(frozen=True)
class FlowEntry:
    """A flow: every ``None`` attribute is a wildcard.

    ``local_ip``/``remote_ip`` are (family, value, prefix length) for the destination/source of
    received frames; ``local_port``/``remote_port`` likewise; ``dscp`` is (value, mask).
    """
    ring: int
    priority: Priority = Priority.MEDIUM
    drop: bool = False
    vnic: int | None = None
    vlan: int | None = None
    family: int | None = None
    proto: int | None = None
    local_ip: tuple[int, int, int] | None = None
    remote_ip: tuple[int, int, int] | None = None
    local_port: int | None = None
    remote_port: int | None = None
    dscp: tuple[int, int] | None = None
    valid: bool = True


@dataclass(frozen=True)
class Policy:
    unknown_to_default: bool = False
    mcast_all: bool = False
    default_vnic: int = 0
    flood_ring: int = 0
    mcast_filter: int = 0          # 256 bits, bit mcast_hash(dst MAC)
    stub_vlan_base: int = 0        # VLANs base..4094 are etherstubs' (0: none)


@dataclass
class ClassifierConfig:
    """Everything the classifier tables hold; list position is the table index."""
    macs: list[MacEntry | None] = field(default_factory=list)
    vnics: dict[int, VnicSettings] = field(default_factory=dict)
    local_ips: list[LocalIp | None] = field(default_factory=list)
    flows: list[FlowEntry | None] = field(default_factory=list)
    policy: Policy = field(default_factory=Policy)


def mac_writes(index: int, e: MacEntry | None) -> list[tuple[str, int]]:
    e = e or MacEntry(0, 0, 0, valid=False)
    return [("mac_table.index", index), ("mac_table.mac_lo", e.mac & 0xFFFF_FFFF),
            ("mac_table.mac_hi", e.mac >> 32),
            ("mac_table.ctrl", e.vlan | e.vnic << 16 | int(e.valid) << 31),
            ("mac_table.cmd", _CMD_STORE)]


def vnic_writes(vnic: int, s: VnicSettings) -> list[tuple[str, int]]:
    word = (int(s.enable) | Priority(s.priority).value << 1 | s.vns_id << 8
            | s.local_ring << 16 | s.forward_ring << 24)
    return [(f"vnic[{vnic}].settings", word)]


def local_ip_writes(index: int, e: LocalIp | None) -> list[tuple[str, int]]:
    e = e or LocalIp(0, 0, 0, valid=False)
    return ([("local_ip.index", index)]
            + [(f"local_ip.addr{k}", e.addr >> 32 * k & 0xFFFF_FFFF) for k in range(4)]
            + [("local_ip.ctrl", e.family | e.vnic << 8 | e.vlan << 16 | int(e.valid) << 31),
               ("local_ip.cmd", _CMD_STORE)])


def flow_writes(index: int, e: FlowEntry | None) -> list[tuple[str, int]]:
    if e is None:
        return [("flow_table.index", index), ("flow_table.match", 0),
                ("flow_table.cmd", _CMD_STORE)]
    ips = [ip for ip in (e.local_ip, e.remote_ip) if ip is not None]
    family = e.family if e.family is not None else (ips[0][0] if ips else None)
    if any(ip[0] != family for ip in ips):
        raise ValueError("a flow's addresses and family must agree")
    enables = [e.vnic, e.vlan, family, e.proto, e.remote_port, e.local_port]
    match = sum(1 << k for k, v in enumerate(enables) if v is not None) | int(e.valid) << 31
    dscp, dscp_mask = e.dscp or (0, 0)
    _, src, src_len = e.remote_ip or (0, 0, 0)
    _, dst, dst_len = e.local_ip or (0, 0, 0)
    out = [("flow_table.index", index), ("flow_table.match", match),
           ("flow_table.link", (e.vnic or 0) | (e.vlan or 0) << 16),
           ("flow_table.l3", (family or 0) | (e.proto or 0) << 8 | dscp << 16
            | dscp_mask << 24),
           ("flow_table.ports", (e.remote_port or 0) | (e.local_port or 0) << 16),
           ("flow_table.prefix", src_len | dst_len << 16),
           ("flow_table.action", e.ring | Priority(e.priority).value << 8 | int(e.drop) << 16)]
    out += [(f"flow_table.src_ip{k}", src >> 32 * k & 0xFFFF_FFFF) for k in range(4)]
    out += [(f"flow_table.dst_ip{k}", dst >> 32 * k & 0xFFFF_FFFF) for k in range(4)]
    return [*out, ("flow_table.cmd", _CMD_STORE)]


def policy_writes(p: Policy) -> list[tuple[str, int]]:
    word = (int(p.unknown_to_default) | int(p.mcast_all) << 1 | p.default_vnic << 8
            | p.flood_ring << 16)
    return ([("classifier.policy", word)]
            + [(f"classifier.mcast_filter{k}", p.mcast_filter >> 32 * k & 0xFFFF_FFFF)
               for k in range(8)]
            + [("classifier.stub_vlans", p.stub_vlan_base)])


def writes(config: ClassifierConfig) -> list[tuple[str, int]]:
    """Register writes that load ``config`` into the classifier (every listed entry)."""
    out = policy_writes(config.policy)
    for vnic, s in sorted(config.vnics.items()):
        out += vnic_writes(vnic, s)
    for k, e in enumerate(config.macs):
        out += mac_writes(k, e)
    for k, e in enumerate(config.local_ips):
        out += local_ip_writes(k, e)
    for k, e in enumerate(config.flows):
        out += flow_writes(k, e)
    return out

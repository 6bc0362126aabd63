"""The whole-card configuration file of ``crossnic sim --nic`` (JSON), checked and turned into
the classifier tables.

::

    {"rings": 8,
     "policy": {"unknown_unicast": "drop" | "default", "default_vnic": 0, "flood_ring": 7,
                "multicast": "filter" | "all", "multicast_groups": ["33:33:00:00:00:01"]},
     "vnics": [{"mac": "02:00:00:00:00:0a", "vlan": 0, "vns_id": 1, "priority": "medium",
                "local_ring": 0, "forward_ring": 1, "local_ips": ["10.9.0.1"]}],
     "flows": [{"name": "web", "vnic": 0, "transport": "tcp", "local_port": 80, "ring": 2,
                "priority": "high"}]}

VNIC *n* is the *n*-th entry of ``vnics``. Flow attributes are flowadm's: ``local_ip`` and
``remote_ip`` (address or address/prefix), ``transport`` (tcp, udp, icmp, icmpv6 or a number),
``local_port``, ``remote_port``, ``dsfield`` ("value" or "value:mask", DSCP bits), plus
``vnic``, ``vlan`` and ``drop``. Flows are matched in file order.
"""

import ipaddress
import json
from pathlib import Path

from crossnic.gateware.layouts import Priority
from crossnic.host.classifier import (
    ClassifierConfig,
    FlowEntry,
    LocalIp,
    MacEntry,
    Policy,
    VnicSettings,
    ip_key,
)
from crossnic.sim.model.classifier import model_mcast_hash

__all__ = ["NicConfig", "ConfigError", "load", "parse", "DEFAULT_CONFIG"]

DEFAULT_CONFIG = Path(__file__).parent / "data" / "nic.json"
_PROTOS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}
_PRIORITIES = {"low": Priority.LOW, "medium": Priority.MEDIUM, "high": Priority.HIGH}
_LIMITS = {"macs": 32, "local_ips": 16, "flows": 64, "vnics": 64}


class ConfigError(ValueError):
    """The configuration is not valid (message names the place)."""


class NicConfig:
    def __init__(self, rings: int, classifier: ClassifierConfig, flow_names: list[str]):
        self.rings = rings
        self.classifier = classifier
        self.flow_names = flow_names


def _mac(text, where: str) -> int:
    try:
        octets = [int(x, 16) for x in str(text).split(":")]
        if len(octets) != 6 or not all(0 <= o < 256 for o in octets):
            raise ValueError
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not a MAC address") from None
    return int.from_bytes(bytes(octets), "big")


def _int(value, where: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigError(f"{where}: {value!r} is not a whole number in {lo}..{hi}")
    return value


def _priority(value, where: str) -> Priority:
    if value not in _PRIORITIES:
        raise ConfigError(f"{where}: priority must be low, medium or high, not {value!r}")
    return _PRIORITIES[value]


def _prefix(text, where: str) -> tuple[int, int, int]:
    try:
        net = ipaddress.ip_network(str(text), strict=False)
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not an address or address/prefix") from None
    family, value = ip_key(net.network_address)
    return family, value, net.prefixlen


def _flow(f: dict, k: int, rings: int, vnics: int) -> FlowEntry:
    where = f"flows[{k}]"
    known = {"name", "vnic", "vlan", "transport", "local_ip", "remote_ip", "local_port",
             "remote_port", "dsfield", "ring", "priority", "drop"}
    if unknown := set(f) - known:
        raise ConfigError(f"{where}: unknown attribute(s) {', '.join(sorted(unknown))}")
    attrs: dict = {}
    if "vnic" in f:
        attrs["vnic"] = _int(f["vnic"], f"{where}.vnic", 0, vnics - 1)
    if "vlan" in f:
        attrs["vlan"] = _int(f["vlan"], f"{where}.vlan", 0, 4095)
    if "transport" in f:
        t = f["transport"]
        attrs["proto"] = _PROTOS[t] if t in _PROTOS else _int(t, f"{where}.transport", 0, 255)
    for key in ("local_port", "remote_port"):
        if key in f:
            if "proto" not in attrs:
                raise ConfigError(f"{where}: {key} needs a transport (as in flowadm)")
            attrs[key] = _int(f[key], f"{where}.{key}", 0, 65535)
    for key in ("local_ip", "remote_ip"):
        if key in f:
            attrs[key] = _prefix(f[key], f"{where}.{key}")
    if "dsfield" in f:
        parts = str(f["dsfield"]).split(":")
        try:
            value, mask = int(parts[0], 0), int(parts[1], 0) if len(parts) > 1 else 0x3F
        except (ValueError, IndexError):
            raise ConfigError(f"{where}.dsfield: {f['dsfield']!r} is not value[:mask]") from None
        attrs["dscp"] = (_int(value, f"{where}.dsfield", 0, 63),
                         _int(mask, f"{where}.dsfield mask", 0, 63))
    drop = bool(f.get("drop", False))
    ring = 0 if drop and "ring" not in f else _int(f.get("ring"), f"{where}.ring", 0, rings - 1)
    return FlowEntry(ring=ring, priority=_priority(f.get("priority", "medium"), where),
                     drop=drop, **attrs)


def parse(doc: dict) -> NicConfig:
    """Check a configuration document and build the tables."""
    if not isinstance(doc, dict):
        raise ConfigError("the configuration must be a JSON object")
    rings = _int(doc.get("rings", 8), "rings", 1, 64)
    vnic_docs = doc.get("vnics", [])
    if not isinstance(vnic_docs, list) or len(vnic_docs) > _LIMITS["vnics"]:
        raise ConfigError(f"vnics: a list of at most {_LIMITS['vnics']} VNICs")
    cfg = ClassifierConfig()
    seen_macs: dict[tuple[int, int], int] = {}
    for n, v in enumerate(vnic_docs):
        where = f"vnics[{n}]"
        mac, vlan = _mac(v.get("mac"), f"{where}.mac"), _int(v.get("vlan", 0), f"{where}.vlan",
                                                            0, 4095)
        if (mac, vlan) in seen_macs:
            raise ConfigError(f"{where}: MAC {v['mac']} VLAN {vlan} already belongs to "
                              f"vnics[{seen_macs[mac, vlan]}]")
        seen_macs[mac, vlan] = n
        cfg.macs.append(MacEntry(mac, vlan, n))
        cfg.vnics[n] = VnicSettings(
            enable=bool(v.get("enable", True)), priority=_priority(v.get("priority", "medium"),
                                                                    where),
            vns_id=_int(v.get("vns_id", n + 1), f"{where}.vns_id", 0, 255),
            local_ring=_int(v.get("local_ring", 0), f"{where}.local_ring", 0, rings - 1),
            forward_ring=_int(v.get("forward_ring", v.get("local_ring", 0)),
                              f"{where}.forward_ring", 0, rings - 1))
        for ip in v.get("local_ips", []):
            try:
                cfg.local_ips.append(LocalIp.of(str(ip), n, vlan))
            except ValueError:
                raise ConfigError(f"{where}.local_ips: {ip!r} is not an address") from None
        for group in v.get("multicast_groups", []):
            cfg.macs.append(MacEntry(_mac(group, f"{where}.multicast_groups"), vlan, n))
    p = doc.get("policy", {})
    unknown = p.get("unknown_unicast", "drop")
    if unknown not in ("drop", "default"):
        raise ConfigError(f"policy.unknown_unicast: drop or default, not {unknown!r}")
    mcast = p.get("multicast", "filter")
    if mcast not in ("filter", "all"):
        raise ConfigError(f"policy.multicast: filter or all, not {mcast!r}")
    filt = 0
    for group in p.get("multicast_groups", []):
        filt |= 1 << model_mcast_hash(_mac(group, "policy.multicast_groups"))
    cfg.policy = Policy(unknown_to_default=unknown == "default", mcast_all=mcast == "all",
                        default_vnic=_int(p.get("default_vnic", 0), "policy.default_vnic", 0,
                                          max(0, len(vnic_docs) - 1)),
                        flood_ring=_int(p.get("flood_ring", 0), "policy.flood_ring", 0,
                                        rings - 1),
                        mcast_filter=filt)
    flows = doc.get("flows", [])
    cfg.flows = [_flow(f, k, rings, max(1, len(vnic_docs))) for k, f in enumerate(flows)]
    for table, limit in (("macs", _LIMITS["macs"]), ("local_ips", _LIMITS["local_ips"]),
                         ("flows", _LIMITS["flows"])):
        if len(getattr(cfg, table)) > limit:
            raise ConfigError(f"{table}: {len(getattr(cfg, table))} entries, the card has "
                              f"{limit}")
    names = [str(f.get("name", f"flow{k}")) for k, f in enumerate(flows)]
    return NicConfig(rings, cfg, names)


def load(path: Path) -> NicConfig:
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not JSON ({e})") from None
    try:
        return parse(doc)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None

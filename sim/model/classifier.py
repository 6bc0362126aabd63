# Ref: crossnic.gateware.classifier module doc (the rules); IEEE 802.1Q flooding
"""Reference model of the classifier: a parsed frame and the tables in, a ClassResult out.

Written from the rules in :mod:`crossnic.gateware.classifier`'s documentation with plain Python
(dictionaries, integer masks), independently of the gateware: it shares only the layouts and
the configuration dataclasses of :mod:`crossnic.host.classifier`. The scoreboards of the
classifier and whole-core tests compare the gateware's results with it field by field.
"""

from dataclasses import dataclass, field

from crossnic.gateware.layouts import Cast, DropReason, FrameClass, L3Proto, Priority
from crossnic.host.classifier import (
    FAMILY_IPV4,
    FAMILY_IPV6,
    ClassifierConfig,
    FlowEntry,
)
from crossnic.sim.model.parser import ParsedFrame

__all__ = ["ClassifierModel", "model_flow_hash", "model_mcast_hash", "FLOOD_VNIC", "flow_key",
           "flow_matches"]

FLOOD_VNIC = 0xFF
_M32 = 0xFFFF_FFFF


def model_flow_hash(src_ip: int, dst_ip: int, proto: int, src_port: int, dst_port: int) -> int:
    h = 0
    words = [src_ip >> 32 * k & _M32 for k in range(4)] + [dst_ip >> 32 * k & _M32
                                                           for k in range(4)]
    words += [src_port << 16 | dst_port, proto]
    for w in words:
        h = ((h << 5 | h >> 27) & _M32) ^ w
    return h


def model_mcast_hash(mac: int) -> int:
    h = 0
    for k in range(6):
        h ^= mac >> 8 * k & 0xFF
    return h


def _prefix_match(want: tuple[int, int, int] | None, family: int, addr: int) -> bool:
    if want is None:
        return True
    wfam, value, length = want
    if wfam != family:
        return False
    bits = 32 if family == FAMILY_IPV4 else 128
    shift = bits - length
    return (addr >> shift) == (value >> shift) if length else True


def flow_key(f: ParsedFrame, vnic: int, vlan: int, *, sent: bool = False) -> dict:
    """The flow-table key of a parsed frame. ``sent``: the frame leaves the VNIC, so its
    source is the flow's local side (the receive rule, mirrored)."""
    family = {L3Proto.IPV4: FAMILY_IPV4, L3Proto.ARP: FAMILY_IPV4,
              L3Proto.IPV6: FAMILY_IPV6}.get(L3Proto(f.l3), 0)
    src, dst = (f.ip_dst, f.ip_src) if sent else (f.ip_src, f.ip_dst)
    sport, dport = (f.l4_dst_port, f.l4_src_port) if sent else (f.l4_src_port, f.l4_dst_port)
    return {"vnic": vnic, "vlan": vlan, "family": family, "proto": f.ip_proto,
            "src_ip": src, "dst_ip": dst, "src_port": sport, "dst_port": dport,
            "dscp": f.ip_dscp}


def flow_matches(e: FlowEntry, key: dict) -> bool:
    """Whether a flow entry matches a key (vnic, vlan, family, proto, ips, ports, dscp)."""
    if not e.valid:
        return False
    checks = [(e.vnic, key["vnic"]), (e.vlan, key["vlan"]), (e.family, key["family"]),
              (e.proto, key["proto"]), (e.local_port, key["dst_port"]),
              (e.remote_port, key["src_port"])]
    if any(want is not None and want != have for want, have in checks):
        return False
    if e.dscp is not None and (key["dscp"] ^ e.dscp[0]) & e.dscp[1]:
        return False
    return (_prefix_match(e.local_ip, key["family"], key["dst_ip"])
            and _prefix_match(e.remote_ip, key["family"], key["src_ip"]))


@dataclass
class ClassifierModel:
    config: ClassifierConfig
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ["frames", "mac_hits", "unknown_unicast", "flooded", "local", "flow_hits", "dropped"],
        0))
    ports: int = 2              #: wire ports: sources 0 .. ports-1 (the hairpin is after them)

    def classify(self, f: ParsedFrame, port: int) -> dict:
        """The :class:`~crossnic.gateware.layouts.ClassResult` fields for one frame."""
        cfg = self.config
        vlan = f.vlan_vid if f.vlan_tagged else 0
        cast = (Cast.BROADCAST if f.broadcast else Cast.MULTICAST if f.multicast
                else Cast.UNICAST)
        key = flow_key(f, 0, vlan)
        family = key["family"]
        r = {"length": f.frame_len, "port": port, "ring": 0, "vnic": 0, "vns_id": 0,
             "cls": FrameClass.FORWARD, "cast": cast, "priority": Priority.LOW,
             "flow_hit": 0, "flow_id": 0, "vlan_tagged": f.vlan_tagged,
             "vlan_tci": f.vlan_pcp << 13 | f.vlan_dei << 12 | f.vlan_vid,
             "ip_csum": f.ip_csum, "l4_csum": f.l4_csum,
             "flow_hash": model_flow_hash(f.ip_src, f.ip_dst, f.ip_proto, f.l4_src_port,
                                          f.l4_dst_port),
             "drop": DropReason.NONE}
        mac_hit = next((e for e in cfg.macs if e and e.valid and e.mac == f.dst_mac
                        and e.vlan == vlan), None)
        flood = False
        self.counters["frames"] += 1
        if mac_hit:
            vnic = mac_hit.vnic
            self.counters["mac_hits"] += 1
        elif cast is Cast.UNICAST:
            self.counters["unknown_unicast"] += 1
            vnic = cfg.policy.default_vnic
            if not cfg.policy.unknown_to_default:
                r["drop"] = DropReason.UNKNOWN_UNICAST
        elif (cast is Cast.BROADCAST or cfg.policy.mcast_all
              or cfg.policy.mcast_filter >> model_mcast_hash(f.dst_mac) & 1):
            vnic, flood = FLOOD_VNIC, True
        else:
            vnic = FLOOD_VNIC
            r["drop"] = DropReason.MULTICAST_FILTER
        base = cfg.policy.stub_vlan_base
        if port < self.ports and f.vlan_tagged and base and vlan >= base:
            r["drop"] = DropReason.STUB_VLAN     # an etherstub VLAN from a wire
        r["vnic"] = vnic
        owner = next((e.vnic for e in cfg.local_ips if e and e.valid and family
                      and e.family == family and e.addr == f.ip_dst and e.vlan == vlan), None)
        local = not flood and owner == vnic
        r["cls"] = FrameClass.LOCAL if local else FrameClass.FORWARD
        if flood:
            r["ring"] = cfg.policy.flood_ring
        else:
            s = cfg.vnics.get(vnic)
            if s is not None:
                r.update(ring=s.local_ring if local else s.forward_ring, vns_id=s.vns_id,
                         priority=Priority(s.priority))
            if r["drop"] is DropReason.NONE and not (s and s.enable):
                r["drop"] = DropReason.VNIC_DISABLED
        if r["drop"] is DropReason.NONE and not flood:
            key["vnic"] = vnic
            for k, e in enumerate(cfg.flows):
                if e and flow_matches(e, key):
                    r.update(flow_hit=1, flow_id=k)
                    if e.drop:
                        r["drop"] = DropReason.FLOW_DROP
                    else:
                        r.update(ring=e.ring, priority=Priority(e.priority))
                    break
        self.counters["flooded"] += flood and r["drop"] is DropReason.NONE
        self.counters["local"] += local
        self.counters["flow_hits"] += r["flow_hit"]
        self.counters["dropped"] += r["drop"] is not DropReason.NONE
        return r

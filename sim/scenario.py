"""Random card configurations and traffic that exercises them, for classifier and core tests.

A :class:`Scenario` is a classifier configuration (MAC table, VNIC settings, local IPs, flows,
flooding policy) together with the addresses it mentions, so that random frames drawn from it
hit table entries often and miss them sometimes: known and unknown unicast, broadcast,
subscribed, filtered and unfiltered multicast, local and foreign IPs, ports and DSCP values that
flows name. Everything is drawn from one ``random.Random``, so a seed reproduces a run.
"""

import ipaddress
import random
from dataclasses import dataclass, field

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from crossnic.gateware.layouts import Priority
from crossnic.host.classifier import (
    FAMILY_IPV4,
    FAMILY_IPV6,
    ClassifierConfig,
    FlowEntry,
    LocalIp,
    MacEntry,
    Policy,
    VnicSettings,
    ip_key,
)
from crossnic.sim.model.classifier import model_mcast_hash

__all__ = ["Scenario", "random_scenario", "mac_text"]

PORTS = [22, 53, 80, 443, 8080]
DSCPS = [0, 10, 26, 46]


def mac_text(mac: int) -> str:
    return ":".join(f"{mac >> 8 * k & 0xFF:02x}" for k in reversed(range(6)))


@dataclass
class Scenario:
    config: ClassifierConfig
    rings: int
    vnic_macs: list[tuple[int, int, int]] = field(default_factory=list)   # (mac, vlan, vnic)
    mcast_macs: list[int] = field(default_factory=list)
    local_ips: list[tuple[str, int]] = field(default_factory=list)        # (address, vnic)
    remote_ips: list[str] = field(default_factory=list)

    def frame(self, rng: random.Random, *, min_size: int = 60) -> bytes:
        """One random frame (without FCS) drawn from the scenario's addresses."""
        r = rng.random()
        vlan, vnic = 0, None
        if r < 0.65 and self.vnic_macs:
            dst, vlan, vnic = rng.choice(self.vnic_macs)
        elif r < 0.75:
            dst = rng.getrandbits(48) & ~(1 << 40)                        # unknown unicast
        elif r < 0.85:
            dst = 0xFFFF_FFFF_FFFF
            vlan = rng.choice([0, *{v for _, v, _ in self.vnic_macs}])
        else:
            dst = rng.choice([*self.mcast_macs, 0x0100_5E00_0000 | rng.getrandbits(23)])
        src = 0x0200_0000_0000 | rng.getrandbits(40)
        eth = Ether(dst=mac_text(dst), src=mac_text(src))
        if vlan:
            eth = eth / Dot1Q(vlan=vlan, prio=rng.randrange(8))
        pkt = eth / self._l3(rng, vnic)
        data = bytes(pkt)
        return data + bytes(max(0, min_size - len(data)))

    def _l3(self, rng: random.Random, vnic: int | None):
        kind = rng.random()
        own = [a for a, v in self.local_ips if v == vnic]
        if own and rng.random() < 0.5:
            dst = rng.choice(own)
        elif self.local_ips and rng.random() < 0.3:
            dst = rng.choice(self.local_ips)[0]
        else:
            dst = rng.choice(self.remote_ips)
        src = rng.choice(self.remote_ips)
        if kind < 0.08:
            if ipaddress.ip_address(dst).version != 4:
                dst = "10.0.0.1"
            return ARP(op=1, psrc="10.9.9.9", pdst=dst)
        if kind < 0.12:
            return bytes(rng.randrange(256) for _ in range(46))              # not IP
        v6 = ipaddress.ip_address(dst).version == 6
        if v6 != (ipaddress.ip_address(src).version == 6):
            src = "2001:db8:ffff::9" if v6 else "192.0.2.9"
        dscp = rng.choice(DSCPS)
        ip = (IPv6(src=src, dst=dst, tc=dscp << 2) if v6
              else IP(src=src, dst=dst, tos=dscp << 2))
        sport, dport = rng.choice([*PORTS, rng.randrange(1024, 65536)]), rng.choice(PORTS)
        l4 = rng.random()
        payload = bytes(rng.randrange(256) for _ in range(rng.choice([0, 6, 100, 600])))
        if l4 < 0.5:
            return ip / TCP(sport=sport, dport=dport) / payload
        if l4 < 0.85 or v6:
            return ip / UDP(sport=sport, dport=dport) / payload
        return ip / ICMP() / payload


def _random_flow(rng: random.Random, sc: Scenario, vnics: int) -> FlowEntry:
    kind = rng.choice(["local_ip", "remote_ip", "transport", "local_port", "remote_port",
                       "dsfield"])
    attrs: dict = {"vnic": rng.randrange(vnics) if rng.random() < 0.7 else None}
    if kind == "local_ip":
        addr, _ = rng.choice(sc.local_ips)
        fam, value = ip_key(addr)
        length = rng.choice([32, 24]) if fam == FAMILY_IPV4 else rng.choice([128, 64])
        attrs["local_ip"] = (fam, value, length)
    elif kind == "remote_ip":
        fam, value = ip_key(rng.choice(sc.remote_ips))
        attrs["remote_ip"] = (fam, value, 32 if fam == FAMILY_IPV4 else rng.choice([128, 48]))
    elif kind == "transport":
        attrs["proto"] = rng.choice([6, 17])
    elif kind == "local_port":
        attrs["proto"], attrs["local_port"] = rng.choice([6, 17]), rng.choice(PORTS)
    elif kind == "remote_port":
        attrs["proto"], attrs["remote_port"] = rng.choice([6, 17]), rng.choice(PORTS)
    else:
        attrs["dscp"] = (rng.choice(DSCPS), rng.choice([0x3F, 0x38]))
    if rng.random() < 0.2:
        attrs["vlan"] = rng.choice([v for _, v, _ in sc.vnic_macs] or [0])
    return FlowEntry(ring=rng.randrange(sc.rings), priority=rng.choice(list(Priority)[:3]),
                     drop=rng.random() < 0.1, **attrs)


def random_scenario(rng: random.Random, *, vnics: int = 8, rings: int = 16,
                    mac_entries: int = 32, local_ip_entries: int = 16,
                    flow_entries: int = 64, flows: int = 12) -> Scenario:
    """A random configuration of ``vnics`` VNICs over ``rings`` rings, tables partly filled."""
    cfg = ClassifierConfig()
    sc = Scenario(cfg, rings)
    vlans = [0, 0, 10, 20]
    for v in range(vnics):
        mac = 0x0200_0000_0000 | v << 8 | rng.getrandbits(8)
        vlan = rng.choice(vlans)
        sc.vnic_macs.append((mac, vlan, v))
        cfg.vnics[v] = VnicSettings(enable=rng.random() < 0.9,
                                    priority=rng.choice(list(Priority)[:3]), vns_id=v + 1,
                                    local_ring=rng.randrange(rings),
                                    forward_ring=rng.randrange(rings))
    sc.mcast_macs = [0x0100_5E00_0000 | rng.getrandbits(23) for _ in range(4)]
    entries: list[MacEntry | None] = [MacEntry(m, vl, v) for m, vl, v in sc.vnic_macs]
    entries += [MacEntry(sc.mcast_macs[0], 0, rng.randrange(vnics))]     # a subscription
    entries += [None] * (mac_entries - len(entries))
    rng.shuffle(entries)
    cfg.macs = entries
    for v in range(vnics):
        sc.local_ips.append((f"10.{v}.0.1", v))
        if v % 2:
            sc.local_ips.append((f"2001:db8:{v}::1", v))
    sc.local_ips = sc.local_ips[:local_ip_entries]
    vlan_of = {v: vlan for _, vlan, v in sc.vnic_macs}         # an address is in its VNIC's VLAN
    cfg.local_ips = [LocalIp.of(a, v, vlan_of[v]) for a, v in sc.local_ips]
    cfg.local_ips += [None] * (local_ip_entries - len(cfg.local_ips))
    sc.remote_ips = ["192.0.2.1", "198.51.100.7", "10.0.0.1", "10.1.0.200",
                     "2001:db8:ffff::1", "2001:db8:1::77"]
    flow_list = [_random_flow(rng, sc, vnics) for _ in range(flows)]
    cfg.flows = flow_list + [None] * (flow_entries - len(flow_list))
    filt = 1 << model_mcast_hash(sc.mcast_macs[1])
    cfg.policy = Policy(unknown_to_default=rng.random() < 0.5, mcast_all=False,
                        default_vnic=rng.randrange(vnics), flood_ring=rng.randrange(rings),
                        mcast_filter=filt)
    return sc


def family_of(address: str) -> int:
    return FAMILY_IPV4 if ipaddress.ip_address(address).version == 4 else FAMILY_IPV6

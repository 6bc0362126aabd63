"""The forwarding fast path of a router VNS (Crossbow's forwarding receive ring).

A VNIC with ``forwarding=on`` has two receive rings: the card's classifier puts frames whose
destination IP is one of the VNIC's own addresses (its entries in the local-IP table) on its
*local* ring, which goes up the VNS's own stack, and every other frame addressed to the VNIC's
MAC on its *forwarding* ring. Frames of the forwarding ring take this path instead of the
stack: route lookup in the VNS's table, TTL decrement and header checksum, the next hop's MAC
from the VNS's neighbour table, out through the VNIC the route names (another VNIC of the same
VNS). What the fast path does not handle goes up the stack as before, which knows what to do
(ICMP time exceeded, IP options, IPv6, an unresolved neighbour: the stack resolves it, and the
next frames take the fast path).

The VNS's tables are the kernel's: read with ``ip -j`` (routes, neighbours) at most once a
:attr:`Forwarder.REFRESH` per VNS (a :attr:`Forwarder.MISS_REFRESH` while a next hop is
unresolved), so ``ip route add`` in the VNS steers the fast path too.
"""

import ipaddress
import json
import subprocess
import time
from dataclasses import dataclass, field

__all__ = ["Forwarder", "ipv4_checksum"]

#: Neighbour states whose link-layer address may be used.
_USABLE = {"REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT", "NOARP"}


def ipv4_checksum(header: bytes) -> int:
    """The one's complement sum of a header whose checksum field is zero."""
    total = sum(int.from_bytes(header[k:k + 2], "big") for k in range(0, len(header), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@dataclass
class _Tables:
    routes: list[tuple[ipaddress.IPv4Network, str, str | None]] = field(default_factory=list)
    neighbours: dict[tuple[str, str], bytes] = field(default_factory=dict)
    read_at: float = 0.0


class Forwarder:
    """Route lookup and rewrite for frames of the forwarding rings; the driver asks
    :meth:`route` for each and sends what it returns, or hands the frame to the stack."""

    #: Seconds a VNS's tables are used before they are read again.
    REFRESH = 1.0
    #: ... or, when a frame's next hop is not in them yet (the stack is resolving it), this
    #: many: the frames after the neighbour answers take the fast path soon.
    MISS_REFRESH = 0.1

    def __init__(self):
        self._vns_of: dict[str, str] = {}           # VNIC name -> VNS (namespace) name
        self._tables: dict[str, _Tables] = {}

    def attach(self, vnic: str, vns: str | None) -> None:
        """VNIC ``vnic`` is (``vns`` None: no longer) in namespace ``vns``."""
        if vns is None:
            self._vns_of.pop(vnic, None)
        else:
            self._vns_of[vnic] = vns

    def vns_of(self, vnic: str) -> str | None:
        return self._vns_of.get(vnic)

    def _read(self, vns: str, max_age: float | None = None) -> _Tables:
        t = self._tables.get(vns)
        if t is not None and time.monotonic() - t.read_at < (max_age or self.REFRESH):
            return t
        t = _Tables(read_at=time.monotonic())
        for r in _ip_json(vns, "-4", "route", "show", "table", "main"):
            dst = "0.0.0.0/0" if r.get("dst") == "default" else r.get("dst", "")
            try:
                net = ipaddress.IPv4Network(dst if "/" in dst else dst + "/32")
            except ValueError:
                continue
            if r.get("type", "unicast") == "unicast" and "dev" in r:
                t.routes.append((net, r["dev"], r.get("gateway")))
        t.routes.sort(key=lambda e: -e[0].prefixlen)
        for n in _ip_json(vns, "-4", "neigh", "show"):
            if "lladdr" in n and _USABLE & set(n.get("state", [])):
                t.neighbours[(n["dev"], n["dst"])] = bytes.fromhex(n["lladdr"].replace(":", ""))
        self._tables[vns] = t
        return t

    def route(self, vnic: str, frame: bytes) -> tuple[str, bytes, bytes] | None:
        """For ``frame`` (untagged, arrived on ``vnic``'s forwarding ring): the VNIC to send it
        out of, the next hop's MAC, and the frame from its EtherType on with the TTL one less
        and the checksum to match; None: give it to the stack."""
        vns = self._vns_of.get(vnic)
        if vns is None or len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[14] != 0x45:
            return None
        header = frame[14:34]
        ttl = header[8]
        if ttl <= 1 or ipv4_checksum(header) != 0:
            return None                 # the stack answers (time exceeded) or drops it
        if int.from_bytes(header[6:8], "big") & 0x3FFF:
            return None                 # fragments: the stack's business
        dst = ipaddress.IPv4Address(header[16:20])
        if dst.is_multicast or dst.is_loopback or dst == ipaddress.IPv4Address("255.255.255.255"):
            return None
        hop = self._next_hop(vnic, vns, dst, self._read(vns))
        if hop is not None and hop[1] is None:
            hop = self._next_hop(vnic, vns, dst, self._read(vns, self.MISS_REFRESH))
        if hop is None or hop[1] is None:
            return None                 # no route or one the stack handles; no neighbour yet
        dev, mac = hop
        header = header[:8] + bytes([ttl - 1]) + header[9:10] + b"\0\0" + header[12:]
        header = header[:10] + ipv4_checksum(header).to_bytes(2, "big") + header[12:]
        return dev, mac, frame[12:14] + header + frame[34:]

    def _next_hop(self, vnic: str, vns: str, dst: ipaddress.IPv4Address,
                  t: _Tables) -> tuple[str, bytes | None] | None:
        """The VNIC a route names and its next hop's MAC (None: not known yet); None when
        there is no route, it leads back out ``vnic``, or to a VNIC not of this VNS."""
        hop = next(((dev, gw) for net, dev, gw in t.routes if dst in net), None)
        if hop is None or hop[0] == vnic or self._vns_of.get(hop[0]) != vns:
            return None
        dev, gw = hop
        return dev, t.neighbours.get((dev, gw or str(dst)))


def _ip_json(ns: str, *args: str) -> list[dict]:
    r = subprocess.run(["ip", "-j", "-n", ns, *args], capture_output=True, text=True)
    if r.returncode:
        return []
    try:
        return json.loads(r.stdout or "[]")
    except json.JSONDecodeError:
        return []

"""Frames that exercise the header parser: random well-formed (and deliberately bad-checksum)
frames built with scapy, and a corpus of malformed headers built by editing bytes.

Shipped in the package (not only in tests/) so the Verilator testbench, the amaranth.sim tests,
the reference-model tests and benchmarks draw on one corpus.
"""

import random
import struct

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP, IPOption_RR
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6Unknown,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

__all__ = ["malformed_corpus", "min_frames", "random_frame", "random_frames"]


def _mac(rng: random.Random, kind: str) -> str:
    if kind == "broadcast":
        return "ff:ff:ff:ff:ff:ff"
    octets = [rng.randrange(256) for _ in range(6)]
    if kind == "multicast":
        octets[0] |= 1
    else:
        octets[0] &= 0xFE
    return ":".join(f"{o:02x}" for o in octets)


def _ip4(rng):
    return ".".join(str(rng.randrange(256)) for _ in range(4))


def _ip6(rng):
    return ":".join(f"{rng.randrange(65536):x}" for _ in range(8))


def _payload(rng: random.Random) -> bytes:
    r = rng.random()
    size = rng.randrange(0, 40) if r < 0.6 else rng.randrange(40, 300) if r < 0.95 else \
        rng.randrange(300, 1480)
    return bytes(rng.randrange(256) for _ in range(size))


def _tcp(rng):
    opts = [o for o in (("MSS", rng.randrange(536, 9000)), ("NOP", None),
                        ("WScale", rng.randrange(15)), ("SAckOK", b""),
                        ("Timestamp", (rng.randrange(2**32), rng.randrange(2**32))))
            if rng.random() < 0.4]
    return TCP(sport=rng.randrange(65536), dport=rng.randrange(65536),
               seq=rng.randrange(2**32), flags=rng.randrange(512), options=opts)


def _ipv4(rng):
    ip = IP(src=_ip4(rng), dst=_ip4(rng), tos=rng.randrange(256), ttl=rng.randrange(256),
            id=rng.randrange(65536))
    if rng.random() < 0.4:   # options up to IHL 15
        ip.options = [IPOption_RR(routers=[_ip4(rng) for _ in range(rng.randrange(10))])]
    elif rng.random() < 0.2:
        ip.options = [IPOption_NOP()] * rng.randrange(1, 41)
    if rng.random() < 0.12:
        ip.flags = rng.choice(["MF", 0, "MF+DF"])
        ip.frag = rng.randrange(1, 8192) if rng.random() < 0.6 else 0
    elif rng.random() < 0.3:
        ip.flags = "DF"
    kind = rng.choices(["tcp", "udp", "icmp", "other"], [4, 4, 2, 1])[0]
    if kind == "tcp":
        l4 = _tcp(rng)
    elif kind == "udp":
        l4 = UDP(sport=rng.randrange(65536), dport=rng.randrange(65536))
        if rng.random() < 0.1:
            l4.chksum = 0
    elif kind == "icmp":
        l4 = ICMP(type=rng.choice([0, 3, 8, 11, rng.randrange(256)]), code=rng.randrange(16))
    else:
        ip.proto = rng.choice([47, 50, 132, 89, rng.randrange(256)])
        return ip / Raw(_payload(rng))
    return ip / l4 / Raw(_payload(rng))


def _ipv6(rng):
    ip = IPv6(src=_ip6(rng), dst=_ip6(rng), tc=rng.randrange(256), fl=rng.randrange(2**20),
              hlim=rng.randrange(256))
    if rng.random() < 0.15:   # an extension header: not parsed (l4 = OTHER)
        ext = rng.choice([IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, IPv6ExtHdrDestOpt,
                          IPv6ExtHdrFragment])()
        return ip / ext / UDP(sport=rng.randrange(65536), dport=53) / Raw(_payload(rng))
    kind = rng.choices(["tcp", "udp", "icmp6", "other"], [4, 4, 2, 1])[0]
    if kind == "tcp":
        l4 = _tcp(rng)
    elif kind == "udp":
        l4 = UDP(sport=rng.randrange(65536), dport=rng.randrange(65536))
    elif kind == "icmp6":
        l4 = rng.choice([
            lambda: ICMPv6EchoRequest(id=rng.randrange(65536), seq=rng.randrange(65536)),
            lambda: ICMPv6EchoReply(id=rng.randrange(65536)),
            lambda: ICMPv6DestUnreach(code=rng.randrange(7)),
            lambda: ICMPv6Unknown(type=rng.randrange(256), code=rng.randrange(256)),
        ])()
    else:
        ip.nh = rng.choice([4, 47, 132, 103])
        return ip / Raw(_payload(rng))
    return ip / l4 / Raw(_payload(rng))


def _arp(rng):
    return ARP(op=rng.choice([1, 2, rng.randrange(65536)]), hwsrc=_mac(rng, "unicast"),
               psrc=_ip4(rng), pdst=_ip4(rng), hwdst=_mac(rng, "unicast"))


def _corrupt_l4_checksum(frame: bytes, rng: random.Random) -> bytes:
    pkt = Ether(frame)
    for layer in (TCP, UDP, ICMP, ICMPv6EchoRequest, ICMPv6EchoReply, ICMPv6DestUnreach,
                  ICMPv6Unknown):
        if pkt.haslayer(layer):
            name = "cksum" if "cksum" in pkt[layer].fields else "chksum"
            value = pkt[layer].getfieldval(name)
            if not value:
                return frame
            pkt[layer].setfieldval(name, value ^ rng.randrange(1, 65536))
            return bytes(pkt)
    return frame


def random_frame(rng: random.Random) -> bytes:
    """One random frame as a MAC delivers it (FCS stripped, padded to 60 bytes)."""
    kind = rng.choices(["unicast", "multicast", "broadcast"], [6, 2, 1])[0]
    l2 = Ether(dst=_mac(rng, kind), src=_mac(rng, "unicast"))
    if rng.random() < 0.3:
        l2 = l2 / Dot1Q(prio=rng.randrange(8), dei=rng.randrange(2), vlan=rng.randrange(4096))
    l3 = rng.choices(["ip4", "ip6", "arp", "other"], [10, 6, 1, 1])[0]
    if l3 == "ip4":
        pkt = l2 / _ipv4(rng)
    elif l3 == "ip6":
        pkt = l2 / _ipv6(rng)
    elif l3 == "arp":
        pkt = l2 / _arp(rng)
    else:
        pkt = l2 / Raw(_payload(rng))
        pkt.lastlayer().underlayer.type = rng.choice([0x88B5, 0x88CC, 0x8847, 0x0040])
    frame = bytes(pkt)
    if rng.random() < 0.15:
        frame = _corrupt_l4_checksum(frame, rng)
    if l3 == "ip4" and rng.random() < 0.05:   # bad IPv4 header checksum
        off = 18 if frame[12:14] == b"\x81\x00" else 14
        frame = frame[:off + 10] + bytes([frame[off + 10] ^ 0x40]) + frame[off + 11:]
    if len(frame) < 60:     # Ethernet padding, zeros or (as some stacks leave it) garbage
        pad = 60 - len(frame)
        frame += bytes(pad) if rng.random() < 0.5 else bytes(rng.randrange(256)
                                                             for _ in range(pad))
    return frame


def random_frames(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    return [random_frame(rng) for _ in range(count)]


def min_frames(count: int) -> list[bytes]:
    """Minimum-size (60-byte) TCP/IPv4 frames, for back-to-back throughput tests."""
    frames = []
    for n in range(count):
        pkt = Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:02") / IP(
            src="10.0.0.1", dst=f"10.0.{n >> 8 & 255}.{n & 255}") / TCP(sport=n, dport=80)
        frames.append(bytes(pkt).ljust(60, b"\x00"))
    return frames


def _patch(frame: bytes, offset: int, value: bytes) -> bytes:
    return frame[:offset] + value + frame[offset + len(value):]


def _fix_ip4_checksum(frame: bytes, o: int) -> bytes:
    ihl = (frame[o] & 0xF) * 4
    hdr = bytearray(frame[o:o + max(20, ihl)])
    hdr[10:12] = b"\x00\x00"
    total = sum(struct.unpack(f"!{len(hdr) // 2}H", bytes(hdr)))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return _patch(frame, o + 10, struct.pack("!H", ~total & 0xFFFF))


def malformed_corpus() -> list[tuple[str, bytes]]:
    """Named frames with broken or unusual headers (and every truncation of two frames)."""
    rng = random.Random(7)
    mac = Ether(dst="02:11:22:33:44:55", src="02:66:77:88:99:aa")
    tcp4 = bytes(mac / IP(src="192.0.2.1", dst="198.51.100.7", options=[
        IPOption_RR(routers=["10.0.0.1"])]) / TCP(sport=1234, dport=443, flags="PA",
                                                   options=[("MSS", 1460)]) / Raw(b"x" * 9))
    udp6 = bytes(mac / IPv6(src="2001:db8::1", dst="2001:db8::2", tc=0xB8, fl=0x12345)
                 / UDP(sport=5353, dport=53) / Raw(b"y" * 7))
    tagged = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:09")
                   / Dot1Q(vlan=100, prio=5) / IP(src="10.1.1.1", dst="10.1.1.2")
                   / UDP(sport=68, dport=67) / Raw(b"z" * 4))
    out = []
    out += [(f"tcp4 cut {k}", tcp4[:k]) for k in range(1, len(tcp4))]
    out += [(f"udp6 cut {k}", udp6[:k]) for k in range(1, len(udp6))]
    out += [(f"tagged cut {k}", tagged[:k]) for k in range(1, len(tagged))]
    out += [(f"tiny {k}", bytes(rng.randrange(256) for _ in range(k))) for k in range(1, 14)]
    out += [("tiny tpid 13", bytes(12) + b"\x81"),
            ("tpid only 16", bytes(12) + b"\x81\x00\x00\x05")]

    o = 14
    base4 = bytes(mac / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2) / b"data")
    for ihl in range(5):
        f = _patch(base4, o, bytes([0x40 | ihl]))
        out.append((f"ihl {ihl}", _fix_ip4_checksum(f, o)))
    out.append(("ihl 15 past frame", _fix_ip4_checksum(_patch(base4, o, b"\x4f"), o)))
    out.append(("ipv4 version 6", _fix_ip4_checksum(_patch(base4, o, b"\x65"), o)))
    out.append(("ipv4 bad header checksum", _patch(base4, o + 10, b"\xde\xad")))
    for total in (0, 19, 20, 39, len(base4) - o + 1, 1500, 65535):
        f = _patch(base4, o + 2, struct.pack("!H", total))
        out.append((f"ipv4 total length {total}", _fix_ip4_checksum(f, o)))
    out.append(("ipv4 padded", base4 + bytes(range(30))))
    for doff in (0, 4, 6, 15):
        f = _patch(base4, o + 20 + 12, bytes([doff << 4]))
        out.append((f"tcp doff {doff}", f))
    out.append(("ipv6 version 4", _patch(udp6, o, b"\x4b")))
    out.append(("ipv6 payload beyond", _patch(udp6, o + 4, b"\x00\x40")))
    out.append(("ipv6 payload short", _patch(udp6, o + 4, b"\x00\x04")))
    udp4 = bytes(mac / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=7, dport=9) / b"abcdef")
    out.append(("udp4 checksum 0", _patch(udp4, o + 26, b"\x00\x00")))
    out.append(("udp6 checksum 0", _patch(udp6, o + 46, b"\x00\x00")))
    out.append(("udp4 length long", _patch(udp4, o + 24, b"\x00\x20")))
    out.append(("udp4 length short", _patch(udp4, o + 24, b"\x00\x08")))
    out.append(("udp4 bad checksum", _patch(udp4, o + 26, b"\x12\x34")))
    out.append(("icmp4 short", bytes(mac / IP(src="1.2.3.4", dst="5.6.7.8", proto=1)
                                     / b"\x08\x00\x00")))
    out.append(("icmp6 4 bytes", bytes(mac / IPv6(nh=58) / b"\x80\x00\xff\x7f")))
    for name, flags, frag in (("first fragment", "MF", 0), ("middle fragment", "MF", 10),
                              ("last fragment", 0, 20)):
        out.append((name, bytes(mac / IP(flags=flags, frag=frag) / TCP(sport=5, dport=6)
                                / b"frag")))
    for ext in (IPv6ExtHdrHopByHop(), IPv6ExtHdrFragment(), IPv6ExtHdrRouting()):
        out.append((f"ipv6 ext {ext.name}", bytes(mac / IPv6() / ext / UDP())))
    for etype in (0x88B5, 0x88A8, 0x0040, 0x0000, 0xFFFF):
        out.append((f"ethertype {etype:#06x}", bytes(mac)[:12] + struct.pack("!H", etype)
                    + bytes(46)))
    out.append(("double tag", bytes(mac / Dot1Q(vlan=1) / Dot1Q(vlan=2) / IP() / UDP())))
    arp = bytes(mac / ARP(op=1, psrc="10.0.0.1", pdst="10.0.0.254"))
    out.append(("arp", arp))
    out.append(("arp short", arp[:14 + 27]))
    out.append(("arp bad format", _patch(arp, o + 4, b"\x08")))
    out.append(("broadcast arp tagged", bytes(Ether(dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=7)
                                              / ARP(op=2))))
    # Header bytes a short frame does not reach are left over from older frames: an older
    # frame with an IHL nibble < 5 and some "total length" must not leak into the next one.
    udp_small = bytes(mac / IP(src="10.0.0.3", dst="10.0.0.4") / UDP(sport=1, dport=2) / b"q")
    for ihl in range(5):
        junk = bytes(mac)[:12] + b"\x88\xb5" + bytes([0x40 | ihl, 0, 0x05, 0xDC]) + bytes(range(44))
        out.append((f"stale ihl {ihl}", junk))
        out.append((f"stale ihl {ihl} then udp", udp_small.ljust(60, b"\0")))
    out.append(("all ones", b"\xff" * 64))
    out.append(("all zero", bytes(64)))
    out.append(("ip4 in ip6 ethertype", bytes(mac)[:12] + b"\x86\xdd" + bytes(
        IP() / TCP())[:20] + bytes(30)))
    return out

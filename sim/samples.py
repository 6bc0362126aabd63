"""The sample capture shipped with crossnic (``crossnic sim`` replays it by default).

It is a capture as seen on the wire (short frames padded to 60 bytes, no FCS). It mixes the
traffic a NIC sees every day with the frames a MAC and parser must reject or flag, so one replay
shows every outcome. ``python -m crossnic.sim.samples`` rewrites the shipped file;
a test checks the shipped file is current.
"""

from importlib import resources
from pathlib import Path

__all__ = ["SAMPLE_PCAP", "sample_frames", "write_sample"]

SAMPLE_PCAP = "data/sample.pcap"

HOST_A = "02:00:00:00:00:0a"
HOST_B = "02:00:00:00:00:0b"


def sample_frames() -> list[tuple[str, bytes]]:
    """(description, frame without FCS) pairs, in capture order."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6ND_NS, IPv6, IPv6ExtHdrHopByHop
    from scapy.layers.l2 import ARP, Dot1Q, Ether
    from scapy.packet import Raw

    a, b = HOST_A, HOST_B
    ip_a, ip_b = "10.9.0.1", "10.9.0.2"
    frames = [
        ("ARP who-has (broadcast)",
         Ether(src=a, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=a, psrc=ip_a, pdst=ip_b)),
        ("ARP is-at",
         Ether(src=b, dst=a) / ARP(op=2, hwsrc=b, psrc=ip_b, hwdst=a, pdst=ip_a)),
        ("TCP SYN to 443",
         Ether(src=a, dst=b) / IP(src=ip_a, dst=ip_b) / TCP(sport=40000, dport=443, flags="S",
                                                            options=[("MSS", 1460)])),
        ("TCP data 1460 B (full-size frame)",
         Ether(src=b, dst=a) / IP(src=ip_b, dst=ip_a) / TCP(sport=443, dport=40000, flags="PA")
         / Raw(bytes(range(256)) * 5 + bytes(180))),
        ("UDP DNS query",
         Ether(src=a, dst=b) / IP(src=ip_a, dst=ip_b) / UDP(sport=5353, dport=53)
         / Raw(b"\x12\x34\x01\x00\x00\x01" + bytes(6) + b"\x07example\x03com\x00\x00\x01\x00\x01")),
        ("ICMP echo request",
         Ether(src=a, dst=b) / IP(src=ip_a, dst=ip_b) / ICMP(type=8, id=7, seq=1) / Raw(b"x" * 32)),
        ("IPv4 with options (IHL 7), UDP",
         Ether(src=a, dst=b) / IP(src=ip_a, dst=ip_b, options=b"\x94\x04\x00\x00\x01\x01\x01\x00")
         / UDP(sport=1000, dport=2000) / Raw(b"options")),
        ("VLAN 42 priority 5, UDP",
         Ether(src=a, dst=b) / Dot1Q(vlan=42, prio=5) / IP(src=ip_a, dst=ip_b, tos=0xb8)
         / UDP(sport=3000, dport=4000) / Raw(b"tagged")),
        ("IPv4 non-first fragment (no L4 header)",
         Ether(src=a, dst=b) / IP(src=ip_a, dst=ip_b, proto=17, frag=185) / Raw(b"f" * 40)),
        ("IPv6 TCP",
         Ether(src=a, dst=b) / IPv6(src="fd00::1", dst="fd00::2") / TCP(sport=50000, dport=22)),
        ("ICMPv6 neighbour solicitation (multicast)",
         Ether(src=a, dst="33:33:ff:00:00:02") / IPv6(src="fd00::1", dst="ff02::1:ff00:2")
         / ICMPv6ND_NS(tgt="fd00::2")),
        ("IPv6 hop-by-hop extension header (unparsed)",
         Ether(src=a, dst=b) / IPv6(src="fd00::1", dst="fd00::2") / IPv6ExtHdrHopByHop()
         / ICMPv6EchoRequest()),
        ("LLDP (unknown ethertype, multicast)",
         Ether(src=a, dst="01:80:c2:00:00:0e", type=0x88CC) / Raw(bytes(46))),
    ]
    out = [(name, _pad(bytes(pkt))) for name, pkt in frames]

    good = bytes(Ether(src=a, dst=b) / IP(src=ip_a, dst=ip_b) / UDP(sport=1, dport=2)
                 / Raw(b"payload"))
    bad_csum = bytearray(good)
    bad_csum[24] ^= 0xFF                       # IPv4 header checksum
    out.append(("IPv4 bad header checksum", _pad(bytes(bad_csum))))
    bad_l4 = bytearray(good)
    bad_l4[40] ^= 0x55                         # UDP checksum
    out.append(("UDP bad checksum", _pad(bytes(bad_l4))))
    long_len = bytearray(good)
    long_len[16:18] = (1400).to_bytes(2, "big")  # total length beyond the frame...
    long_len[24:26] = bytes(2)
    long_len[24:26] = _ip_checksum(bytes(long_len[14:34])).to_bytes(2, "big")  # ...valid csum
    out.append(("IPv4 total length beyond frame", _pad(bytes(long_len))))
    out.append(("runt: 30 B, unpadded (dropped by the MAC)", good[:30]))
    out.append(("minimum frame, 60 B", bytes(Ether(src=a, dst=b, type=0x88B5) / Raw(bytes(46)))))
    out.append(("giant, 1600 B (dropped by the MAC)",
                bytes(Ether(src=a, dst=b, type=0x88B5) / Raw(bytes(1586)))))
    return out


def _ip_checksum(header: bytes) -> int:
    total = sum(int.from_bytes(header[i:i + 2], "big") for i in range(0, len(header), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _pad(frame: bytes) -> bytes:
    """Frames on a wire are at least 60 bytes before the FCS; the sending MAC pads them."""
    return frame + bytes(max(0, 60 - len(frame)))


def write_sample(path: Path) -> None:
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap
    packets = []
    for n, (_, frame) in enumerate(sample_frames()):
        pkt = Ether(frame)
        pkt.time = 1_700_000_000 + n / 1000   # fixed timestamps: the file is reproducible
        packets.append(pkt)
    wrpcap(str(path), packets)


def sample_path():
    return resources.files("crossnic.sim").joinpath(SAMPLE_PCAP)


if __name__ == "__main__":
    target = Path(__file__).parent / SAMPLE_PCAP
    write_sample(target)
    print(f"wrote {target}")

"""The reference header parser against scapy's own dissection, and on malformed headers.

The model is the scoreboard of the gateware tests, so it is itself checked here: field by field
against scapy on random frames (checksums through scapy's ``checksum``/``in4_chksum``/
``in6_chksum``), and against hand-written expectations on the malformed corpus.
"""

import ipaddress

import pytest
from amaranth.lib import data
from scapy.layers.inet import ICMP, IP, TCP, UDP, in4_chksum
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    in6_chksum,
)
from scapy.layers.l2 import ARP, Dot1Q, Dot3, Ether
from scapy.packet import Padding
from scapy.utils import checksum

from crossnic.gateware.layouts import Checksum, FrameMetadata, L3Proto, L4Proto, ParseErrors
from crossnic.sim.model.parser import ParsedFrame, diff, from_gateware, ones_complement_sum, parse
from crossnic.sim.parser_corpus import malformed_corpus, random_frames

_V6_EXT_CLASSES = (IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment)


def _mac(text: str) -> int:
    return int(text.replace(":", ""), 16)


def _ip(text: str) -> int:
    return int(ipaddress.ip_address(text))


def scapy_view(frame: bytes) -> dict:
    """What scapy's dissection says about the fields the parser reports (well-formed frames)."""
    pkt = Ether(frame)
    pad = pkt.getlayer(Padding)
    if pad is not None:
        pad.underlayer.remove_payload()   # Ethernet padding is not part of the datagram
    v = {"frame_len": len(frame), "dst_mac": _mac(pkt.dst), "src_mac": _mac(pkt.src),
         "multicast": int(frame[0] & 1), "broadcast": int(pkt.dst == "ff:ff:ff:ff:ff:ff"),
         "errors": frozenset(), "l4": L4Proto.NONE, "l4_csum": Checksum.NONE,
         "ip_csum": Checksum.NONE}
    l2 = pkt
    if Dot1Q in pkt:
        tag = pkt[Dot1Q]
        v.update(vlan_tagged=1, vlan_pcp=tag.prio, vlan_dei=tag.dei, vlan_vid=tag.vlan)
        l2 = tag
    v["ethertype"] = l2.len if isinstance(l2, Dot3) else l2.type    # 802.3 length: LLC
    v["l3_offset"] = 18 if Dot1Q in pkt else 14
    l3 = l2.payload    # the first L3 header (an inner one, e.g. IP in IPv6, is payload)
    if isinstance(l3, ARP):
        arp = l3
        v.update(l3=L3Proto.ARP, arp_op=arp.op, ip_src=_ip(arp.psrc), ip_dst=_ip(arp.pdst))
    elif isinstance(l3, IP):
        ip = l3
        v.update(l3=L3Proto.IPV4, ip_src=_ip(ip.src), ip_dst=_ip(ip.dst), ip_proto=ip.proto,
                 ip_dscp=ip.tos >> 2, ip_ecn=ip.tos & 3, ip_ttl=ip.ttl,
                 ip_more_frags=int(ip.flags.MF), ip_frag_offset=ip.frag,
                 l4_offset=v["l3_offset"] + 4 * ip.ihl)
        header = bytes(ip)[:4 * ip.ihl]
        v["ip_csum"] = Checksum.OK if checksum(header) == 0 else Checksum.BAD
        _scapy_l4(ip, v, lambda proto, seg: in4_chksum(proto, ip, seg))
    elif isinstance(l3, IPv6):
        ip = l3
        v.update(l3=L3Proto.IPV6, ip_src=_ip(ip.src), ip_dst=_ip(ip.dst), ip_proto=ip.nh,
                 ip_dscp=ip.tc >> 2, ip_ecn=ip.tc & 3, ip_ttl=ip.hlim, ip_flow_label=ip.fl,
                 ip6_ext=int(isinstance(ip.payload, _V6_EXT_CLASSES)),
                 l4_offset=v["l3_offset"] + 40)
        _scapy_l4(ip, v, lambda proto, seg: in6_chksum(proto, ip, seg))
    else:
        v["l3"] = L3Proto.OTHER
    return v


def _scapy_l4(ip, v: dict, pseudo_sum) -> None:
    payload = ip.payload
    if isinstance(payload, TCP | UDP):
        v.update(l4=L4Proto.TCP if isinstance(payload, TCP) else L4Proto.UDP,
                 l4_src_port=payload.sport, l4_dst_port=payload.dport)
        if isinstance(payload, TCP):
            v["tcp_flags"] = int(payload.flags)
    elif isinstance(payload, ICMP):
        v.update(l4=L4Proto.ICMP, icmp_type=payload.type, icmp_code=payload.code)
    elif isinstance(ip, IPv6) and ip.nh == 58:
        head = bytes(payload)   # scapy leaves some unknown ICMPv6 types as raw data
        v.update(l4=L4Proto.ICMPV6, icmp_type=head[0], icmp_code=head[1])
    elif isinstance(ip, IP) and ip.frag:
        return   # scapy leaves a later fragment as raw data: no L4 header
    else:
        v["l4"] = L4Proto.OTHER
        return
    if isinstance(ip, IP) and ip.flags.MF:
        return   # a fragment's checksum covers the reassembled datagram
    if isinstance(payload, UDP) and payload.chksum == 0 and isinstance(ip, IP):
        return
    seg = bytes(payload)
    ok = (checksum(seg) if isinstance(payload, ICMP) else pseudo_sum(ip.proto if isinstance(
        ip, IP) else ip.nh, seg)) == 0
    v["l4_csum"] = Checksum.OK if ok else Checksum.BAD


def test_model_fields_mirror_the_layout():
    """ParsedFrame has exactly FrameMetadata's fields, in order."""
    assert list(ParsedFrame().as_dict()) == [name for name, _ in FrameMetadata.as_shape()]


def test_rfc1071_example():
    # RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to ddf2.
    assert ones_complement_sum(bytes.fromhex("0001f203f4f5f6f7")) == 0xDDF2
    assert ones_complement_sum(b"\x01") == 0x0100      # odd byte padded on the right


def test_model_matches_scapy_on_random_frames():
    frames = random_frames(seed=11, count=600)
    seen = set()
    for n, frame in enumerate(frames):
        got = parse(frame).as_dict()
        want = scapy_view(frame)
        mismatch = {k: (want[k], got[k]) for k in want if want[k] != got[k]}
        assert not mismatch, f"frame {n} ({Ether(frame).summary()}): {mismatch}"
        seen.add((got["l3"], got["l4"], got["l4_csum"]))
    # The random mix really covers every protocol and checksum outcome.
    for l4 in (L4Proto.TCP, L4Proto.UDP):
        for l3 in (L3Proto.IPV4, L3Proto.IPV6):
            assert {(l3, l4, Checksum.OK), (l3, l4, Checksum.BAD)} <= seen
    assert (L3Proto.IPV4, L4Proto.ICMP, Checksum.BAD) in seen
    assert (L3Proto.IPV6, L4Proto.ICMPV6, Checksum.OK) in seen
    assert (L3Proto.IPV4, L4Proto.NONE, Checksum.NONE) in seen      # later fragments
    assert (L3Proto.IPV6, L4Proto.OTHER, Checksum.NONE) in seen     # extension headers
    assert {s[0] for s in seen} >= {L3Proto.ARP, L3Proto.OTHER}


_CORPUS = dict(malformed_corpus())
TRUNC = "l3_truncated"


@pytest.mark.parametrize("name,expect", [
    ("tiny 5", {"errors": {"l2_truncated"}, "l3": L3Proto.NONE, "dst_mac": 0}),
    ("tiny 13", {"errors": {"l2_truncated"}, "frame_len": 13}),
    ("tpid only 16", {"errors": {"l2_truncated"}, "vlan_tagged": 0}),
    ("tcp4 cut 14", {"errors": {TRUNC}, "l3": L3Proto.IPV4, "ip_src": 0, "l3_offset": 14}),
    # IHL 7 (a record-route option): L4 at 42; TCP header 24 bytes (MSS option)
    ("tcp4 cut 41", {"errors": {TRUNC}, "ip_src": 0, "ip_csum": Checksum.NONE}),
    ("tcp4 cut 42", {"errors": {"ip_len_beyond", "l4_truncated"}, "ip_csum": Checksum.OK,
                     "l4": L4Proto.NONE, "l4_offset": 42, "ip_src": 0xC0000201}),
    ("tcp4 cut 65", {"errors": {"ip_len_beyond", "l4_truncated"}, "l4_dst_port": 0}),
    ("tcp4 cut 66", {"errors": {"ip_len_beyond"}, "l4": L4Proto.TCP, "l4_dst_port": 443,
                     "tcp_flags": 0x18, "l4_csum": Checksum.NONE}),
    ("tcp4 cut 70", {"errors": {"ip_len_beyond"}, "l4_csum": Checksum.NONE}),
    ("udp6 cut 53", {"errors": {TRUNC}, "l3": L3Proto.IPV6, "ip_flow_label": 0}),
    ("udp6 cut 54", {"errors": {"ip_len_beyond", "l4_truncated"}, "ip_flow_label": 0x12345,
                     "ip_dscp": 0x2E, "l4": L4Proto.NONE}),
    ("udp6 cut 62", {"errors": {"ip_len_beyond"}, "l4": L4Proto.UDP, "l4_src_port": 5353}),
    ("tagged cut 17", {"errors": {"l2_truncated"}}),
    ("tagged cut 18", {"errors": {TRUNC}, "vlan_tagged": 1, "vlan_vid": 100, "vlan_pcp": 5,
                       "broadcast": 1, "multicast": 1, "l3_offset": 18}),
    ("ihl 0", {"errors": {"ip_bad_ihl"}, "ip_csum": Checksum.NONE, "l4": L4Proto.NONE,
               "l4_offset": 0}),
    ("ihl 4", {"errors": {"ip_bad_ihl"}}),
    ("ihl 15 past frame", {"errors": {TRUNC}}),
    ("ipv4 version 6", {"errors": {"ip_bad_version"}, "l4": L4Proto.NONE}),
    ("ipv4 bad header checksum", {"errors": set(), "ip_csum": Checksum.BAD,
                                  "l4_csum": Checksum.OK}),
    ("ipv4 total length 0", {"errors": {"ip_len_short"}, "l4": L4Proto.NONE,
                             "ip_csum": Checksum.OK}),
    ("ipv4 total length 19", {"errors": {"ip_len_short"}}),
    ("ipv4 total length 39", {"errors": {"l4_truncated"}}),
    ("ipv4 total length 1500", {"errors": {"ip_len_beyond"}, "l4": L4Proto.TCP,
                                "l4_csum": Checksum.NONE}),
    ("ipv4 padded", {"errors": set(), "l4_csum": Checksum.OK}),
    ("tcp doff 4", {"errors": {"l4_bad_header"}, "l4": L4Proto.TCP, "l4_csum": Checksum.NONE}),
    ("tcp doff 15", {"errors": {"l4_truncated"}, "l4": L4Proto.NONE}),
    ("tcp doff 6", {"errors": set(), "l4": L4Proto.TCP, "l4_csum": Checksum.BAD}),
    ("ipv6 version 4", {"errors": {"ip_bad_version"}, "l4_offset": 0}),
    ("ipv6 payload beyond", {"errors": {"ip_len_beyond", "l4_bad_header"}, "l4": L4Proto.UDP}),
    ("ipv6 payload short", {"errors": {"l4_truncated"}}),
    ("udp4 checksum 0", {"errors": set(), "l4": L4Proto.UDP, "l4_csum": Checksum.NONE}),
    ("udp6 checksum 0", {"errors": set(), "l4_csum": Checksum.BAD}),
    ("udp4 length long", {"errors": {"l4_bad_header"}, "l4_csum": Checksum.NONE}),
    ("udp4 length short", {"errors": {"l4_bad_header"}}),
    ("udp4 bad checksum", {"errors": set(), "l4_csum": Checksum.BAD}),
    ("icmp4 short", {"errors": {"l4_truncated"}, "l4": L4Proto.NONE}),
    ("icmp6 4 bytes", {"errors": set(), "l4": L4Proto.ICMPV6, "icmp_type": 128,
                       "icmp_code": 0}),
    ("first fragment", {"errors": set(), "l4": L4Proto.TCP, "ip_more_frags": 1,
                        "l4_csum": Checksum.NONE, "l4_src_port": 5}),
    ("middle fragment", {"errors": set(), "l4": L4Proto.NONE, "ip_frag_offset": 10,
                         "l4_src_port": 0, "l4_offset": 34}),
    ("last fragment", {"errors": set(), "l4": L4Proto.NONE, "ip_more_frags": 0}),
    ("ipv6 ext IPv6 Extension Header - Hop-by-Hop Options Header",
     {"errors": set(), "l4": L4Proto.OTHER, "ip6_ext": 1, "ip_proto": 0}),
    ("ethertype 0x88a8", {"errors": set(), "l3": L3Proto.OTHER, "ethertype": 0x88A8}),
    ("ethertype 0x0040", {"errors": set(), "l3": L3Proto.OTHER}),
    ("double tag", {"errors": set(), "l3": L3Proto.OTHER, "ethertype": 0x8100,
                    "vlan_vid": 1}),
    ("arp", {"errors": set(), "l3": L3Proto.ARP, "arp_op": 1, "ip_dst": 0x0A0000FE,
             "ip_src": 0x0A000001, "ip_proto": 0, "l4": L4Proto.NONE}),
    ("arp short", {"errors": {TRUNC}, "arp_op": 0}),
    ("arp bad format", {"errors": {"arp_bad_format"}, "arp_op": 1}),
    ("ip4 in ip6 ethertype", {"errors": {"ip_bad_version"}}),
])
def test_model_on_malformed_headers(name, expect):
    got = parse(_CORPUS[name])
    for key, value in expect.items():
        have = getattr(got, key)
        assert have == (frozenset(value) if key == "errors" else value), (name, key, have)


def test_model_truncation_zeroes_fields():
    """Every truncation of a frame reports nothing from a header it cut."""
    for name, frame in _CORPUS.items():
        got = parse(frame)
        if "l2_truncated" in got.errors:
            assert got.dst_mac == got.ethertype == got.l3_offset == 0 and got.l3 is L3Proto.NONE
        if "l3_truncated" in got.errors:
            assert got.ip_src == got.ip_dst == got.ip_proto == got.arp_op == 0, name
            assert got.l4 is L4Proto.NONE and got.l4_offset == 0, name
        if got.l4 in (L4Proto.NONE, L4Proto.OTHER):
            assert got.l4_src_port == got.tcp_flags == got.icmp_type == 0, name
            assert got.l4_csum is Checksum.NONE, name


def test_from_gateware_unpacks_the_layout():
    want = parse(_CORPUS["tcp doff 4"])
    errors = {name: int(name in want.errors) for name, _ in ParseErrors.as_shape()}
    fields = {k: v for k, v in want.as_dict().items() if k != "errors"}
    packed = data.Const(FrameMetadata.as_shape(), 0)
    value = FrameMetadata.as_shape().const({**fields, "errors": errors}).as_value().value
    assert packed.as_value().value == 0
    assert diff(want, from_gateware(value)) == {}
    top = {name: (value >> f.offset) & ((1 << f.width) - 1)
           for name, f in FrameMetadata.as_shape()}
    assert diff(want, from_gateware(top)) == {}

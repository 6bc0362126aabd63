# Ref: IEEE 802.1Q-2018 9.6 (VLAN tag); RFC 826 (ARP); RFC 791 (IPv4); RFC 8200 (IPv6);
#      RFC 9293 (TCP); RFC 768 (UDP); RFC 792 (ICMP); RFC 4443 (ICMPv6); RFC 1071 (checksum)
"""Reference model of the header parser: one frame's bytes in, its metadata fields out.

Written from the protocol documents with plain byte indexing, independently of the gateware
(and of scapy, so that it can score frames scapy built). It follows the rules stated in
:mod:`crossnic.gateware.layouts`; :func:`from_gateware` turns the packed
:class:`~crossnic.gateware.layouts.FrameMetadata` the gateware emits into the same
:class:`ParsedFrame`, so the two compare field by field with :func:`diff`.
"""

from dataclasses import dataclass, field, fields

from crossnic.gateware.layouts import Checksum, FrameMetadata, L3Proto, L4Proto, ParseErrors

__all__ = ["ParsedFrame", "diff", "from_gateware", "ones_complement_sum", "parse", "to_gateware"]

# Protocol numbers, written out here rather than imported, so a slip in either copy shows up.
_TPID = 0x8100
_ARP, _IPV4, _IPV6 = 0x0806, 0x0800, 0x86DD
_ICMP, _TCP, _UDP, _ICMPV6 = 1, 6, 17, 58
_V6_EXT = {0, 43, 44, 50, 51, 60, 135, 139, 140, 253, 254}
_L4_NAMES = {
    4: {_TCP: L4Proto.TCP, _UDP: L4Proto.UDP, _ICMP: L4Proto.ICMP},
    6: {_TCP: L4Proto.TCP, _UDP: L4Proto.UDP, _ICMPV6: L4Proto.ICMPV6},
}


@dataclass
class ParsedFrame:
    """Every :class:`FrameMetadata` field, by the same name; ``errors`` is a set of flag names."""
    frame_len: int = 0
    aborted: int = 0
    dst_mac: int = 0
    src_mac: int = 0
    broadcast: int = 0
    multicast: int = 0
    vlan_tagged: int = 0
    vlan_pcp: int = 0
    vlan_dei: int = 0
    vlan_vid: int = 0
    ethertype: int = 0
    l3: L3Proto = L3Proto.NONE
    l3_offset: int = 0
    ip_src: int = 0
    ip_dst: int = 0
    ip_proto: int = 0
    ip_dscp: int = 0
    ip_ecn: int = 0
    ip_ttl: int = 0
    ip_flow_label: int = 0
    ip_more_frags: int = 0
    ip_frag_offset: int = 0
    ip6_ext: int = 0
    arp_op: int = 0
    l4: L4Proto = L4Proto.NONE
    l4_offset: int = 0
    l4_src_port: int = 0
    l4_dst_port: int = 0
    tcp_flags: int = 0
    icmp_type: int = 0
    icmp_code: int = 0
    ip_csum: Checksum = Checksum.NONE
    l4_csum: Checksum = Checksum.NONE
    errors: frozenset = field(default_factory=frozenset)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def ones_complement_sum(data: bytes, start: int = 0) -> int:
    """RFC 1071 sum of big-endian 16-bit words (an odd last byte is padded with zero)."""
    if len(data) % 2:
        data = bytes(data) + b"\x00"
    total = start
    for i in range(0, len(data), 2):
        total += data[i] << 8 | data[i + 1]
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _be(frame: bytes, offset: int, size: int) -> int:
    return int.from_bytes(frame[offset:offset + size], "big")


def parse(frame: bytes, *, aborted: bool = False) -> ParsedFrame:
    """Parse one frame (without FCS) the way the gateware must."""
    frame = bytes(frame)
    n = len(frame)
    m = ParsedFrame(frame_len=min(n, 0xFFFF), aborted=int(aborted))
    errors: set[str] = set()
    try:
        _parse_l2(frame, m, errors)
    finally:
        m.errors = frozenset(errors)
    return m


def _parse_l2(f: bytes, m: ParsedFrame, errors: set[str]) -> None:
    n = len(f)
    tagged = n >= 14 and _be(f, 12, 2) == _TPID
    l2_len = 18 if tagged else 14
    if n < l2_len:
        errors.add("l2_truncated")
        return
    m.dst_mac = _be(f, 0, 6)
    m.src_mac = _be(f, 6, 6)
    m.multicast = f[0] & 1
    m.broadcast = int(m.dst_mac == 0xFFFF_FFFF_FFFF)
    if tagged:
        tci = _be(f, 14, 2)
        m.vlan_tagged, m.vlan_pcp, m.vlan_dei, m.vlan_vid = 1, tci >> 13, tci >> 12 & 1, tci & 0xFFF
    m.ethertype = _be(f, l2_len - 2, 2)
    m.l3_offset = l2_len
    m.l3 = {_ARP: L3Proto.ARP, _IPV4: L3Proto.IPV4, _IPV6: L3Proto.IPV6}.get(
        m.ethertype, L3Proto.OTHER)
    if m.l3 is L3Proto.ARP:
        _parse_arp(f, l2_len, m, errors)
    elif m.l3 is L3Proto.IPV4:
        _parse_ipv4(f, l2_len, m, errors)
    elif m.l3 is L3Proto.IPV6:
        _parse_ipv6(f, l2_len, m, errors)


def _parse_arp(f: bytes, o: int, m: ParsedFrame, errors: set[str]) -> None:
    if len(f) < o + 28:
        errors.add("l3_truncated")
        return
    if not (_be(f, o, 2) == 1 and _be(f, o + 2, 2) == _IPV4 and f[o + 4] == 6 and f[o + 5] == 4):
        errors.add("arp_bad_format")
    m.arp_op = _be(f, o + 6, 2)
    m.ip_src = _be(f, o + 14, 4)   # sender protocol address
    m.ip_dst = _be(f, o + 24, 4)   # target protocol address


def _parse_ipv4(f: bytes, o: int, m: ParsedFrame, errors: set[str]) -> None:
    n = len(f)
    first = f[o] if n > o else 0
    version, ihl = first >> 4, first & 0xF
    hdr_len = 4 * ihl
    if n < o + max(20, hdr_len):
        errors.add("l3_truncated")
        return
    m.ip_dscp, m.ip_ecn = f[o + 1] >> 2, f[o + 1] & 3
    m.ip_more_frags = f[o + 6] >> 5 & 1
    m.ip_frag_offset = _be(f, o + 6, 2) & 0x1FFF
    m.ip_ttl, m.ip_proto = f[o + 8], f[o + 9]
    m.ip_src, m.ip_dst = _be(f, o + 12, 4), _be(f, o + 16, 4)
    if version != 4:
        errors.add("ip_bad_version")
    if ihl < 5:
        errors.add("ip_bad_ihl")
    if errors:
        return
    m.l4_offset = o + hdr_len
    m.ip_csum = (Checksum.OK if ones_complement_sum(f[o:o + hdr_len]) == 0xFFFF
                 else Checksum.BAD)
    total_len = _be(f, o + 2, 2)
    if o + total_len > n:
        errors.add("ip_len_beyond")
    if total_len < hdr_len:
        errors.add("ip_len_short")
        return
    if m.ip_frag_offset:
        return   # a later fragment carries no L4 header
    pseudo = ones_complement_sum(f[o + 12:o + 20])
    _parse_l4(f, 4, o + total_len, m.l4_offset, total_len - hdr_len, pseudo, m, errors)


def _parse_ipv6(f: bytes, o: int, m: ParsedFrame, errors: set[str]) -> None:
    n = len(f)
    if n < o + 40:
        errors.add("l3_truncated")
        return
    version = f[o] >> 4
    traffic_class = (_be(f, o, 2) >> 4) & 0xFF
    m.ip_dscp, m.ip_ecn = traffic_class >> 2, traffic_class & 3
    m.ip_flow_label = _be(f, o, 4) & 0xF_FFFF
    payload_len = _be(f, o + 4, 2)
    m.ip_proto, m.ip_ttl = f[o + 6], f[o + 7]
    m.ip_src, m.ip_dst = _be(f, o + 8, 16), _be(f, o + 24, 16)
    m.ip6_ext = int(m.ip_proto in _V6_EXT)
    if version != 6:
        errors.add("ip_bad_version")
        return
    m.l4_offset = o + 40
    if o + 40 + payload_len > n:
        errors.add("ip_len_beyond")
    pseudo = ones_complement_sum(f[o + 8:o + 40])
    _parse_l4(f, 6, o + 40 + payload_len, m.l4_offset, payload_len, pseudo, m, errors)


def _parse_l4(f: bytes, version: int, ip_end: int, s: int, l4_len: int, pseudo_addr: int,
              m: ParsedFrame, errors: set[str]) -> None:
    """Parse the transport header at ``s``; the datagram ends at ``ip_end`` (maybe past f)."""
    kind = _L4_NAMES[version].get(m.ip_proto, L4Proto.OTHER)
    if kind is L4Proto.OTHER:
        m.l4 = kind
        return
    end = min(len(f), ip_end)
    padded = f + bytes(max(0, s + 20 - len(f)))
    if kind is L4Proto.TCP:
        need = max(20, 4 * (padded[s + 12] >> 4))
    else:
        need = {L4Proto.UDP: 8, L4Proto.ICMP: 8, L4Proto.ICMPV6: 4}[kind]
    if s + need > end:
        errors.add("l4_truncated")
        return
    m.l4 = kind
    if kind in (L4Proto.TCP, L4Proto.UDP):
        m.l4_src_port, m.l4_dst_port = _be(f, s, 2), _be(f, s + 2, 2)
    if kind is L4Proto.TCP:
        m.tcp_flags = (f[s + 12] & 1) << 8 | f[s + 13]
        if f[s + 12] >> 4 < 5:
            errors.add("l4_bad_header")
    elif kind is L4Proto.UDP:
        if _be(f, s + 4, 2) != l4_len:
            errors.add("l4_bad_header")
    else:
        m.icmp_type, m.icmp_code = f[s], f[s + 1]
    checkable = not (errors & {"ip_len_beyond", "l4_bad_header"}) and not m.ip_more_frags
    if not checkable:
        return
    udp_csum = _be(f, s + 6, 2) if kind is L4Proto.UDP else None
    if udp_csum == 0 and version == 4:
        return   # the sender computed no checksum
    if udp_csum == 0 and version == 6:
        m.l4_csum = Checksum.BAD
        return
    total = ones_complement_sum(f[s:ip_end])
    if kind is not L4Proto.ICMP:   # ICMPv4 has no pseudo header
        total = ones_complement_sum(
            bytes([0, m.ip_proto]) + l4_len.to_bytes(4, "big"), total + pseudo_addr)
    m.l4_csum = Checksum.OK if total == 0xFFFF else Checksum.BAD


def _unpack(layout, value: int) -> dict:
    return {name: (value >> fld.offset) & ((1 << fld.width) - 1) for name, fld in layout}


def from_gateware(value) -> ParsedFrame:
    """Turn a packed :class:`FrameMetadata` (an int, or a ``{field: int}`` dict of its
    top-level fields as :func:`crossnic.sim.cocotb_util.unpack` gives) into a ParsedFrame."""
    layout = FrameMetadata.as_shape()
    raw = _unpack(layout, value) if isinstance(value, int) else dict(value)
    out = {}
    for name, fld in layout:
        shape = fld.shape
        if shape is ParseErrors:
            flags = _unpack(ParseErrors.as_shape(), raw[name])
            out[name] = frozenset(k for k, v in flags.items() if v)
        elif isinstance(shape, type) and issubclass(shape, (L3Proto, L4Proto, Checksum)):
            out[name] = shape(raw[name])
        else:
            out[name] = raw[name]
    return ParsedFrame(**out)


def diff(expected: ParsedFrame, got: ParsedFrame) -> dict:
    """``{field: (expected, got)}`` for every field that differs."""
    a, b = expected.as_dict(), got.as_dict()
    return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


def to_gateware(frame: ParsedFrame) -> int:
    """Pack a ParsedFrame into the integer a :class:`FrameMetadata` port carries (the inverse
    of :func:`from_gateware`), to feed blocks behind the parser with model-made metadata."""
    layout = FrameMetadata.as_shape()
    value = 0
    for name, fld in layout:
        v = getattr(frame, name)
        if fld.shape is ParseErrors:
            v = sum(1 << f.offset for n, f in ParseErrors.as_shape() if n in v)
        value |= (int(getattr(v, "value", v)) & ((1 << fld.width) - 1)) << fld.offset
    return value

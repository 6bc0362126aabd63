# Ref: IEEE 802.3-2022 3.2.6 (type); IEEE 802.1Q-2018 9.6 (VLAN tag); RFC 826 (ARP);
#      RFC 791 (IPv4); RFC 8200 (IPv6); RFC 9293 (TCP); RFC 768 (UDP); RFC 792 (ICMP);
#      RFC 4443 (ICMPv6); RFC 1071 (checksum)
"""Layouts of the datapath's side information, kept in one place.

The host driver, the Python reference models and the docs mirror these layouts by code (walk
the :class:`amaranth.lib.data.Struct` fields), never by hand. Structs are packed first field in
the least significant bits.

Byte orders: multi-byte protocol fields (ports, ethertype, lengths, addresses) hold the value
as read in network byte order, so ``dst_mac`` of ``01:00:5e:00:00:01`` is ``0x01005e000001``
and ``ip_src`` of ``10.0.0.1`` is ``0x0a000001`` (``int(ipaddress.ip_address(...))``).

Header-parser rules (what :class:`FrameMetadata` holds for any frame, valid or not):

* A header whose bytes are not all inside the frame is *truncated*: its ``*_truncated`` error
  flag is set, none of its fields are reported (they read 0) and nothing after it is parsed.
* L2: 14 bytes, or 18 when bytes 12..13 are the 802.1Q TPID 0x8100 (one tag only; a second tag
  or a QinQ 0x88a8 tag shows as an unparsed ``ethertype``, ``l3 = OTHER``).
* L3 by ``ethertype``: ARP 0x0806 (28 bytes), IPv4 0x0800 (``max(20, 4*IHL)`` bytes), IPv6
  0x86dd (40 bytes), anything else ``OTHER`` (no error). A present IP header is *usable* when
  its version matches and (IPv4) IHL >= 5; only a usable header gives ``l4_offset``, a length
  check and L4 parsing (IPv4 also needs total length >= 4*IHL and fragment offset 0).
* IPv6 next-header values other than TCP (6), UDP (17) and ICMPv6 (58) are not parsed: all
  extension headers (0 hop-by-hop, 43 routing, 44 fragment, 50 ESP, 51 AH, 60 destination
  options, 135 mobility, 139 HIP, 140 shim6, 253/254 experiments; flagged by ``ip6_ext``) and
  other protocols give ``l4 = OTHER``. For IPv4, protocols other than 1/6/17 give ``OTHER``.
* L4 header sizes: TCP ``max(20, 4*data offset)``, UDP 8, ICMP 8, ICMPv6 4; the header must lie
  inside both the frame and the IP datagram, else ``l4_truncated`` and ``l4 = NONE``.
* Checksums: see :class:`Checksum`.
"""

from amaranth.lib import data, enum

__all__ = [
    "ETHERTYPE_ARP", "ETHERTYPE_IPV4", "ETHERTYPE_IPV6", "TPID_8021Q",
    "IPPROTO_ICMP", "IPPROTO_ICMPV6", "IPPROTO_TCP", "IPPROTO_UDP", "IPV6_EXT_HEADERS",
    "L3Proto", "L4Proto", "Checksum", "ParseErrors", "FrameMetadata",
    "FrameClass", "Cast", "Priority", "DropReason", "ClassResult", "ClassifierInput",
    "RxDescriptor", "RxCompletion", "TxDescriptor", "DESCRIPTOR_BYTES", "COMPLETION_BYTES",
    "PAGE_BITS", "MAX_VF_RINGS", "DmaWindow", "VfGrant", "VfSpoof",
]

TPID_8021Q = 0x8100        # IEEE 802.1Q C-VLAN tag protocol identifier
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV6 = 0x86DD
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58
#: IPv6 next-header values that are extension headers (IANA "IPv6 Extension Header Types",
#: RFC 8200 section 4); the parser does not walk them.
IPV6_EXT_HEADERS = frozenset({0, 43, 44, 50, 51, 60, 135, 139, 140, 253, 254})


class L3Proto(enum.Enum, shape=3):
    """What follows the Ethernet header."""
    NONE = 0    #: no complete Ethernet header (frame shorter than 14, or 18 when tagged)
    ARP = 1     #: ethertype 0x0806
    IPV4 = 2    #: ethertype 0x0800
    IPV6 = 3    #: ethertype 0x86dd
    OTHER = 4   #: any other ethertype or 802.3 length value; not an error


class L4Proto(enum.Enum, shape=3):
    """The parsed transport header; anything but ``NONE``/``OTHER`` means its fields are valid."""
    NONE = 0    #: no L4 header: not IP, unusable IP header, non-first fragment, or truncated
    TCP = 1
    UDP = 2
    ICMP = 3    #: ICMP over IPv4 (protocol 1)
    ICMPV6 = 4  #: ICMPv6 over IPv6 (next header 58)
    OTHER = 5   #: usable IP header, payload not parsed (other protocol, IPv6 extension header)


class Checksum(enum.Enum, shape=2):
    """Result of a checksum check (RX checksum offload).

    The IPv4 header checksum is checked for every usable IPv4 header. The L4 checksum (TCP, UDP,
    ICMPv6 with the pseudo header; ICMP without) is checked when the L4 header was parsed, the
    whole datagram is in the frame, the datagram is not a fragment and no L4 header error was
    found. UDP over IPv4 with checksum 0 is ``NONE`` (sender sent none); UDP over IPv6 with
    checksum 0 is ``BAD`` (RFC 8200 section 8.1).
    """
    NONE = 0    #: not checked (not applicable or not verifiable)
    OK = 1      #: ones' complement sum over the covered bytes is 0xffff
    BAD = 2


class ParseErrors(data.Struct):
    """Why a frame's headers could not be (fully) parsed; all zero for a well-formed frame."""
    #: Frame shorter than its Ethernet header (14 bytes, 18 with an 802.1Q tag).
    l2_truncated: 1
    #: ARP (28 bytes), IPv4 (``max(20, 4*IHL)``) or IPv6 (40) header not complete in the frame.
    l3_truncated: 1
    #: L4 header (see module doc) not inside both the frame and the IP datagram.
    l4_truncated: 1
    #: IPv4 ethertype with version != 4, or IPv6 ethertype with version != 6.
    ip_bad_version: 1
    #: IPv4 IHL < 5.
    ip_bad_ihl: 1
    #: IPv4 total length (IPv6: 40 + payload length) reaches past the end of the frame.
    ip_len_beyond: 1
    #: IPv4 total length shorter than the IPv4 header (4*IHL).
    ip_len_short: 1
    #: TCP data offset < 5, or UDP length != IP payload length.
    l4_bad_header: 1
    #: ARP that is not Ethernet/IPv4 (htype 1, ptype 0x0800, hlen 6, plen 4).
    arp_bad_format: 1


class FrameMetadata(data.Struct):
    """What the header parser learnt about one frame; one per frame, in frame order.

    Fields of a header that is absent or truncated read 0 (see the module doc).
    """
    #: Frame length in bytes as received (FCS stripped); saturates at 65535.
    frame_len: 16
    #: The frame ended with ``error`` set on its last beat (aborted; discard it).
    aborted: 1
    dst_mac: 48
    src_mac: 48
    #: Destination is ff:ff:ff:ff:ff:ff (``multicast`` is then set too).
    broadcast: 1
    #: Destination group (I/G) bit set: multicast or broadcast.
    multicast: 1
    #: One 802.1Q tag (TPID 0x8100) follows the source MAC.
    vlan_tagged: 1
    vlan_pcp: 3
    vlan_dei: 1
    vlan_vid: 12
    #: Ethertype after the tag (if any): the type of the L2 payload.
    ethertype: 16
    l3: L3Proto
    #: Byte offset of the L2 payload (14 or 18); 0 without a complete Ethernet header.
    l3_offset: 8
    #: IPv4 (low 32 bits) or IPv6 source address; ARP: sender protocol address.
    ip_src: 128
    #: IPv4 (low 32 bits) or IPv6 destination address; ARP: target protocol address.
    ip_dst: 128
    #: IPv4 protocol or IPv6 next header.
    ip_proto: 8
    #: Differentiated services code point (IPv4 TOS / IPv6 traffic class, upper 6 bits).
    ip_dscp: 6
    ip_ecn: 2
    #: IPv4 TTL or IPv6 hop limit.
    ip_ttl: 8
    #: IPv6 flow label (0 for IPv4).
    ip_flow_label: 20
    #: IPv4 MF flag.
    ip_more_frags: 1
    #: IPv4 fragment offset in 8-byte units; non-zero means no L4 header in this frame.
    ip_frag_offset: 13
    #: IPv6 next header is an extension header (not parsed, ``l4 = OTHER``).
    ip6_ext: 1
    #: ARP operation (1 request, 2 reply).
    arp_op: 16
    l4: L4Proto
    #: Byte offset of the IP payload (L4 header) for a usable IP header, else 0.
    l4_offset: 8
    #: TCP/UDP ports (0 for other L4).
    l4_src_port: 16
    l4_dst_port: 16
    #: TCP flags: bit 0 FIN .. bit 7 CWR, bit 8 NS/AE (as scapy's ``TCP.flags``).
    tcp_flags: 9
    #: ICMP / ICMPv6 type and code.
    icmp_type: 8
    icmp_code: 8
    ip_csum: Checksum
    l4_csum: Checksum
    errors: ParseErrors


# --- classification and DMA ------------------------------------------------------------------
# Ref: ../shared/DESIGN.md "Host interface"; Crossbow's local/forwarding receive rings.


class FrameClass(enum.Enum, shape=1):
    """Whether a frame is for the receiving VNIC's own stack or for it to forward."""
    FORWARD = 0   #: destination IP not in the local-IP table for the VNIC (or not IP)
    LOCAL = 1     #: destination IP registered for the VNIC in the local-IP table


class Cast(enum.Enum, shape=2):
    """Destination MAC kind."""
    UNICAST = 0
    MULTICAST = 1
    BROADCAST = 2


class Priority(enum.Enum, shape=2):
    """dladm/flowadm priority levels."""
    LOW = 0
    MEDIUM = 1
    HIGH = 2


class DropReason(enum.Enum, shape=4):
    """Why the card dropped a received frame (every drop is counted under one reason)."""
    NONE = 0              #: delivered
    UNKNOWN_UNICAST = 1   #: unicast to no MAC-table entry and the policy is drop
    MULTICAST_FILTER = 2  #: multicast not in the MAC table nor passed by the multicast filter
    VNIC_DISABLED = 3     #: the VNIC the frame belongs to is disabled
    FLOW_DROP = 4         #: a flow entry whose action is drop matched
    RING_DISABLED = 5     #: the target ring is not enabled
    NO_DESCRIPTOR = 6     #: the target ring has no posted receive buffer
    COMPLETION_FULL = 7   #: the target ring's completion ring has no free entry
    TOO_LONG = 8          #: the frame is longer than the posted buffer
    BAD_DESCRIPTOR = 9    #: the posted buffer's address is not aligned
    STUB_VLAN = 10        #: from a wire, tagged with one of the card's etherstub VLANs


#: What the classifier takes for each frame: its metadata and the port it came in on.
ClassifierInput = data.StructLayout({"port": 2, "meta": FrameMetadata})


class ClassResult(data.Struct):
    """What the classifier decided for one frame, with what its completion will carry.

    One per frame, in frame order, beside the frame on its way to the receive DMA engine.
    """
    length: 16
    #: Physical port the frame came in on (or the hairpin for VNIC-to-VNIC traffic).
    port: 2
    ring: 8
    vnic: 8
    vns_id: 8
    cls: FrameClass
    cast: Cast
    priority: Priority
    #: A flow-table entry matched (``flow_id`` is its index).
    flow_hit: 1
    flow_id: 8
    vlan_tagged: 1
    #: 802.1Q tag control: PCP (15:13), DEI (12), VID (11:0).
    vlan_tci: 16
    ip_csum: Checksum
    l4_csum: Checksum
    #: Hash of (IP source, IP destination, protocol, ports); see ``crossnic.gateware.classifier``.
    flow_hash: 32
    drop: DropReason


#: Size of a receive/transmit descriptor and of a receive completion in host memory.
DESCRIPTOR_BYTES = 16
COMPLETION_BYTES = 16


class RxDescriptor(data.Struct):
    """A receive buffer posted by the host (16 bytes, little-endian in host memory)."""
    #: Bus address of the buffer; must be 8-byte aligned.
    addr: 64
    #: Buffer size in bytes; a longer frame is dropped (``TOO_LONG``), never cut.
    length: 16
    _reserved: 48


class RxCompletion(data.Struct):
    """Written by the card into a ring's completion ring for each received frame (16 bytes).

    ``phase`` is 1 on the first pass through the completion ring and flips on every wrap, so
    the host finds new entries without reading a card register (memory starts zeroed).
    """
    length: 16
    vlan_tci: 16
    ring: 8
    vnic: 8
    vns_id: 8
    flow_id: 8
    flow_hash: 32
    cls: FrameClass
    cast: Cast
    ip_csum: Checksum
    l4_csum: Checksum
    flow_hit: 1
    vlan_tagged: 1
    priority: Priority
    port: 2
    _reserved: 18
    phase: 1


class TxDescriptor(data.Struct):
    """A frame posted for transmission (16 bytes, little-endian in host memory)."""
    addr: 64
    length: 16
    _reserved: 48


# --- virtual functions -------------------------------------------------------------------------

#: DMA windows are whole 4 KiB pages (a VM's memory is granted in pages).
PAGE_BITS = 12
#: Rings a virtual function may own (its window has room for this many sets of each kind).
MAX_VF_RINGS = 8


class DmaWindow(data.Struct):
    """Host memory ``[base, limit)`` in 4 KiB pages that a VF's rings may reach; base >= limit
    grants nothing."""
    base: 52
    limit: 52


class VfGrant(data.Struct):
    """What the PF gave one virtual function: its rings (``ring_base`` ..
    ``ring_base + ring_count - 1``, the same numbers for receive and transmit) and the host
    memory its DMA may touch."""
    enable: 1
    ring_base: 8
    ring_count: 4
    windows: data.ArrayLayout(DmaWindow, 2)


class VfSpoof(data.Struct):
    """What a VF's transmitted frames must carry (each check only when its bit is set)."""
    check_mac: 1
    check_vlan: 1
    check_ip: 1
    vlan: 12                         #: the port VLAN (0: frames must be untagged)
    macs: data.ArrayLayout(48, 2)    #: source MACs allowed (0: none)
    ips: data.ArrayLayout(32, 2)     #: IPv4 sources allowed (0: none)

# Ref: IEEE 802.1Q-2018 9.6 (VLAN tag); RFC 826 (ARP); RFC 791 (IPv4); RFC 8200 (IPv6);
#      RFC 9293 (TCP); RFC 768 (UDP); RFC 792 (ICMP); RFC 4443 (ICMPv6);
#      RFC 1071 / RFC 1624 (ones' complement checksum)
"""Header parser: frames pass through unchanged, and one :class:`FrameMetadata` per frame
comes out beside them (the rules are in :mod:`crossnic.gateware.layouts`).

The pipeline never stalls; every stage takes one beat per clock:

* stage 0 takes a beat, counts its byte position, copies the first 58 bytes of the frame
  (Ethernet, tag, 40 bytes of L3) into a header buffer at fixed places, and sets the type
  flags (802.1Q tag, ARP, IPv4, IPv6) as the type bytes arrive;
* stage 1 decodes the buffer into registered byte ranges (IPv4 header, pseudo-header addresses,
  IP payload, L4 header) and marks which lanes of the beat fall in which range. Ranges start
  at least 9 bytes after the bytes that define them, so the registered decode, one beat behind,
  is always in time (up to 8 bytes per beat); only the start of the IPv4 header, right after a
  possible VLAN tag, uses the tag flag of this very beat. The buffer is not cleared between
  frames: a byte a short frame does not reach keeps an older frame's value, and the length
  checks keep such bytes out of every result (ranges past L3 byte 20 only move by IHL, which
  has arrived by then);
* stage 2 adds the marked lanes into ones'-complement accumulators (the byte at an even frame
  offset is the high byte: L3 starts at an even offset and every IP header length is even;
  carry-save adders keep it to one carry chain a clock), captures the L4 header bytes, and at
  the frame's last beat takes a snapshot, with the L3 bytes raw;
* stage 3 compares lengths, tests header fields and adds up the partial sums; stage 4 applies
  the rules of :mod:`~crossnic.gateware.layouts` as a few control bits, takes the L3 fields
  apart and gives the checksum verdicts; stage 5 zeroes the fields of absent headers (one level
  of logic behind registered decisions) and writes the record into its FIFO in the clock the
  frame's last beat enters the ``o`` FIFO.

Back-pressure: ``i.ready`` is a register that admits a beat only while the beats and frames in
flight fit the output FIFOs (16 beats, 16 metadata records), so neither ``o.ready`` nor
``meta.ready`` reaches back into the pipeline. A record is offered on ``meta`` only after its
frame's first beat has been offered on ``o``, and in the same order; it is in its FIFO before
the frame's last beat is offered. A consumer may wait for a frame's record before taking its
last beat, or for the last beat before taking the record, but not for the record before taking
the frame's first beats (a frame longer than the ``o`` FIFO would never complete).
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .layouts import (
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPV6_EXT_HEADERS,
    TPID_8021Q,
    Checksum,
    FrameMetadata,
    L3Proto,
    L4Proto,
    ParseErrors,
)
from .packet import PacketSignature, packet_layout

__all__ = ["HeaderParser"]

#: Bytes of the frame kept in the header buffer: 18 (Ethernet + tag) + 40 (IPv6 header).
HEADER_BYTES = 58
#: Bytes of the L4 header that are captured: ports / type, code (0..3), UDP length and
#: checksum (4..7), TCP data offset and flags (12, 13).
L4_BYTES = (0, 1, 2, 3, 4, 5, 6, 7, 12, 13)
#: Width of byte positions; positions saturate, so frames of any length are safe.
POS_BITS = 17
#: Entries of the output FIFOs (beats on ``o``, records on ``meta``).
OUT_DEPTH = 16

# Registered decode of the header buffer (stage 1 -> 2), copied into the snapshot.
_params_layout = data.StructLayout({
    "dst_mac":  48,
    "src_mac":  48,
    "tagged":   1,
    "tci":      16,
    "ethertype": 16,
    "is_arp":   1,
    "is_ip4":   1,
    "is_ip6":   1,
    "ihl":      4,
    "proto":    8,       # IPv4 protocol / IPv6 next header
    "ip_len":   17,      # IPv4 total length, IPv6 40 + payload length
    "hdr_len":  7,       # IPv4 4*IHL, IPv6 40
    "l3off":    5,
    "l3_end":   8,       # where the ARP / IPv4 (4*IHL, at least 20) / IPv6 header ends
    # Absolute byte ranges [lo, hi) summed by the accumulators (stage 1 uses them).
    "hdr_hi":   8,       # IPv4 header end (its start comes from the buffer directly)
    "addr_lo":  8,       # IP source + destination addresses (pseudo header)
    "addr_hi":  8,
    "pay_lo":   8,       # IP payload = L4 segment; also where the L4 header starts
    "pay_hi":   POS_BITS + 1,
})

#: L3 bytes the snapshot keeps raw (from byte 14: the first 40 L3 bytes, tagged or not).
L3_RAW = (14, HEADER_BYTES)

# L3 fields, taken apart from the raw bytes (stage 3 uses a few for its tests, stage 4 all).
_l3_layout = data.StructLayout({
    "version":  4,
    "tos":      8,       # IPv4 TOS or IPv6 traffic class
    "ttl":      8,
    "flow":     20,
    "mf":       1,
    "frag_off": 13,
    "ip_src":   128,
    "ip_dst":   128,
    "arp_op":   16,
    "arp_fmt_ok": 1,
})

# Type flags, set as the type bytes arrive (final once byte 17 is in).
_types_layout = data.StructLayout({"tpid": 1, "arp": 1, "ip4": 1, "ip6": 1})


def _beat_layout(width: int) -> data.StructLayout:
    return data.StructLayout({
        "p":     packet_layout(width),
        "pos":   POS_BITS,   # byte offset of lane 0 within the frame
        "start": 1,          # first beat of a frame (counted here: the beat after a last)
    })


def _mask_layout(width: int) -> data.StructLayout:
    return data.StructLayout({
        "hdr":  width,
        "addr": width,
        "pay":  width,
        "pay_first": 1,    # the payload (L4 segment) starts in this beat
        "sel":  data.ArrayLayout(width, len(L4_BYTES)),
    })


def _snapshot_layout(parts: int) -> data.StructLayout:
    """Stage 2 -> 3. Sums are kept in ``parts`` accumulators (one per 4 lanes) so that no
    accumulator adds more than two words a clock."""
    return data.StructLayout({
        "p":        _params_layout,
        "l3raw":    8 * (L3_RAW[1] - L3_RAW[0]),
        "n":        POS_BITS + 1,        # frame length
        "room":     signed(POS_BITS + 2),  # bytes from the L4 header start to the frame end
        "aborted":  1,
        "acc_hdr":  data.ArrayLayout(24, parts),
        "acc_addr": data.ArrayLayout(24, parts),
        "acc_pay":  data.ArrayLayout(32, parts),
        "l4":       data.ArrayLayout(8, len(L4_BYTES)),
        "l4_len":   signed(19),          # IP payload length (ip_len - hdr_len); < 0 if too short
        "use_pseudo": 1,                 # the L4 checksum covers a pseudo header (not ICMP)
    })

# Stage 3 -> 4: comparisons done, sums partly added.
_checked_layout = data.StructLayout({
    "p":         _params_layout,
    "l3":        8 * 40,   # the first 40 L3 bytes, tag removed
    "mf":        1,
    "arp_fmt_ok": 1,
    "frame_len": 16,
    "aborted":   1,
    "l4":        data.ArrayLayout(8, len(L4_BYTES)),
    # From the lengths:
    "l2_ok":     1,    # Ethernet header complete
    "l3_fits":   1,    # ARP / IPv4 / IPv6 header complete
    "len_beyond": 1,   # IP datagram reaches past the frame
    "l4_fits":   1,    # L4 header inside frame and datagram
    # From the header fields alone:
    "l3_known":  1,    # ARP, IPv4 or IPv6
    "ip":        1,    # IPv4 or IPv6
    "bad_ver":   1,
    "bad_ihl":   1,
    "len_short": 1,    # IPv4 total length < 4 * IHL
    "frag_later": 1,   # IPv4 fragment offset != 0
    "tcp":       1,
    "udp":       1,
    "icmp":      1,    # ICMP over IPv4 or ICMPv6 over IPv6
    "bad_l4":    1,    # TCP data offset < 5 or UDP length != IP payload length
    "udp_zero4": 1,    # UDP checksum 0 over IPv4 ...
    "udp_zero6": 1,    # ... over IPv6
    "ip6_ext":   1,
    "sum_ip":    17,   # IPv4 header sum folded once
    "sum_l4":    32,   # L4 segment + pseudo-header sum, unfolded
})


# Stage 4 -> 5: the rules decided, fields still raw.
_decided_layout = data.StructLayout({
    "p":         _params_layout,
    "f":         _l3_layout,
    "frame_len": 16,
    "aborted":   1,
    "l4":        data.ArrayLayout(8, len(L4_BYTES)),
    "l2_ok":     1,    # report the Ethernet fields
    "l3_ok":     1,    # report the ARP / IP header fields
    "l3_ip":     1,    # ... and it is IP
    "l3_ip6":    1,    # ... and it is IPv6 with an extension header next (ip6_ext)
    "ip_ok":     1,    # usable IP header: report l4_offset
    "ports":     1,    # report TCP/UDP ports
    "tcp":       1,    # report TCP flags
    "icmp":      1,    # report ICMP type and code
    "l3":        L3Proto,
    "l4_proto":  L4Proto,
    "ip_csum":   Checksum,
    "l4_csum":   Checksum,
    "errors":    ParseErrors,
})


def _be(byte, offset: int, size: int) -> Value:
    """Big-endian value of ``size`` bytes starting at ``offset`` (``byte(k)`` gives byte k)."""
    return Cat(*[byte(offset + size - 1 - i) for i in range(size)])


def _ge_small(x, y, bits: int = 7) -> Value:
    """``x >= y`` for a ``y`` below 2**bits: only the low bits need a comparator."""
    high = x[bits:-1] if x.shape().signed else x[bits:]
    below_zero = x[-1] if x.shape().signed else C(0)
    return ~below_zero & ((high != 0) | (x[:bits] >= y))


def _sum_of(m: Module, terms, width: int = 32) -> Value:
    """Sum of 1..4 terms (known to fit ``width`` bits) with one carry chain: carry-save adders,
    one LUT level each, reduce them to two first."""
    named = []
    for term in terms:   # named, so that taking bits apart does not copy the expression
        sig = Signal(width)
        m.d.comb += sig.eq(term)
        named.append(sig)
    while len(named) > 2:
        a, b, c, *rest = named
        save, carry = Signal(width), Signal(width)
        m.d.comb += [
            save.eq(a ^ b ^ c),
            carry.eq(Cat(C(0), ((a & b) | (a & c) | (b & c))[:width - 1])),
        ]
        named = [save, carry, *rest]
    return named[0] + named[1] if len(named) == 2 else named[0]


def _is_ones(total) -> Value:
    """A once-folded ones' complement sum (at most 0x1fffe) folds to 0xffff."""
    return (total == 0xFFFF) | (total == 0x1FFFE)


class HeaderParser(wiring.Component):
    """Parses Ethernet / 802.1Q / ARP / IPv4 / IPv6 / TCP / UDP / ICMP / ICMPv6 headers.

    Parameters
    ----------
    width : int
        Bytes per beat: 1, 2, 4 or 8.

    Attributes
    ----------
    i : In(PacketSignature(width))
        Frames in. ``first`` is passed on but not needed: a frame starts after a ``last``.
    o : Out(PacketSignature(width))
        The same frames, unchanged; a beat taken on ``i`` is offered here 7 clocks later.
    meta : Out(stream.Signature(FrameMetadata))
        One record per frame, in frame order; offered from the clock after the frame's first
        beat was offered on ``o`` and, when earlier records were taken, no later than its last
        beat (a clock later for a one-beat frame).
    """

    def __init__(self, width: int = 4):
        if width not in (1, 2, 4, 8):
            raise ValueError(f"HeaderParser width must be 1, 2, 4 or 8 bytes, not {width}")
        self._width = width
        super().__init__({
            "i":    In(PacketSignature(width)),
            "o":    Out(PacketSignature(width)),
            "meta": Out(stream.Signature(FrameMetadata)),
        })

    @property
    def width(self) -> int:
        return self._width

    def elaborate(self, platform):
        m = Module()
        w = self._width

        # ---- stage 0: admission, positions and the header buffer --------------------------
        # Only valid bits and counters are reset; data registers need no reset (reset_less
        # keeps them off the reset net).
        ready = Signal()         # registered: the output FIFOs can take all that is in flight
        in_frame = Signal()
        pos_reg = Signal(POS_BITS)
        pos0 = Signal(POS_BITS)
        accept = Signal()
        m.d.comb += [
            self.i.ready.eq(ready),
            accept.eq(self.i.valid & ready),
            pos0.eq(Mux(in_frame, pos_reg, 0)),
        ]
        pos_max = (1 << POS_BITS) - w
        with m.If(accept):
            m.d.sync += in_frame.eq(~self.i.p.last)
            with m.If(self.i.p.last):
                m.d.sync += pos_reg.eq(0)
            with m.Elif(pos0 != pos_max):
                m.d.sync += pos_reg.eq(pos0 + w)

        # Which beat of the header buffer the next beat is, one-hot (the last bit: past it).
        header_beats = (HEADER_BYTES + w - 1) // w
        hsel = Signal(header_beats + 1, init=1)
        with m.If(accept):
            with m.If(self.i.p.last):
                m.d.sync += hsel.eq(1)
            with m.Elif(~hsel[-1]):
                m.d.sync += hsel.eq(hsel << 1)

        in_lanes = [Mux(self.i.p.keep[j], self.i.p.data[8 * j:8 * j + 8], 0) for j in range(w)]
        hbuf = Signal(8 * HEADER_BYTES, reset_less=True)

        def hb(k):
            return hbuf[8 * k:8 * k + 8]

        # Bytes a frame does not reach keep an older frame's value; the length checks keep
        # them out of every result, so the buffer needs no clearing.
        for beat in range(header_beats):
            ks = range(beat * w, min(HEADER_BYTES, (beat + 1) * w))
            with m.If(accept & hsel[beat]):
                m.d.sync += [hb(k).eq(in_lanes[k - beat * w]) for k in ks]

        # Type flags are set as the type bytes arrive, to keep the decode below shallow.
        types = Signal(_types_layout, reset_less=True)

        def arriving(k):     # byte k as it will be once this beat is written
            beat = k // w
            return Mux(hsel[beat], in_lanes[k - beat * w], hb(k))

        def type_flags(offset):
            value = Cat(arriving(offset + 1), arriving(offset))
            return [types.arp.eq(value == ETHERTYPE_ARP), types.ip4.eq(value == ETHERTYPE_IPV4),
                    types.ip6.eq(value == ETHERTYPE_IPV6)]

        with m.If(accept & hsel[13 // w]):
            m.d.sync += [*type_flags(12), types.tpid.eq(Cat(arriving(13), arriving(12))
                                                        == TPID_8021Q)]
        with m.Elif(accept & hsel[17 // w] & types.tpid):  # byte 13 came in an earlier beat
            m.d.sync += type_flags(16)
        with m.Elif(accept & hsel[0]):
            m.d.sync += types.eq(0)

        b1 = Signal(_beat_layout(w), reset_less=True)
        b1_valid = Signal()
        m.d.sync += [
            b1_valid.eq(accept),
            b1.p.eq(self.i.p),
            b1.pos.eq(pos0),
            b1.start.eq(~in_frame),
        ]

        # ---- stage 1: decode the buffer (registered) and mark lanes -----------------------
        # ``params`` lags the buffer by a clock: beside beat n in stage 1 it holds the decode of
        # beats up to n - 1, beside beat n in stage 2 that of beats up to n.
        params = Signal(_params_layout, reset_less=True)
        m.d.sync += params.eq(self._decode(m, hb, types))

        tagged_now = types.tpid

        sh = (w - 1).bit_length()      # log2(width): positions are multiples of the width

        def lanes_ge(pos, x, *, small=True):
            """Lanes j of a beat at ``pos`` with pos + j >= x, comparing the beat index with
            x // w and the lane with x % w; ``small`` thresholds (< 256) only need the low
            byte of ``pos`` and whether it is past 255."""
            if small:
                pos, x, big = pos[:8], x[:8], pos1_big
            else:
                big = C(0)
            beat, xh = pos[sh:], x[sh:]
            gt, eq = Signal(), Signal()
            m.d.comb += [gt.eq(big | (beat > xh)), eq.eq(~big & (beat == xh))]
            if sh == 0:
                return gt | eq
            return Cat(*[gt | (eq & (x[:sh] <= j)) for j in range(w)])

        pos1 = b1.pos
        pos1_big = pos1[8:].any()
        keep1 = b1.p.keep
        masks = Signal(_mask_layout(w))
        hdr_lo = Mux(tagged_now, lanes_ge(pos1, C(18, 8)), lanes_ge(pos1, C(14, 8)))
        m.d.comb += [
            masks.hdr.eq(keep1 & hdr_lo & ~lanes_ge(pos1, params.hdr_hi)),
            masks.addr.eq(keep1 & lanes_ge(pos1, params.addr_lo)
                          & ~lanes_ge(pos1, params.addr_hi)),
            masks.pay.eq(keep1 & lanes_ge(pos1, params.pay_lo)
                         & ~lanes_ge(pos1, params.pay_hi, small=False)),
        ]
        # Lane j holds L4 byte k when pos + j == pay_lo + k: with pay_lo = l4_beat * w +
        # l4_lane, that is (beat - l4_beat) * w == l4_lane + k - j, for a small beat distance.
        l4_lane = params.pay_lo[:sh]
        l4_near = ~pos1_big & (params.pay_lo != 0)    # pay_lo is 0 unless the frame is IP
        dbeat = Signal(signed(10))
        m.d.comb += dbeat.eq(pos1[sh:8] - params.pay_lo[sh:])
        for n, k in enumerate(L4_BYTES):
            lanes = []
            for j in range(w):
                hits = [(dbeat == d) & (l4_lane == d * w + j - k if sh else C(1))
                        for d in range((w + 12) // w + 1) if 0 <= d * w + j - k < w]
                lanes.append(Cat(*hits).any() if hits else C(0))
            m.d.comb += masks.sel[n].eq(Mux(l4_near, keep1 & Cat(*lanes), 0))
        m.d.comb += masks.pay_first.eq(l4_near & (dbeat == 0))

        b2 = Signal(_beat_layout(w), reset_less=True)
        b2_valid = Signal()
        masks2 = Signal(_mask_layout(w), reset_less=True)
        m.d.sync += [b2.eq(b1), b2_valid.eq(b1_valid), masks2.eq(masks)]

        # ---- stage 2: accumulate sums, capture L4 bytes, snapshot at the last beat --------
        lanes2 = [b2.p.data[8 * j:8 * j + 8] for j in range(w)]

        parts = max(1, w // 4)

        def beat_words(mask, part):
            picked = [Mux(mask[j], lanes2[j], 0) for j in range(w)]
            if w == 1:   # the frame offset's parity decides which half of a word this is
                return [Mux(b2.pos[0], picked[0], Cat(C(0, 8), picked[0]))]
            return [Cat(picked[2 * i + 1], picked[2 * i])
                    for i in range(w // 2) if 2 * i // 4 == part]

        # The pseudo header's protocol + length (0 for ICMP, which has none) joins the payload
        # sum in the beat where the payload starts; its bytes came at least 11 bytes earlier,
        # so the decode of a clock ago has them.
        pconst = Signal(18, reset_less=True)
        use_pseudo = ~(params.is_ip4 & (params.proto == IPPROTO_ICMP))
        m.d.sync += pconst.eq(Mux(use_pseudo, params.proto + params.ip_len - params.hdr_len, 0))

        snap = Signal(_snapshot_layout(parts), reset_less=True)
        acc_next = {}
        for name in ("hdr", "addr", "pay"):
            acc_next[name] = []
            for part in range(parts):
                acc = Signal(len(snap[f"acc_{name}"][0]), name=f"acc_{name}{part}",
                             reset_less=True)
                nxt = Signal.like(acc, name=f"acc_{name}{part}_next")
                terms = [Mux(b2.start, 0, acc), *beat_words(masks2[name], part)]
                if name == "pay" and part == 0:
                    terms.append(Mux(masks2.pay_first, pconst, 0))
                m.d.comb += nxt.eq(_sum_of(m, terms, len(acc)))
                with m.If(b2_valid):
                    m.d.sync += acc.eq(nxt)
                acc_next[name].append(nxt)

        l4cap = Signal(data.ArrayLayout(8, len(L4_BYTES)), reset_less=True)
        l4cap_next = Signal.like(l4cap)
        for n in range(len(L4_BYTES)):
            m.d.comb += l4cap_next[n].eq(Mux(b2.start, 0, l4cap[n]))
            for j in range(w):
                with m.If(masks2.sel[n][j]):
                    m.d.comb += l4cap_next[n].eq(lanes2[j])
        with m.If(b2_valid):
            m.d.sync += l4cap.eq(l4cap_next)

        count = sum(b2.p.keep[j] for j in range(w))
        with m.If(b2_valid & b2.p.last):
            m.d.sync += [
                snap.p.eq(params),
                # Only the next frame's first beat (bytes < 8) has reached the buffer yet.
                snap.l3raw.eq(hbuf[8 * L3_RAW[0]:8 * L3_RAW[1]]),
                snap.n.eq(b2.pos + count),
                snap.room.eq(b2.pos + count - params.pay_lo),
                snap.aborted.eq(b2.p.error),
                snap.acc_hdr.eq(Cat(*acc_next["hdr"])),
                snap.acc_addr.eq(Cat(*acc_next["addr"])),
                snap.acc_pay.eq(Cat(*acc_next["pay"])),
                snap.l4.eq(l4cap_next),
                snap.l4_len.eq(params.ip_len - params.hdr_len),
                snap.use_pseudo.eq(use_pseudo),
            ]
        b3 = Signal(_beat_layout(w), reset_less=True)
        b3_valid = Signal()
        m.d.sync += [b3.eq(b2), b3_valid.eq(b2_valid)]

        # ---- stage 3: length comparisons and partial sums -----------------------------------
        checked = Signal(_checked_layout, reset_less=True)
        m.d.sync += checked.eq(self._compare(m, snap))
        b4 = Signal(_beat_layout(w), reset_less=True)
        b4_valid = Signal()
        m.d.sync += [b4.eq(b3), b4_valid.eq(b3_valid)]

        # ---- stage 4: the rules and checksum verdicts ---------------------------------------
        decided = Signal(_decided_layout, reset_less=True)
        m.d.sync += decided.eq(self._decide(m, checked))
        b5 = Signal(_beat_layout(w), reset_less=True)
        b5_valid = Signal()
        m.d.sync += [b5.eq(b4), b5_valid.eq(b4_valid)]

        # ---- stage 5: absent fields zeroed; output FIFOs ------------------------------------
        m.submodules.o_fifo = o_fifo = SyncFIFOBuffered(
            width=len(b5.p.as_value()) + 1, depth=OUT_DEPTH)
        m.submodules.meta_fifo = meta_fifo = SyncFIFO(
            width=FrameMetadata.as_shape().size, depth=OUT_DEPTH)
        o_start = Signal()
        m.d.comb += [
            o_fifo.w_en.eq(b5_valid),
            o_fifo.w_data.eq(Cat(b5.p, b5.start)),
            Cat(self.o.p, o_start).eq(o_fifo.r_data),
            self.o.valid.eq(o_fifo.r_rdy),
            o_fifo.r_en.eq(self.o.ready),
            meta_fifo.w_en.eq(b5_valid & b5.p.last),
            meta_fifo.w_data.eq(self._emit(m, decided)),
            self.meta.payload.eq(meta_fifo.r_data),
            meta_fifo.r_en.eq(self.meta.ready & self.meta.valid),
        ]

        # A record waits until its frame's first beat has been offered on ``o``: ``ahead``
        # counts first beats offered (each once) minus records taken, and ``gate`` registers
        # ``ahead > 0``, so no output reaches ``meta.valid`` through logic.
        ahead = Signal(range(OUT_DEPTH + 2))
        counted = Signal()   # the first beat now offered on ``o`` is already in ``ahead``
        gate = Signal()
        new_start = self.o.valid & o_start & ~counted
        ahead_next = ahead + new_start - (self.meta.valid & self.meta.ready)
        m.d.sync += [
            ahead.eq(ahead_next),
            gate.eq(ahead_next > 0),
            counted.eq(self.o.valid & o_start & ~self.o.ready),
        ]
        m.d.comb += self.meta.valid.eq(meta_fifo.r_rdy & gate)

        # Admission: count beats and frames from ``i`` until they leave ``o`` / ``meta``.
        # ``ready`` follows the counts a clock late and a count grows by at most one per clock,
        # so admitting below OUT_DEPTH - 2 keeps at most OUT_DEPTH - 1 in flight.
        beats = Signal(range(OUT_DEPTH + 1))
        frames = Signal(range(OUT_DEPTH + 1))
        m.d.sync += [
            beats.eq(beats + accept - (self.o.valid & self.o.ready)),
            frames.eq(frames + (accept & self.i.p.last) - (self.meta.valid & self.meta.ready)),
            ready.eq((beats < OUT_DEPTH - 2) & (frames < OUT_DEPTH - 2)),
        ]
        return m

    @staticmethod
    def _decode(m: Module, hb, types) -> Value:
        """Stage 1: what the byte ranges need, from the header buffer (combinational). The
        wide L3 fields are taken apart later, from the snapshot's raw bytes."""
        p = Signal(_params_layout)
        tagged = types.tpid
        is_arp, is_ip4, is_ip6 = types.arp, types.ip4, types.ip6
        ip_any = is_ip4 | is_ip6
        l3off = Signal(5)
        m.d.comb += l3off.eq(Mux(tagged, 18, 14))

        def l3(offset, size):   # big-endian field at ``offset`` bytes into L3
            return Mux(tagged, _be(hb, 18 + offset, size), _be(hb, 14 + offset, size))

        ihl = l3(0, 1)[:4]

        def by_tag(f):               # f(l3off) for both cases, so that l3off is a constant
            return Mux(tagged, f(18), f(14))

        def ihl_end(off):            # end of an IPv4 header at ``off`` (IHL < 5 counts as 5)
            ihl = hb(off)[:4]
            return Mux(ihl < 5, 20, ihl * 4) + off

        def by_tag_and_version(f):   # f(l3off, ip6) for the four cases, added from the buffer
            return Mux(tagged, Mux(is_ip6, f(18, True), f(18, False)),
                       Mux(is_ip6, f(14, True), f(14, False)))

        def datagram_len(off, ip6):  # IPv4 total length, IPv6 40 + payload length
            return _be(hb, off + 4, 2) + 40 if ip6 else _be(hb, off + 2, 2)

        m.d.comb += [
            p.dst_mac.eq(_be(hb, 0, 6)),
            p.src_mac.eq(_be(hb, 6, 6)),
            p.tagged.eq(tagged),
            p.tci.eq(_be(hb, 14, 2)),
            p.ethertype.eq(Mux(tagged, _be(hb, 16, 2), _be(hb, 12, 2))),
            p.is_arp.eq(is_arp),
            p.is_ip4.eq(is_ip4),
            p.is_ip6.eq(is_ip6),
            p.ihl.eq(ihl),
            p.proto.eq(Mux(is_ip6, l3(6, 1), l3(9, 1))),
            p.ip_len.eq(Mux(ip_any, by_tag_and_version(datagram_len), 0)),
            p.hdr_len.eq(Mux(is_ip6, 40, Mux(is_ip4, ihl * 4, 0))),
            p.l3off.eq(l3off),
            # Both ranges reach past L3 byte 20 only by IHL, which has arrived by then; before
            # that, IHL may still be a stale byte of an older frame.
            p.hdr_hi.eq(by_tag(ihl_end)),
            p.l3_end.eq(Mux(is_arp, by_tag(lambda off: off + 28),
                            Mux(is_ip6, by_tag(lambda off: off + 40), by_tag(ihl_end)))),
            p.addr_lo.eq(Mux(is_ip6, by_tag(lambda off: off + 8),
                             Mux(is_ip4, by_tag(lambda off: off + 12), 0))),
            p.addr_hi.eq(Mux(is_ip6, by_tag(lambda off: off + 40),
                             Mux(is_ip4, by_tag(lambda off: off + 20), 0))),
            p.pay_lo.eq(Mux(is_ip6, by_tag(lambda off: off + 40),
                            Mux(is_ip4, by_tag(ihl_end), 0))),
            p.pay_hi.eq(Mux(ip_any, by_tag_and_version(   # one adder each: constants folded
                lambda off, ip6: _be(hb, off + 4, 2) + (40 + off) if ip6
                else _be(hb, off + 2, 2) + off), 0)),
        ]
        return p

    @staticmethod
    def _l3_fields(m: Module, p, raw) -> Value:
        """Stages 3 and 4: the ARP / IPv4 / IPv6 fields from the first 40 L3 bytes ``raw``."""
        f = Signal(_l3_layout)

        def l3(offset, size):   # big-endian field at ``offset`` bytes into L3
            return _be(lambda k: raw[8 * k:8 * k + 8], offset, size)

        m.d.comb += [
            f.version.eq(l3(0, 1)[4:]),
            f.tos.eq(Mux(p.is_ip6, l3(0, 2)[4:12], l3(1, 1))),
            f.ttl.eq(Mux(p.is_ip6, l3(7, 1), l3(8, 1))),
            f.flow.eq(Mux(p.is_ip6, l3(0, 4)[:20], 0)),
            f.mf.eq(p.is_ip4 & l3(6, 1)[5]),
            f.frag_off.eq(Mux(p.is_ip4, l3(6, 2)[:13], 0)),
            f.ip_src.eq(Mux(p.is_ip6, l3(8, 16),
                            Mux(p.is_ip4, l3(12, 4), Mux(p.is_arp, l3(14, 4), 0)))),
            f.ip_dst.eq(Mux(p.is_ip6, l3(24, 16),
                            Mux(p.is_ip4, l3(16, 4), Mux(p.is_arp, l3(24, 4), 0)))),
            f.arp_op.eq(Mux(p.is_arp, l3(6, 2), 0)),
            f.arp_fmt_ok.eq((l3(0, 2) == 1) & (l3(2, 2) == ETHERTYPE_IPV4)
                            & (l3(4, 1) == 6) & (l3(5, 1) == 4)),
        ]
        return f

    @staticmethod
    def _compare(m: Module, s) -> Value:
        """Stage 3: length comparisons, header-field tests and partial checksum sums."""
        c = Signal(_checked_layout)
        p = s.p
        n = s.n
        l4b = s.l4

        # Remove the tag: this wide mux is all the logic behind its high-fanout select.
        aligned = Signal(8 * 40)
        raw = s.l3raw
        m.d.comb += aligned.eq(Mux(p.tagged, raw[8 * (18 - L3_RAW[0]):8 * (58 - L3_RAW[0])],
                                   raw[8 * (14 - L3_RAW[0]):8 * (54 - L3_RAW[0])]))
        f = HeaderParser._l3_fields(m, p, aligned)    # only a few fields are used here

        def l4(k):
            return l4b[L4_BYTES.index(k)]

        def fits(size):      # an L4 header of ``size`` bytes lies in the frame and datagram
            return _ge_small(s.room, size) & _ge_small(s.l4_len, size)

        is_tcp = p.proto == IPPROTO_TCP
        is_udp = p.proto == IPPROTO_UDP
        is_icmp6 = p.is_ip6 & (p.proto == IPPROTO_ICMPV6)
        doff = l4(12)[4:]
        # L4 header size: TCP max(20, 4 * data offset), ICMPv6 4, UDP and ICMP 8; the sizes
        # are compared in parallel and chosen after.
        l4_fits = Signal()
        with m.If(is_tcp):
            m.d.comb += l4_fits.eq(Mux(doff < 5, fits(20), fits(doff * 4)))
        with m.Elif(is_icmp6):
            m.d.comb += l4_fits.eq(fits(4))
        with m.Else():
            m.d.comb += l4_fits.eq(fits(8))
        acc_hdr = Signal(25)
        m.d.comb += acc_hdr.eq(sum(s.acc_hdr[i] for i in range(len(s.acc_hdr))))
        udp_zero = is_udp & (_be(l4, 6, 2) == 0)
        m.d.comb += [
            c.p.eq(p),
            c.l3.eq(aligned),
            c.mf.eq(f.mf),
            c.arp_fmt_ok.eq(f.arp_fmt_ok),
            c.frame_len.eq(Mux(n > 0xFFFF, 0xFFFF, n)),
            c.aborted.eq(s.aborted),
            c.l4.eq(l4b),
            c.l2_ok.eq(n >= Mux(p.tagged, 18, 14)),
            c.l3_fits.eq(_ge_small(n, p.l3_end)),
            c.len_beyond.eq(p.pay_hi > n),
            c.l4_fits.eq(l4_fits),
            c.l3_known.eq(p.is_arp | p.is_ip4 | p.is_ip6),
            c.ip.eq(p.is_ip4 | p.is_ip6),
            c.bad_ver.eq(Mux(p.is_ip4, f.version != 4, p.is_ip6 & (f.version != 6))),
            c.bad_ihl.eq(p.is_ip4 & (p.ihl < 5)),
            c.len_short.eq(p.is_ip4 & (s.l4_len < 0)),
            c.frag_later.eq(f.frag_off != 0),
            c.tcp.eq(is_tcp),
            c.udp.eq(is_udp),
            c.icmp.eq((p.is_ip4 & (p.proto == IPPROTO_ICMP)) | is_icmp6),
            c.bad_l4.eq((is_tcp & (doff < 5)) | (is_udp & (_be(l4, 4, 2) != s.l4_len))),
            c.udp_zero4.eq(udp_zero & p.is_ip4),
            c.udp_zero6.eq(udp_zero & p.is_ip6),
            c.ip6_ext.eq(Cat(*[p.proto == v for v in sorted(IPV6_EXT_HEADERS)]).any()),
            c.sum_ip.eq(acc_hdr[:16] + acc_hdr[16:]),
            c.sum_l4.eq(_sum_of(m, [s.acc_pay[i] for i in range(len(s.acc_pay))]
                                + [Mux(s.use_pseudo, s.acc_addr[i], 0)
                                   for i in range(len(s.acc_addr))])),
        ]
        return c

    @staticmethod
    def _decide(m: Module, c) -> Value:
        """Stage 4: the parsing rules as a few control bits, and the checksum verdicts (only
        ANDs of stage 3's bits, and one 32-bit equality)."""
        d = Signal(_decided_layout)
        p = c.p
        l3_ok, ip_ok, try_l4, l4_ok = Signal(), Signal(), Signal(), Signal()
        parsed = c.tcp | c.udp | c.icmp
        m.d.comb += [
            l3_ok.eq(c.l2_ok & c.l3_known & c.l3_fits),
            ip_ok.eq(c.l2_ok & c.l3_fits & c.ip & ~c.bad_ver & ~c.bad_ihl),
            try_l4.eq(ip_ok & ~c.len_short & ~c.frag_later),
            l4_ok.eq(try_l4 & parsed & c.l4_fits),
        ]
        m.d.comb += [
            d.p.eq(p),
            d.f.eq(HeaderParser._l3_fields(m, p, c.l3)),
            d.frame_len.eq(c.frame_len),
            d.aborted.eq(c.aborted),
            d.l4.eq(c.l4),
            d.l2_ok.eq(c.l2_ok),
            d.l3_ok.eq(l3_ok),
            d.l3_ip.eq(l3_ok & c.ip),
            d.l3_ip6.eq(l3_ok & p.is_ip6 & c.ip6_ext),
            d.ip_ok.eq(ip_ok),
            d.ports.eq(l4_ok & (c.tcp | c.udp)),
            d.tcp.eq(l4_ok & c.tcp),
            d.icmp.eq(l4_ok & c.icmp),
        ]
        with m.If(c.l2_ok):
            with m.If(p.is_arp):
                m.d.comb += d.l3.eq(L3Proto.ARP)
            with m.Elif(p.is_ip4):
                m.d.comb += d.l3.eq(L3Proto.IPV4)
            with m.Elif(p.is_ip6):
                m.d.comb += d.l3.eq(L3Proto.IPV6)
            with m.Else():
                m.d.comb += d.l3.eq(L3Proto.OTHER)
        with m.If(try_l4 & ~parsed):
            m.d.comb += d.l4_proto.eq(L4Proto.OTHER)
        with m.If(l4_ok):
            with m.If(c.tcp):
                m.d.comb += d.l4_proto.eq(L4Proto.TCP)
            with m.Elif(c.udp):
                m.d.comb += d.l4_proto.eq(L4Proto.UDP)
            with m.Elif(p.is_ip4):
                m.d.comb += d.l4_proto.eq(L4Proto.ICMP)
            with m.Else():
                m.d.comb += d.l4_proto.eq(L4Proto.ICMPV6)

        m.d.comb += [
            d.errors.l2_truncated.eq(~c.l2_ok),
            d.errors.l3_truncated.eq(c.l2_ok & c.l3_known & ~c.l3_fits),
            d.errors.l4_truncated.eq(try_l4 & parsed & ~c.l4_fits),
            d.errors.ip_bad_version.eq(l3_ok & c.bad_ver),
            d.errors.ip_bad_ihl.eq(l3_ok & c.bad_ihl),
            d.errors.ip_len_beyond.eq(ip_ok & c.len_beyond),
            d.errors.ip_len_short.eq(ip_ok & c.len_short),
            d.errors.l4_bad_header.eq(l4_ok & c.bad_l4),
            d.errors.arp_bad_format.eq(l3_ok & p.is_arp & ~c.arp_fmt_ok),
        ]

        # Checksums. A 32-bit sum hi:lo folds to 0xffff when lo + hi is 0xffff or 0x1fffe,
        # which equality alone can tell.
        lo, hi = c.sum_l4[:16], c.sum_l4[16:]
        l4_sum_ok = (lo == ~hi) | ((lo == 0xFFFF) & (hi == 0xFFFF))
        checkable = l4_ok & ~c.len_beyond & ~c.bad_l4
        with m.If(ip_ok & p.is_ip4):
            m.d.comb += d.ip_csum.eq(Mux(_is_ones(c.sum_ip), Checksum.OK, Checksum.BAD))
        with m.If(checkable & c.udp_zero6):
            m.d.comb += d.l4_csum.eq(Checksum.BAD)
        with m.Elif(checkable & ~c.mf & ~c.udp_zero4):
            m.d.comb += d.l4_csum.eq(Mux(l4_sum_ok, Checksum.OK, Checksum.BAD))
        return d

    @staticmethod
    def _emit(m: Module, d) -> Value:
        """Stage 5: the record, with the fields of absent headers zeroed."""
        meta = Signal(FrameMetadata)
        p, f = d.p, d.f
        l4b = d.l4

        def l4(k):
            return l4b[L4_BYTES.index(k)]

        def keep(cond, value):
            return Mux(cond, value, 0)

        tagged = d.l2_ok & p.tagged
        m.d.comb += [
            meta.frame_len.eq(d.frame_len),
            meta.aborted.eq(d.aborted),
            meta.dst_mac.eq(keep(d.l2_ok, p.dst_mac)),
            meta.src_mac.eq(keep(d.l2_ok, p.src_mac)),
            meta.multicast.eq(d.l2_ok & p.dst_mac[40]),
            meta.broadcast.eq(d.l2_ok & (p.dst_mac == 0xFFFF_FFFF_FFFF)),
            meta.vlan_tagged.eq(tagged),
            meta.vlan_pcp.eq(keep(tagged, p.tci[13:])),
            meta.vlan_dei.eq(tagged & p.tci[12]),
            meta.vlan_vid.eq(keep(tagged, p.tci[:12])),
            meta.ethertype.eq(keep(d.l2_ok, p.ethertype)),
            meta.l3.eq(d.l3),
            meta.l3_offset.eq(keep(d.l2_ok, p.l3off)),
            meta.ip_src.eq(keep(d.l3_ok, f.ip_src)),
            meta.ip_dst.eq(keep(d.l3_ok, f.ip_dst)),
            meta.ip_proto.eq(keep(d.l3_ip, p.proto)),
            meta.ip_dscp.eq(keep(d.l3_ip, f.tos[2:])),
            meta.ip_ecn.eq(keep(d.l3_ip, f.tos[:2])),
            meta.ip_ttl.eq(keep(d.l3_ip, f.ttl)),
            meta.ip_flow_label.eq(keep(d.l3_ip, f.flow)),
            meta.ip_more_frags.eq(d.l3_ip & f.mf),
            meta.ip_frag_offset.eq(keep(d.l3_ip, f.frag_off)),
            meta.ip6_ext.eq(d.l3_ip6),
            meta.arp_op.eq(keep(d.l3_ok, f.arp_op)),
            meta.l4.eq(d.l4_proto),
            meta.l4_offset.eq(keep(d.ip_ok, p.pay_lo)),
            meta.l4_src_port.eq(keep(d.ports, _be(l4, 0, 2))),
            meta.l4_dst_port.eq(keep(d.ports, _be(l4, 2, 2))),
            meta.tcp_flags.eq(keep(d.tcp, Cat(l4(13), l4(12)[0]))),
            meta.icmp_type.eq(keep(d.icmp, l4(0))),
            meta.icmp_code.eq(keep(d.icmp, l4(1))),
            meta.ip_csum.eq(d.ip_csum),
            meta.l4_csum.eq(d.l4_csum),
            meta.errors.eq(d.errors),
        ]
        return meta

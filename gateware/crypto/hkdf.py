# Ref: RFC 5869 (HKDF), RFC 8446 §7.1 (HKDF-Expand-Label, Derive-Secret)
"""HKDF-Extract and TLS 1.3's HKDF-Expand-Label on :class:`~.hmac.HmacSha256`.

Every TLS 1.3 key-schedule value is one of the two with SHA-256 and at most 32 bytes of output,
so each is a single HMAC: ``Extract(salt, ikm) = HMAC(salt, ikm)`` and
``Expand-Label(secret, label, context, L) = HMAC(secret, HkdfLabel || 0x01)`` truncated to L,
where ``HkdfLabel = L (2 bytes) || len || "tls13 " label || len || context``. The unit builds
that message byte by byte from a label ROM (the labels RFC 8446 uses) and the request's
context (empty, or a 32-byte transcript hash). Derive-Secret is Expand-Label with the
transcript hash as context and L = 32.
"""

import enum

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .hmac import HmacSha256, KeyLayout, digest_bytes

__all__ = ["Hkdf", "HkdfOp", "HkdfRequest", "LABELS", "hkdf_label"]

#: RFC 8446's labels (without the "tls13 " prefix), by number.
LABELS = ("derived", "c hs traffic", "s hs traffic", "c ap traffic", "s ap traffic",
          "exp master", "res master", "key", "iv", "finished", "ext binder", "res binder",
          "c e traffic", "e exp master", "traffic upd", "resumption")


class HkdfOp(enum.IntEnum):
    EXTRACT = 0         #: HMAC(key, ikm[:ikm_len])
    EXPAND_LABEL = 1    #: HMAC(key, HkdfLabel(length, LABELS[label], context) || 0x01)


#: ``key``: the salt (Extract) or the secret (Expand-Label), ``key_len`` bytes of it;
#: ``data``: the IKM (``data_len`` bytes) or the context (0 or 32 bytes); ``length``: L.
HkdfRequest = data.StructLayout({
    "op": 1, "key": KeyLayout, "key_len": 6, "data": KeyLayout, "data_len": 6,
    "label": 4, "length": 6,
})


def hkdf_label(label: str, context: bytes, length: int) -> bytes:
    """RFC 8446 §7.1's HkdfLabel, for the model and tests."""
    full = b"tls13 " + label.encode()
    return length.to_bytes(2, "big") + bytes([len(full)]) + full + bytes([len(context)]) + context


class Hkdf(wiring.Component):
    """Attributes
    ----------
    request : In(stream.Signature(HkdfRequest))
    result : Out(stream.Signature(KeyLayout)), 32 bytes (the caller keeps ``length`` of them)
    """

    request: In(stream.Signature(HkdfRequest))
    result: Out(stream.Signature(KeyLayout))

    def elaborate(self, platform):
        m = Module()
        m.submodules.hmac = hm = HmacSha256()

        text = b"".join(b"tls13 " + s.encode() for s in LABELS)
        starts, offset = [], 0
        for s in LABELS:
            starts.append(offset)
            offset += 6 + len(s)
        rom = Array(Const(b, 8) for b in text)
        start_rom = Array(Const(v, range(len(text) + 1)) for v in starts)
        len_rom = Array(Const(6 + len(s), 8) for s in LABELS)

        req = Signal(HkdfRequest)
        ctx = Signal(256)                   # data bytes, byte 0 at the top, shifted out
        n = Signal(8)
        pos = Signal(range(len(text) + 1))

        m.d.comb += [self.result.payload.eq(digest_bytes(hm.mac.payload)),
                     self.result.valid.eq(hm.mac.valid), hm.mac.ready.eq(self.result.ready)]
        byte = hm.message.payload.byte
        last = hm.message.payload.last

        def send(value, is_last=0):
            m.d.comb += [hm.message.valid.eq(1), byte.eq(value), last.eq(is_last)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.request.ready.eq(hm.request.ready)
                m.d.comb += [
                    hm.request.valid.eq(self.request.valid),
                    hm.request.payload.key.eq(self.request.payload.key),
                    hm.request.payload.key_len.eq(self.request.payload.key_len),
                    hm.request.payload.empty.eq(
                        (self.request.payload.op == HkdfOp.EXTRACT)
                        & (self.request.payload.data_len == 0)),
                ]
                with m.If(self.request.valid & hm.request.ready):
                    d = self.request.payload.data
                    m.d.sync += [req.eq(self.request.payload),
                                 ctx.eq(Cat(d[31 - i] for i in range(32))), n.eq(0)]
                    with m.If(self.request.payload.op == HkdfOp.EXTRACT):
                        with m.If(self.request.payload.data_len != 0):
                            m.next = "IKM"
                    with m.Else():
                        m.next = "LENGTH"
            with m.State("IKM"):
                send(ctx[248:256], n + 1 == req.data_len)
                with m.If(hm.message.ready):
                    m.d.sync += [ctx.eq(ctx << 8), n.eq(n + 1)]
                    with m.If(n + 1 == req.data_len):
                        m.next = "IDLE"
            with m.State("LENGTH"):
                send(Mux(n == 0, 0, req.length))
                with m.If(hm.message.ready):
                    m.d.sync += n.eq(n + 1)
                    with m.If(n == 1):
                        m.next = "LABEL_LEN"
            with m.State("LABEL_LEN"):
                send(len_rom[req.label])
                with m.If(hm.message.ready):
                    m.d.sync += [pos.eq(start_rom[req.label]), n.eq(0)]
                    m.next = "LABEL"
            with m.State("LABEL"):
                send(rom[pos])
                with m.If(hm.message.ready):
                    m.d.sync += [pos.eq(pos + 1), n.eq(n + 1)]
                    with m.If(n + 1 == len_rom[req.label]):
                        m.next = "CONTEXT_LEN"
            with m.State("CONTEXT_LEN"):
                send(req.data_len)
                with m.If(hm.message.ready):
                    m.d.sync += n.eq(0)
                    with m.If(req.data_len == 0):
                        m.next = "COUNTER"
                    with m.Else():
                        m.next = "CONTEXT"
            with m.State("CONTEXT"):
                send(ctx[248:256])
                with m.If(hm.message.ready):
                    m.d.sync += [ctx.eq(ctx << 8), n.eq(n + 1)]
                    with m.If(n + 1 == req.data_len):
                        m.next = "COUNTER"
            with m.State("COUNTER"):
                send(1, 1)
                with m.If(hm.message.ready):
                    m.next = "IDLE"
        return m

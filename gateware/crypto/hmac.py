# Ref: RFC 2104 (HMAC), FIPS 198-1; RFC 4231 (HMAC-SHA-256 test cases)
"""HMAC-SHA-256 with keys of up to 32 bytes (every TLS 1.3 SHA-256 secret is 32).

``HMAC(K, m) = H((K ^ opad) || H((K ^ ipad) || m))``: the sequencer feeds
:class:`~.sha256_stream.Sha256Stream` the inner key block, the message, then the outer key
block (while the core finishes the inner hash) and the inner digest, one byte per clock: about
330 clocks for a key-schedule HMAC (a message of up to 55 bytes). The key arrives with the
request (a register value: a key slot's contents, or the previous HMAC's output when HKDF
chains them), so the message is the only stream.
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .sha256_stream import ByteLayout, DigestLayout, Sha256Stream

__all__ = ["HmacSha256", "KeyLayout", "HmacRequest", "digest_bytes"]

#: 32 key bytes, byte 0 first (element 0).
KeyLayout = data.ArrayLayout(8, 32)
#: ``key_len`` bytes of ``key`` are the key (0..32; the rest must be zero); ``empty``: the
#: message is empty (no bytes will arrive on ``message``).
HmacRequest = data.StructLayout({"key": KeyLayout, "key_len": 6, "empty": 1})


def digest_bytes(words) -> Value:
    """A :data:`DigestLayout` value as :data:`KeyLayout` (the hash's bytes in order)."""
    return Cat(words[i][8 * (3 - j):8 * (4 - j)] for i in range(8) for j in range(4))


class HmacSha256(wiring.Component):
    """One HMAC at a time.

    Attributes
    ----------
    request : In(stream.Signature(HmacRequest))
    message : In(stream.Signature(ByteLayout)), the message bytes after each request
    mac : Out(stream.Signature(DigestLayout))
    """

    request: In(stream.Signature(HmacRequest))
    message: In(stream.Signature(ByteLayout))
    mac: Out(stream.Signature(DigestLayout))

    def elaborate(self, platform):
        m = Module()
        m.submodules.hash = h = Sha256Stream()

        key = Signal(256)                   # byte 0 at the top, rotated one byte per pad byte
        empty = Signal()
        inner = Signal(256)                 # the inner digest, byte 0 at the top
        n = Signal(6)                       # pad bytes sent

        top = key[248:256]
        pad_byte = Mux(n < 32, top, 0)
        m.d.comb += self.mac.payload.eq(h.digest.payload)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.request.ready.eq(1)
                with m.If(self.request.valid):
                    k = self.request.payload.key
                    m.d.sync += [key.eq(Cat(k[31 - i] for i in range(32))),
                                 empty.eq(self.request.payload.empty), n.eq(0)]
                    m.next = "IPAD"
            with m.State("IPAD"):
                m.d.comb += [h.data.valid.eq(1), h.data.payload.byte.eq(pad_byte ^ 0x36),
                             h.data.payload.last.eq(empty & (n == 63))]
                with m.If(h.data.ready):
                    m.d.sync += n.eq(n + 1)
                    with m.If(n < 32):
                        m.d.sync += key.eq(key.rotate_left(8))
                    with m.If(n == 63):
                        m.next = "MESSAGE"
                        with m.If(empty):
                            m.next = "OPAD"
            with m.State("MESSAGE"):
                m.d.comb += [h.data.valid.eq(self.message.valid),
                             h.data.payload.eq(self.message.payload),
                             self.message.ready.eq(h.data.ready)]
                with m.If(self.message.valid & h.data.ready & self.message.payload.last):
                    m.next = "OPAD"
            with m.State("OPAD"):
                # (the outer key block fills while the core finishes the inner hash)
                m.d.comb += [h.data.valid.eq(1), h.data.payload.byte.eq(pad_byte ^ 0x5C)]
                with m.If(h.data.ready):
                    m.d.sync += n.eq(n + 1)
                    with m.If(n < 32):
                        m.d.sync += key.eq(key.rotate_left(8))
                    with m.If(n == 63):
                        m.next = "INNER_DIGEST"
            with m.State("INNER_DIGEST"):
                m.d.comb += h.digest.ready.eq(1)
                with m.If(h.digest.valid):
                    m.d.sync += [inner.eq(Cat(digest_bytes(h.digest.payload).word_select(
                        31 - i, 8) for i in range(32))), n.eq(0)]
                    m.next = "INNER"
            with m.State("INNER"):
                m.d.comb += [h.data.valid.eq(1), h.data.payload.byte.eq(inner[248:256]),
                             h.data.payload.last.eq(n == 31)]
                with m.If(h.data.ready):
                    m.d.sync += [inner.eq(inner << 8), n.eq(n + 1)]
                    with m.If(n == 31):
                        m.next = "MAC"
            with m.State("MAC"):
                m.d.comb += [self.mac.valid.eq(h.digest.valid),
                             h.digest.ready.eq(self.mac.ready)]
                with m.If(h.digest.valid & self.mac.ready):
                    m.next = "IDLE"
        return m

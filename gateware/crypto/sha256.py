# Ref: FIPS 180-4 §4.1.2, §4.2.2, §5.3.3, §6.2
"""SHA-256 compression: one round per clock, 66 clocks per 64-byte block.

The core hashes blocks that its user has already padded (FIPS 180-4 §5.1.1): the HMAC/HKDF
sequencer above it builds the blocks, so padding, lengths and the inner/outer hashes are its
business, and the core stays one loop of 64 rounds.

Timing: the round's long sum ``h + K[t] + W[t] + Σ1(e) + Ch(e, f, g)`` is split, ``g + K[t+1] +
W[t+1]`` (the next round's ``h + K + W``: ``g`` becomes ``h``) is added one clock ahead, so the
round itself adds four terms for ``e`` and five for ``a``. The constants K come from a block-RAM
ROM read two rounds ahead.
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["Sha256", "SHA256_IV", "SHA256_K", "BlockLayout", "CYCLES_PER_BLOCK"]

SHA256_IV = (0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
             0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19)

SHA256_K = (
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4, 0xAB1C5ED5,
    0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE, 0x9BDC06A7, 0xC19BF174,
    0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F, 0x4A7484AA, 0x5CB0A9DC, 0x76F988DA,
    0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7, 0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967,
    0x27B70A85, 0x2E1B2138, 0x4D2C6DFC, 0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85,
    0xA2BFE8A1, 0xA81A664B, 0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070,
    0x19A4C116, 0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7, 0xC67178F2,
)

#: Clocks from a block accepted to its digest: 1 to load, 64 rounds, 1 to add the state.
CYCLES_PER_BLOCK = 66

#: A block: ``words[0]`` is the block's first four bytes, big-endian (FIPS 180-4 §5.2.1).
#: ``first`` starts a message (the state begins at the IV); otherwise the block continues from
#: the state the previous block left.
BlockLayout = data.StructLayout({"words": data.ArrayLayout(32, 16), "first": 1})


def _rotr(x: Value, n: int) -> Value:
    return x.rotate_right(n)


def _big_sigma0(x):
    return _rotr(x, 2) ^ _rotr(x, 13) ^ _rotr(x, 22)


def _big_sigma1(x):
    return _rotr(x, 6) ^ _rotr(x, 11) ^ _rotr(x, 25)


def _small_sigma0(x):
    return _rotr(x, 7) ^ _rotr(x, 18) ^ (x >> 3)


def _small_sigma1(x):
    return _rotr(x, 17) ^ _rotr(x, 19) ^ (x >> 10)


class Sha256(wiring.Component):
    """SHA-256 compression function.

    Attributes
    ----------
    blocks : In(stream.Signature(BlockLayout))
        Padded 64-byte blocks; accepted when the core is idle.
    digest : Out(stream.Signature(data.ArrayLayout(32, 8)))
        The state after each block (``H0`` first): after a message's last block, its hash.
        Held until taken; the next block is accepted in the clock it is taken (or later), so
        a stream of blocks takes 66 clocks each.
    """

    blocks: In(stream.Signature(BlockLayout))
    digest: Out(stream.Signature(data.ArrayLayout(32, 8)))

    def elaborate(self, platform):
        m = Module()
        m.submodules.k_rom = k_rom = Memory(shape=32, depth=64, init=SHA256_K)
        k = k_rom.read_port()                       # synchronous: K[addr] one clock later

        w = Array(Signal(32, name=f"w{i}") for i in range(16))   # W[t] .. W[t+15]
        state = Array(Signal(32, name=f"h{i}") for i in range(8))        # H (chaining value)
        a, b, c, d, e, f, g, h = (Signal(32, name=n) for n in "abcdefgh")
        hkw = Signal(32)                            # h + K[t] + W[t] for this round
        t = Signal(range(64))
        pending = Signal()                          # a digest not taken yet

        ch = (e & f) ^ (~e & g)
        maj = (a & b) ^ (a & c) ^ (b & c)
        t1 = hkw + _big_sigma1(e) + ch
        w_next = _small_sigma1(w[14]) + w[9] + _small_sigma0(w[1]) + w[0]    # W[t+16]

        m.d.comb += [self.digest.payload.eq(Cat(*state)), self.digest.valid.eq(pending)]
        with m.If(self.digest.ready):
            m.d.sync += pending.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [self.blocks.ready.eq(~pending | self.digest.ready), k.addr.eq(1)]
                with m.If(self.blocks.valid & self.blocks.ready):
                    words = self.blocks.payload.words
                    start = [Mux(self.blocks.payload.first, C(iv, 32), state[i])
                             for i, iv in enumerate(SHA256_IV)]
                    m.d.sync += [w[i].eq(words[i]) for i in range(16)]
                    m.d.sync += [state[i].eq(start[i]) for i in range(8)]
                    m.d.sync += [r.eq(v) for r, v in zip((a, b, c, d, e, f, g, h), start,
                                                         strict=True)]
                    m.d.sync += [hkw.eq(start[7] + SHA256_K[0] + words[0]), t.eq(0)]
                    m.next = "ROUND"
            with m.State("ROUND"):
                # k.data is K[t+1]: the address was t+1 last clock (1 from IDLE)
                m.d.comb += k.addr.eq(t + 2)
                m.d.sync += [
                    a.eq(t1 + _big_sigma0(a) + maj), b.eq(a), c.eq(b), d.eq(c),
                    e.eq(d + t1), f.eq(e), g.eq(f), h.eq(g),
                    hkw.eq(g + k.data + w[1]),
                    t.eq(t + 1),
                ]
                m.d.sync += [w[i].eq(w[i + 1]) for i in range(15)]
                m.d.sync += w[15].eq(w_next)
                with m.If(t == 63):
                    m.next = "ADD"
            with m.State("ADD"):
                m.d.sync += [state[i].eq(state[i] + v)
                             for i, v in enumerate((a, b, c, d, e, f, g, h))]
                m.d.sync += pending.eq(1)
                m.next = "IDLE"
        return m

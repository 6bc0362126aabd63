# Ref: NIST SP 800-38D §6.3 (multiplication in GF(2^128)), §6.4 (GHASH)
"""GHASH: ``Y = (Y ^ X) * H`` in GF(2^128), 16 bits of the multiplier a clock (8 clocks a block).

SP 800-38D's Algorithm 1 walks the bits of X from the first (x_0, the top bit of byte 0):
``Z ^= V`` where the bit is set, then ``V = V * x`` (a right shift, reduced by R = 0xE1 || 0^120
when a bit falls off). Here a clock takes 16 bits: the 16 multiples V, V*x, ..., V*x^15 are a
chain of shifts, and Z takes the XOR of those whose bit is set.
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Ghash", "DIGIT", "CYCLES_PER_BLOCK", "gf128_mul"]

DIGIT = 16
CYCLES_PER_BLOCK = 128 // DIGIT
_R = 0xE1 << 120


def gf128_mul(x: int, y: int) -> int:
    """SP 800-38D Algorithm 1 on 128-bit integers (byte 0 = the top byte), for tests."""
    z, v = 0, y
    for i in range(128):
        if x >> (127 - i) & 1:
            z ^= v
        v = (v >> 1) ^ (_R if v & 1 else 0)
    return z


def _times_x(v: Value) -> Value:
    """V * x: shift toward the last bit, reduce by R."""
    return (v >> 1) ^ Mux(v[0], C(_R, 128), 0)


class Ghash(wiring.Component):
    """Blocks and H are 128-bit integers with the block's byte 0 in bits 127:120.

    Attributes
    ----------
    h : In(128), the hash key; held while blocks are hashed
    clear : In(1), a pulse: Y = 0 (a new message)
    i : In(stream.Signature(data.StructLayout({"block": 128}))), blocks to absorb
    y : Out(128), Y after the blocks absorbed so far
    busy : Out(1), a block is being absorbed (``y`` is not final)
    """

    h: In(128)
    clear: In(1)
    i: In(stream.Signature(data.StructLayout({"block": 128})))
    y: Out(128)
    busy: Out(1)

    def elaborate(self, platform):
        m = Module()
        z = Signal(128)
        v = Signal(128)
        x = Signal(128)
        n = Signal(range(CYCLES_PER_BLOCK + 1))
        m.d.comb += [self.busy.eq(n != 0), self.i.ready.eq(n == 0), self.y.eq(z)]

        multiples = [v]
        for j in range(DIGIT):
            # (a signal each: an expression would repeat the whole chain in every use)
            step = Signal(128, name=f"v_x{j + 1}")
            m.d.comb += step.eq(_times_x(multiples[-1]))
            multiples.append(step)
        acc = z
        for j in range(DIGIT):
            acc = acc ^ Mux(x[127 - j], multiples[j], 0)

        with m.If(n != 0):
            m.d.sync += [z.eq(acc), v.eq(multiples[DIGIT]), x.eq(x << DIGIT), n.eq(n - 1)]
        with m.Elif(self.i.valid):
            m.d.sync += [x.eq(z ^ self.i.payload.block), z.eq(0), v.eq(self.h),
                         n.eq(CYCLES_PER_BLOCK)]
        with m.If(self.clear):
            m.d.sync += [z.eq(0), n.eq(0)]
        return m

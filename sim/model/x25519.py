# Ref: RFC 7748 §5
"""Limb-exact model of the X25519 engine: the same program, the same limb arithmetic and the
same bounds as the gateware, so a wrong bound or schedule shows here first (``check=True``
asserts every limb and column against the widths the hardware has)."""

from crossnic.gateware.crypto.x25519_program import (
    A24,
    INVERT,
    LADDER,
    LIMB_BITS,
    LIMBS,
    REG,
    RENAMED,
    Kind,
    P,
)

__all__ = ["X25519Model", "to_limbs", "from_limbs", "FOUR_P", "COLUMN_BITS", "OPERAND_BITS"]

MASK = (1 << LIMB_BITS) - 1
#: 4p in limbs, added by SUB so that a - b stays positive limb by limb.
FOUR_P = [4 * ((1 << LIMB_BITS) - 19)] + [4 * MASK] * (LIMBS - 1)
#: Widths in the gateware: multiplier operands and accumulator columns.
OPERAND_BITS, COLUMN_BITS = 18, 45


def to_limbs(x: int) -> list[int]:
    return [x >> (LIMB_BITS * k) & MASK for k in range(LIMBS)]


def from_limbs(limbs: list[int]) -> int:
    return sum(v << (LIMB_BITS * k) for k, v in enumerate(limbs))


def carry_step(cols: list[int]) -> list[int]:
    """One parallel carry step: each column keeps 17 bits and takes the carry of the one
    below (column 0 takes 19 times the top carry: 2**255 = 19 mod p)."""
    out = [(cols[k] & MASK) + (cols[k - 1] >> LIMB_BITS) for k in range(LIMBS)]
    out[0] = (cols[0] & MASK) + 19 * (cols[-1] >> LIMB_BITS)
    return out


class X25519Model:
    def __init__(self, check: bool = True):
        self.check = check
        self.steps = 0

    def _operand(self, x: list[int]) -> list[int]:
        if self.check:
            assert all(0 <= v < 1 << OPERAND_BITS for v in x), x
        return x

    def op(self, kind: Kind, a: list[int], b: list[int]) -> list[int]:
        a, b = self._operand(a), self._operand(b)
        if kind in (Kind.MUL, Kind.MULS):
            acc = [0] * LIMBS
            for i in (range(LIMBS - 1, -1, -1) if kind is Kind.MUL else [0]):
                if kind is Kind.MULS:
                    assert not any(a[1:]), "MULS takes a one-limb constant"
                acc = [19 * acc[-1], *acc[:-1]]                  # acc * 2**17 mod p
                acc = [acc[k] + a[i] * b[k] for k in range(LIMBS)]
                if self.check:
                    assert all(v < 1 << COLUMN_BITS for v in acc), acc
            cols = acc
        elif kind is Kind.ADD:
            cols = [x + y for x, y in zip(a, b, strict=True)]
        else:
            cols = [x + f - y for x, y, f in zip(a, b, FOUR_P, strict=True)]
            assert all(v >= 0 for v in cols)
        for _ in range(3):
            cols = carry_step(cols)
        return self._operand(cols)

    def run(self, ops, rf: dict[int, list[int]], rename: int = 0) -> None:
        for o in ops:
            for r in range(o.rep):
                a, b = (o.a, o.b) if r == 0 else (o.dst, o.dst)
                ren = [x ^ rename if x in RENAMED else x for x in (o.dst, a, b)]
                rf[ren[0]] = self.op(o.kind, rf[ren[1]], rf[ren[2]])
                self.steps += 1

    def scalarmult(self, k: bytes, u: bytes) -> bytes:
        scalar = bytearray(k)
        scalar[0] &= 248
        scalar[31] = scalar[31] & 127 | 64
        n = int.from_bytes(scalar, "little")
        x1 = int.from_bytes(u, "little") & ((1 << 255) - 1)
        rf = {r: [0] * LIMBS for r in REG.values()}
        rf[REG["X1"]] = rf[REG["X3"]] = to_limbs(x1)
        rf[REG["X2"]] = rf[REG["Z3"]] = to_limbs(1)
        rf[REG["A24"]] = to_limbs(A24)
        for t in range(254, -1, -1):
            self.run(LADDER, rf, n >> t & 1)
        self.run(INVERT, rf)
        return (freeze(rf[REG["RES"]])).to_bytes(32, "little")


def freeze(limbs: list[int]) -> int:
    """The canonical value (< p) of weakly reduced limbs, as the gateware's serial unit
    computes it: three carry passes, then subtract p if the value is p or more."""
    for _ in range(3):
        c = 0
        out = []
        for v in limbs:
            v += c
            out.append(v & MASK)
            c = v >> LIMB_BITS
        out[0] += 19 * c
        limbs = out
    value = from_limbs(limbs)
    assert value < 1 << 255
    return value - P if value >= P else value

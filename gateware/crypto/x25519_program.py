# Ref: RFC 7748 §5 (the ladder); ref10's fe_invert (the inversion chain)
"""The X25519 engine's program: field operations on a register file of field elements.

One list, used by the gateware (:mod:`.x25519`, as its ROM) and by the limb-exact model
(:mod:`crossnic.sim.model.x25519`), so both run the same schedule. The ladder body runs 255
times; in step *t* the addresses of x2/x3 and z2/z3 are XORed with scalar bit *t*, which is
RFC 7748's conditional swap done by renaming (after step *t* the swap state equals bit *t*,
and after the last step it is back to 0).
"""

import enum
from dataclasses import dataclass

__all__ = ["Op", "Kind", "LADDER", "INVERT", "REG", "LIMBS", "LIMB_BITS", "P", "A24",
           "RENAMED"]

P = 2**255 - 19
A24 = 121665
LIMBS, LIMB_BITS = 15, 17


class Kind(enum.IntEnum):
    MUL = 0     #: dst = a * b (15 multiply steps)
    MULS = 1    #: dst = a * b where a < 2**17 (one multiply step: a's limb 0 only)
    ADD = 2     #: dst = a + b
    SUB = 3     #: dst = a - b (+ 4p, so limbs stay positive)


@dataclass(frozen=True)
class Op:
    kind: Kind
    dst: int
    a: int
    b: int
    rep: int = 1    #: repeat: later repetitions read dst as both operands (squaring chains)


#: Register file addresses. x2/x3 and z2/z3 differ in bit 0 only (renaming by XOR).
REG = {name: k for k, name in enumerate(
    ["ZERO", "X1", "X2", "X3", "Z2", "Z3", "A", "B", "C", "D", "AA", "BB", "E", "DA", "CB",
     "T1", "T2", "T3", "T4", "T5", "A24", "I0", "I1", "I2", "I3", "I4", "I5", "I6", "RES"])}
#: The addresses renamed during the ladder.
RENAMED = frozenset(REG[n] for n in ("X2", "X3", "Z2", "Z3"))


def _ops(*rows) -> tuple[Op, ...]:
    out = []
    for kind, dst, a, b, *rep in rows:
        out.append(Op(Kind[kind], REG[dst], REG[a], REG[b], *rep))
    return tuple(out)


#: One ladder step (RFC 7748 §5), ordered so that no operation waits long for the one before.
LADDER = _ops(
    ("ADD", "A", "X2", "Z2"),
    ("SUB", "B", "X2", "Z2"),
    ("ADD", "C", "X3", "Z3"),
    ("SUB", "D", "X3", "Z3"),
    ("MUL", "AA", "A", "A"),
    ("MUL", "BB", "B", "B"),
    ("MUL", "DA", "D", "A"),
    ("MUL", "CB", "C", "B"),
    ("SUB", "E", "AA", "BB"),
    ("MUL", "X2", "AA", "BB"),
    ("ADD", "T1", "DA", "CB"),
    ("SUB", "T2", "DA", "CB"),
    ("MULS", "T3", "A24", "E"),
    ("MUL", "X3", "T1", "T1"),
    ("ADD", "T4", "AA", "T3"),
    ("MUL", "T5", "T2", "T2"),
    ("MUL", "Z2", "E", "T4"),
    ("MUL", "Z3", "X1", "T5"),
)

#: RES = x2 * z2**(p - 2): 254 squarings and 12 multiplications.
INVERT = _ops(
    ("MUL", "I0", "Z2", "Z2"),              # z^2
    ("MUL", "I1", "I0", "I0", 2),           # z^8
    ("MUL", "I1", "I1", "Z2"),              # z^9
    ("MUL", "I2", "I1", "I0"),              # z^11
    ("MUL", "I3", "I2", "I2"),              # z^22
    ("MUL", "I3", "I3", "I1"),              # z^(2^5 - 1)
    ("MUL", "I4", "I3", "I3", 5),
    ("MUL", "I4", "I4", "I3"),              # z^(2^10 - 1)
    ("MUL", "I5", "I4", "I4", 10),
    ("MUL", "I5", "I5", "I4"),              # z^(2^20 - 1)
    ("MUL", "I6", "I5", "I5", 20),
    ("MUL", "I6", "I6", "I5"),              # z^(2^40 - 1)
    ("MUL", "I6", "I6", "I6", 10),
    ("MUL", "I6", "I6", "I4"),              # z^(2^50 - 1)
    ("MUL", "I5", "I6", "I6", 50),
    ("MUL", "I5", "I5", "I6"),              # z^(2^100 - 1)
    ("MUL", "I4", "I5", "I5", 100),
    ("MUL", "I4", "I4", "I5"),              # z^(2^200 - 1)
    ("MUL", "I4", "I4", "I4", 50),
    ("MUL", "I4", "I4", "I6"),              # z^(2^250 - 1)
    ("MUL", "I4", "I4", "I4", 5),           # z^(2^255 - 32)
    ("MUL", "I4", "I4", "I2"),              # z^(2^255 - 21) = z^(p - 2)
    ("MUL", "RES", "X2", "I4"),
)

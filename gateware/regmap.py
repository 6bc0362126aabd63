# Ref: ../shared/DESIGN.md "Host interface" (one register description for gateware, host, docs)
"""The register map, described once: blocks of registers with fields, access, reset and doc.

The gateware's decoder is sized from it, the host's accessors (:mod:`crossnic.host.registers`)
look registers up in it, and ``docs/regmap.md`` is generated from it (``crossnic regmap``), so
the three cannot drift apart. amaranth-soc would do this, but it is not installable from PyPI.

Addresses are word addresses on a :class:`~crossnic.gateware.csr.CsrSignature` bus (32-bit
words); a byte-addressed bus such as AXI4-Lite puts word *w* at byte ``4 * w``.
"""

import enum
from dataclasses import dataclass, field

from .csr import Counter

__all__ = ["Access", "Field", "Register", "Block", "RegisterMap", "PlacedRegister"]


class Access(enum.Enum):
    """How software may use a register or field."""
    RW = "rw"       #: read/write
    RO = "ro"       #: read-only; writes are ignored
    W1C = "w1c"     #: read; writing 1 to a bit clears it
    WC = "wc"       #: read; a write of any value clears the whole register (counters)


@dataclass(frozen=True)
class Field:
    name: str
    offset: int
    width: int
    access: Access
    doc: str
    reset: int = 0

    def __post_init__(self):
        if not (0 <= self.offset and 1 <= self.width and self.offset + self.width <= 32):
            raise ValueError(f"field {self.name!r}: bits {self.offset}+{self.width} outside 0..31")
        if not 0 <= self.reset < 1 << self.width:
            raise ValueError(f"field {self.name!r}: reset {self.reset:#x} does not fit "
                             f"{self.width} bits")

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.offset


@dataclass(frozen=True)
class Register:
    """One 32-bit word. ``part`` is ``"lo"``/``"hi"`` for the halves of a 64-bit value."""
    name: str
    offset: int                     # word offset inside its block
    doc: str
    fields: tuple[Field, ...]
    part: str = ""

    def __post_init__(self):
        if not self.fields:
            raise ValueError(f"register {self.name!r} has no fields")
        used = 0
        for f in self.fields:
            if used & f.mask:
                raise ValueError(f"register {self.name!r}: field {f.name!r} overlaps another")
            used |= f.mask
        if self.part not in ("", "lo", "hi"):
            raise ValueError(f"register {self.name!r}: part must be '', 'lo' or 'hi'")

    @classmethod
    def word(cls, name: str, offset: int, access: Access, doc: str, *, reset: int = 0,
             width: int = 32, part: str = "") -> "Register":
        """A register that is a single field named ``value``."""
        return cls(name, offset, doc, (Field("value", 0, width, access, doc, reset),), part)

    @property
    def access(self) -> Access:
        """The register's access if all its fields share one, else RW (mixed)."""
        kinds = {f.access for f in self.fields}
        return kinds.pop() if len(kinds) == 1 else Access.RW

    @property
    def reset(self) -> int:
        return sum(f.reset << f.offset for f in self.fields)

    @property
    def key(self) -> str:
        """Name as the host uses it: ``bytes_ok.lo`` for a half of a wide value."""
        return f"{self.name}.{self.part}" if self.part else self.name


@dataclass(frozen=True)
class Block:
    """Registers of one gateware block, at word offsets from the block's base.

    A block of ``count`` > 1 is an array of identical register sets (one per ring, say), set *n*
    at ``n * stride`` words: ``stride`` is a power of two that holds one set, so the gateware
    takes the set number straight from the address bits above it. Its registers are named
    ``block[n].register`` in the map.
    """
    name: str
    doc: str
    registers: tuple[Register, ...]
    read_latency: int = 2
    count: int = 1
    stride: int = 0

    def __post_init__(self):
        if self.count < 1:
            raise ValueError(f"block {self.name!r}: count must be at least 1")
        if self.count > 1:
            top = max(r.offset for r in self.registers)
            if self.stride & (self.stride - 1) or self.stride <= top:
                raise ValueError(f"block {self.name!r}: stride {self.stride} must be a power "
                                 f"of two above the last register offset {top}")
        seen: dict[int, str] = {}
        keys: set[str] = set()
        for r in self.registers:
            if r.offset < 0:
                raise ValueError(f"block {self.name!r}: register {r.name!r} at a negative offset")
            if r.offset in seen:
                raise ValueError(f"block {self.name!r}: {r.key!r} and {seen[r.offset]!r} "
                                 f"both at word {r.offset}")
            if r.key in keys:
                raise ValueError(f"block {self.name!r}: register {r.key!r} defined twice")
            seen[r.offset] = r.key
            keys.add(r.key)

    @property
    def addr_width(self) -> int:
        """Address bits the block decodes (at least 1)."""
        top = max(r.offset for r in self.registers)
        if self.count > 1:
            top = (self.count - 1) * self.stride + top
        return max(1, top.bit_length())

    @property
    def set_bits(self) -> int:
        """Address bits of one register set (the low bits; the set number is above them)."""
        return (self.stride - 1).bit_length() if self.count > 1 else self.addr_width

    def instances(self):
        """(path prefix, word offset) of each register set: ``("name", 0)`` for a single set,
        ``("name[n]", n * stride)`` for an array."""
        if self.count == 1:
            yield self.name, 0
        else:
            for n in range(self.count):
                yield f"{self.name}[{n}]", n * self.stride

    @classmethod
    def from_counters(cls, name: str, doc: str, counters: list[Counter]) -> "Block":
        """The registers of a :class:`~crossnic.gateware.csr.CounterBank` of ``counters``:
        counter *k* at words 2k (low) and 2k+1 (high, for counters wider than 32 bits)."""
        from .csr import CounterBank, counter_registers
        regs = []
        for reg in counter_registers(counters):
            c = next(c for c in counters if c.name == reg.name)
            width = 32 if reg.part == "lo" else min(32, c.width - (32 if reg.part == "hi" else 0))
            access = Access.RO if reg.part == "hi" else Access.WC
            regs.append(Register.word(reg.name, reg.addr, access, reg.doc, width=width,
                                      part=reg.part))
        return cls(name, doc, tuple(regs), CounterBank.read_latency)


@dataclass(frozen=True)
class PlacedRegister:
    block: str                      # ``name`` or ``name[n]`` for a set of an array block
    register: Register
    addr: int                       # word address on the bus

    @property
    def path(self) -> str:
        """``block.register`` (``block.register.lo`` for a half of a wide value)."""
        return f"{self.block}.{self.register.key}"


@dataclass
class RegisterMap:
    """Blocks placed at ``index << block_bits`` on one bus, in order.

    Parameters
    ----------
    title : str
    blocks : list of :class:`Block`
    block_bits : int or None
        Word-address bits per block; the smallest that fits every block when left out.
    """
    title: str
    blocks: list[Block]
    block_bits: int | None = None
    _by_path: dict[str, PlacedRegister] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        names = [b.name for b in self.blocks]
        if len(set(names)) != len(names):
            raise ValueError(f"block names must be unique: {names}")
        if not self.blocks:
            raise ValueError("a register map needs at least one block")
        need = max(b.addr_width for b in self.blocks)
        if self.block_bits is None:
            self.block_bits = need
        elif self.block_bits < need:
            raise ValueError(f"block_bits={self.block_bits} is too small: a block needs {need}")
        for r in self.registers():
            self._by_path[r.path] = r

    @property
    def addr_width(self) -> int:
        """Word-address bits of the whole bus."""
        return self.block_bits + max(1, (len(self.blocks) - 1).bit_length())

    def base(self, block: str) -> int:
        for k, b in enumerate(self.blocks):
            if b.name == block:
                return k << self.block_bits
        raise KeyError(f"no block {block!r}; blocks: {', '.join(b.name for b in self.blocks)}")

    def registers(self):
        """Every register of every set of every block, in address order."""
        for k, b in enumerate(self.blocks):
            for prefix, offset in b.instances():
                for r in sorted(b.registers, key=lambda r: r.offset):
                    yield PlacedRegister(prefix, r, (k << self.block_bits) + offset + r.offset)

    def __getitem__(self, path: str) -> PlacedRegister:
        try:
            return self._by_path[path]
        except KeyError:
            raise KeyError(f"no register {path!r} in {self.title}") from None

    def __contains__(self, path: str) -> bool:
        return path in self._by_path

    def to_json(self) -> list[dict]:
        """One record per register (``regmap.json`` of a board build)."""
        return [{"block": r.block, "name": r.register.name, "part": r.register.part,
                 "addr": r.addr, "access": r.register.access.value, "reset": r.register.reset,
                 "doc": r.register.doc} for r in self.registers()]

    def markdown(self) -> str:
        """The reference document (``docs/regmap.md``)."""
        lines = [f"# {self.title}", "",
                 ("Generated by `crossnic regmap --markdown` from the register description in the "
                 "code; do not edit. Addresses are 32-bit word addresses."), "",
                 (f"{len(self.blocks)} blocks of up to {1 << self.block_bits} words, "
                 f"{self.addr_width} address bits."), "",
                 "| block | base | words | read latency | what |", "|---|---|---|---|---|"]
        for b in self.blocks:
            lines.append(f"| `{b.name}` | {self.base(b.name):#06x} | {1 << b.addr_width} "
                         f"| {b.read_latency} | {b.doc} |")
        for b in self.blocks:
            base = self.base(b.name)
            lines += ["", f"## `{b.name}` at {base:#06x}", "", b.doc, ""]
            if b.count > 1:
                lines += [(f"{b.count} register sets `{b.name}[n]`, set *n* at "
                           f"{base:#06x} + {b.stride}*n; offsets below are within a set."), ""]
            lines += ["| address | register | access | reset | description |",
                      "|---|---|---|---|---|"]
            for reg in sorted(b.registers, key=lambda r: r.offset):
                where = f"+{reg.offset:#04x}" if b.count > 1 else f"{base + reg.offset:#06x}"
                lines.append(f"| {where} | `{reg.key}` | {reg.access.value} "
                             f"| {reg.reset:#x} | {_doc(reg)} |")
        return "\n".join(lines) + "\n"


def _doc(reg: Register) -> str:
    if len(reg.fields) == 1 and reg.fields[0].offset == 0 and reg.fields[0].name == "value":
        text = reg.doc
        if reg.fields[0].width < 32:
            text += f" (bits [{reg.fields[0].width - 1}:0])"
    else:
        parts = [f"[{f.offset + f.width - 1}:{f.offset}] `{f.name}` ({f.access.value}): {f.doc}"
                 for f in sorted(reg.fields, key=lambda f: f.offset)]
        text = reg.doc + "<br>" + "<br>".join(parts)
    return text.replace("|", "\\|")

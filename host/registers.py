"""Host access to the card's registers by name, through the shared register description.

Whatever moves the words (the board UART today, PCIe BAR0 or the simulator socket later) is given
as two functions; :class:`Registers` turns names from :class:`~crossnic.gateware.regmap.RegisterMap`
into addresses, refuses writes the description does not allow, reads 64-bit counters low word
first (which latches the high word on the card) and does read-modify-write on fields.
"""

from collections.abc import Callable

from crossnic.gateware.regmap import Access, PlacedRegister, RegisterMap

__all__ = ["Registers", "RegisterAccessError"]


class RegisterAccessError(ValueError):
    """A request the register description does not allow (unknown name, read-only, range)."""


class Registers:
    """Named register access.

    Parameters
    ----------
    regmap : RegisterMap
    read32 : callable(addr) -> int
    write32 : callable(addr, value)
        Word-address accessors of the bus the map describes.
    """

    def __init__(self, regmap: RegisterMap, read32: Callable[[int], int],
                 write32: Callable[[int, int], None]):
        self.regmap = regmap
        self._read32 = read32
        self._write32 = write32

    def _lookup(self, path: str) -> PlacedRegister:
        try:
            return self.regmap[path]
        except KeyError as e:
            raise RegisterAccessError(str(e.args[0])) from None

    def read(self, path: str) -> int:
        """A register (``block.name``); a 64-bit counter (``block.name`` of a lo/hi pair) is
        read low word first, so both words are one snapshot."""
        if path not in self.regmap and f"{path}.lo" in self.regmap:
            lo = self._read32(self.regmap[f"{path}.lo"].addr)
            hi = self._read32(self._lookup(f"{path}.hi").addr)
            return hi << 32 | lo
        return self._read32(self._lookup(path).addr)

    def write(self, path: str, value: int) -> None:
        """Write a whole register; read-only registers and out-of-range values are refused."""
        reg = self._lookup(path)
        if reg.register.access is Access.RO:
            raise RegisterAccessError(f"{path} is read-only")
        writable = sum(f.mask for f in reg.register.fields if f.access is not Access.RO)
        if not 0 <= value < 1 << 32 or value & ~writable & 0xFFFF_FFFF:
            raise RegisterAccessError(f"{path}: {value:#x} sets bits outside the writable "
                                      f"mask {writable:#010x}")
        self._write32(reg.addr, value)

    def clear(self, path: str) -> None:
        """Clear a counter (a write to its first word)."""
        key = path if path in self.regmap else f"{path}.lo"
        reg = self._lookup(key)
        if reg.register.access is not Access.WC:
            raise RegisterAccessError(f"{path} is not a clearable counter")
        self._write32(reg.addr, 0)

    def read_field(self, path: str, field: str) -> int:
        reg = self._lookup(path)
        f = self._field(reg, field)
        return (self._read32(reg.addr) & f.mask) >> f.offset

    def write_field(self, path: str, field: str, value: int) -> None:
        """Read-modify-write of one read/write field."""
        reg = self._lookup(path)
        f = self._field(reg, field)
        if f.access is not Access.RW:
            raise RegisterAccessError(f"{path}.{field} is {f.access.value}, not rw")
        if not 0 <= value < 1 << f.width:
            raise RegisterAccessError(f"{path}.{field}: {value} does not fit {f.width} bits")
        rw = sum(g.mask for g in reg.register.fields if g.access is Access.RW)
        word = self._read32(reg.addr) & rw & ~f.mask
        self._write32(reg.addr, word | value << f.offset)

    def counters(self, block: str) -> dict[str, int]:
        """Every counter of a block, wide ones combined."""
        names = dict.fromkeys(r.register.name for r in self.regmap.registers()
                              if r.block == block)
        if not names:
            raise RegisterAccessError(f"no block {block!r}")
        return {name: self.read(f"{block}.{name}") for name in names}

    @staticmethod
    def _field(reg: PlacedRegister, name: str):
        for f in reg.register.fields:
            if f.name == name:
                return f
        raise RegisterAccessError(f"{reg.path} has no field {name!r}; fields: "
                                  f"{', '.join(f.name for f in reg.register.fields)}")

"""The Unix-socket protocol between a driver and a simulated card (``crossnic sim --serve``).

Register accesses and interrupts go over the socket; host memory does not: it is a shared file
both processes map, which the simulated card's AXI host-memory model reads and writes directly.

Every message is 16 bytes, little-endian: ``op`` (u8), ``status`` (u8: the AXI response, 0 is
OKAY), 2 reserved bytes, ``tag`` (u32, echoed in the reply), ``addr`` (u32), ``value`` (u32).

* ``HELLO`` (client first): the reply has ``value`` = host-memory bytes, ``addr`` = length of
  the shared file's path, which follows the reply as UTF-8; ``tag`` = interrupt vectors.
* ``READ`` addr -> reply ``value``; ``WRITE`` addr, value -> reply. ``addr`` is a word address.
* ``IRQ`` (server to client, any time): vectors ``32 * addr + bit`` for each bit of ``value``
  fired (their line rose).
* ``BYE``: the server ends the simulation after replying.
"""

import enum
import struct

__all__ = ["Op", "MESSAGE", "pack", "unpack"]

MESSAGE = struct.Struct("<BBxxIII")


class Op(enum.IntEnum):
    HELLO = 1
    READ = 2
    WRITE = 3
    IRQ = 4
    BYE = 5


def pack(op: Op, tag: int = 0, addr: int = 0, value: int = 0, status: int = 0) -> bytes:
    return MESSAGE.pack(op, status, tag & 0xFFFF_FFFF, addr & 0xFFFF_FFFF, value & 0xFFFF_FFFF)


def unpack(raw: bytes) -> tuple[Op, int, int, int, int]:
    """``(op, status, tag, addr, value)``; an unknown op raises ValueError."""
    op, status, tag, addr, value = MESSAGE.unpack(raw)
    return Op(op), status, tag, addr, value

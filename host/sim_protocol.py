"""The Unix-socket protocol between a driver and a simulated card (``crossnic sim --serve``).

Register accesses and interrupts go over the socket; host memory does not: it is a shared file
both processes map, which the simulated card's AXI host-memory model reads and writes directly.

Every message is 16 bytes, little-endian: ``op`` (u8), ``status`` (u8: the AXI response, 0 is
OKAY), 2 reserved bytes, ``tag`` (u32, echoed in the reply), ``addr`` (u32), ``value`` (u32).

* ``HELLO`` (client first): the reply has ``value`` = host-memory bytes, ``addr`` = length of
  the shared file's path, which follows the reply as UTF-8; ``tag`` = interrupt vectors. The
  request's ``addr`` says which function the client is: 0 the PF (all of BAR0, every vector),
  *n* + 1 virtual function *n*: its register addresses are words of its own window (the VF
  BAR; an address beyond it is answered ``DECERR`` by the server, as PCIe answers an address
  no BAR claims) and its vectors are its own (:data:`VF_VECTORS`). A card without that VF
  refuses the HELLO with ``status`` 3.
* ``READ`` addr -> reply ``value``; ``WRITE`` addr, value -> reply. ``addr`` is a word address.
* ``IRQ`` (server to client, any time): vectors ``32 * addr + bit`` for each bit of ``value``
  fired (their line rose).
* ``BYE``: the server ends the simulation after replying.
* ``CABLE`` addr = port, value 0 pull its cable, 1 plug it back, 2 only ask: the simulator's
  hand on the wire, not a register of the card (a PF client only). The reply's ``value`` is 1
  when the port has link; ``status`` ``DECERR`` for a port the card does not have.
"""

import enum
import struct

__all__ = ["Op", "MESSAGE", "pack", "unpack", "VF_VECTORS", "vf_vector", "VF_MBOX_VECTOR"]

MESSAGE = struct.Struct("<BBxxIII")
#: Vectors of a VF client: its receive ring k is k, its transmit ring k is 8 + k (8 =
#: ``MAX_VF_RINGS``), the mailbox reply 16.
VF_VECTORS = 17
VF_MBOX_VECTOR = 16


def vf_vector(kind: str, k: int) -> int:
    """A VF client's vector of its ring ``k`` (``kind`` "rx" or "tx")."""
    return k if kind == "rx" else 8 + k


class Op(enum.IntEnum):
    HELLO = 1
    READ = 2
    WRITE = 3
    IRQ = 4
    BYE = 5
    CABLE = 6


def pack(op: Op, tag: int = 0, addr: int = 0, value: int = 0, status: int = 0) -> bytes:
    return MESSAGE.pack(op, status, tag & 0xFFFF_FFFF, addr & 0xFFFF_FFFF, value & 0xFFFF_FFFF)


def unpack(raw: bytes) -> tuple[Op, int, int, int, int]:
    """``(op, status, tag, addr, value)``; an unknown op raises ValueError."""
    op, status, tag, addr, value = MESSAGE.unpack(raw)
    return Op(op), status, tag, addr, value

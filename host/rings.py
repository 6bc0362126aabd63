"""Host side of the rings: receive descriptors posted and completions found by their phase
bit; transmit frames posted and their completion read from the head the card writes back.

Pure bookkeeping over two small interfaces, so the daemon (issue "Host stack") and the
testbenches drive rings the same way: host memory is ``read(addr, length) -> bytes`` /
``write(addr, data)`` and register traffic is returned as ``(path, value)`` pairs for whatever
moves words (AXI4-Lite in simulation, BAR0 on hardware). Descriptors and completions are packed
and unpacked from the layouts in :mod:`crossnic.gateware.layouts`, not by hand.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from crossnic.gateware.layouts import (
    COMPLETION_BYTES,
    DESCRIPTOR_BYTES,
    RxCompletion,
    RxDescriptor,
    TxDescriptor,
)

__all__ = ["RxRing", "TxRing", "pack", "unpack"]

Read = Callable[[int, int], bytes]
Write = Callable[[int, bytes], None]


def pack(layout, **values: int) -> bytes:
    """A struct layout's fields as little-endian bytes (16 for descriptors/completions)."""
    shape = layout.as_shape() if hasattr(layout, "as_shape") else layout
    word = 0
    for name, fld in shape:
        v = int(getattr(values.get(name, 0), "value", values.get(name, 0)))
        word |= (v & ((1 << fld.width) - 1)) << fld.offset
    return word.to_bytes((shape.size + 7) // 8, "little")


def unpack(layout, raw: bytes) -> dict[str, int]:
    shape = layout.as_shape() if hasattr(layout, "as_shape") else layout
    word = int.from_bytes(raw, "little")
    return {name: word >> fld.offset & ((1 << fld.width) - 1) for name, fld in shape}


@dataclass
class RxRing:
    """One receive ring: ``2**size_log2`` descriptors and completions, one buffer per slot.

    ``desc_base``/``cpl_base`` are 16-byte aligned bus addresses; buffer *k* is at
    ``buf_base + k * buf_size`` (8-byte aligned).
    """
    index: int
    size_log2: int
    desc_base: int
    cpl_base: int
    buf_base: int
    buf_size: int = 2048
    desc_tail: int = 0            # descriptors posted (free-running, 16 bits)
    cpl_tail: int = 0             # completions consumed
    posted: dict[int, int] = field(default_factory=dict)   # slot -> buffer address

    @property
    def size(self) -> int:
        return 1 << self.size_log2

    def reg(self, name: str) -> str:
        return f"rx_ring[{self.index}].{name}"

    def setup(self, *, enable: bool = True, irq_count: int = 0,
              irq_time_us: int = 0) -> list[tuple[str, int]]:
        """Register writes that configure the (reset, disabled) ring; then :meth:`post`."""
        return [
            (self.reg("desc_base.lo"), self.desc_base & 0xFFFF_FFFF),
            (self.reg("desc_base.hi"), self.desc_base >> 32),
            (self.reg("cpl_base.lo"), self.cpl_base & 0xFFFF_FFFF),
            (self.reg("cpl_base.hi"), self.cpl_base >> 32),
            (self.reg("irq_moder"), irq_count | irq_time_us << 16),
            (self.reg("ctrl"), int(enable) | self.size_log2 << 8),
        ]

    def clear_completions(self, write: Write) -> None:
        write(self.cpl_base, bytes(COMPLETION_BYTES * self.size))

    def post(self, write: Write, count: int | None = None) -> list[tuple[str, int]]:
        """Post up to ``count`` buffers (all free slots when None); returns the doorbell."""
        free = self.size - ((self.desc_tail - self.cpl_tail) & 0xFFFF)
        count = free if count is None else min(count, free)
        for _ in range(count):
            slot = self.desc_tail % self.size
            addr = self.buf_base + slot * self.buf_size
            write(self.desc_base + slot * DESCRIPTOR_BYTES,
                  pack(RxDescriptor, addr=addr, length=self.buf_size))
            self.posted[slot] = addr
            self.desc_tail = (self.desc_tail + 1) & 0xFFFF
        return [(self.reg("desc_tail"), self.desc_tail)]

    def _next(self, read: Read) -> dict | None:
        """The completion at ``cpl_tail`` if the card has written it (its phase bit)."""
        slot = self.cpl_tail % self.size
        phase = (~(self.cpl_tail >> self.size_log2)) & 1
        c = unpack(RxCompletion, read(self.cpl_base + slot * COMPLETION_BYTES, COMPLETION_BYTES))
        return c if c["phase"] == phase else None

    def pending(self, read: Read) -> bool:
        """Whether a completion is waiting (nothing taken)."""
        return self._next(read) is not None

    def poll(self, read: Read, budget: int | None = None
             ) -> tuple[list[tuple[dict, bytes]], list[tuple[str, int]]]:
        """New completions (at most ``budget``) with their frames, and the register write
        that returns them."""
        out = []
        while (budget is None or len(out) < budget) and (c := self._next(read)) is not None:
            out.append((c, read(self.posted[self.cpl_tail % self.size], c["length"])))
            self.cpl_tail = (self.cpl_tail + 1) & 0xFFFF
        return out, ([(self.reg("cpl_tail"), self.cpl_tail)] if out else [])


@dataclass
class TxRing:
    """One transmit ring: ``2**size_log2`` descriptors, one buffer per slot, head written back
    by the card to ``head_wb`` (4 bytes)."""
    index: int
    size_log2: int
    desc_base: int
    head_wb: int
    buf_base: int
    buf_size: int = 2048
    tail: int = 0                 # descriptors posted (free-running, 16 bits)
    head: int = 0                 # descriptors the card has finished, as last read back

    @property
    def size(self) -> int:
        return 1 << self.size_log2

    def reg(self, name: str) -> str:
        return f"tx_ring[{self.index}].{name}"

    def setup(self, *, port: int, vnic: int, priority: int = 1, maxbw: int = 0,
              irq_count: int = 0, enable: bool = True) -> list[tuple[str, int]]:
        """Register writes that configure the (reset, disabled) ring. ``maxbw`` is in the
        scheduler's register units (:func:`crossnic.gateware.tx_scheduler.rate_register`)."""
        return [
            (self.reg("desc_base.lo"), self.desc_base & 0xFFFF_FFFF),
            (self.reg("desc_base.hi"), self.desc_base >> 32),
            (self.reg("head_wb.lo"), self.head_wb & 0xFFFF_FFFF),
            (self.reg("head_wb.hi"), self.head_wb >> 32),
            (self.reg("vnic"), vnic),
            (self.reg("maxbw"), maxbw),
            (self.reg("irq_moder"), irq_count),
            (self.reg("ctrl"), int(enable) | self.size_log2 << 8 | priority << 16 | port << 20),
        ]

    def room(self, read: Read) -> int:
        self.head = int.from_bytes(read(self.head_wb, 4), "little") & 0xFFFF
        return self.size - ((self.tail - self.head) & 0xFFFF)

    def send(self, write: Write, frames: list[bytes]) -> list[tuple[str, int]]:
        """Copy ``frames`` into buffers, post their descriptors; returns the doorbell. The
        caller checks :meth:`room` first."""
        for frame in frames:
            if len(frame) > self.buf_size:
                raise ValueError(f"frame of {len(frame)} bytes exceeds the {self.buf_size}-byte "
                                 "buffer")
            slot = self.tail % self.size
            addr = self.buf_base + slot * self.buf_size
            write(addr, frame)
            write(self.desc_base + slot * DESCRIPTOR_BYTES,
                  pack(TxDescriptor, addr=addr, length=len(frame)))
            self.tail = (self.tail + 1) & 0xFFFF
        return [(self.reg("tail"), self.tail)]

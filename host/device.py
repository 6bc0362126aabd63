"""What the driver needs from a card, whatever carries it: the :class:`Device` protocol.

A card is 32-bit registers (BAR0 on PCIe), host memory it can reach by DMA, and interrupt
vectors. Backends: :class:`crossnic.host.sim_device.SimDevice` (a simulated card over a Unix
socket, host memory in a shared file) and :class:`crossnic.host.vfio.VfioDevice` (a card on
PCIe through the kernel's VFIO driver). The DMA allocator is the same for both: the driver owns
a region of bus addresses and hands out aligned pieces of it.

Interrupt vectors follow the card's lines (``NicCore.rx_irq`` / ``tx_irq``): vector *n* is
receive ring *n*, vector ``rings + n`` transmit ring *n*. A vector fires when its line rises
(as an MSI-X message would); the driver acknowledges it at the ring (``irq_status``).
"""

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Device", "DmaBuffer", "DmaAllocator", "DeviceError", "BusError"]


class DeviceError(RuntimeError):
    """The device cannot be opened or has gone away."""


class BusError(DeviceError):
    """A register access the card refused (AXI SLVERR/DECERR, PCIe completer abort)."""

    def __init__(self, op: str, addr: int, resp: int):
        super().__init__(f"{op} of register word {addr:#x} refused by the card "
                         f"({'SLVERR' if resp == 2 else 'DECERR' if resp == 3 else resp})")
        self.addr = addr
        self.resp = resp


@dataclass(frozen=True)
class DmaBuffer:
    """A piece of host memory the card can reach: its bus address and a view of its bytes."""
    addr: int
    view: memoryview

    @property
    def size(self) -> int:
        return len(self.view)


@runtime_checkable
class Device(Protocol):
    """A card as the driver sees it. Register addresses are word addresses (as the register
    description gives them)."""

    def read32(self, addr: int) -> int: ...
    def write32(self, addr: int, value: int) -> None: ...
    def alloc(self, size: int, align: int = 64) -> DmaBuffer: ...
    def free(self, buf: DmaBuffer) -> None: ...
    def wait_irq(self, timeout: float | None = None) -> set[int]:
        """Vectors that fired since the last call (empty on timeout)."""
        ...
    def close(self) -> None: ...


class DmaAllocator:
    """First-fit allocation of bus addresses in ``[base, base + size)``, freed pieces merged.

    Keeps only addresses; the backend maps them to memory. Deterministic, so a driver restarted
    over the same device lays its rings out the same way.
    """

    def __init__(self, base: int, size: int):
        if size <= 0:
            raise ValueError(f"an allocator needs a positive size, not {size}")
        self._free: list[tuple[int, int]] = [(base, size)]        # (start, length), sorted
        self._used: dict[int, int] = {}

    def alloc(self, size: int, align: int = 64) -> int:
        if size <= 0:
            raise ValueError(f"cannot allocate {size} bytes")
        if align <= 0 or align & (align - 1):
            raise ValueError(f"alignment must be a power of two, not {align}")
        for k, (start, length) in enumerate(self._free):
            addr = (start + align - 1) & ~(align - 1)
            if addr + size <= start + length:
                pieces = [(start, addr - start), (addr + size, start + length - addr - size)]
                self._free[k:k + 1] = [(s, n) for s, n in pieces if n]
                self._used[addr] = size
                return addr
        raise MemoryError(f"no {size} bytes (aligned {align}) left in the DMA region "
                          f"({self.free_bytes} bytes free, fragmented)")

    def free(self, addr: int) -> None:
        size = self._used.pop(addr, None)
        if size is None:
            raise ValueError(f"{addr:#x} is not an allocated DMA buffer")
        self._free.append((addr, size))
        self._free.sort()
        merged: list[tuple[int, int]] = []
        for start, length in self._free:
            if merged and merged[-1][0] + merged[-1][1] == start:
                merged[-1] = (merged[-1][0], merged[-1][1] + length)
            else:
                merged.append((start, length))
        self._free = merged

    @property
    def free_bytes(self) -> int:
        return sum(n for _, n in self._free)

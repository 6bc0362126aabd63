"""``SimDevice``: a simulated card (``crossnic sim --serve``) as a driver's device.

Registers and interrupts travel over the server's Unix socket (:mod:`crossnic.host.sim_protocol`);
host memory is the shared file the server names in its greeting, mapped here, so a DMA buffer's
bus address is its offset in that file. Thread-safe: a reader thread routes replies to the
callers waiting on them and collects interrupt vectors for :meth:`wait_irq`.
"""

import mmap
import os
import socket
import threading
from pathlib import Path

from .device import BusError, DeviceError, DmaAllocator, DmaBuffer
from .sim_protocol import MESSAGE, Op, pack, unpack

__all__ = ["SimDevice", "RESERVED_LOW"]

#: Host memory below this is never allocated (bus address 0 stays invalid).
RESERVED_LOW = 0x1000


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise DeviceError("the simulated card closed the connection")
        buf += chunk
    return bytes(buf)


class SimDevice:
    """Connect to the simulated card listening on ``path``.

    ``timeout``: seconds a register access may take before the card is declared gone (the
    whole card simulates some 20,000 clocks a second, so an access takes a millisecond or so).
    ``vf``: attach as that virtual function, as a guest given the VF by passthrough: register
    addresses are then words of the VF's window and interrupts its own; DMA buffers come from
    the memory its PF granted, once :meth:`grant_memory` says where that is.
    """

    def __init__(self, path: str | os.PathLike, *, timeout: float = 30.0,
                 vf: int | None = None):
        self.path = Path(path)
        self.vf = vf
        self.timeout = timeout
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.connect(str(self.path))
        except OSError as e:
            self._sock.close()
            raise DeviceError(f"no simulated card at {self.path}: {e.strerror or e}. Start one "
                              "with: crossnic sim --serve --socket " + str(self.path)) from None
        self._sock.sendall(pack(Op.HELLO, addr=0 if vf is None else vf + 1))
        _, status, vectors, path_len, size = unpack(_recv_exact(self._sock, MESSAGE.size))
        if status:
            self._sock.close()
            raise DeviceError(f"the simulated card at {self.path} has no VF {vf}")
        mem_path = _recv_exact(self._sock, path_len).decode()
        self.vectors = vectors
        self.memory_path = mem_path
        fd = os.open(mem_path, os.O_RDWR)
        try:
            self._mem = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self.memory = memoryview(self._mem)
        self.memory_size = size
        self._dma: DmaAllocator | None = \
            DmaAllocator(RESERVED_LOW, size - RESERVED_LOW) if vf is None else None
        self._lock = threading.Lock()               # one request on the wire at a time
        self._reply = threading.Condition()
        self._replies: dict[int, tuple[int, int]] = {}
        self._irqs: set[int] = set()
        #: readable while interrupts wait (for select/poll beside other descriptors)
        self.irq_fd = os.eventfd(0, os.EFD_NONBLOCK)
        self._tag = 0
        self._closed = False
        self._error: str | None = None
        self._reader = threading.Thread(target=self._read_loop, name="simdev-rx", daemon=True)
        self._reader.start()

    # --- socket ---------------------------------------------------------------------------
    def _read_loop(self) -> None:
        try:
            while True:
                op, status, tag, addr, value = unpack(_recv_exact(self._sock, MESSAGE.size))
                with self._reply:
                    if op is Op.IRQ:
                        self._irqs.update(32 * addr + b for b in range(32) if value >> b & 1)
                        os.eventfd_write(self.irq_fd, 1)
                    else:
                        self._replies[tag] = (status, value)
                    self._reply.notify_all()
        except (DeviceError, OSError, ValueError) as e:
            with self._reply:
                self._error = str(e) if not self._closed else "closed"
                self._reply.notify_all()

    def _request(self, op: Op, addr: int = 0, value: int = 0) -> tuple[int, int]:
        with self._lock:
            if self._error:
                raise DeviceError(f"simulated card at {self.path}: {self._error}")
            self._tag = (self._tag + 1) & 0xFFFF_FFFF
            tag = self._tag
            self._sock.sendall(pack(op, tag, addr, value))
            with self._reply:
                self._reply.wait_for(lambda: tag in self._replies or self._error,
                                     self.timeout)
                if tag in self._replies:
                    return self._replies.pop(tag)
                why = self._error or f"no reply in {self.timeout} s"
                raise DeviceError(f"simulated card at {self.path}: {why}")

    # --- Device ---------------------------------------------------------------------------
    def read32(self, addr: int) -> int:
        status, value = self._request(Op.READ, addr)
        if status:
            raise BusError("read", addr, status)
        return value

    def write32(self, addr: int, value: int) -> None:
        if not 0 <= value < 1 << 32:
            raise ValueError(f"a register value is 32 bits, not {value:#x}")
        status, _ = self._request(Op.WRITE, addr, value)
        if status:
            raise BusError("write", addr, status)

    def grant_memory(self, base: int, size: int) -> None:
        """A VF's DMA buffers come from ``[base, base + size)`` (what its PF granted)."""
        if not (0 < base and size > 0 and base + size <= self.memory_size):
            raise DeviceError(f"granted memory {base:#x}+{size:#x} is not inside the card's "
                              f"{self.memory_size:#x} bytes of host memory")
        self._dma = DmaAllocator(base, size)

    def alloc(self, size: int, align: int = 64) -> DmaBuffer:
        if self._dma is None:
            raise MemoryError("no DMA memory granted yet (a VF asks its PF first)")
        addr = self._dma.alloc(size, align)
        return DmaBuffer(addr, self.memory[addr:addr + size])

    def free(self, buf: DmaBuffer) -> None:
        self._dma.free(buf.addr)

    def wait_irq(self, timeout: float | None = None) -> set[int]:
        with self._reply:
            self._reply.wait_for(lambda: self._irqs or self._error, timeout)
            if self._error and not self._irqs:
                raise DeviceError(f"simulated card at {self.path}: {self._error}")
            fired, self._irqs = self._irqs, set()
            try:
                os.eventfd_read(self.irq_fd)
            except BlockingIOError:
                pass
            return fired

    # host memory by bus address (for the ring helpers' read/write callables)
    def mem_read(self, addr: int, length: int) -> bytes:
        return bytes(self.memory[addr:addr + length])

    def mem_write(self, addr: int, data: bytes) -> None:
        self.memory[addr:addr + len(data)] = data

    def shutdown(self) -> None:
        """Ask the server to end the simulation, then close."""
        try:
            self._request(Op.BYE)
        finally:
            self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._reader.join(timeout=2)
        os.close(self.irq_fd)
        try:
            self.memory.release()
            self._mem.close()
        except BufferError:          # a caller still holds a view of a DMA buffer
            pass

    def __enter__(self) -> "SimDevice":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

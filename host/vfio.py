# Ref: Linux include/uapi/linux/vfio.h; Documentation/driver-api/vfio.rst
"""``VfioDevice``: a crossnic card on PCIe, through the kernel's VFIO driver.

The card (bound to ``vfio-pci``) is opened the way the kernel documentation describes: a
container (``/dev/vfio/vfio``) with the type-1 IOMMU, the device's IOMMU group
(``/dev/vfio/N``), the device file from the group; BAR0 (the registers) is mapped from the
device file; host memory for DMA is an anonymous mapping the IOMMU maps at bus addresses the
driver chooses (:class:`~crossnic.host.device.DmaAllocator`); each MSI-X vector signals an
eventfd. ioctl numbers and structure layouts are those of ``linux/vfio.h`` (a unit test
compiles the header and compares).

No card here means a clear :class:`~crossnic.host.device.DeviceError` saying what is missing.
"""

import ctypes
import fcntl
import mmap
import os
import select
import struct
from pathlib import Path

from .device import DeviceError, DmaAllocator, DmaBuffer

__all__ = ["VfioDevice", "IOCTL", "STRUCTS", "CONSTANTS", "DMA_BASE"]


def _io(nr: int) -> int:
    """``_IO(VFIO_TYPE, VFIO_BASE + nr)``: VFIO's ioctls carry no size or direction bits."""
    return ord(";") << 8 | (100 + nr)


IOCTL = {
    "VFIO_GET_API_VERSION": _io(0), "VFIO_CHECK_EXTENSION": _io(1), "VFIO_SET_IOMMU": _io(2),
    "VFIO_GROUP_GET_STATUS": _io(3), "VFIO_GROUP_SET_CONTAINER": _io(4),
    "VFIO_GROUP_UNSET_CONTAINER": _io(5), "VFIO_GROUP_GET_DEVICE_FD": _io(6),
    "VFIO_DEVICE_GET_INFO": _io(7), "VFIO_DEVICE_GET_REGION_INFO": _io(8),
    "VFIO_DEVICE_GET_IRQ_INFO": _io(9), "VFIO_DEVICE_SET_IRQS": _io(10),
    "VFIO_DEVICE_RESET": _io(11), "VFIO_IOMMU_GET_INFO": _io(12),
    "VFIO_IOMMU_MAP_DMA": _io(13), "VFIO_IOMMU_UNMAP_DMA": _io(14),
}
CONSTANTS = {
    "VFIO_API_VERSION": 0, "VFIO_TYPE1_IOMMU": 1, "VFIO_TYPE1v2_IOMMU": 3,
    "VFIO_GROUP_FLAGS_VIABLE": 1, "VFIO_PCI_BAR0_REGION_INDEX": 0,
    "VFIO_PCI_MSI_IRQ_INDEX": 1, "VFIO_PCI_MSIX_IRQ_INDEX": 2,
    "VFIO_IRQ_SET_DATA_EVENTFD": 1 << 2, "VFIO_IRQ_SET_ACTION_TRIGGER": 1 << 5,
    "VFIO_DMA_MAP_FLAG_READ": 1, "VFIO_DMA_MAP_FLAG_WRITE": 2,
    "VFIO_REGION_INFO_FLAG_MMAP": 1 << 2,
}
#: struct layouts (Python struct formats, native alignment = the kernel's) by C name, with
#: their field names in order.
STRUCTS = {
    "vfio_group_status": ("=II", ("argsz", "flags")),
    "vfio_device_info": ("=IIII", ("argsz", "flags", "num_regions", "num_irqs")),
    "vfio_region_info": ("=IIIIQQ", ("argsz", "flags", "index", "cap_offset", "size",
                                     "offset")),
    "vfio_irq_info": ("=IIII", ("argsz", "flags", "index", "count")),
    "vfio_irq_set": ("=IIIII", ("argsz", "flags", "index", "start", "count")),
    "vfio_iommu_type1_dma_map": ("=IIQQQ", ("argsz", "flags", "vaddr", "iova", "size")),
    "vfio_iommu_type1_dma_unmap": ("=IIQQ", ("argsz", "flags", "iova", "size")),
}
#: Bus address where the driver's DMA region starts (anything but 0 works with an IOMMU).
DMA_BASE = 0x1_0000_0000


def _pack(name: str, **values: int) -> bytearray:
    fmt, fields = STRUCTS[name]
    values.setdefault("argsz", struct.calcsize(fmt))
    return bytearray(struct.pack(fmt, *(values.get(f, 0) for f in fields)))


def _unpack(name: str, raw: bytes) -> dict[str, int]:
    fmt, fields = STRUCTS[name]
    return dict(zip(fields, struct.unpack_from(fmt, raw), strict=True))


def _ioctl(fd: int, name: str, arg=0):
    try:
        return fcntl.ioctl(fd, IOCTL[name], arg)
    except OSError as e:
        raise DeviceError(f"{name} failed: {e.strerror}") from None


class VfioDevice:
    """The card at PCI address ``pci`` (``0000:01:00.0``), with ``dma_mb`` of host memory."""

    def __init__(self, pci: str, *, dma_mb: int = 64, vectors: int = 128):
        self.pci = pci
        sysfs = Path("/sys/bus/pci/devices") / pci
        if not sysfs.exists():
            raise DeviceError(f"no PCI device {pci} (lspci -D lists the card's address)")
        driver = (sysfs / "driver").resolve().name if (sysfs / "driver").exists() else None
        if driver != "vfio-pci":
            raise DeviceError(f"{pci} is bound to {driver or 'no driver'}, not vfio-pci: "
                              f"echo {pci} > /sys/bus/pci/devices/{pci}/driver/unbind; "
                              f"echo vfio-pci > /sys/bus/pci/devices/{pci}/driver_override; "
                              f"echo {pci} > /sys/bus/pci/drivers_probe")
        group = (sysfs / "iommu_group").resolve().name
        self._fds: list[int] = []
        try:
            self._open(group, dma_mb, vectors)
        except BaseException:
            self.close()
            raise

    def _open(self, group: str, dma_mb: int, vectors: int) -> None:
        try:
            self.container = os.open("/dev/vfio/vfio", os.O_RDWR)
            self._fds.append(self.container)
            self.group = os.open(f"/dev/vfio/{group}", os.O_RDWR)
            self._fds.append(self.group)
        except OSError as e:
            raise DeviceError(f"cannot open VFIO for {self.pci}: {e.strerror} "
                              "(root, or the group's device file, is needed)") from None
        if _ioctl(self.container, "VFIO_GET_API_VERSION") != CONSTANTS["VFIO_API_VERSION"]:
            raise DeviceError("unknown VFIO API version")
        if not _ioctl(self.container, "VFIO_CHECK_EXTENSION", CONSTANTS["VFIO_TYPE1v2_IOMMU"]):
            raise DeviceError("the kernel's VFIO has no type-1 v2 IOMMU")
        status = _unpack("vfio_group_status",
                         _ioctl(self.group, "VFIO_GROUP_GET_STATUS",
                                bytes(_pack("vfio_group_status"))))
        if not status["flags"] & CONSTANTS["VFIO_GROUP_FLAGS_VIABLE"]:
            raise DeviceError(f"IOMMU group {group} is not viable: bind every device in it "
                              "to vfio-pci")
        _ioctl(self.group, "VFIO_GROUP_SET_CONTAINER", struct.pack("=i", self.container))
        _ioctl(self.container, "VFIO_SET_IOMMU", CONSTANTS["VFIO_TYPE1v2_IOMMU"])
        self.device = _ioctl(self.group, "VFIO_GROUP_GET_DEVICE_FD",
                             ctypes.create_string_buffer(self.pci.encode()))
        self._fds.append(self.device)
        region = _unpack("vfio_region_info", _ioctl(
            self.device, "VFIO_DEVICE_GET_REGION_INFO",
            bytes(_pack("vfio_region_info", index=CONSTANTS["VFIO_PCI_BAR0_REGION_INDEX"]))))
        self.bar = mmap.mmap(self.device, region["size"], offset=region["offset"])
        self._regs = memoryview(self.bar).cast("I")
        size = dma_mb << 20
        self._dma_mem = mmap.mmap(-1, size)
        self.memory = memoryview(self._dma_mem)
        vaddr = ctypes.addressof(ctypes.c_char.from_buffer(self._dma_mem))
        _ioctl(self.container, "VFIO_IOMMU_MAP_DMA", bytes(_pack(
            "vfio_iommu_type1_dma_map", vaddr=vaddr, iova=DMA_BASE, size=size,
            flags=CONSTANTS["VFIO_DMA_MAP_FLAG_READ"] | CONSTANTS["VFIO_DMA_MAP_FLAG_WRITE"])))
        self._dma = DmaAllocator(DMA_BASE, size)
        self._events = [os.eventfd(0, os.EFD_NONBLOCK) for _ in range(vectors)]
        self._fds += self._events
        irq_set = _pack("vfio_irq_set", argsz=20 + 4 * vectors,
                        flags=CONSTANTS["VFIO_IRQ_SET_DATA_EVENTFD"]
                        | CONSTANTS["VFIO_IRQ_SET_ACTION_TRIGGER"],
                        index=CONSTANTS["VFIO_PCI_MSIX_IRQ_INDEX"], start=0, count=vectors)
        irq_set += struct.pack(f"={vectors}i", *self._events)
        _ioctl(self.device, "VFIO_DEVICE_SET_IRQS", bytes(irq_set))
        self.vectors = vectors

    def read32(self, addr: int) -> int:
        return self._regs[addr]

    def write32(self, addr: int, value: int) -> None:
        self._regs[addr] = value

    def alloc(self, size: int, align: int = 64) -> DmaBuffer:
        addr = self._dma.alloc(size, align)
        off = addr - DMA_BASE
        return DmaBuffer(addr, self.memory[off:off + size])

    def free(self, buf: DmaBuffer) -> None:
        self._dma.free(buf.addr)

    def mem_read(self, addr: int, length: int) -> bytes:
        return bytes(self.memory[addr - DMA_BASE:addr - DMA_BASE + length])

    def mem_write(self, addr: int, data: bytes) -> None:
        self.memory[addr - DMA_BASE:addr - DMA_BASE + len(data)] = data

    def wait_irq(self, timeout: float | None = None) -> set[int]:
        ready, _, _ = select.select(self._events, [], [], timeout)
        fired = set()
        for fd in ready:
            try:
                os.eventfd_read(fd)
                fired.add(self._events.index(fd))
            except BlockingIOError:
                pass
        return fired

    def close(self) -> None:
        for fd in reversed(self._fds):
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []

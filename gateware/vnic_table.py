"""VnicTable: per-VNIC settings the classifier needs once it knows a frame's VNIC.

One 32-bit register per VNIC (an array block, ``vnic[n]``) holding whether the VNIC takes
frames, its VNS instance, its local and forwarding receive rings and its default priority. The
word lives in a RAM written whole by one register write, so a lookup sees the old or the new
settings, never a mix.
"""

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .csr import CsrSignature
from .layouts import Priority
from .regmap import Access, Block, Field, Register

__all__ = ["VnicEntry", "VnicTable"]

_WRITABLE = 0xFFFF_FF07       # reserved bits 7:3 read 0


class VnicEntry(data.Struct):
    """The register of one VNIC (bit positions are the register's fields)."""
    enable: 1
    priority: Priority
    _reserved: 5
    vns_id: 8
    local_ring: 8
    forward_ring: 8


class VnicTable(wiring.Component):
    """``vnics`` entries of :class:`VnicEntry`.

    Attributes
    ----------
    read_addr, read_en : In
        Lookup: ``read_data`` holds entry ``read_addr`` one clock after a clock with
        ``read_en`` (and keeps it while ``read_en`` is low).
    read_data : Out(VnicEntry)
    csr : In(CsrSignature), ``read_latency`` = 2; word *n* is VNIC *n*
    """

    read_latency = 2

    def __init__(self, vnics: int = 64):
        if not 1 <= vnics <= 255:
            raise ValueError(f"vnics must be 1..255 (255 is the flood VNIC), not {vnics}")
        self._vnics = vnics
        super().__init__({
            "read_addr": In(range(vnics)), "read_en": In(1), "read_data": Out(VnicEntry),
            "csr": In(CsrSignature(max(1, (vnics - 1).bit_length()))),
        })

    def block(self, name: str = "vnic") -> Block:
        rw = Access.RW
        reg = Register("settings", 0, "receive settings of VNIC n", (
            Field("enable", 0, 1, rw, "the VNIC takes frames (else VNIC_DISABLED drops)"),
            Field("priority", 1, 2, rw, "default priority: 0 low, 1 medium, 2 high"),
            Field("vns_id", 8, 8, rw, "VNS instance the VNIC belongs to (in completions)"),
            Field("local_ring", 16, 8, rw, "receive ring for frames to a local IP of the VNIC"),
            Field("forward_ring", 24, 8, rw, "receive ring for every other frame of the VNIC"),
        ))
        return Block(name, f"VNIC settings, {self._vnics} VNICs.", (reg,), self.read_latency,
                     count=self._vnics, stride=1)

    def elaborate(self, platform):
        m = Module()
        n = self._vnics
        m.submodules.ram = ram = Memory(shape=32, depth=n, init=[])
        lookup = ram.read_port()
        csr_read = ram.read_port()
        write = ram.write_port()
        csr = self.csr
        m.d.comb += [
            lookup.addr.eq(self.read_addr), lookup.en.eq(self.read_en),
            self.read_data.eq(lookup.data),
            csr_read.addr.eq(csr.addr),
            write.addr.eq(csr.addr), write.data.eq(csr.w_data & _WRITABLE),
            write.en.eq(csr.w_stb & (csr.addr < n)),
        ]
        in_range = Signal()
        m.d.sync += [in_range.eq(csr.addr < n),
                     csr.r_data.eq(Mux(in_range, csr_read.data, 0))]
        return m

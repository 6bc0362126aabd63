# Ref: ARM IHI 0022 (AMBA AXI and ACE protocol specification), AXI4-Lite
"""AXI4-Lite register slave: the host's CSR port (PCIe BAR0 on hardware, cocotbext-axi in sim).

One access at a time onto a :class:`~crossnic.gateware.csr.CsrSignature` bus laid out by a
:class:`~crossnic.gateware.regmap.RegisterMap`. Every request is answered, so the bus never
hangs; the answer is decided from the map:

==========================================  =========  =====================================
request                                      response   effect
==========================================  =========  =====================================
aligned, a register of the map               OKAY       read / write it
aligned, no register there                   DECERR     reads 0, write ignored
address not a multiple of 4                  SLVERR     reads 0, write ignored
write with ``wstrb`` other than all ones     SLVERR     write ignored (registers are words)
==========================================  =========  =====================================

Responses are counted by kind in :attr:`errors` for the statistics block that will map them.
"""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .csr import CsrSignature
from .regmap import RegisterMap

__all__ = ["AxiLiteSignature", "AxiLiteCsrBridge", "RESP_OKAY", "RESP_SLVERR", "RESP_DECERR"]

RESP_OKAY, RESP_SLVERR, RESP_DECERR = 0b00, 0b10, 0b11


class AxiLiteSignature(wiring.Signature):
    """AXI4-Lite, 32-bit data, seen from the manager (the host)."""

    def __init__(self, addr_width: int):
        super().__init__({
            "awaddr": Out(addr_width), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(32), "wstrb": Out(4), "wvalid": Out(1), "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_width), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
            "rdata": In(32), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })


class AxiLiteCsrBridge(wiring.Component):
    """AXI4-Lite slave in front of the CSR bus of ``regmap``.

    Parameters
    ----------
    regmap : RegisterMap
        Decides which word addresses answer OKAY; its blocks' read latency (one for all) plus
        the decoder's stage is ``read_latency``.
    read_latency : int
        Clocks from ``csr.r_stb`` to valid ``csr.r_data`` on the bus behind.

    Attributes
    ----------
    axil : AXI4-Lite slave port (byte addresses; word *w* of the map at ``4 * w``)
    csr : the register bus it drives
    errors : Out(2)
        A pulse per answered request that was SLVERR (bit 0) or DECERR (bit 1).
    """

    def __init__(self, regmap: RegisterMap, read_latency: int):
        if read_latency < 1:
            raise ValueError(f"read latency must be at least 1, not {read_latency}")
        self._regmap = regmap
        self._read_latency = read_latency
        super().__init__({
            "axil": In(AxiLiteSignature(regmap.addr_width + 2)),
            "csr": Out(CsrSignature(regmap.addr_width)),
            "errors": Out(2),
        })

    def _judge(self, m: Module, addr: Value, resp: Signal) -> None:
        """``resp`` for a request at byte address ``addr``: OKAY, SLVERR or DECERR.

        Decided per block: which block, which register set of an array block, which word of
        the set, so the logic grows with the registers of one set, not with every register
        of every ring (a flat list of 2000 addresses cost Verilator minutes)."""
        mapped = Signal()
        bits = self._regmap.block_bits
        word = addr[2:]
        with m.Switch(word[bits:]):
            for k, b in enumerate(self._regmap.blocks):
                with m.Case(k):
                    offset = word[:bits]
                    inner = offset[:b.set_bits]
                    in_sets = (offset[b.set_bits:] < b.count) if b.count > 1 else \
                        (offset[b.set_bits:] == 0)
                    with m.Switch(inner):
                        with m.Case(*sorted({r.offset for r in b.registers})):
                            m.d.comb += mapped.eq(in_sets)
        with m.If(addr[:2] != 0):
            m.d.comb += resp.eq(RESP_SLVERR)
        with m.Elif(~mapped):
            m.d.comb += resp.eq(RESP_DECERR)
        with m.Else():
            m.d.comb += resp.eq(RESP_OKAY)

    def elaborate(self, platform):
        m = Module()
        bus = self.axil
        addr = Signal.like(bus.awaddr)
        data = Signal(32)
        resp = Signal(2)
        wait = Signal(range(self._read_latency + 1))
        m.d.comb += [self.csr.addr.eq(addr[2:]), self.csr.w_data.eq(data)]

        w_resp, r_resp = Signal(2), Signal(2)
        self._judge(m, bus.awaddr, w_resp)
        self._judge(m, bus.araddr, r_resp)

        def count(kind):
            m.d.comb += self.errors.eq(Cat(kind == RESP_SLVERR, kind == RESP_DECERR))

        with m.FSM():
            with m.State("IDLE"):
                # A write needs its address and data together; reads wait behind it.
                with m.If(bus.awvalid & bus.wvalid):
                    m.d.comb += [bus.awready.eq(1), bus.wready.eq(1)]
                    bad_strobe = bus.wstrb != 0b1111
                    m.d.sync += [
                        addr.eq(bus.awaddr), data.eq(bus.wdata),
                        resp.eq(Mux((w_resp == RESP_OKAY) & bad_strobe, RESP_SLVERR, w_resp)),
                    ]
                    m.next = "WRITE"
                with m.Elif(bus.arvalid):
                    m.d.comb += bus.arready.eq(1)
                    m.d.sync += [addr.eq(bus.araddr), resp.eq(r_resp), data.eq(0)]
                    m.next = "READ"
            with m.State("WRITE"):
                m.d.comb += self.csr.w_stb.eq(resp == RESP_OKAY)
                count(resp)
                m.next = "B"
            with m.State("B"):
                m.d.comb += [bus.bvalid.eq(1), bus.bresp.eq(resp)]
                with m.If(bus.bready):
                    m.next = "IDLE"
            with m.State("READ"):
                count(resp)
                with m.If(resp == RESP_OKAY):
                    m.d.comb += self.csr.r_stb.eq(1)
                    m.d.sync += wait.eq(self._read_latency)
                    m.next = "READ_WAIT"
                with m.Else():
                    m.next = "R"
            with m.State("READ_WAIT"):
                m.d.sync += wait.eq(wait - 1)
                with m.If(wait == 1):
                    m.d.sync += data.eq(self.csr.r_data)
                    m.next = "R"
            with m.State("R"):
                m.d.comb += [bus.rvalid.eq(1), bus.rdata.eq(data), bus.rresp.eq(resp)]
                with m.If(bus.rready):
                    m.next = "IDLE"
        return m

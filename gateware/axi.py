# Ref: ARM IHI 0022 (AMBA AXI and ACE protocol specification), AXI4 sections A2-A3
"""AXI4 (full) manager signature: the DMA engines' port into host memory.

Signals carry the AXI4 names (``awaddr``, ``wdata``, ``bresp``, ...) so that cocotbext-axi's
``AxiBus.from_prefix(dut, "axi_")`` finds them on a component's ``axi`` port (Amaranth names a
flat member ``axi__awaddr``). On hardware the PCIe endpoint's bus-master bridge takes the port.

Only what a DMA engine needs: INCR bursts, one ID width for both directions, the optional
AXI4 attributes ``lock``/``cache``/``prot``/``qos`` (no ``region``), and, when asked for,
``awuser``/``aruser``: the DMA engines put the ring a request serves there, so that the
:class:`~crossnic.gateware.dma_guard.DmaGuard` behind them can hold it to its function's
windows (the guard strips them; the host bus never sees them).
"""

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AxiSignature", "BURST_INCR", "RESP_OKAY", "CACHE_MODIFIABLE", "PROT_NONSECURE",
           "axi_size"]

#: ``AxBURST`` of an incrementing burst (the only kind the engines issue).
BURST_INCR = 0b01
#: ``xRESP`` of a successful transfer (``EXOKAY`` 0b01 is never asked for: no exclusive access).
RESP_OKAY = 0b00
#: ``AxCACHE``: normal non-cacheable bufferable memory (what host DMA buffers are).
CACHE_MODIFIABLE = 0b0011
#: ``AxPROT``: unprivileged, non-secure, data access.
PROT_NONSECURE = 0b010


def axi_size(data_width: int) -> int:
    """``AxSIZE`` of full-width beats: log2 of the bytes per beat."""
    return (data_width // 8 - 1).bit_length()


class AxiSignature(wiring.Signature):
    """AXI4 seen from the manager.

    Parameters
    ----------
    addr_width : int
        Byte-address bits (64 for a PCIe bus master).
    data_width : int
        Bits per beat: 32, 64, 128, ...
    id_width : int
        Transaction ID bits (at least 1, so the Verilog ports exist; the engines use ID 0).
    user_width : int
        ``awuser``/``aruser`` bits (0: none).
    """

    def __init__(self, addr_width: int = 64, data_width: int = 64, id_width: int = 1,
                 user_width: int = 0):
        if data_width < 8 or data_width & (data_width - 1):
            raise ValueError(f"AXI data width must be a power of two >= 8, not {data_width}")
        if not 12 <= addr_width <= 64:
            raise ValueError(f"AXI address width must be 12..64, not {addr_width}")
        if id_width < 1:
            raise ValueError(f"AXI ID width must be at least 1, not {id_width}")
        self.addr_width, self.data_width, self.id_width = addr_width, data_width, id_width
        self.user_width = user_width

        def address(p: str) -> dict:
            user = {f"{p}user": Out(user_width)} if user_width else {}
            return {**user,
                f"{p}id": Out(id_width), f"{p}addr": Out(addr_width), f"{p}len": Out(8),
                f"{p}size": Out(3), f"{p}burst": Out(2), f"{p}lock": Out(1),
                f"{p}cache": Out(4), f"{p}prot": Out(3), f"{p}qos": Out(4),
                f"{p}valid": Out(1), f"{p}ready": In(1),
            }

        super().__init__({
            **address("aw"),
            "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wlast": Out(1),
            "wvalid": Out(1), "wready": In(1),
            "bid": In(id_width), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            **address("ar"),
            "rid": In(id_width), "rdata": In(data_width), "rresp": In(2), "rlast": In(1),
            "rvalid": In(1), "rready": Out(1),
        })

    def __repr__(self):
        return (f"AxiSignature({self.addr_width}, {self.data_width}, {self.id_width}, "
                f"{self.user_width})")

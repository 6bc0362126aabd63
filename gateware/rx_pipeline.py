"""The receive datapath of one port as far as the card goes today: RxPort -> HeaderParser.

``crossnic sim`` replays captures through it; the Datapath issue puts the classifier and the DMA
engine behind ``o``/``meta``.
"""

from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .csr import CsrSignature
from .gmii import GmiiSignature
from .header_parser import HeaderParser
from .layouts import FrameMetadata
from .packet import PacketSignature
from .rx_port import RxPort

__all__ = ["RxPipeline"]


class RxPipeline(wiring.Component):
    """GMII in (domain ``rx``), parsed frames and their metadata out (domain ``sync``).

    Parameters
    ----------
    width : int
        Core datapath width in bytes.
    fifo_depth : int
        Depth of the receive packet buffer in beats.
    """

    def __init__(self, width: int = 4, fifo_depth: int = 1024):
        self._width = width
        self.port = RxPort(width=width, fifo_depth=fifo_depth)
        self.parser = HeaderParser(width=width)
        super().__init__({
            "gmii":       In(GmiiSignature()),
            "o":          Out(PacketSignature(width)),
            "meta":       Out(stream.Signature(FrameMetadata)),
            "csr":        In(CsrSignature(len(self.port.csr.addr))),
            "max_length": In(16, init=1518),
            "mii_select": In(1),
        })

    @property
    def registers(self):
        return self.port.registers

    def elaborate(self, platform):
        m = Module()
        m.submodules.port = self.port
        m.submodules.parser = self.parser
        wiring.connect(m, wiring.flipped(self.gmii), self.port.gmii)
        wiring.connect(m, wiring.flipped(self.csr), self.port.csr)
        m.d.comb += [
            self.port.max_length.eq(self.max_length),
            self.port.mii_select.eq(self.mii_select),
        ]
        wiring.connect(m, self.port.o, self.parser.i)
        wiring.connect(m, self.parser.o, wiring.flipped(self.o))
        wiring.connect(m, self.parser.meta, wiring.flipped(self.meta))
        return m

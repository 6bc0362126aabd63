# Ref: IEEE 802.3-2022 clause 35 (GMII), clause 22 (MII)
"""The GMII signal bundle, seen from the side that drives it (the PHY on receive, the MAC on
transmit). ``data`` carries one octet per clock at 1000 Mb/s, or one nibble in ``data[0:4]`` per
clock in MII mode (10/100 Mb/s). ``en`` is RX_DV/TX_EN, ``er`` is RX_ER/TX_ER.
"""

from amaranth.lib import wiring
from amaranth.lib.wiring import Out

__all__ = ["GmiiSignature", "PREAMBLE", "SFD"]

PREAMBLE = 0x55
SFD = 0xD5


class GmiiSignature(wiring.Signature):
    def __init__(self):
        super().__init__({
            "data": Out(8),
            "en":   Out(1),
            "er":   Out(1),
        })

# Ref: IEEE 802.3-2022 clause 3.1 (MAC frame format); amaranth stdlib/stream.rst (transfer rules)
"""The packet stream used by every block of the datapath.

A frame is a run of beats from ``first`` to ``last``. Byte *i* of a beat is ``data[8*i:8*i+8]``
and is valid when ``keep[i]`` is set; only the ``last`` beat of a frame may have a partial
``keep``, and its valid bytes are the low ones. ``error`` on the ``last`` beat aborts the frame:
whoever stores it must discard the whole frame.
"""

from amaranth.lib import data, stream

__all__ = ["packet_layout", "PacketSignature"]


def packet_layout(width: int) -> data.StructLayout:
    """Payload layout of a packet stream ``width`` bytes wide."""
    if width < 1:
        raise ValueError(f"packet stream width must be at least one byte, not {width}")
    return data.StructLayout({
        "data":  8 * width,
        "keep":  width,
        "first": 1,
        "last":  1,
        "error": 1,
    })


def PacketSignature(width: int, *, always_ready: bool = False) -> stream.Signature:
    """A packet stream ``width`` bytes wide (8, 16, 32 or 64-bit datapaths use 1, 2, 4, 8)."""
    return stream.Signature(packet_layout(width), always_ready=always_ready)

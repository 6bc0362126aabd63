"""The device layer's pure parts: DMA allocation, the simulator socket's messages, cables."""

import socket
import time

import pytest

from crossnic.host.device import DmaAllocator
from crossnic.host.sim_protocol import MESSAGE, Op, pack, unpack
from crossnic.sim.cables import CableError, CableSpec, UdpCable, parse_cable


def test_allocator_aligns_reuses_and_merges():
    a = DmaAllocator(0x1000, 0x10000)
    x = a.alloc(100)
    y = a.alloc(4096, 4096)
    z = a.alloc(16)
    assert x == 0x1000 and y == 0x2000 and z == 0x1080
    assert y % 4096 == 0
    a.free(x)
    assert a.alloc(64) == 0x1000                   # first fit reuses the hole
    a.free(0x1000)
    a.free(y)
    a.free(z)
    assert a.free_bytes == 0x10000                 # everything merged back
    assert a.alloc(0x10000) == 0x1000


def test_allocator_refuses_clearly():
    a = DmaAllocator(0, 4096)
    with pytest.raises(ValueError, match="power of two"):
        a.alloc(64, 48)
    with pytest.raises(ValueError):
        a.alloc(0)
    a.alloc(4096)
    with pytest.raises(MemoryError, match="no 1 bytes"):
        a.alloc(1)
    with pytest.raises(ValueError, match="not an allocated"):
        a.free(123)


def test_messages_round_trip():
    raw = pack(Op.WRITE, 7, 0x1234, 0xDEADBEEF, status=2)
    assert len(raw) == MESSAGE.size == 16
    assert unpack(raw) == (Op.WRITE, 2, 7, 0x1234, 0xDEADBEEF)
    with pytest.raises(ValueError):
        unpack(bytes(16))                          # op 0 is not a message


@pytest.mark.parametrize("text, spec", [
    ("none", CableSpec("none")), ("other", CableSpec("other")),
    ("tap:cn0", CableSpec("tap", name="cn0")), ("udp:4000:4001", CableSpec("udp", "", 4000, 4001)),
])
def test_cable_specs(text, spec):
    assert parse_cable(text) == spec
    assert str(spec) == text


@pytest.mark.parametrize("text, message", [
    ("tap:", "interface name"), ("tap:a/b", "interface name"), ("tap:" + "x" * 16, "1-15"),
    ("udp:1", "two port numbers"), ("udp:0:5", "1..65535"), ("wire", "unknown cable"),
    ("none:x", "unknown cable"),
])
def test_bad_cable_specs(text, message):
    with pytest.raises(CableError, match=message):
        parse_cable(text)


def test_udp_cables_carry_frames_between_two_cards():
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    p1 = probe.getsockname()[1]
    probe.close()
    a = UdpCable(p1, p1 + 1)
    b = UdpCable(p1 + 1, p1)
    try:
        a.send(b"\x02" * 60)
        b.send(b"\x03" * 1514)
        got_b = got_a = []
        for _ in range(100):
            got_b = got_b or b.poll()
            got_a = got_a or a.poll()
            if got_a and got_b:
                break
            time.sleep(0.01)
        assert got_b == [b"\x02" * 60] and got_a == [b"\x03" * 1514]
        assert a.sent == 1 and a.received == 1
        with pytest.raises(CableError, match="cannot bind"):
            UdpCable(p1, 9)
    finally:
        a.close()
        b.close()

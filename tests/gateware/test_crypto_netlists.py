"""Every crypto core converts to a netlist (amaranth.sim runs designs a netlist would refuse,
such as a combinational loop through a stream's ready)."""

import pytest
from amaranth.back import rtlil

from crossnic.gateware.crypto.aes import Aes128
from crossnic.gateware.crypto.gcm import Aes128Gcm
from crossnic.gateware.crypto.ghash import Ghash
from crossnic.gateware.crypto.hkdf import Hkdf
from crossnic.gateware.crypto.hmac import HmacSha256
from crossnic.gateware.crypto.key_slots import KeySlots
from crossnic.gateware.crypto.sha256 import Sha256
from crossnic.gateware.crypto.sha256_stream import Sha256Stream
from crossnic.gateware.crypto.x25519 import X25519


@pytest.mark.parametrize("core", [Sha256, Sha256Stream, HmacSha256, Hkdf, Aes128, Ghash,
                                  Aes128Gcm, X25519, KeySlots], ids=lambda c: c.__name__)
def test_converts(core):
    assert "module" in rtlil.convert(core())

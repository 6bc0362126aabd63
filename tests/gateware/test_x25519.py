"""X25519: the limb-exact model against ``cryptography`` (fast), and the gateware in
Verilator (testbench ``tb_x25519.py``): RFC 7748 vectors, 200 random pairs, constant time."""

import random

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from crossnic.gateware.crypto.x25519 import X25519
from crossnic.sim.model.x25519 import X25519Model

pytestmark = pytest.mark.xdist_group("x25519")


def test_model_matches_cryptography_within_the_gateware_widths():
    rng = random.Random(3)
    model = X25519Model(check=True)
    for _ in range(5):
        k, peer = rng.randbytes(32), X25519PrivateKey.from_private_bytes(rng.randbytes(32))
        u = peer.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        want = X25519PrivateKey.from_private_bytes(k).exchange(peer.public_key())
        assert model.scalarmult(k, u) == want


@pytest.mark.parametrize("testcase", ["vectors", "iterated", "random_pairs"])
def test_x25519(run_cocotb, testcase):
    run_cocotb(X25519(), "tb_x25519", testcase=testcase)


@pytest.mark.slow
def test_x25519_thousand_iterations(run_cocotb):
    run_cocotb(X25519(), "tb_x25519", testcase="iterated", params={"iterations": 1000})

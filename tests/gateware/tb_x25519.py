"""cocotb testbench of X25519 (run by test_x25519.py): RFC 7748 vectors, random scalar/point
pairs against the ``cryptography`` package, and the cycle count of every multiplication."""

import os
import random

import cocotb
from cocotb.triggers import RisingEdge
from cocotb.utils import get_sim_time
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from crossnic.sim.cocotb_util import params, reset, start_clock

CLOCK_NS = 8
RFC7748 = [   # §5.2: (scalar, u, result)
    ("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
     "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
     "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"),
    ("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
     "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
     "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"),
]


async def scalarmult(dut, k: bytes, u: bytes) -> tuple[bytes, bool, int]:
    """One multiplication; returns the result, the zero flag and the clocks it took."""
    dut.request__payload.value = int.from_bytes(k, "little") | int.from_bytes(u, "little") << 256
    dut.request__valid.value = 1
    dut.result__ready.value = 1
    await RisingEdge(dut.clk)
    while not dut.request__ready.value:
        await RisingEdge(dut.clk)
    dut.request__valid.value = 0
    started = get_sim_time("ns")
    # (waiting on the result's valid, not clock by clock: Verilator runs at full speed)
    await RisingEdge(dut.result__valid)
    await RisingEdge(dut.clk)                   # the clock edge that takes the result
    clocks = round((get_sim_time("ns") - started) / CLOCK_NS)
    raw = dut.result__payload.value.to_unsigned()
    return (raw & (1 << 256) - 1).to_bytes(32, "little"), bool(raw >> 256 & 1), clocks


async def _start(dut):
    start_clock(dut.clk, CLOCK_NS)
    await reset(dut.clk, dut.rst)


def _public(k: bytes, u: bytes) -> bytes:
    shared = X25519PrivateKey.from_private_bytes(k)
    if u == bytes([9] + [0] * 31):
        return shared.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return shared.exchange(X25519PublicKey.from_public_bytes(u))


@cocotb.test()
async def vectors(dut):
    """RFC 7748 §5.2, and §6.1's Diffie-Hellman: both sides' public keys and shared secret."""
    await _start(dut)
    cycles = set()
    for k, u, want in RFC7748 * 2:
        got, zero, n = await scalarmult(dut, bytes.fromhex(k), bytes.fromhex(u))
        assert got.hex() == want and not zero
        cycles.add(n)
    alice = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    bob = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    base = bytes([9] + [0] * 31)
    a_pub, _, _ = await scalarmult(dut, alice, base)
    b_pub, _, _ = await scalarmult(dut, bob, base)
    assert a_pub.hex() == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    assert b_pub.hex() == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    shared, _, _ = await scalarmult(dut, alice, b_pub)
    assert shared.hex() == "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    assert len(cycles) == 1, cycles
    dut._log.info("cycles per scalar multiplication: %s", sorted(cycles))


@cocotb.test()
async def iterated(dut):
    """RFC 7748 §5.2's iteration (k, u <- X25519(k, u), k): after 1 and 1,000 iterations (the
    1,000-iteration check runs only when params ask for it: ``{"iterations": 1000}``)."""
    await _start(dut)
    k = u = bytes([9] + [0] * 31)
    want = {1: "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079",
            1000: "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"}
    for n in range(1, params().get("iterations", 1) + 1):
        out, _, _ = await scalarmult(dut, k, u)
        k, u = out, k
        if n in want:
            assert k.hex() == want[n], n


@cocotb.test()
async def random_pairs(dut):
    """Random scalars and points against ``cryptography``; every one takes the same number of
    clocks (constant time); small-order points give the all-zero result and the flag."""
    await _start(dut)
    rng = random.Random(params().get("seed", 1))
    cycles = set()
    for _ in range(params().get("pairs", 200)):
        k = rng.randbytes(32)
        u = X25519PrivateKey.from_private_bytes(rng.randbytes(32)).public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw) if rng.random() < 0.8 else rng.randbytes(32)
        got, zero, n = await scalarmult(dut, k, u)
        try:
            want = _public(k, u)
        except ValueError:          # cryptography refuses an all-zero shared secret
            want = bytes(32)
        assert got == want, (k.hex(), u.hex())
        assert zero == (want == bytes(32))
        cycles.add(n)
    for u in (bytes(32), bytes([1] + [0] * 31)):     # points of small order
        got, zero, n = await scalarmult(dut, os.urandom(32), u)
        assert got == bytes(32) and zero
        cycles.add(n)
    assert len(cycles) == 1, cycles
    dut._log.info("cycles per scalar multiplication: %d", cycles.pop())

"""Aes128Gcm in amaranth.sim against the ``cryptography`` package's AESGCM: TLS 1.3 record shapes
(5-byte additional data), every partial-block length, empty texts and additional data, both
directions, a changed key; and the clocks a block of text costs."""

import random

from amaranth.sim import Simulator
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crossnic.gateware.crypto.gcm import Aes128Gcm


def blocks(data: bytes, aad: bool, last: bool) -> list[dict]:
    chunks = [data[k:k + 16] for k in range(0, len(data), 16)] or ([b""] if last else [])
    return [{"block": list(c.ljust(16, b"\0")), "count": len(c), "aad": aad,
             "last": last and n == len(chunks) - 1} for n, c in enumerate(chunks)]


def run(jobs: list[tuple], *, stall: float = 0.0, seed: int = 0):
    """jobs: (key or None, nonce, aad, text, decrypt) -> [(text out, tag)], clocks of each."""
    dut = Aes128Gcm()
    rng = random.Random(seed)
    results = []

    async def producer(ctx):
        for key, nonce, aad, text, decrypt in jobs:
            if key is not None:
                ctx.set(dut.key.payload, list(key))
                ctx.set(dut.key.valid, 1)
                await ctx.tick().until(dut.key.ready)
                ctx.set(dut.key.valid, 0)
            ctx.set(dut.start.payload, {"nonce": list(nonce), "decrypt": decrypt})
            ctx.set(dut.start.valid, 1)
            await ctx.tick().until(dut.start.ready)
            ctx.set(dut.start.valid, 0)
            for b in blocks(aad, True, False) + blocks(text, False, True):
                ctx.set(dut.i.payload, b)
                ctx.set(dut.i.valid, 1)
                await ctx.tick().until(dut.i.ready)
                ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        for _ in jobs:
            out = b""
            clocks = 0
            while True:
                ready = not (stall and rng.random() < stall)
                ctx.set(dut.o.ready, ready)
                ctx.set(dut.tag.ready, ready)
                _, _, ov, op, tv, tp = await ctx.tick().sample(dut.o.valid, dut.o.payload,
                                                               dut.tag.valid, dut.tag.payload)
                clocks += 1
                if ov and ready:
                    out += bytes(int(x) for x in op.block)[:op.count]
                if tv and ready:
                    results.append((out, bytes(int(x) for x in tp.tag), clocks))
                    break

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return results


def test_against_cryptography_both_ways():
    rng = random.Random(12)
    key = rng.randbytes(16)
    jobs, want = [], []
    for n, length in enumerate([0, 1, 15, 16, 17, 31, 32, 33, 64, 100]):
        nonce, aad = rng.randbytes(12), rng.randbytes(5 if n % 3 else 0)
        text = rng.randbytes(length)
        sealed = AESGCM(key).encrypt(nonce, text, aad)
        jobs.append((key if n == 0 else None, nonce, aad, text, False))
        want.append((sealed[:-16], sealed[-16:]))
        jobs.append((None, nonce, aad, sealed[:-16], True))
        want.append((text, sealed[-16:]))
    got = run(jobs, stall=0.3, seed=4)
    assert [(o, t) for o, t, _ in got] == want


def test_a_new_key_and_long_additional_data():
    rng = random.Random(13)
    jobs, want = [], []
    for _ in range(3):
        key, nonce = rng.randbytes(16), rng.randbytes(12)
        aad, text = rng.randbytes(rng.randrange(0, 50)), rng.randbytes(rng.randrange(0, 50))
        sealed = AESGCM(key).encrypt(nonce, text, aad)
        jobs.append((key, nonce, aad, text, False))
        want.append((sealed[:-16], sealed[-16:]))
    got = run(jobs)
    assert [(o, t) for o, t, _ in got] == want


def test_a_text_block_costs_about_one_aes_block():
    """1 KB of text: 64 blocks at 13 clocks (AES 11, one to combine, one to start the next)
    plus loading the key (H), J0 and the tag: at least 1 Gb/s at 125 MHz all included."""
    key, nonce, text = bytes(16), bytes(12), bytes(1024)
    (out, tag, clocks), = run([(key, nonce, b"", text, False)])
    sealed = AESGCM(key).encrypt(nonce, text, None)
    assert (out, tag) == (sealed[:-16], sealed[-16:])
    assert clocks <= 64 * 13 + 60, clocks
    assert 1024 * 8 / (clocks / 125e6) >= 1e9


# McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 1-4 (AES-128), as in
# NIST's GCM validation: (key, IV, additional data, plaintext, ciphertext, tag)
_K3 = "feffe9928665731c6d6a8f9467308308"
_P3 = ("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
       "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255")
_C3 = ("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
       "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985")
GCM_SPEC = [
    ("00" * 16, "00" * 12, "", "", "", "58e2fccefa7e3061367f1d57a4e7455a"),
    ("00" * 16, "00" * 12, "", "00" * 16, "0388dace60b6a392f328c2b971b2fe78",
     "ab6e47d42cec13bdf53a67b21257bddf"),
    (_K3, "cafebabefacedbaddecaf888", "", _P3, _C3, "4d5c2af327cd64a62cf35abd2ba6fab4"),
    (_K3, "cafebabefacedbaddecaf888", "feedfacedeadbeeffeedfacedeadbeefabaddad2", _P3[:120],
     _C3[:120], "5bc94fbc3221a5db94fae95ae7121a47"),
]


def test_gcm_specification_vectors_and_tag_failure():
    """The spec's test cases both ways; a flipped ciphertext bit changes the tag the decrypt
    direction computes (the engine compares it and refuses the record: BAD_TAG)."""
    jobs = []
    for key, iv, aad, p, c, _ in GCM_SPEC:
        k, n, a = bytes.fromhex(key), bytes.fromhex(iv), bytes.fromhex(aad)
        jobs += [(k, n, a, bytes.fromhex(p), False), (None, n, a, bytes.fromhex(c), True)]
    k, n, a, c = bytes.fromhex(_K3), bytes.fromhex("cafebabefacedbaddecaf888"), b"", \
        bytearray.fromhex(_C3)
    c[7] ^= 1
    jobs.append((None, n, a, bytes(c), True))
    results = run(jobs)
    for i, (_, _, _, p, c, t) in enumerate(GCM_SPEC):
        (enc, enc_tag, _), (dec, dec_tag, _) = results[2 * i], results[2 * i + 1]
        assert enc.hex() == c and enc_tag.hex() == t, f"test case {i + 1}"
        assert dec.hex() == p and dec_tag.hex() == t, f"test case {i + 1} (decrypt)"
    assert results[-1][1].hex() != GCM_SPEC[2][5]

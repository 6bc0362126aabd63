# Ref: FIPS 197 (AES), §5.1 (cipher), §5.2 (key expansion)
"""AES-128 encryption, one round per clock: 11 clocks a block (1.45 Gb/s at 125 MHz).

GCM uses only the forward cipher (counter mode both ways, and H = E(K, 0)), so there is no
inverse cipher. A key is expanded once, when it is loaded (10 clocks), into a 16-entry round-key
memory read one round ahead; a block is then XORed with round key 0 as it enters and takes ten
rounds. 20 S-boxes (16 for SubBytes, 4 for the key schedule) are logic ROMs.
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["Aes128", "BlockLayout", "SBOX", "CYCLES_PER_BLOCK"]

#: A block or key: 16 bytes, byte 0 (the first on the wire) is element 0.
BlockLayout = data.ArrayLayout(8, 16)
CYCLES_PER_BLOCK = 11


def _sbox() -> list[int]:
    """FIPS 197 §5.1.1: the multiplicative inverse in GF(2^8), then the affine map."""
    def mul(a, b):
        r = 0
        while b:
            if b & 1:
                r ^= a
            a = (a << 1) ^ (0x11B if a & 0x80 else 0)
            b >>= 1
        return r
    inv = [0] + [next(y for y in range(1, 256) if mul(x, y) == 1) for x in range(1, 256)]
    out = []
    for x in inv:
        s = x
        for k in range(1, 5):
            s ^= ((x << k) | (x >> (8 - k))) & 0xFF
        out.append(s ^ 0x63)
    return out


SBOX = tuple(_sbox())
RCON = (0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1B, 0x36)


def _sub(m: Module, byte: Value, name: str) -> Signal:
    out = Signal(8, name=name)
    rom = Array(Const(v, 8) for v in SBOX)
    m.d.comb += out.eq(rom[byte])
    return out


def _xtime(a: Value) -> Value:
    return Cat(C(0, 1), a[:7]) ^ Mux(a[7], 0x1B, 0)


def _round(m: Module, state: list[Value], last: Value) -> list[Value]:
    """SubBytes, ShiftRows, MixColumns (not in the last round); bytes in FIPS 197's order
    (byte r + 4c is row r, column c)."""
    sub = [_sub(m, state[i], f"sb{i}") for i in range(16)]
    shifted = [sub[r + 4 * ((c + r) % 4)] for c in range(4) for r in range(4)]
    out = []
    for c in range(4):
        a = shifted[4 * c:4 * c + 4]
        x = [_xtime(v) for v in a]
        mixed = [x[0] ^ x[1] ^ a[1] ^ a[2] ^ a[3],
                 a[0] ^ x[1] ^ x[2] ^ a[2] ^ a[3],
                 a[0] ^ a[1] ^ x[2] ^ x[3] ^ a[3],
                 x[0] ^ a[0] ^ a[1] ^ a[2] ^ x[3]]
        out += [Mux(last, v, w) for v, w in zip(a, mixed, strict=True)]
    return out


class Aes128(wiring.Component):
    """AES-128 forward cipher.

    Attributes
    ----------
    key : In(stream.Signature(BlockLayout)), a new key (taken between blocks)
    i : In(stream.Signature(BlockLayout)), plaintext blocks
    o : Out(stream.Signature(BlockLayout)), their ciphertext, in order
    """

    key: In(stream.Signature(BlockLayout))
    i: In(stream.Signature(BlockLayout))
    o: Out(stream.Signature(BlockLayout))

    def elaborate(self, platform):
        m = Module()
        m.submodules.rk = rk = Memory(shape=128, depth=16, init=[])
        rk_w = rk.write_port()
        rk_r = rk.read_port()

        key0 = Signal(128)                  # round key 0: the key
        cur = Signal(128)                   # the key schedule's last round key
        state = Signal(128)
        rnd = Signal(range(11))
        full = Signal()                     # `state` holds a finished block
        m.d.comb += [self.o.valid.eq(full), self.o.payload.eq(state)]

        def bytes_(v):
            return [v[8 * k:8 * k + 8] for k in range(16)]

        # key schedule: one round key per clock
        words = [cur[32 * k:32 * k + 32] for k in range(4)]
        w3 = bytes_(cur)[12:16]
        t = Cat(*(_sub(m, w3[(k + 1) % 4], f"ks{k}") for k in range(4)))
        rcon = Array(Const(v, 8) for v in RCON)
        nxt = []
        prev = words[0] ^ t ^ rcon[rnd - 1]
        for k in range(4):
            if k:
                prev = words[k] ^ prev
            nxt.append(prev)
        next_key = Cat(*nxt)

        round_in = [state[8 * k:8 * k + 8] for k in range(16)]
        round_out = Cat(*_round(m, round_in, rnd == 10)) ^ rk_r.data

        with m.FSM():
            with m.State("IDLE"):
                free = ~full | self.o.ready
                # (a key waiting goes first: no block is taken then)
                m.d.comb += [self.key.ready.eq(free), self.i.ready.eq(free & ~self.key.valid),
                             rk_r.addr.eq(1)]
                with m.If(self.o.ready):
                    m.d.sync += full.eq(0)
                with m.If(self.key.valid & free):
                    m.d.sync += [key0.eq(self.key.payload), cur.eq(self.key.payload),
                                 rnd.eq(1)]
                    m.next = "EXPAND"
                with m.Elif(self.i.valid & free & ~self.key.valid):
                    m.d.sync += [state.eq(self.i.payload.as_value() ^ key0), rnd.eq(1)]
                    m.next = "ROUND"
            with m.State("EXPAND"):
                m.d.comb += [rk_w.addr.eq(rnd), rk_w.data.eq(next_key), rk_w.en.eq(1)]
                m.d.sync += [cur.eq(next_key), rnd.eq(rnd + 1)]
                with m.If(rnd == 10):
                    m.next = "IDLE"
            with m.State("ROUND"):
                m.d.comb += rk_r.addr.eq(rnd + 1)
                m.d.sync += [state.eq(round_out), rnd.eq(rnd + 1)]
                with m.If(rnd == 10):
                    m.d.sync += full.eq(1)
                    m.next = "IDLE"
        return m

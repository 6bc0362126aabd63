"""cocotb testbench of :class:`OffloadEngine` (run by test_offload.py): host memory is
cocotbext-axi's ``AxiRam``, commands go through the host's :class:`OffloadQueue`, and every
completion and every byte the engine writes is compared with the reference model
(:class:`crossnic.sim.model.offload.OffloadModel`). The handshake test also checks the card
against an independent software key schedule, so engine and model cannot agree on a mistake.

Memory: command ring at 0x0, completion ring at 0x1000 (64 entries), source buffer 0x10000,
destination buffer 0x20000 (64 KiB each).
"""

import hashlib
import hmac
import random

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiBus, AxiRam
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from crossnic.gateware.crypto.commands import (
    FLAG_CONTEXT,
    FLAG_EXPORTABLE,
    NO_SLOT,
    OffloadOp,
    OffloadStatus,
    label_index,
)
from crossnic.gateware.crypto.hkdf import hkdf_label
from crossnic.gateware.crypto.key_slots import SlotKind
from crossnic.gateware.crypto.offload import OffloadEngine
from crossnic.gateware.regmap import RegisterMap
from crossnic.host.offload import OffloadQueue
from crossnic.sim.cocotb_util import csr_read, csr_write, params, reset, start_clock
from crossnic.sim.model.offload import OffloadModel

Op, S, K = OffloadOp, OffloadStatus, SlotKind
MEM = 1 << 18
SRC, DST = 0x10000, 0x20000
# the public base point, and small-order points (RFC 7748 §6.1: the shared secret is zero)
BASE = (9).to_bytes(32, "little")
SMALL_ORDER = [bytes(32), (1).to_bytes(32, "little"),
               bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")]
REGS = {r.path: r.addr for r in RegisterMap("t", [OffloadEngine().block()]).registers()}


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def _expand(secret: bytes, label: str, ctx: bytes, n: int) -> bytes:
    return _hmac(secret, hkdf_label(label, ctx, n) + b"\x01")[:n]


class Bench:
    def __init__(self, dut, *, allow_export: bool = False):
        self.dut = dut
        self.ram = AxiRam(AxiBus.from_prefix(dut, "axi_"), dut.clk, dut.rst, size=MEM)
        self.model = OffloadModel(64, allow_export=allow_export)
        self.shadow = bytearray(MEM)            # what memory must hold
        self.queue = OffloadQueue(6, 0x0, 0x1000)
        self.allow_export = allow_export
        self.cycles: dict[str, list[int]] = {}
        self.statuses: list[int] = []

    async def start(self):
        start_clock(self.dut.clk, 8)
        await reset(self.dut.clk, self.dut.rst)
        rng = random.Random(1)
        fill = rng.randbytes(MEM)
        self.ram.write(0, fill)
        self.shadow[:] = fill
        self._write(0x1000, bytes(64 * 64))     # completions start zeroed
        for path, value in self.queue.setup(allow_export=self.allow_export):
            await self.reg_write(path, value)

    def _write(self, addr: int, data: bytes):
        self.ram.write(addr, data)
        self.shadow[addr:addr + len(data)] = data

    async def reg_write(self, path: str, value: int):
        await csr_write(self.dut, REGS[path], value)

    async def reg_read(self, path: str) -> int:
        return await csr_read(self.dut, REGS[path])

    async def run(self, cmd: dict, data: bytes = b"", *, expect=None) -> dict:
        """One command on card and model; completion, written bytes and memory must agree."""
        cmd = {"src": SRC, "dst_addr": DST, **cmd}
        if data:
            self._write(cmd["src"], data)
        (tag,), doorbell = self.queue.post(self._write, [cmd])
        for path, value in doorbell:
            await self.reg_write(path, value)
        want = self.model.run({**cmd, "tag": tag}, read=lambda a, n: bytes(self.shadow[a:a + n]),
                              write=lambda a, b: self.shadow.__setitem__(slice(a, a + len(b)),
                                                                         b))
        got = []
        for _ in range(2000):
            await ClockCycles(self.dut.clk, 100)
            got = self.queue.poll(lambda a, n: self.ram.read(a, n))
            if got:
                break
        assert got, f"no completion for {cmd}"
        c = got[0]
        # the completion ring entry is now known memory
        entry = 0x1000 + ((self.queue.cons - 1) % 64) * 64
        self.shadow[entry:entry + 64] = self.ram.read(entry, 64)
        name = Op(cmd["op"]).name if cmd["op"] in iter(Op) else f"op {cmd['op']:#x}"
        for key in ("tag", "status", "kind", "length"):
            assert c[key] == want[key], f"{name} {cmd}: {key} {c[key]} != {want[key]}"
        assert c["result"] == want["result"], f"{name}: result differs"
        if expect is not None:
            assert c["status"] == expect, f"{name}: {c['status']!r} != {expect!r}"
        self.cycles.setdefault(name, []).append(c["cycles"])
        self.statuses.append(c["status"])
        return c

    def check_memory(self):
        got = self.ram.read(0, MEM)
        if got != bytes(self.shadow):
            first = next(i for i in range(MEM) if got[i] != self.shadow[i])
            raise AssertionError(f"memory differs from the model at {first:#x}")


async def _bench(dut, **kw) -> Bench:
    b = Bench(dut, **kw)
    await b.start()
    return b


async def _handshake(b: Bench, rng: random.Random) -> dict:
    """A TLS 1.3 client's key schedule on the card, checked against software (RFC 8446 §7.1)."""
    await b.run({"op": Op.SEED, "operand": rng.randbytes(32)}, expect=S.OK)
    c = await b.run({"op": Op.KEYGEN, "dst": 0, "operand": rng.randbytes(32)}, expect=S.OK)
    card_pub = c["result"]
    server = X25519PrivateKey.from_private_bytes(rng.randbytes(32))
    server_pub = server.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    shared = server.exchange(X25519PublicKey.from_public_bytes(card_pub))
    await b.run({"op": Op.DERIVE, "slot_a": 0, "dst": 1, "operand": server_pub}, expect=S.OK)
    empty = hashlib.sha256(b"").digest()
    hello_hash, hs_hash = rng.randbytes(32), rng.randbytes(32)
    await b.run({"op": Op.EXTRACT, "slot_a": NO_SLOT, "slot_b": NO_SLOT, "dst": 2})
    await b.run({"op": Op.EXPAND, "slot_a": 2, "dst": 3, "label": label_index("derived"),
                 "flags": FLAG_CONTEXT, "operand": empty}, expect=S.OK)
    await b.run({"op": Op.EXTRACT, "slot_a": 3, "slot_b": 1, "dst": 4}, expect=S.OK)
    for slot, label in ((5, "c hs traffic"), (6, "s hs traffic")):
        await b.run({"op": Op.EXPAND, "slot_a": 4, "dst": slot, "label": label_index(label),
                     "flags": FLAG_CONTEXT, "operand": hello_hash}, expect=S.OK)
    await b.run({"op": Op.TRAFFIC_KEYS, "slot_a": 5, "dst": 7}, expect=S.OK)
    await b.run({"op": Op.TRAFFIC_KEYS, "slot_a": 6, "dst": 8, "flags": FLAG_EXPORTABLE})
    await b.run({"op": Op.EXPAND, "slot_a": 5, "dst": 9, "label": label_index("finished")})
    fin = await b.run({"op": Op.FINISHED, "slot_a": 9, "operand": hs_hash}, expect=S.OK)

    # the same schedule in software, from the server's side of the exchange
    early = _hmac(bytes(32), bytes(32))
    hs = _hmac(_expand(early, "derived", empty, 32), shared)
    c_hs = _expand(hs, "c hs traffic", hello_hash, 32)
    s_hs = _expand(hs, "s hs traffic", hello_hash, 32)
    assert fin["result"] == _hmac(_expand(c_hs, "finished", b"", 32), hs_hash)
    keys = {slot: (_expand(s, "key", b"", 16), _expand(s, "iv", b"", 12))
            for slot, s in ((7, c_hs), (8, s_hs))}
    return {"keys": keys, "secrets": [shared, early, hs, c_hs, s_hs]}


def _nonce(iv: bytes, seq: int) -> bytes:
    return bytes(a ^ b for a, b in zip(iv, bytes(4) + seq.to_bytes(8, "big"), strict=True))


@cocotb.test()
async def handshake(dut):
    """Key schedule and records against software; seal/open of every length class."""
    b = await _bench(dut)
    rng = random.Random(7)
    hs = await _handshake(b, rng)
    key, iv = hs["keys"][7]
    header = bytes([23, 3, 3, 0, 0])
    for seq, n in enumerate([0, 1, 15, 16, 17, 100, 1024, 4000]):
        text = rng.randbytes(n)
        c = await b.run({"op": Op.SEAL, "slot_a": 7, "length": n, "aad_len": 5,
                         "operand": seq.to_bytes(8, "big") + bytes(16) + header}, text,
                        expect=S.OK)
        sealed = AESGCM(key).encrypt(_nonce(iv, seq), text, header)
        assert b.ram.read(DST, n) + c["result"][:16] == sealed
        # the peer's record, opened on the card
        skey, siv = hs["keys"][8]
        peer = AESGCM(skey).encrypt(_nonce(siv, seq), text, header)
        await b.run({"op": Op.OPEN, "slot_a": 8, "length": n, "aad_len": 5,
                     "operand": seq.to_bytes(8, "big") + peer[-16:] + header}, peer[:-16],
                    expect=S.OK)
        assert b.ram.read(DST, n) == text
    b.check_memory()
    seal = b.cycles["SEAL"]
    dut._log.info("cycles: %s", {k: v[-1] for k, v in b.cycles.items()})
    dut._log.info("SEAL of 4000 bytes: %d clocks (%.2f Gb/s at 125 MHz)", seal[-1],
                  4000 * 8 * 125e6 / seal[-1] / 1e9)


@cocotb.test()
async def refusals(dut):
    """Every status code, each compared with the model; a bad tag writes nothing."""
    b = await _bench(dut)
    rng = random.Random(8)
    await _handshake(b, rng)
    await b.run({"op": 0x7F}, expect=S.BAD_OPCODE)
    await b.run({"op": Op.DERIVE, "slot_a": 20, "dst": 21, "operand": BASE}, expect=S.BAD_HANDLE)
    await b.run({"op": Op.KEYGEN, "dst": 64}, expect=S.BAD_HANDLE)
    await b.run({"op": Op.ZEROIZE, "slot_a": 200}, expect=S.BAD_HANDLE)
    await b.run({"op": Op.EXTRACT, "slot_a": 30, "slot_b": NO_SLOT, "dst": 31},
                expect=S.BAD_HANDLE)
    # policy by kind: a traffic secret is no HMAC key, a shared secret no salt...
    await b.run({"op": Op.FINISHED, "slot_a": 5, "operand": bytes(32)}, expect=S.POLICY_DENIED)
    await b.run({"op": Op.EXTRACT, "slot_a": 1, "slot_b": NO_SLOT, "dst": 31},
                expect=S.POLICY_DENIED)
    await b.run({"op": Op.EXPAND, "slot_a": 4, "dst": 31, "label": label_index("key")},
                expect=S.POLICY_DENIED)
    await b.run({"op": Op.EXPAND, "slot_a": 4, "dst": 31, "label": label_index("finished")},
                expect=S.POLICY_DENIED)
    await b.run({"op": Op.DERIVE, "slot_a": 1, "dst": 31, "operand": BASE},
                expect=S.POLICY_DENIED)
    await b.run({"op": Op.SEAL, "slot_a": 5, "length": 16}, bytes(16), expect=S.POLICY_DENIED)
    # export: never without the administrator's policy (off here), never of a secret
    await b.run({"op": Op.EXPORT, "slot_a": 8}, expect=S.POLICY_DENIED)
    await b.run({"op": Op.EXPORT, "slot_a": 4}, expect=S.POLICY_DENIED)
    await b.run({"op": Op.EXPORT, "slot_a": 0}, expect=S.POLICY_DENIED)
    for point in SMALL_ORDER:
        await b.run({"op": Op.DERIVE, "slot_a": 0, "dst": 31, "operand": point},
                    expect=S.BAD_POINT)
    await b.run({"op": Op.SEAL, "slot_a": 7, "length": 4, "aad_len": 9}, bytes(4),
                expect=S.BAD_LENGTH)
    await b.run({"op": Op.SEAL, "slot_a": 7, "length": 4, "src": SRC + 8}, bytes(4),
                expect=S.BAD_ADDRESS)
    await b.run({"op": Op.OPEN, "slot_a": 8, "length": 4, "dst_addr": DST + 4}, bytes(4),
                expect=S.BAD_ADDRESS)
    before = b.ram.read(DST, 64)
    for n in (0, 5, 33):
        await b.run({"op": Op.OPEN, "slot_a": 8, "length": n, "aad_len": 5,
                     "operand": bytes(8) + rng.randbytes(16) + bytes(5)}, rng.randbytes(n),
                    expect=S.BAD_TAG)
    assert b.ram.read(DST, 64) == before, "a record with a bad tag was written out"
    await b.run({"op": Op.ZEROIZE, "slot_a": 7}, expect=S.OK)
    await b.run({"op": Op.SEAL, "slot_a": 7, "length": 4}, bytes(4), expect=S.BAD_HANDLE)
    b.check_memory()
    statuses = b.statuses
    assert await b.reg_read("offload.denied") == statuses.count(S.POLICY_DENIED) == 9
    assert await b.reg_read("offload.errors") == sum(s != S.OK for s in statuses) > 20
    assert await b.reg_read("offload.commands") == len(statuses)


@cocotb.test()
async def export_policy(dut):
    """With ``allow_export``, only keys made exportable can be read, and only while allowed."""
    b = await _bench(dut, allow_export=True)
    hs = await _handshake(b, random.Random(9))
    c = await b.run({"op": Op.EXPORT, "slot_a": 8}, expect=S.OK)
    assert c["result"][:28] == b"".join(hs["keys"][8])
    await b.run({"op": Op.EXPORT, "slot_a": 7}, expect=S.POLICY_DENIED)   # not exportable
    await b.reg_write("offload.ctrl", 1 | 6 << 4)                        # policy withdrawn
    b.model.allow_export = False
    await b.run({"op": Op.EXPORT, "slot_a": 8}, expect=S.POLICY_DENIED)


@cocotb.test()
async def secrets_stay_on_the_card(dut):
    """After a handshake no register and no byte of host memory holds a secret."""
    b = await _bench(dut)
    hs = await _handshake(b, random.Random(10))
    secrets = hs["secrets"] + [k for pair in hs["keys"].values() for k in pair]
    secrets += [d for k, d in zip(b.model.kinds, b.model.data, strict=True) if k != K.EMPTY]
    secrets.append(b.model.pool)
    memory = b.ram.read(0, MEM)
    words = [await csr_read(dut, a) for a in range(16)]
    regs = b"".join(w.to_bytes(4, "little") for w in words)
    for s in secrets:
        for k in range(0, len(s) - 7):
            window = s[k:k + 8]
            assert window not in memory, "a secret's bytes are in host memory"
            assert window not in regs, "a secret's bytes are in a register"
    dut._log.info("checked %d secrets against %d bytes of memory and %d registers",
                  len(secrets), MEM, len(words))


@cocotb.test()
async def function_reset(dut):
    """``ctrl.reset`` zeroizes every slot and restarts the queue."""
    b = await _bench(dut)
    await _handshake(b, random.Random(11))
    await b.reg_write("offload.ctrl", 1 << 31 | 1 | 6 << 4)
    while await b.reg_read("offload.ctrl") >> 31:
        await ClockCycles(dut.clk, 10)
    assert await b.reg_read("offload.cons") == 0
    b.model.zeroize_all()
    b.queue.clear(b._write)
    await b.reg_write("offload.prod", 0)
    for slot in range(10):
        await b.run({"op": Op.FINISHED, "slot_a": slot}, expect=S.BAD_HANDLE)
    await b.run({"op": Op.SEAL, "slot_a": 7, "length": 4}, bytes(4), expect=S.BAD_HANDLE)


@cocotb.test()
async def random_commands(dut):
    """Random commands over random slots (mostly cheap ones) against the model."""
    b = await _bench(dut)
    rng = random.Random(12)
    await _handshake(b, rng)
    ops = [Op.EXTRACT, Op.EXPAND, Op.TRAFFIC_KEYS, Op.FINISHED, Op.SEAL, Op.OPEN, Op.EXPORT,
           Op.ZEROIZE, Op.NOP, Op.SEED]
    for _ in range(params().get("commands", 150)):
        op = rng.choice(ops)
        slot = lambda: rng.choice([*range(12), NO_SLOT, 70])  # noqa: E731
        cmd = {"op": op, "slot_a": slot(), "slot_b": slot(), "dst": rng.randrange(14),
               "label": rng.randrange(16), "flags": rng.randrange(2),
               "operand": rng.randbytes(32)}
        data = b""
        if op in (Op.SEAL, Op.OPEN):
            n = rng.randrange(0, 80)
            cmd.update(length=n, aad_len=rng.randrange(10))
            data = rng.randbytes(n)
        await b.run(cmd, data)
    b.check_memory()


@cocotb.test()
async def constant_time(dut):
    """KEYGEN and DERIVE take the same clocks for any key and point."""
    b = await _bench(dut)
    rng = random.Random(13)
    for k in range(4):
        await b.run({"op": Op.KEYGEN, "dst": k, "operand": rng.randbytes(32)}, expect=S.OK)
        peer = X25519PrivateKey.from_private_bytes(rng.randbytes(32)).public_key()
        await b.run({"op": Op.DERIVE, "slot_a": k, "dst": 10 + k,
                     "operand": peer.public_bytes(Encoding.Raw, PublicFormat.Raw)},
                    expect=S.OK)
    assert len(set(b.cycles["KEYGEN"])) == 1 and len(set(b.cycles["DERIVE"])) == 1, b.cycles
    dut._log.info("KEYGEN %d clocks, DERIVE %d clocks", b.cycles["KEYGEN"][0],
                  b.cycles["DERIVE"][0])
    await RisingEdge(dut.clk)


@cocotb.test()
async def bench(dut):
    """Clocks per command, for benchmarks/offload.py (``params: out``): a handshake's commands
    and SEAL/OPEN of several record sizes."""
    import json
    b = await _bench(dut)
    rng = random.Random(14)
    await _handshake(b, rng)
    sizes = params().get("sizes", [16, 256, 1024, 4096, 16384])
    header = bytes([23, 3, 3, 0, 0])
    records = {}
    for n in sizes:
        text = rng.randbytes(n)
        c = await b.run({"op": Op.SEAL, "slot_a": 8, "length": n, "aad_len": 5,
                         "operand": bytes(8) + bytes(16) + header}, text, expect=S.OK)
        sealed = b.ram.read(DST, n)
        o = await b.run({"op": Op.OPEN, "slot_a": 8, "length": n, "aad_len": 5,
                         "operand": bytes(8) + c["result"][:16] + header}, sealed, expect=S.OK)
        records[n] = {"seal": c["cycles"], "open": o["cycles"]}
    await b.run({"op": Op.ZEROIZE, "slot_a": 9}, expect=S.OK)
    ops = {name.lower(): v[0] for name, v in b.cycles.items() if name not in ("SEAL", "OPEN")}
    with open(params()["out"], "w") as f:
        json.dump({"ops": ops, "records": records}, f)

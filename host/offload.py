# Ref: docs/crypto.md "Offload queue"
"""Host side of the offload queue: commands posted into the command ring, completions found by
their phase bit, and the two backends the TLS code uses.

:class:`OffloadQueue` is bookkeeping over the same two small interfaces as
:mod:`crossnic.host.rings` (host memory ``read``/``write``, register writes returned as
``(path, value)`` pairs), so the testbenches and the driver post commands the same way.

:class:`CardCrypto` and :class:`SoftCrypto` give the handshake one interface
(:class:`HandshakeCrypto`): keys are named by slot handle, and only public values come back.
The card keeps the secrets; the software backend keeps them in this process (it runs the
reference model of the engine, so both behave alike, policy included).
"""

import json
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from crossnic.gateware.crypto.commands import (
    COMMAND_BYTES,
    FLAG_CONTEXT,
    FLAG_EXPORTABLE,
    NO_SLOT,
    OffloadCommand,
    OffloadCompletion,
    OffloadOp,
    OffloadStatus,
    label_index,
)
from crossnic.sim.model.offload import OffloadModel

from .rings import pack, unpack

__all__ = ["OffloadQueue", "OffloadError", "HandshakeCrypto", "CardCrypto", "SoftCrypto",
           "DaemonCrypto", "encode_command", "decode_completion"]

Read = Callable[[int, int], bytes]
Write = Callable[[int, bytes], None]


class OffloadError(RuntimeError):
    """A command the card (or the software engine) refused; ``status`` says why."""

    def __init__(self, op: OffloadOp, status: OffloadStatus):
        super().__init__(f"{op.name.lower()}: {status.name.lower().replace('_', ' ')}")
        self.op, self.status = op, status


def encode_command(**fields) -> bytes:
    operand = bytes(fields.pop("operand", b"")).ljust(32, b"\0")
    raw = pack(OffloadCommand, **fields)
    return raw[:32] + operand


def decode_completion(raw: bytes) -> dict:
    c = unpack(OffloadCompletion, raw)
    c["result"] = raw[16:48]
    c["status"] = OffloadStatus(c["status"]) if c["status"] in iter(OffloadStatus) \
        else c["status"]
    return c


@dataclass
class OffloadQueue:
    """The command ring and completion ring (``2**size_log2`` entries of 64 bytes each)."""
    size_log2: int
    cmd_base: int
    cpl_base: int
    prod: int = 0                 # commands posted (free-running, 16 bits)
    cons: int = 0                 # completions taken
    next_tag: int = 1

    @property
    def size(self) -> int:
        return 1 << self.size_log2

    def setup(self, *, allow_export: bool = False) -> list[tuple[str, int]]:
        """Register writes that configure and enable the (reset) engine."""
        return [
            ("offload.cmd_base.lo", self.cmd_base & 0xFFFF_FFFF),
            ("offload.cmd_base.hi", self.cmd_base >> 32),
            ("offload.cpl_base.lo", self.cpl_base & 0xFFFF_FFFF),
            ("offload.cpl_base.hi", self.cpl_base >> 32),
            ("offload.prod", 0),
            ("offload.ctrl", 1 | self.size_log2 << 4 | int(allow_export) << 8),
        ]

    def clear(self, write: Write) -> None:
        write(self.cpl_base, bytes(COMMAND_BYTES * self.size))
        self.prod = self.cons = 0

    @property
    def room(self) -> int:
        return self.size - ((self.prod - self.cons) & 0xFFFF)

    def post(self, write: Write, commands: Iterable[dict]) -> tuple[list[int],
                                                                     list[tuple[str, int]]]:
        """Write commands (each gets a fresh ``tag``); returns the tags and the doorbell."""
        tags = []
        for cmd in commands:
            if not self.room:
                raise OverflowError("offload command ring is full")
            tag, self.next_tag = self.next_tag, (self.next_tag + 1) & 0xFFFF_FFFF or 1
            write(self.cmd_base + (self.prod % self.size) * COMMAND_BYTES,
                  encode_command(tag=tag, **cmd))
            self.prod = (self.prod + 1) & 0xFFFF
            tags.append(tag)
        return tags, [("offload.prod", self.prod)]

    def poll(self, read: Read) -> list[dict]:
        """Completions written since the last poll, in order."""
        out = []
        while self.cons != self.prod:
            slot = self.cons % self.size
            phase = (~(self.cons >> self.size_log2)) & 1
            c = decode_completion(read(self.cpl_base + slot * COMMAND_BYTES, COMMAND_BYTES))
            if c["phase"] != phase:
                break
            out.append(c)
            self.cons = (self.cons + 1) & 0xFFFF
        return out


# --- the handshake's crypto interface --------------------------------------------------------

@dataclass
class HandshakeCrypto:
    """What a TLS 1.3 endpoint asks of its key store. Subclasses supply :meth:`_run`: one
    command (fields of :class:`OffloadCommand`) in, its completion out. Handles are slot
    numbers; :meth:`release` zeroizes every slot this object allocated."""
    slots: int = 64
    first_slot: int = 0
    _free: list[int] = field(default_factory=list)
    _used: set[int] = field(default_factory=set)
    #: Card clocks per operation name (the software backend reports none).
    cycles: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self):
        self._free = list(range(self.first_slot + self.slots - 1, self.first_slot - 1, -1))

    def _run(self, cmd: dict, data: bytes = b"") -> tuple[dict, bytes]:
        raise NotImplementedError

    def _call(self, op: OffloadOp, data: bytes = b"", **fields) -> tuple[dict, bytes]:
        c, out = self._run({"op": op, **fields}, data)
        if c["status"] != OffloadStatus.OK:
            raise OffloadError(op, OffloadStatus(c["status"]))
        if c.get("cycles"):
            self.cycles.setdefault(op.name.lower(), []).append(c["cycles"])
        return c, out

    def _alloc(self) -> int:
        if not self._free:
            raise OffloadError(OffloadOp.NOP, OffloadStatus.BAD_HANDLE)
        slot = self._free.pop()
        self._used.add(slot)
        return slot

    def free(self, *handles: int) -> None:
        for h in handles:
            if h in self._used:
                self._call(OffloadOp.ZEROIZE, slot_a=h)
                self._used.discard(h)
                self._free.append(h)

    def release(self) -> None:
        self.free(*sorted(self._used))

    def seed(self, entropy: bytes) -> None:
        self._call(OffloadOp.SEED, operand=entropy)

    def keygen(self, entropy: bytes) -> tuple[int, bytes]:
        """A new X25519 key pair: (private-key handle, public key)."""
        h = self._alloc()
        c, _ = self._call(OffloadOp.KEYGEN, dst=h, operand=entropy)
        return h, c["result"][:32]

    def derive(self, private: int, peer: bytes) -> int:
        h = self._alloc()
        try:
            self._call(OffloadOp.DERIVE, slot_a=private, dst=h, operand=peer)
        except OffloadError:
            self._free.append(h)
            self._used.discard(h)
            raise
        return h

    def extract(self, salt: int | None, ikm: int | None) -> int:
        h = self._alloc()
        self._call(OffloadOp.EXTRACT, slot_a=NO_SLOT if salt is None else salt,
                   slot_b=NO_SLOT if ikm is None else ikm, dst=h)
        return h

    def expand(self, secret: int, label: str, context: bytes | None) -> int:
        h = self._alloc()
        self._call(OffloadOp.EXPAND, slot_a=secret, dst=h, label=label_index(label),
                   flags=FLAG_CONTEXT if context is not None else 0, operand=context or b"")
        return h

    def traffic_keys(self, secret: int, *, exportable: bool = False) -> int:
        h = self._alloc()
        self._call(OffloadOp.TRAFFIC_KEYS, slot_a=secret, dst=h,
                   flags=FLAG_EXPORTABLE if exportable else 0)
        return h

    def finished(self, key: int, transcript_hash: bytes) -> bytes:
        c, _ = self._call(OffloadOp.FINISHED, slot_a=key, operand=transcript_hash)
        return c["result"][:32]

    def seal(self, key: int, seq: int, aad: bytes, plaintext: bytes) -> bytes:
        """Ciphertext || tag of one record."""
        c, out = self._call(OffloadOp.SEAL, plaintext, slot_a=key, length=len(plaintext),
                            aad_len=len(aad), operand=seq.to_bytes(8, "big") + bytes(16) + aad)
        return out + c["result"][:16]

    def open(self, key: int, seq: int, aad: bytes, sealed: bytes) -> bytes:
        if len(sealed) < 16:
            raise OffloadError(OffloadOp.OPEN, OffloadStatus.BAD_TAG)
        text, tag = sealed[:-16], sealed[-16:]
        _, out = self._call(OffloadOp.OPEN, text, slot_a=key, length=len(text),
                            aad_len=len(aad), operand=seq.to_bytes(8, "big") + tag + aad)
        return out

    def export(self, key: int) -> tuple[bytes, bytes]:
        c, _ = self._call(OffloadOp.EXPORT, slot_a=key)
        return c["result"][:16], c["result"][16:28]


@dataclass
class SoftCrypto(HandshakeCrypto):
    """The same operations in this process, on the engine's reference model."""
    allow_export: bool = True
    model: OffloadModel | None = None

    def __post_init__(self):
        super().__post_init__()
        self.model = OffloadModel(self.first_slot + self.slots, allow_export=self.allow_export)

    def _run(self, cmd: dict, data: bytes = b"") -> tuple[dict, bytes]:
        written = {}
        mem = {0: data}
        c = self.model.run({**cmd, "src": 0, "dst_addr": 0x1000},
                           read=lambda addr, n: mem[addr][:n],
                           write=lambda addr, b: written.__setitem__(addr, b))
        return c, written.get(0x1000, b"")


@dataclass
class CardCrypto(HandshakeCrypto):
    """The card's engine. ``submit(cmd, data) -> (completion, output)`` runs one command on
    the card (the driver's :meth:`~crossnic.host.driver.Driver.offload`, or the daemon's)."""
    submit: Callable[[dict, bytes], tuple[dict, bytes]] | None = None

    def _run(self, cmd: dict, data: bytes = b"") -> tuple[dict, bytes]:
        return self.submit(cmd, data)


class DaemonCrypto(CardCrypto):
    """The card's engine through crossnicd: one connection holds an offload session (a range
    of key slots only it may name; the daemon zeroizes them when the connection ends)."""

    def __init__(self, sock_path):
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.connect(str(sock_path))
        except OSError as e:
            self._sock.close()
            raise ConnectionError(f"cannot reach crossnicd at {sock_path}: "
                                  f"{e.strerror or e}") from None
        self._file = self._sock.makefile("rwb")
        session = self._request("offload-open", {})
        super().__init__(slots=session["slots"], first_slot=session["first_slot"],
                         submit=self._submit)

    def _request(self, cmd: str, args: dict):
        self._file.write(json.dumps({"cmd": cmd, "args": args}).encode() + b"\n")
        self._file.flush()
        line = self._file.readline()
        if not line:
            raise ConnectionError("crossnicd closed the connection")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(f"crossnicd: {reply.get('error')}")
        return reply["result"]

    def _submit(self, cmd: dict, data: bytes) -> tuple[dict, bytes]:
        args = {k: int(v) for k, v in cmd.items() if k != "operand"}
        args["operand"] = bytes(cmd.get("operand", b"")).hex()
        args["data"] = data.hex()
        r = self._request("offload", args)
        return ({"status": r["status"], "kind": r["kind"], "length": r["length"],
                 "cycles": r["cycles"], "result": bytes.fromhex(r["result"])},
                bytes.fromhex(r["data"]))

    def close(self) -> None:
        self._file.close()
        self._sock.close()

# Ref: docs/crypto.md "Offload queue"; RFC 8446 §7.1, §5.3; RFC 7748 §6.1
"""Reference model of the offload engine: the same commands, policy and status codes as
:class:`crossnic.gateware.crypto.offload.OffloadEngine`, computed with ``hashlib``/``hmac`` and
``cryptography``. Written from the command description in
:mod:`crossnic.gateware.crypto.commands`, not from the gateware.

It is the scoreboard for the engine's tests, and the host's software backend runs on it (the
same interface with the secrets in host memory, for comparison and as the fallback).
"""

import hashlib
import hmac
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crossnic.gateware.crypto.commands import (
    AEAD_AAD_MAX,
    EXPAND_KINDS,
    FLAG_CONTEXT,
    FLAG_EXPORTABLE,
    NO_SLOT,
    OffloadOp,
    OffloadStatus,
)
from crossnic.gateware.crypto.hkdf import LABELS, hkdf_label
from crossnic.gateware.crypto.key_slots import SlotKind

__all__ = ["OffloadModel", "hmac256", "expand_label", "x25519"]

Read = Callable[[int, int], bytes]
Write = Callable[[int, bytes], None]
_AEAD = (SlotKind.AEAD_KEY, SlotKind.AEAD_KEY_EXPORTABLE)


def hmac256(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def expand_label(secret: bytes, label: str, context: bytes, length: int) -> bytes:
    """RFC 8446's HKDF-Expand-Label for outputs of at most 32 bytes (one HMAC)."""
    return hmac256(secret, hkdf_label(label, context, length) + b"\x01")[:length]


def x25519(scalar: bytes, u: bytes) -> bytes | None:
    """scalar * u (RFC 7748, clamped), or None for the all-zero result."""
    try:
        return X25519PrivateKey.from_private_bytes(scalar).exchange(
            X25519PublicKey.from_public_bytes(u))
    except ValueError:
        return None


class OffloadModel:
    """The engine's state: ``slots`` of (kind, 32 bytes), the entropy pool, the export policy."""

    def __init__(self, slots: int = 64, *, allow_export: bool = False):
        self.n = slots
        self.kinds = [SlotKind.EMPTY] * slots
        self.data = [bytes(32)] * slots
        self.pool = bytes(32)
        self.allow_export = allow_export

    def zeroize_all(self) -> None:
        self.kinds = [SlotKind.EMPTY] * self.n
        self.data = [bytes(32)] * self.n

    def _slot(self, k: int) -> tuple[SlotKind, bytes]:
        return (self.kinds[k], self.data[k]) if k < self.n else (SlotKind.EMPTY, bytes(32))

    def run(self, cmd: dict, read: Read | None = None, write: Write | None = None) -> dict:
        """The completion for ``cmd`` (:class:`OffloadCommand` fields; ``operand`` as 32 bytes):
        ``status``, ``kind``, ``length`` and ``result`` (32 bytes). SEAL/OPEN use host memory
        through ``read``/``write``."""
        out = {"tag": cmd.get("tag", 0), "status": OffloadStatus.OK, "kind": 0, "length": 0,
               "result": bytes(32)}
        try:
            self._run(cmd, out, read, write)
        except _Refused as r:
            out.update(status=r.status, kind=0, length=0, result=bytes(32))
        return out

    def _store(self, out: dict, slot: int, kind: SlotKind, value: bytes) -> None:
        self.kinds[slot], self.data[slot] = kind, value.ljust(32, b"\0")
        out["kind"] = kind

    def _run(self, cmd: dict, out: dict, read: Read | None, write: Write | None) -> None:
        S, K, Op = OffloadStatus, SlotKind, OffloadOp
        op, a, b, dst = cmd.get("op", 0), cmd.get("slot_a", 0), cmd.get("slot_b", 0), \
            cmd.get("dst", 0)
        operand = bytes(cmd.get("operand", bytes(32))).ljust(32, b"\0")
        flags = cmd.get("flags", 0)
        a_kind, a_data = self._slot(a)
        b_kind, b_data = self._slot(b)
        dst_ok = dst < self.n

        def need(ok: bool, kinds) -> None:
            if not ok:
                raise _Refused(S.BAD_HANDLE)
            if a_kind == K.EMPTY:
                raise _Refused(S.BAD_HANDLE)
            if a_kind not in kinds:
                raise _Refused(S.POLICY_DENIED)

        if op == Op.NOP:
            return
        if op == Op.SEED:
            self.pool = hmac256(self.pool, operand)
        elif op == Op.KEYGEN:
            if not dst_ok:
                raise _Refused(S.BAD_HANDLE)
            private = hmac256(self.pool, operand[:31] + b"\x01")
            self.pool = hmac256(self.pool, operand[:31] + b"\x02")
            out.update(result=x25519(private, (9).to_bytes(32, "little")), length=32)
            self._store(out, dst, K.PRIVATE_KEY, private)
        elif op == Op.DERIVE:
            need(dst_ok, (K.PRIVATE_KEY,))
            shared = x25519(a_data, operand)
            if shared is None:
                raise _Refused(S.BAD_POINT)
            self._store(out, dst, K.SHARED_SECRET, shared)
        elif op == Op.EXTRACT:
            if not dst_ok or (a != NO_SLOT and a_kind == K.EMPTY) or \
                    (b != NO_SLOT and b_kind == K.EMPTY):
                raise _Refused(S.BAD_HANDLE)
            if (a != NO_SLOT and a_kind != K.SECRET) or \
                    (b != NO_SLOT and b_kind != K.SHARED_SECRET):
                raise _Refused(S.POLICY_DENIED)
            salt = bytes(32) if a == NO_SLOT else a_data
            ikm = bytes(32) if b == NO_SLOT else b_data
            self._store(out, dst, K.SECRET, hmac256(salt, ikm))
        elif op == Op.EXPAND:
            if not dst_ok or a_kind == K.EMPTY:
                raise _Refused(S.BAD_HANDLE)
            label = LABELS[cmd["label"]] if cmd.get("label", 0) < len(LABELS) else None
            if label not in EXPAND_KINDS or a_kind != EXPAND_KINDS[label][0]:
                raise _Refused(S.POLICY_DENIED)
            context = operand if flags & FLAG_CONTEXT else b""
            self._store(out, dst, EXPAND_KINDS[label][1],
                        expand_label(a_data, label, context, 32))
        elif op == Op.TRAFFIC_KEYS:
            need(dst_ok, (K.TRAFFIC_SECRET,))
            kind = K.AEAD_KEY_EXPORTABLE if flags & FLAG_EXPORTABLE and self.allow_export \
                else K.AEAD_KEY
            self._store(out, dst, kind, expand_label(a_data, "key", b"", 16)
                        + expand_label(a_data, "iv", b"", 12))
        elif op == Op.FINISHED:
            need(True, (K.FINISHED_KEY,))
            out.update(result=hmac256(a_data, operand), length=32)
        elif op in (Op.SEAL, Op.OPEN):
            self._aead(cmd, out, a_kind, a_data, operand, need, read, write)
        elif op == Op.EXPORT:
            need(True, _AEAD)
            if a_kind != K.AEAD_KEY_EXPORTABLE or not self.allow_export:
                raise _Refused(S.POLICY_DENIED)
            out.update(result=a_data[:28] + bytes(4), length=28)
        elif op == Op.ZEROIZE:
            if a >= self.n:
                raise _Refused(S.BAD_HANDLE)
            self._store(out, a, K.EMPTY, bytes(32))
        else:
            raise _Refused(S.BAD_OPCODE)

    def _aead(self, cmd, out, a_kind, a_data, operand, need, read, write) -> None:
        S = OffloadStatus
        need(True, _AEAD)
        aad_len = cmd.get("aad_len", 0)
        if aad_len > AEAD_AAD_MAX:
            raise _Refused(S.BAD_LENGTH)
        src, dst, length = cmd.get("src", 0), cmd.get("dst_addr", 0), cmd.get("length", 0)
        if src % 16 or dst % 16:
            raise _Refused(S.BAD_ADDRESS)
        iv = a_data[16:28]
        nonce = iv[:4] + bytes(x ^ y for x, y in zip(iv[4:], operand[:8], strict=True))
        aad = operand[24:24 + aad_len]
        text = read(src, length) if length else b""
        gcm = AESGCM(a_data[:16])
        if cmd["op"] == OffloadOp.SEAL:
            sealed = gcm.encrypt(nonce, text, aad)
            if length:
                write(dst, sealed[:-16])
            out.update(result=sealed[-16:] + bytes(16), length=16)
        else:
            try:
                plain = gcm.decrypt(nonce, text + operand[8:24], aad)
            except InvalidTag:
                raise _Refused(S.BAD_TAG) from None
            if length:
                write(dst, plain)


class _Refused(Exception):
    def __init__(self, status: OffloadStatus):
        self.status = status

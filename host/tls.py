# Ref: RFC 8446 (TLS 1.3): §4 handshake, §4.4.3 CertificateVerify, §5 record layer,
#      §7.1 key schedule, §6 alerts; RFC 7748 (X25519)
"""A TLS 1.3 client and server whose handshake secrets live in a :class:`HandshakeCrypto`:
the card's offload engine (:class:`~crossnic.host.offload.CardCrypto`, keys never in this
process) or software (:class:`~crossnic.host.offload.SoftCrypto`).

One suite, the mandatory one: TLS_AES_128_GCM_SHA256 with X25519. The ECDHE, the whole key
schedule, the Finished MACs and every record (handshake and application data) go through the
crypto backend; only hashing of the transcript (public data) and the certificate signature
(the server's long-term key, which the engine does not hold) run here. No resumption, no
early data, no HelloRetryRequest (a peer that does not send an X25519 key share gets a
``handshake_failure`` alert), no client certificates.
"""

import hashlib
import os
import socket
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from .offload import HandshakeCrypto, OffloadError

__all__ = ["TlsError", "TlsAlert", "TlsConnection", "client", "server", "Alert"]

TLS13 = 0x0304
AES_128_GCM_SHA256 = 0x1301
X25519_GROUP = 0x001D
ECDSA_P256_SHA256, RSA_PSS_SHA256, ED25519 = 0x0403, 0x0804, 0x0807
CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA = 20, 21, 22, 23
CLIENT_HELLO, SERVER_HELLO, NEW_SESSION_TICKET = 1, 2, 4
ENCRYPTED_EXTENSIONS, CERTIFICATE, CERTIFICATE_VERIFY, FINISHED, KEY_UPDATE = 8, 11, 15, 20, 24
CERTIFICATE_REQUEST = 13
EXT_SERVER_NAME, EXT_GROUPS, EXT_SIG_ALGS, EXT_VERSIONS, EXT_KEY_SHARE = 0, 10, 13, 43, 51
HRR_RANDOM = hashlib.sha256(b"HelloRetryRequest").digest()
EMPTY_HASH = hashlib.sha256(b"").digest()
MAX_RECORD = 1 << 14


class Alert:
    CLOSE_NOTIFY = 0
    UNEXPECTED_MESSAGE = 10
    BAD_RECORD_MAC = 20
    RECORD_OVERFLOW = 22
    HANDSHAKE_FAILURE = 40
    BAD_CERTIFICATE = 42
    ILLEGAL_PARAMETER = 47
    DECODE_ERROR = 50
    DECRYPT_ERROR = 51
    PROTOCOL_VERSION = 70
    INTERNAL_ERROR = 80
    UNKNOWN_CA = 48
    MISSING_EXTENSION = 109
    CERTIFICATE_REQUIRED = 116
    NAMES = {0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac",
             22: "record_overflow", 40: "handshake_failure", 42: "bad_certificate",
             47: "illegal_parameter", 48: "unknown_ca", 50: "decode_error",
             51: "decrypt_error", 70: "protocol_version", 80: "internal_error",
             109: "missing_extension", 116: "certificate_required"}


class TlsError(Exception):
    """We stopped the connection, and sent ``alert`` to the peer."""

    def __init__(self, alert: int, why: str):
        super().__init__(f"{why} (sent alert {Alert.NAMES.get(alert, alert)})")
        self.alert = alert


class TlsAlert(Exception):
    """The peer sent a fatal alert."""

    def __init__(self, alert: int):
        super().__init__(f"peer sent alert {Alert.NAMES.get(alert, alert)}")
        self.alert = alert


def _u8(b: bytes) -> bytes:
    return bytes([len(b)]) + b


def _u16(b: bytes) -> bytes:
    return len(b).to_bytes(2, "big") + b


def _u24(b: bytes) -> bytes:
    return len(b).to_bytes(3, "big") + b


def _ext(kind: int, body: bytes) -> bytes:
    return kind.to_bytes(2, "big") + _u16(body)


def _handshake(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + _u24(body)


class _Reader:
    """Bounds-checked parsing: running off the end is a ``decode_error``."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise TlsError(Alert.DECODE_ERROR, "truncated message")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vec(self, n: int) -> bytes:
        return self.take(self.int(n))

    def done(self) -> bool:
        return self.pos == len(self.data)


def _extensions(raw: bytes) -> dict[int, bytes]:
    r, out = _Reader(raw), {}
    while not r.done():
        kind = r.int(2)
        if kind in out:
            raise TlsError(Alert.ILLEGAL_PARAMETER, f"extension {kind} twice")
        out[kind] = r.vec(2)
    return out


def _x25519_share(raw: bytes, *, server: bool) -> bytes | None:
    """The peer's X25519 key from a key_share extension (None: no X25519 share)."""
    r = _Reader(raw)
    shares = _Reader(r.vec(2)) if server else r
    while not shares.done():
        group, key = shares.int(2), shares.vec(2)
        if group == X25519_GROUP:
            if len(key) != 32:
                raise TlsError(Alert.ILLEGAL_PARAMETER, "X25519 key share is not 32 bytes")
            return key
        if not server:
            raise TlsError(Alert.ILLEGAL_PARAMETER, f"server chose group {group:#06x}")
    return None


def _signed_content(context: bytes, transcript_hash: bytes) -> bytes:
    return b" " * 64 + context + b"\0" + transcript_hash


@dataclass
class _Keys:
    key: int            # AEAD key slot
    seq: int = 0


@dataclass
class TlsConnection:
    """One TLS 1.3 connection over ``sock``; :func:`client` and :func:`server` make them."""
    sock: socket.socket
    crypto: HandshakeCrypto
    is_server: bool
    transcript: bytearray = field(default_factory=bytearray)
    read_keys: _Keys | None = None
    write_keys: _Keys | None = None
    app_secrets: dict[str, int] = field(default_factory=dict)
    _handles: list[int] = field(default_factory=list)
    _buf: bytes = b""                   # received record bytes not yet parsed
    _hs: bytes = b""                    # handshake bytes not yet parsed
    _app: bytes = b""                   # application data received, not yet read
    closed: bool = False
    established: bool = False           # the handshake is over
    peer_certificate: x509.Certificate | None = None

    # --- records ---------------------------------------------------------------------------
    def _send_record(self, kind: int, payload: bytes) -> None:
        for k in range(0, max(len(payload), 1), MAX_RECORD):
            chunk = payload[k:k + MAX_RECORD]
            if self.write_keys is None:
                self.sock.sendall(bytes([kind]) + b"\x03\x03" + _u16(chunk))
                continue
            inner = chunk + bytes([kind])
            header = bytes([APPLICATION_DATA, 3, 3]) + (len(inner) + 16).to_bytes(2, "big")
            sealed = self.crypto.seal(self.write_keys.key, self.write_keys.seq, header, inner)
            self.write_keys.seq += 1
            self.sock.sendall(header + sealed)

    def _fail(self, alert: int, why: str):
        self.send_alert(alert)
        raise TlsError(alert, why)

    def send_alert(self, alert: int) -> None:
        try:
            self._send_record(ALERT, bytes([1 if alert == Alert.CLOSE_NOTIFY else 2, alert]))
        except (OSError, OffloadError):
            pass

    def _recv_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the peer closed the connection")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _read_record(self) -> tuple[int, bytes]:
        """The next record's (content type, plaintext); decrypts when keys are set."""
        while True:
            header = self._recv_exact(5)
            kind, length = header[0], int.from_bytes(header[3:5], "big")
            if length > MAX_RECORD + 256:
                self._fail(Alert.RECORD_OVERFLOW, f"record of {length} bytes")
            body = self._recv_exact(length)
            if kind == CHANGE_CIPHER_SPEC and body == b"\x01" and not self.established:
                continue                        # middlebox compatibility (RFC 8446 D.4)
            if self.read_keys is None or (kind == ALERT and len(body) == 2):
                if kind == APPLICATION_DATA and self.read_keys is None:
                    self._fail(Alert.UNEXPECTED_MESSAGE, "encrypted record before keys")
                return kind, body
            if kind != APPLICATION_DATA:
                self._fail(Alert.UNEXPECTED_MESSAGE, f"plaintext record of type {kind}")
            try:
                inner = self.crypto.open(self.read_keys.key, self.read_keys.seq, header, body)
            except OffloadError:
                self._fail(Alert.BAD_RECORD_MAC, "a record failed authentication")
            self.read_keys.seq += 1
            inner = inner.rstrip(b"\0")
            if not inner:
                self._fail(Alert.UNEXPECTED_MESSAGE, "record without a content type")
            return inner[-1], inner[:-1]

    def _next_handshake(self, want: int | None = None) -> tuple[int, bytes, bytes]:
        """(type, body, whole message) of the next handshake message."""
        while len(self._hs) < 4 or len(self._hs) < 4 + int.from_bytes(self._hs[1:4], "big"):
            kind, body = self._read_record()
            if kind == ALERT:
                self._peer_alert(body)
            if kind != HANDSHAKE:
                self._fail(Alert.UNEXPECTED_MESSAGE, f"record type {kind} during handshake")
            self._hs += body
        n = int.from_bytes(self._hs[1:4], "big")
        msg, self._hs = self._hs[:4 + n], self._hs[4 + n:]
        if want is not None and msg[0] != want:
            self._fail(Alert.UNEXPECTED_MESSAGE, f"handshake message {msg[0]}, expected {want}")
        return msg[0], msg[4:], msg

    def _peer_alert(self, body: bytes):
        alert = body[1] if len(body) == 2 else Alert.DECODE_ERROR
        if alert == Alert.CLOSE_NOTIFY:
            self.closed = True
            raise EOFError("the peer closed the connection")
        raise TlsAlert(alert)

    def _hash(self) -> bytes:
        return hashlib.sha256(self.transcript).digest()

    # --- key schedule (RFC 8446 §7.1), every secret a slot on the crypto backend -----------
    def _own(self, *handles: int) -> tuple[int, ...]:
        self._handles += handles
        return handles

    def _handshake_secrets(self, shared: int) -> tuple[int, int, int]:
        """(handshake secret, client and server handshake traffic secrets) after the hellos."""
        c = self.crypto
        early, = self._own(c.extract(None, None))
        derived, = self._own(c.expand(early, "derived", EMPTY_HASH))
        hs, = self._own(c.extract(derived, shared))
        self._drop(early, derived)
        th = self._hash()
        c_hs, s_hs = self._own(c.expand(hs, "c hs traffic", th), c.expand(hs, "s hs traffic", th))
        return hs, c_hs, s_hs

    def _application_secrets(self, hs: int) -> None:
        c = self.crypto
        derived, = self._own(c.expand(hs, "derived", EMPTY_HASH))
        master, = self._own(c.extract(derived, None))
        self._drop(derived)
        th = self._hash()
        for side in ("c", "s"):
            self.app_secrets[side], = self._own(c.expand(master, f"{side} ap traffic", th))

    def _traffic(self, secret: int) -> _Keys:
        key, = self._own(self.crypto.traffic_keys(secret))
        return _Keys(key)

    def _finished(self, traffic_secret: int) -> bytes:
        key, = self._own(self.crypto.expand(traffic_secret, "finished", None))
        return self.crypto.finished(key, self._hash())

    def _forget_handshake(self) -> None:
        """Zeroize every slot but the application traffic secrets and keys."""
        keep = {*self.app_secrets.values(), self.read_keys.key, self.write_keys.key}
        self.crypto.free(*[h for h in self._handles if h not in keep])
        self._handles = [h for h in self._handles if h in keep]

    def _switch_application(self) -> None:
        mine, theirs = ("s", "c") if self.is_server else ("c", "s")
        self.write_keys = self._traffic(self.app_secrets[mine])
        self.read_keys = self._traffic(self.app_secrets[theirs])
        self.established = True

    # --- application data ------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        self._send_record(APPLICATION_DATA, data)

    def recv(self, n: int = 65536) -> bytes:
        """Up to ``n`` bytes of application data; b"" once the peer sent close_notify."""
        while not self._app and not self.closed:
            try:
                kind, body = self._read_record()
            except ConnectionError:
                self.closed = True
                break
            if kind == APPLICATION_DATA:
                self._app += body
            elif kind == ALERT:
                try:
                    self._peer_alert(body)
                except EOFError:
                    break
            elif kind == HANDSHAKE:
                self._hs += body
                self._post_handshake()
            else:
                self._fail(Alert.UNEXPECTED_MESSAGE, f"record type {kind}")
        out, self._app = self._app[:n], self._app[n:]
        return out

    def _post_handshake(self) -> None:
        while len(self._hs) >= 4 and len(self._hs) >= 4 + int.from_bytes(self._hs[1:4], "big"):
            kind, body, _ = self._next_handshake()
            if kind == NEW_SESSION_TICKET:
                continue                        # no resumption
            if kind != KEY_UPDATE or len(body) != 1 or body[0] > 1:
                self._fail(Alert.UNEXPECTED_MESSAGE, f"post-handshake message {kind}")
            self.read_keys = self._update("c" if self.is_server else "s", self.read_keys)
            if body[0] == 1:                    # update_requested: ours too
                self._send_record(HANDSHAKE, _handshake(KEY_UPDATE, b"\0"))
                self.write_keys = self._update("s" if self.is_server else "c", self.write_keys)

    def _update(self, side: str, keys: _Keys) -> _Keys:
        """RFC 8446 §7.2: ``side``'s next application traffic secret and its keys (the old
        secret and key zeroized)."""
        old = self.app_secrets[side], keys.key
        self.app_secrets[side], = self._own(
            self.crypto.expand(self.app_secrets[side], "traffic upd", None))
        new = self._traffic(self.app_secrets[side])
        self._drop(*old)
        return new

    def _drop(self, *handles: int) -> None:
        self.crypto.free(*handles)
        self._handles = [h for h in self._handles if h not in handles]

    def close(self) -> None:
        """close_notify, then every slot of this connection zeroized."""
        if self.write_keys is not None and not self.closed:
            self.send_alert(Alert.CLOSE_NOTIFY)
        self.closed = True
        try:
            self.crypto.free(*self._handles)
        finally:
            self._handles = []
            self.sock.close()


# --- client ------------------------------------------------------------------------------

def _verify_signature(cert: x509.Certificate, scheme: int, signature: bytes,
                      content: bytes) -> None:
    key = cert.public_key()
    if scheme == ECDSA_P256_SHA256 and isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, content, ec.ECDSA(hashes.SHA256()))
    elif scheme == RSA_PSS_SHA256 and isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, content, padding.PSS(padding.MGF1(hashes.SHA256()), 32),
                   hashes.SHA256())
    elif scheme == ED25519 and isinstance(key, ed25519.Ed25519PublicKey):
        key.verify(signature, content)
    else:
        raise InvalidSignature(f"scheme {scheme:#06x} does not fit the certificate's key")


def client(sock: socket.socket, crypto: HandshakeCrypto, *, server_name: str | None = None,
           trusted: list[x509.Certificate] | None = None) -> TlsConnection:
    """Run the client handshake on a connected socket. With ``trusted``, the server's
    certificate must be one of them (or signed by one); its CertificateVerify is always
    checked."""
    conn = TlsConnection(sock, crypto, is_server=False)
    try:
        _client_handshake(conn, server_name, trusted)
    except BaseException:
        conn.close()
        raise
    return conn


def _client_handshake(conn: TlsConnection, server_name: str | None,
                      trusted: list[x509.Certificate] | None) -> None:
    c = conn.crypto
    private, public = c.keygen(os.urandom(32))
    conn._own(private)
    exts = [_ext(EXT_VERSIONS, _u8(TLS13.to_bytes(2, "big"))),
            _ext(EXT_GROUPS, _u16(X25519_GROUP.to_bytes(2, "big"))),
            _ext(EXT_SIG_ALGS, _u16(b"".join(s.to_bytes(2, "big") for s in
                                             (ECDSA_P256_SHA256, RSA_PSS_SHA256, ED25519)))),
            _ext(EXT_KEY_SHARE, _u16(X25519_GROUP.to_bytes(2, "big") + _u16(public)))]
    if server_name:
        name = server_name.encode()
        exts.insert(0, _ext(EXT_SERVER_NAME, _u16(b"\0" + _u16(name))))
    hello = (b"\x03\x03" + os.urandom(32) + _u8(os.urandom(32))
             + _u16(AES_128_GCM_SHA256.to_bytes(2, "big")) + b"\x01\x00" + _u16(b"".join(exts)))
    msg = _handshake(CLIENT_HELLO, hello)
    conn.transcript += msg
    conn._send_record(HANDSHAKE, msg)

    _, body, msg = conn._next_handshake(SERVER_HELLO)
    r = _Reader(body)
    if r.int(2) != 0x0303:
        conn._fail(Alert.PROTOCOL_VERSION, "legacy version")
    if r.take(32) == HRR_RANDOM:
        conn._fail(Alert.HANDSHAKE_FAILURE, "HelloRetryRequest (not supported)")
    r.vec(1)
    if r.int(2) != AES_128_GCM_SHA256 or r.int(1) != 0:
        conn._fail(Alert.ILLEGAL_PARAMETER, "server chose a suite we did not offer")
    exts = _extensions(r.vec(2))
    if exts.get(EXT_VERSIONS) != TLS13.to_bytes(2, "big"):
        conn._fail(Alert.PROTOCOL_VERSION, "server did not choose TLS 1.3")
    if EXT_KEY_SHARE not in exts:
        conn._fail(Alert.MISSING_EXTENSION, "no key share")
    peer = _x25519_share(exts[EXT_KEY_SHARE], server=False)
    conn.transcript += msg
    try:
        shared, = conn._own(c.derive(private, peer))
    except OffloadError:
        conn._fail(Alert.ILLEGAL_PARAMETER, "the server's X25519 key is a small-order point")
    hs, c_hs, s_hs = conn._handshake_secrets(shared)
    conn._drop(private, shared)
    conn.read_keys, write_hs = conn._traffic(s_hs), conn._traffic(c_hs)

    _, body, msg = conn._next_handshake(ENCRYPTED_EXTENSIONS)
    _extensions(_Reader(body).vec(2))
    conn.transcript += msg
    _peer_certificate(conn, "server", trusted, Alert.DECODE_ERROR, Alert.BAD_CERTIFICATE)
    expected = conn._finished(s_hs)
    _, body, msg = conn._next_handshake(FINISHED)
    if body != expected:
        conn._fail(Alert.DECRYPT_ERROR, "server Finished does not verify")
    conn.transcript += msg
    conn._application_secrets(hs)

    conn.write_keys = write_hs
    fin = _handshake(FINISHED, conn._finished(c_hs))
    conn._send_record(HANDSHAKE, fin)
    conn.transcript += fin
    conn._switch_application()
    conn._forget_handshake()


def _trusted(cert: x509.Certificate, trusted: list[x509.Certificate]) -> bool:
    for anchor in trusted:
        if cert == anchor:
            return True
        try:
            cert.verify_directly_issued_by(anchor)
            return True
        except (ValueError, TypeError, InvalidSignature):
            continue
    return False


# --- server ------------------------------------------------------------------------------

def server(sock: socket.socket, crypto: HandshakeCrypto, cert: x509.Certificate,
           key, *, client_ca: list[x509.Certificate] | None = None) -> TlsConnection:
    """Run the server handshake on an accepted socket, with ``cert`` and its private key.
    With ``client_ca``, the client must present a certificate issued by one of them (or one
    of them) and prove it holds its key; it is then ``peer_certificate``."""
    conn = TlsConnection(sock, crypto, is_server=True)
    try:
        _server_handshake(conn, cert, key, client_ca)
    except BaseException:
        conn.close()
        raise
    return conn


def _sign(key, content: bytes) -> tuple[int, bytes]:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return ECDSA_P256_SHA256, key.sign(content, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, rsa.RSAPrivateKey):
        return RSA_PSS_SHA256, key.sign(content, padding.PSS(padding.MGF1(hashes.SHA256()), 32),
                                        hashes.SHA256())
    return ED25519, key.sign(content)


def _server_handshake(conn: TlsConnection, cert: x509.Certificate, key,
                      client_ca: list[x509.Certificate] | None = None) -> None:
    c = conn.crypto
    _, body, msg = conn._next_handshake(CLIENT_HELLO)
    r = _Reader(body)
    r.int(2)
    r.take(32)
    session_id = r.vec(1)
    suites = _Reader(r.vec(2))
    offered = {suites.int(2) for _ in range(len(suites.data) // 2)}
    r.vec(1)
    exts = _extensions(r.vec(2)) if not r.done() else {}
    versions = exts.get(EXT_VERSIONS, b"")
    if TLS13.to_bytes(2, "big") not in [versions[1 + k:3 + k] for k in range(0, len(versions) - 1,
                                                                          2)]:
        conn._fail(Alert.PROTOCOL_VERSION, "client does not offer TLS 1.3")
    if AES_128_GCM_SHA256 not in offered:
        conn._fail(Alert.HANDSHAKE_FAILURE, "client does not offer TLS_AES_128_GCM_SHA256")
    if EXT_KEY_SHARE not in exts:
        conn._fail(Alert.MISSING_EXTENSION, "no key share")
    peer = _x25519_share(exts[EXT_KEY_SHARE], server=True)
    if peer is None:
        conn._fail(Alert.HANDSHAKE_FAILURE, "no X25519 key share (HelloRetryRequest is not "
                   "supported)")
    conn.transcript += msg

    private, public = c.keygen(os.urandom(32))
    conn._own(private)
    try:
        shared, = conn._own(c.derive(private, peer))
    except OffloadError:
        conn._fail(Alert.ILLEGAL_PARAMETER, "the client's X25519 key is a small-order point")
    exts = (_ext(EXT_VERSIONS, TLS13.to_bytes(2, "big"))
            + _ext(EXT_KEY_SHARE, X25519_GROUP.to_bytes(2, "big") + _u16(public)))
    hello = (b"\x03\x03" + os.urandom(32) + _u8(session_id)
             + AES_128_GCM_SHA256.to_bytes(2, "big") + b"\0" + _u16(exts))
    msg = _handshake(SERVER_HELLO, hello)
    conn.transcript += msg
    conn._send_record(HANDSHAKE, msg)
    if session_id:
        conn._send_record(CHANGE_CIPHER_SPEC, b"\x01")
    hs, c_hs, s_hs = conn._handshake_secrets(shared)
    conn._drop(private, shared)
    conn.write_keys, read_hs = conn._traffic(s_hs), conn._traffic(c_hs)

    flight = b""
    messages = [(ENCRYPTED_EXTENSIONS, _u16(b""))]
    if client_ca is not None:            # (RFC 8446 4.3.2: empty context, the schemes we check)
        schemes = b"".join(s.to_bytes(2, "big") for s in
                           (ECDSA_P256_SHA256, RSA_PSS_SHA256, ED25519))
        messages.append((CERTIFICATE_REQUEST, b"\0" + _u16(_ext(EXT_SIG_ALGS, _u16(schemes)))))
    messages.append((CERTIFICATE, b"\0" + _u24(_u24(cert.public_bytes(Encoding.DER))
                                               + _u16(b""))))
    for kind, body in messages:
        m = _handshake(kind, body)
        conn.transcript += m
        flight += m
    scheme, signature = _sign(key, _signed_content(b"TLS 1.3, server CertificateVerify",
                                                   conn._hash()))
    m = _handshake(CERTIFICATE_VERIFY, scheme.to_bytes(2, "big") + _u16(signature))
    conn.transcript += m
    flight += m
    m = _handshake(FINISHED, conn._finished(s_hs))
    conn.transcript += m
    flight += m
    conn._send_record(HANDSHAKE, flight)
    conn._application_secrets(hs)
    # From its Finished on, the server writes with its application keys (RFC 8446 7.1: the
    # client reads them from there), so an alert about the client's flight is readable.
    conn.write_keys = conn._traffic(conn.app_secrets["s"])

    conn.read_keys = read_hs
    if client_ca is not None:
        _peer_certificate(conn, "client", client_ca, Alert.CERTIFICATE_REQUIRED,
                          Alert.UNKNOWN_CA)
    expected = conn._finished(c_hs)
    _, body, msg = conn._next_handshake(FINISHED)
    if body != expected:
        conn._fail(Alert.DECRYPT_ERROR, "client Finished does not verify")
    conn.transcript += msg
    conn.read_keys = conn._traffic(conn.app_secrets["c"])
    conn.established = True
    conn._forget_handshake()


def _peer_certificate(conn: TlsConnection, peer: str, trusted: list[x509.Certificate] | None,
                      missing: Alert, untrusted: Alert) -> None:
    """The peer's Certificate and CertificateVerify (RFC 8446 4.4.2, 4.4.3): one certificate
    that parses, chains to ``trusted`` (None: any) and has signed the transcript so far.
    ``missing``/``untrusted``: the alerts RFC 8446 names for the server's or client's case."""
    _, body, msg = conn._next_handshake(CERTIFICATE)
    r = _Reader(body)
    if r.vec(1):                    # empty within a handshake, in either direction
        conn._fail(Alert.ILLEGAL_PARAMETER, "certificate request context is not empty")
    entries = _Reader(r.vec(3))
    if entries.done():
        conn._fail(missing, f"the {peer} sent no certificate")
    try:
        cert = x509.load_der_x509_certificate(entries.vec(3))
    except ValueError:
        conn._fail(Alert.BAD_CERTIFICATE, f"{peer} certificate does not parse")
    if trusted is not None and not _trusted(cert, trusted):
        conn._fail(untrusted, f"{peer} certificate is not issued by a trusted CA")
    conn.transcript += msg
    _, body, msg = conn._next_handshake(CERTIFICATE_VERIFY)
    r = _Reader(body)
    scheme, signature = r.int(2), r.vec(2)
    try:
        _verify_signature(cert, scheme, signature, _signed_content(
            f"TLS 1.3, {peer} CertificateVerify".encode(), conn._hash()))
    except InvalidSignature:
        conn._fail(Alert.DECRYPT_ERROR, f"{peer} CertificateVerify does not verify")
    conn.transcript += msg
    conn.peer_certificate = cert

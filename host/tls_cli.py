"""``crossnic tls connect HOST:PORT`` and ``crossnic tls serve``: the TLS 1.3 endpoints of
:mod:`crossnic.host.tls` as commands, with the handshake on the card (through crossnicd) or in
software. Run them in a VNS instance with ``ip netns exec VNS crossnic tls ...``: the daemon's
socket is a file, reachable from any namespace."""

import datetime
import json
import socket
import sys
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import NameOID

from . import tls
from .offload import DaemonCrypto, HandshakeCrypto, SoftCrypto

__all__ = ["run"]


class TlsCliError(RuntimeError):
    pass


def _backend(args) -> HandshakeCrypto:
    if args.backend == "soft":
        return SoftCrypto()
    try:
        return DaemonCrypto(args.daemon)
    except (RuntimeError, ConnectionError) as e:
        raise TlsCliError(f"no offload session: {e} (or use --backend soft)") from None


def _host_port(text: str, default_port: int = 4433) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, str(default_port)
    try:
        value = int(port)
    except ValueError:
        raise TlsCliError(f"bad port in {text!r}") from None
    if not 0 < value < 65536 or not host:
        raise TlsCliError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), value


def _summary(conn: tls.TlsConnection, crypto: HandshakeCrypto, started: float, cpu: float,
             args) -> dict:
    out = {"backend": args.backend, "handshake_ms": round(1000 * (time.monotonic() - started), 1),
           "cpu_ms": round(1000 * (time.process_time() - cpu), 2),
           "version": "TLSv1.3", "cipher": "TLS_AES_128_GCM_SHA256", "group": "x25519"}
    if crypto.cycles:
        out["card_cycles"] = {op: v[0] for op, v in crypto.cycles.items()}
    if conn.peer_certificate is not None:
        out["peer"] = conn.peer_certificate.subject.rfc4514_string()
    return out


def _certificates(path: str, option: str) -> list[x509.Certificate]:
    """The PEM certificates an option names (trust anchors), or a clear error."""
    try:
        return x509.load_pem_x509_certificates(Path(path).read_bytes())
    except (OSError, ValueError) as e:
        raise TlsCliError(f"cannot read {option} {path}: {e}") from None


def _connect(args) -> int:
    host, port = _host_port(args.target)
    trusted = _certificates(args.cafile, "--cafile") if args.cafile else None
    try:
        sock = socket.create_connection((host, port), timeout=args.timeout)
    except OSError as e:
        raise TlsCliError(f"cannot connect to {host}:{port}: {e.strerror or e}") from None
    sock.settimeout(120.0)                  # the handshake (a simulated card is slow)
    crypto = _backend(args)
    started, cpu = time.monotonic(), time.process_time()
    try:
        conn = tls.client(sock, crypto, server_name=args.servername or host, trusted=trusted)
    except (tls.TlsError, tls.TlsAlert, ConnectionError, OSError) as e:
        raise TlsCliError(f"handshake with {host}:{port} failed: {e}") from None
    info = _summary(conn, crypto, started, cpu, args)
    print(json.dumps(info) if args.json else
          f"handshake done in {info['handshake_ms']} ms ({args.backend}): TLSv1.3 "
          f"TLS_AES_128_GCM_SHA256 x25519, peer {info.get('peer', '?')}", file=sys.stderr)
    try:
        if args.send is not None:
            conn.send(args.send.encode().decode("unicode_escape").encode())
        got = b""
        deadline = time.monotonic() + args.wait
        sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                chunk = conn.recv()
            except TimeoutError:
                continue
            if not chunk:
                break
            got += chunk
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
            if args.expect and args.expect.encode() in got:
                break
    except (tls.TlsError, tls.TlsAlert) as e:
        raise TlsCliError(str(e)) from None
    finally:
        conn.close()
    return 0


def _self_signed(name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _serve(args) -> int:
    if bool(args.cert) != bool(args.key):
        raise TlsCliError("--cert and --key go together")
    if args.cert:
        try:
            cert = x509.load_pem_x509_certificate(Path(args.cert).read_bytes())
            key = load_pem_private_key(Path(args.key).read_bytes(), None)
        except (OSError, ValueError, TypeError) as e:
            raise TlsCliError(f"cannot load the certificate or key: {e}") from None
    else:
        cert, key = _self_signed(args.name)
    client_ca = _certificates(args.client_ca, "--client-ca") if args.client_ca else None
    if args.subscriptions and client_ca is None:
        raise TlsCliError("--subscriptions needs --client-ca (the clients' identities)")
    host, port = _host_port(args.listen)
    srv = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        srv.bind((host, port))
    except OSError as e:
        raise TlsCliError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    srv.listen(8)
    print(f"listening on {host}:{port} ({args.backend})", file=sys.stderr, flush=True)
    served = 0
    with srv:
        while args.count == 0 or served < args.count:
            sock, peer = srv.accept()
            served += 1
            crypto = _backend(args)
            started, cpu = time.monotonic(), time.process_time()
            try:
                conn = tls.server(sock, crypto, cert, key, client_ca=client_ca)
            except (tls.TlsError, tls.TlsAlert, ConnectionError, OSError) as e:
                print(f"{peer[0]}: handshake failed: {e}", file=sys.stderr, flush=True)
                _close(crypto)
                continue
            info = _summary(conn, crypto, started, cpu, args)
            association = _associate(sock, conn, args) if args.subscriptions else None
            if association:
                info["association"] = association
            print(json.dumps(info) if args.json else
                  f"{peer[0]}: handshake done in {info['handshake_ms']} ms", file=sys.stderr,
                  flush=True)
            try:
                while data := conn.recv():
                    conn.send(data.upper() if args.upper else data)
            except (tls.TlsError, tls.TlsAlert, OSError) as e:
                print(f"{peer[0]}: {e}", file=sys.stderr, flush=True)
            finally:
                conn.close()
                _close(crypto)
                if association:
                    _dissociate(association["association"], args)
    return 0


def identity_of(cert: x509.Certificate) -> str | None:
    """A client's identity: its certificate's subject common name."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def _associate(sock: socket.socket, conn: tls.TlsConnection, args) -> dict | None:
    """Ask crossnicd to raise this connection to its client's subscription level (a client
    with no subscription keeps the VNIC's share; said, not fatal)."""
    from .admin import AdminError, request
    identity = identity_of(conn.peer_certificate)
    local, peer = sock.getsockname(), sock.getpeername()
    attrs = {"transport": "tcp", "local_ip": local[0], "local_port": str(local[1]),
             "remote_ip": peer[0], "remote_port": str(peer[1])}
    try:
        return request("associate", {"link": None, "attrs": attrs, "identity": identity,
                                     "source": "tls"}, Path(args.daemon))
    except AdminError as e:
        print(f"{peer[0]}: no association for {identity!r}: {e}", file=sys.stderr, flush=True)
        return None


def _dissociate(name: str, args) -> None:
    from .admin import AdminError, request
    try:
        request("dissociate", {"name": name}, Path(args.daemon))
    except AdminError as e:                  # already ended (idle) or the daemon is gone
        print(f"association {name}: {e}", file=sys.stderr, flush=True)


def _close(crypto: HandshakeCrypto) -> None:
    if hasattr(crypto, "close"):
        crypto.close()


def run(args) -> int:
    """``crossnic tls connect|serve`` (the parser is :mod:`crossnic.cli`'s)."""
    try:
        return {"connect": _connect, "serve": _serve}[args.tls_cmd](args)
    except TlsCliError as e:
        print(f"crossnic tls: error: {e}", file=sys.stderr)
        return 2

"""TLS 1.3 with the handshake on the card, against a stock OpenSSL, both directions.

The card (``crossnic sim --serve``, built with the offload engine) runs crossnicd; a VNS
instance on port 0 runs ``crossnic tls`` (backend ``card``: every X25519, key-schedule step
and record goes through the offload queue), and an outside station on port 0's wire runs
``openssl s_server``/``s_client``, so the TLS traffic crosses the simulated card too. Tampered
records and small-order keys must end the handshake with the right alert. The software
backend is checked against OpenSSL on loopback first (no card, fast).
"""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from crossnic.sim.lab import LabCard, sh, station

OPENSSL = shutil.which("openssl")
TAG = f"{os.getpid() % 10000}"
VNS, EXT = f"cntls{TAG}", f"cntx{TAG}"
VNS_IP, EXT_IP = "10.9.1.20", "10.9.1.100"
PEERS = str(Path(__file__).with_name("tls_peers.py"))
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
needs_root = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                                reason="TAP devices and network namespaces need root")


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    sh(OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
       "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-days", "2", "-nodes",
       "-subj", "/CN=crossnic-test")
    return d


def _client_cert(d: Path, name: str, ca: str) -> tuple[Path, Path]:
    """A P-256 client certificate with CN ``name`` issued by CA ``ca`` (in ``d``)."""
    key, csr, cert = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.pem"
    sh(OPENSSL, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
       "-keyout", str(key), "-out", str(csr), "-nodes", "-subj", f"/CN={name}")
    sh(OPENSSL, "x509", "-req", "-in", str(csr), "-CA", str(d / f"{ca}.pem"), "-CAkey",
       str(d / f"{ca}.key"), "-out", str(cert), "-days", "2", "-set_serial", "7")
    return cert, key


@pytest.fixture(scope="module")
def clients(certs) -> Path:
    """A client CA with clients alice and bob, and a stranger's CA with mallory."""
    for ca in ("client-ca", "stranger-ca"):
        sh(OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt",
           "ec_paramgen_curve:prime256v1", "-keyout", str(certs / f"{ca}.key"), "-out",
           str(certs / f"{ca}.pem"), "-days", "2", "-nodes", "-subj", f"/CN={ca}")
    for name, ca in (("alice", "client-ca"), ("bob", "client-ca"), ("mallory", "stranger-ca")):
        _client_cert(certs, name, ca)
    return certs


def _crossnic(*args: str, ns: str | None = None, **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "crossnic", *args]
    if ns:
        cmd = ["ip", "netns", "exec", ns, *cmd]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _listening(p: subprocess.Popen) -> subprocess.Popen:
    """Wait for ``crossnic tls serve`` to say it listens."""
    line = p.stderr.readline()
    assert line.startswith("listening"), line + _stop(p)
    return p


def _in(ns: str | None, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd] if ns else list(cmd)


def _s_server(ns, port: int, certs: Path) -> subprocess.Popen:
    p = subprocess.Popen(_in(ns, OPENSSL, "s_server", "-accept", str(port), "-cert",
                             str(certs / "cert.pem"), "-key", str(certs / "key.pem"),
                             "-tls1_3", "-rev"),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    time.sleep(0.5)
    return p


def _s_client(ns, target: str, certs: Path, text: str | list[str], wait: float,
              expect: str | None = None, identity: tuple[Path, Path] | None = None) -> str:
    """openssl s_client's output after its handshake, sending ``text`` (a list: one write
    each, 3 s apart, as s_client takes one command or message per read) and waiting ``wait``
    seconds, or, with ``expect``, until that text has arrived (at most 120 s: a loaded
    simulator is slow).
    ``identity``: a client certificate and its key to present."""
    mine = ["-cert", str(identity[0]), "-key", str(identity[1])] if identity else []
    p = subprocess.Popen(_in(ns, OPENSSL, "s_client", "-connect", target, "-tls1_3",
                             "-CAfile", str(certs / "cert.pem"), "-servername",
                             "crossnic-test", *mine),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(iter(p.stdout.readline, "")),
                              daemon=True)
    reader.start()
    # write only once the handshake is done: s_client reads its input then, and two writes
    # that wait in the pipe arrive as one read (a "k" command would swallow the message)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and p.poll() is None and \
            "Verify return code" not in "".join(out):
        time.sleep(0.2)
    time.sleep(1.0)
    for k, part in enumerate([text] if isinstance(text, str) else text):
        if k:
            time.sleep(3)
        try:
            p.stdin.write(part)
            p.stdin.flush()
        except BrokenPipeError:         # s_client has ended (a failed handshake)
            break
    else:
        deadline = time.monotonic() + (120 if expect else wait)
        while time.monotonic() < deadline and p.poll() is None and \
                not (expect and expect in "".join(out)):
            time.sleep(0.2)
    try:
        p.stdin.close()                 # s_client sends close_notify and ends
    except BrokenPipeError:
        pass
    try:
        p.wait(timeout=wait + 30)
    except subprocess.TimeoutExpired:
        p.kill()
    reader.join(timeout=10)
    return "".join(out)


def _stop(p: subprocess.Popen, grace: float = 0.0) -> str:
    """``p``'s output, once it has ended: on its own within ``grace`` seconds (a server told
    to serve one client may still be finishing it on a loaded machine), else terminated."""
    if grace:
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    if p.poll() is None:
        p.terminate()
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    return (out or "") + (err or "")


# --- software backend, loopback ------------------------------------------------------------

@needs_openssl
def test_soft_client_with_openssl_server(certs):
    srv = _s_server(None, 14501, certs)
    try:
        r = subprocess.run([sys.executable, "-m", "crossnic", "tls", "connect",
                            "127.0.0.1:14501", "--backend", "soft", "--cafile",
                            str(certs / "cert.pem"), "--servername", "crossnic-test",
                            "--send", "hello openssl\\n", "--expect", "lssnepo olleh", "--json"],
                           capture_output=True, text=True, timeout=60)
    finally:
        _stop(srv)
    assert r.returncode == 0, r.stderr
    assert "lssnepo olleh" in r.stdout
    assert json.loads(r.stderr.splitlines()[0])["peer"] == "CN=crossnic-test"


@needs_openssl
def test_openssl_client_with_soft_server(certs):
    srv = _listening(_crossnic("tls", "serve", "--backend", "soft", "--listen",
                               "127.0.0.1:14502", "--count", "1", "--upper", "--cert",
                               str(certs / "cert.pem"), "--key", str(certs / "key.pem")))
    try:
        out = _s_client(None, "127.0.0.1:14502", certs, "hello crossnic\n", 1.0)
    finally:
        log = _stop(srv)
    assert "Verification: OK" in out, out
    assert "TLSv1.3" in out and "TLS_AES_128_GCM_SHA256" in out
    assert "HELLO CROSSNIC" in out, out + log


@needs_openssl
def test_client_certificates_are_required_and_checked(clients):
    """A server with --client-ca: a client certificate from that CA is accepted (its subject
    is the peer), one from another CA gets unknown_ca, none gets certificate_required."""
    d = clients
    srv = _listening(_crossnic("tls", "serve", "--backend", "soft", "--listen",
                               "127.0.0.1:14504", "--count", "3", "--upper", "--cert",
                               str(d / "cert.pem"), "--key", str(d / "key.pem"),
                               "--client-ca", str(d / "client-ca.pem"), "--json"))
    try:
        ok = _s_client(None, "127.0.0.1:14504", d, "hello\n", 1.0, expect="HELLO",
                       identity=(d / "alice.pem", d / "alice.key"))
        stranger = _s_client(None, "127.0.0.1:14504", d, "hello\n", 1.0,
                             identity=(d / "mallory.pem", d / "mallory.key"))
        anonymous = _s_client(None, "127.0.0.1:14504", d, "hello\n", 1.0)
    finally:
        log = _stop(srv, grace=30)
    assert "Verification: OK" in ok and "HELLO" in ok, ok + log
    assert '"peer": "CN=alice"' in log, log
    assert "unknown ca" in stranger.lower(), stranger
    assert "certificate required" in anonymous.lower(), anonymous
    assert "not issued by a trusted CA" in log and "sent no certificate" in log, log


@needs_openssl
def test_untrusted_certificate_is_refused(certs, tmp_path):
    other = tmp_path / "other.pem"
    sh(OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
       "-keyout", str(tmp_path / "k.pem"), "-out", str(other), "-days", "1", "-nodes",
       "-subj", "/CN=someone-else")
    srv = _s_server(None, 14503, certs)
    try:
        r = subprocess.run([sys.executable, "-m", "crossnic", "tls", "connect",
                            "127.0.0.1:14503", "--backend", "soft", "--cafile", str(other)],
                           capture_output=True, text=True, timeout=60)
    finally:
        _stop(srv)
    assert r.returncode == 2 and "bad_certificate" in r.stderr, r.stderr


# --- the card ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def card(tmp_path_factory):
    """A served card with the offload engine, crossnicd, a VNS on port 0 and a station."""
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun") or OPENSSL is None:
        pytest.skip("needs root, /dev/net/tun and openssl")
    ext_tap = f"cnt{TAG}"
    s = LabCard(tmp_path_factory.mktemp("tls"), f"tap:{ext_tap}")
    try:
        s.start()
        station(EXT, ext_tap, f"{EXT_IP}/24")
        sh("ip", "-n", EXT, "link", "set", "lo", "up")     # the relays reach their own address
        s.ok("create-vns", VNS, "--ip", f"{VNS_IP}/24")
        s.ok("create-vnic", f"tls{TAG}", "--over", "port0", "--vns", VNS)
        yield s
    finally:
        s.stop()
        for ns in (EXT, VNS):
            sh("ip", "netns", "del", ns, check=False)


def _connect(card, target: str, certs: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(_in(VNS, sys.executable, "-m", "crossnic", "tls", "connect", target,
                              "--daemon", str(card.daemon_sock), "--cafile",
                              str(certs / "cert.pem"), "--servername", "crossnic-test",
                              "--json", *extra),
                          capture_output=True, text=True, timeout=600)


@needs_root
@needs_openssl
def test_card_client_with_openssl_server(card, certs):
    """Our client in the VNS, keys on the card; s_server outside, across the card's port."""
    srv = _s_server(EXT, 4433, certs)
    try:
        r = _connect(card, f"{EXT_IP}:4433", certs, "--send", "through the card\\n",
                     "--expect", "drac eht hguorht", "--wait", "120")
    finally:
        log = _stop(srv)
    assert r.returncode == 0, r.stderr + log
    assert "drac eht hguorht" in r.stdout
    info = json.loads(r.stderr.splitlines()[0])
    assert info["backend"] == "card"
    # the ECDHE and the key schedule ran on the card: its clock counts came back
    cycles = info["card_cycles"]
    assert {"keygen", "derive", "extract", "expand", "traffic_keys", "finished",
            "seal", "open"} <= set(cycles), cycles
    assert 50_000 < cycles["derive"] < 60_000


@needs_root
@needs_openssl
def test_openssl_client_with_card_server(card, certs):
    srv = _listening(_crossnic("tls", "serve", "--daemon", str(card.daemon_sock), "--listen",
                               "0.0.0.0:4434", "--count", "1", "--upper", "--cert",
                               str(certs / "cert.pem"), "--key", str(certs / "key.pem"),
                               "--json", ns=VNS))
    try:
        # ("k" alone makes s_client send a KeyUpdate first: the server must follow it)
        out = _s_client(EXT, f"{VNS_IP}:4434", certs, ["k\n", "secrets stay on the card\n"],
                        15.0, expect="SECRETS STAY ON THE CARD")
    finally:
        log = _stop(srv, grace=120)
    assert "Verification: OK" in out, out + log
    assert "KEYUPDATE" in out and "SECRETS STAY ON THE CARD" in out, out + log
    assert '"backend": "card"' in log


@needs_root
@needs_openssl
def test_a_clients_tls_handshake_raises_its_connection_to_its_level(card, clients):
    """With --subscriptions, the server asks crossnicd to associate each client's connection
    with the level of the identity its certificate proved: a flow of the level's priority on
    the card while the connection lasts; a client with no subscription keeps the VNIC's."""
    d = clients
    card.ok("create-sublevel", "gold", "-p", "priority=high,maxbw=200M")
    card.ok("add-subscriber", "alice", "--level", "gold")
    srv = _listening(_crossnic("tls", "serve", "--daemon", str(card.daemon_sock), "--listen",
                               "0.0.0.0:4435", "--count", "2", "--upper", "--cert",
                               str(d / "cert.pem"), "--key", str(d / "key.pem"),
                               "--client-ca", str(d / "client-ca.pem"), "--subscriptions",
                               "--json", ns=VNS))
    try:
        alice = _s_client(EXT, f"{VNS_IP}:4435", d, "gold service\n", 15.0,
                          expect="GOLD SERVICE", identity=(d / "alice.pem", d / "alice.key"))
        bob = _s_client(EXT, f"{VNS_IP}:4435", d, "best effort\n", 15.0,
                        expect="BEST EFFORT", identity=(d / "bob.pem", d / "bob.key"))
    finally:
        log = _stop(srv, grace=120)
        card.cli("remove-subscriber", "alice")
    assert "GOLD SERVICE" in alice and "BEST EFFORT" in bob, alice + bob + log
    infos = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert [i["peer"] for i in infos] == ["CN=alice", "CN=bob"], log
    made = infos[0]["association"]
    assert (made["level"], made["identity"], made["priority"], made["maxbw"],
            made["remote_ip"], made["local_port"]) == ("gold", "alice", "high", 200_000_000,
                                                       EXT_IP, "4435")
    assert "association" not in infos[1] and "no association for 'bob'" in log, log
    events = [(e["association"], e["identity"], e["event"], e["why"])
              for e in json.loads(card.ok("show-association-log", "--json"))]
    assert events[-2:] == [(made["association"], "alice", "associated", "tls"),
                           (made["association"], "alice", "ended", "request")]
    assert json.loads(card.ok("show-association", "--json")) == []
    card.ok("delete-sublevel", "gold")


@needs_root
@needs_openssl
def test_tampered_records_get_bad_record_mac(card, certs):
    """A flipped bit in the server's first encrypted record: our client answers
    bad_record_mac; in the client's Finished: our server does, and OpenSSL reports it."""
    relay = subprocess.Popen(_in(EXT, sys.executable, PEERS, "tamper", "4440",
                                 f"{EXT_IP}:4441", "s2c", "2"),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    srv = _s_server(EXT, 4441, certs)
    try:
        assert relay.stdout.readline().startswith("listening")
        r = _connect(card, f"{EXT_IP}:4440", certs)
    finally:
        relay_log, srv_log = _stop(relay), _stop(srv)
    assert r.returncode == 2 and "bad_record_mac" in r.stderr, r.stderr + relay_log
    assert "s2c 23 tampered" in relay_log
    assert "bad record mac" in srv_log.lower(), srv_log

    srv = _listening(_crossnic("tls", "serve", "--daemon", str(card.daemon_sock), "--listen",
                               "0.0.0.0:4442", "--count", "1", "--cert",
                               str(certs / "cert.pem"), "--key", str(certs / "key.pem"),
                               ns=VNS))
    relay = subprocess.Popen(_in(EXT, sys.executable, PEERS, "tamper", "4443",
                                 f"{VNS_IP}:4442", "c2s", "2"),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert relay.stdout.readline().startswith("listening")
        out = _s_client(EXT, f"{EXT_IP}:4443", certs, "x\n", 10.0, expect="bad record mac")
    finally:
        relay_log, log = _stop(relay), _stop(srv, grace=120)
    assert "c2s 23 tampered" in relay_log, relay_log
    assert "sent alert bad_record_mac" in log, log
    assert "bad record mac" in out.lower(), out


@needs_root
@needs_openssl
def test_small_order_keys_get_illegal_parameter(card, certs):
    """An all-zero X25519 share makes the card's DERIVE fail (BAD_POINT): both our client and
    our server answer with a plaintext illegal_parameter alert (15 0303 0002 02 2f)."""
    srv = _listening(_crossnic("tls", "serve", "--daemon", str(card.daemon_sock), "--listen",
                               "0.0.0.0:4444", "--count", "1", ns=VNS))
    try:
        r = subprocess.run(_in(EXT, sys.executable, PEERS, "bad-client", f"{VNS_IP}:4444"),
                           capture_output=True, text=True, timeout=300)
    finally:
        log = _stop(srv, grace=120)
    assert r.stdout.strip() == "1503030002022f", r.stdout + r.stderr + log
    assert "small-order" in log

    fake = subprocess.Popen(_in(EXT, sys.executable, PEERS, "bad-server", "4445"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert fake.stdout.readline().startswith("listening")
        r = _connect(card, f"{EXT_IP}:4445", certs)
    finally:
        fake_log = _stop(fake)
    assert r.returncode == 2 and "illegal_parameter" in r.stderr, r.stderr
    assert "1503030002022f" in fake_log, fake_log

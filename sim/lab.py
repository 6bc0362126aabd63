"""A small lab of simulated cards for tests and benchmarks that need several: each card served
(``crossnic sim --serve``) with its own ``crossnicd``, and traffic tools that check or time what
crosses them.

The traffic tools run as ``python -m crossnic.sim.lab TOOL ...`` inside a network namespace
(``ip netns exec NS``):

* ``tcp-serve ADDR PORT COUNT RESULT``: accept COUNT connections, read each to its end, keep
  RESULT (JSON) up to date with the bytes each client port sent and, at its end, their SHA-256
  and the client's address.
* ``tcp-send ADDR PORT SPORT BYTES PACE``: connect from SPORT (0: any), send BYTES
  pseudo-random bytes (seeded by the port) in 8 KiB writes PACE seconds apart, print (JSON)
  their SHA-256, the port and the seconds from connecting to the server's close.
* ``udp-send ADDR PORT SPORT INTERVAL SECONDS``: a numbered datagram every INTERVAL seconds.
* ``udp-recv ADDR PORT SECONDS RESULT``: write the arrival time of each number (JSON).
* ``udp-blast ADDR PORT SPORT SIZE RATE SECONDS``: SIZE-byte datagrams from SPORT at RATE per
  second (more than a simulated card drains: its queue stays full, the excess is dropped on the
  host), for congestion a card's scheduler resolves.
* ``udp-count ADDR PORT SECONDS RESULT``: keep RESULT up to date with the bytes received from
  each source port (the format of ``tcp-serve``, so :func:`card_rates` reads either).
* ``udp-echo ADDR PORT SECONDS [RESULT]``: send every datagram back to where it came from
  (RESULT, if given, is written once the socket is bound: see :func:`wait_ready`).
* ``udp-ping ADDR PORT COUNT INTERVAL``: COUNT numbered probes to a ``udp-echo``, INTERVAL
  seconds apart, each waited for up to 10 s; print (JSON) each one's round trip in ms (null:
  lost or refused).
* ``capture IFACE SECONDS RESULT``: count the frames IFACE receives by source MAC, and those
  that carry a ``MARK`` payload, keeping RESULT (JSON) up to date.
* ``eth-send IFACE FRAME COUNT``: send FRAME (hex, a whole Ethernet frame) COUNT times on
  IFACE, as it is (for frames a stack would not make: foreign VLAN tags, forged addresses).

:func:`tcp_transfer` runs ``tcp-serve`` and ``tcp-send`` as one checked connection.
"""

import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .serve import wait_for_socket

__all__ = ["LabCard", "BondChassis", "PathChassis", "sh", "in_ns", "station", "tcp_transfer",
           "LabError", "stream_progress", "card_rates", "CLOCK_HZ"]

#: The card's design clock: rates "in card time" count its cycles (``nic.cycles``).
CLOCK_HZ = 125e6


class LabError(RuntimeError):
    """A lab card or tool that did not come up."""


def sh(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, **kw)


def in_ns(ns: str, *args: str, **kw) -> subprocess.Popen:
    """A lab traffic tool (``python -m crossnic.sim.lab ...``) in namespace ``ns``."""
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m",
                             "crossnic.sim.lab", *args], **kw)


def wait_ready(tool: subprocess.Popen, result: Path, timeout: float = 60.0,
               log: Path | None = None) -> None:
    """Wait until a receiving tool (``udp-count``, ``udp-recv``, ``tcp-serve``, ``capture``, or
    ``udp-echo`` given a RESULT) has written its first RESULT, which it does once its socket is
    bound: traffic sent before that is refused by the namespace's stack, and a test counting
    every datagram would miss it. (Any process that writes a file once it is up will do.)
    The error quotes ``log``, or the tool's piped stderr once it has exited."""
    end = time.monotonic() + timeout
    while not result.exists():
        exited = tool.poll() is not None
        if exited or time.monotonic() > end:
            why = f"exited with {tool.returncode}" if exited else f"not up after {timeout:.0f} s"
            detail = (log.read_text() if log else
                      tool.stderr.read() if exited and tool.stderr else "")
            raise LabError(f"{' '.join(map(str, tool.args))}: {why}\n{detail}")
        time.sleep(0.1)


def tcp_transfer(server_ns: str, client_ns: str, addr: str, port: int, size: int,
                 timeout: float = 300.0) -> dict:
    """One checked TCP connection: ``size`` pseudo-random bytes from ``client_ns`` to a
    ``tcp-serve`` at ``addr:port`` in ``server_ns``. Raises :class:`LabError` unless every
    byte arrived, in order (SHA-256 on both ends); returns the client's ``seconds`` (connect
    to the server's close) and its address as the server saw it (``peer``)."""
    with tempfile.TemporaryDirectory(prefix="crossnic-tcp-") as d:
        result = Path(d) / "result.json"
        server = in_ns(server_ns, "tcp-serve", "0.0.0.0", str(port), "1", str(result),
                       stderr=subprocess.PIPE, text=True)
        try:
            wait_ready(server, result, 30)
            client = in_ns(client_ns, "tcp-send", addr, str(port), "0", str(size), "0",
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                out, err = client.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                client.kill()
                client.wait()
                raise LabError(f"{size} bytes to {addr}:{port} took over {timeout} s") from None
            if client.returncode:
                raise LabError(f"tcp-send to {addr}:{port}: {err.strip()}")
            sent = json.loads(out)
            server.wait(60)
            got = json.loads(result.read_text()).get(str(sent["sport"]), {})
            if (got.get("bytes"), got.get("sha256")) != (size, sent["sha256"]):
                raise LabError(f"{addr}:{port} received {got.get('bytes')} of {size} bytes"
                               f"{'' if got.get('bytes') != size else ', not as sent'}")
            return {"seconds": sent["seconds"], "peer": got["addr"]}
        finally:
            if server.poll() is None:
                server.kill()
            server.wait()


def station(ns: str, tap: str, address: str) -> None:
    """A station on a card's port: namespace ``ns`` made, the port's TAP ``tap`` moved into it
    with ``address`` (ADDR/PREFIX) and up. The caller deletes the namespace."""
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "set", tap, "netns", ns)
    sh("ip", "-n", ns, "addr", "add", address, "dev", tap)
    sh("ip", "-n", ns, "link", "set", tap, "up")


class LabCard:
    """A served card with ``port0`` cabled as given, and its ``crossnicd`` (:meth:`start`)."""

    def __init__(self, tmp: Path, port0: str, port1: str = "none", memory_mb: int = 64,
                 daemon_args: tuple[str, ...] = ()):
        self.tmp = Path(tmp)
        self.daemon_args = daemon_args
        self.card_sock = self.tmp / "card.sock"
        # in a directory any user may enter (pytest's own are root-only): the daemon's socket
        # permissions, not the directory's, decide who may talk to it
        self.run_dir = Path(tempfile.mkdtemp(prefix="crossnicd-lab-", dir="/run"))
        os.chmod(self.run_dir, 0o711)
        self.daemon_sock = self.run_dir / "crossnicd.sock"
        self.db = self.tmp / "config.db"
        self.daemon: subprocess.Popen | None = None
        self._log = open(self.tmp / "serve.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "crossnic", "sim", "--serve", "--socket", str(self.card_sock),
             "--port0", port0, "--port1", port1, "--memory-mb", str(memory_mb)],
            stdout=self._log, stderr=subprocess.STDOUT)

    def start(self, timeout: float = 1200) -> None:
        """Wait for the card (a first build of the simulator takes minutes), start crossnicd."""
        if not wait_for_socket(self.card_sock, timeout, lambda: self.proc.poll() is None):
            raise LabError("the card did not come up:\n" + (self.tmp / "serve.log").read_text())
        self.start_daemon()

    def start_daemon(self) -> None:
        with open(self.tmp / "daemon.log", "a") as log:
            self.daemon = subprocess.Popen(
                [sys.executable, "-m", "crossnic", "daemon", "--device", f"sim:{self.card_sock}",
                 "--db", str(self.db), "--daemon", str(self.daemon_sock), *self.daemon_args],
                stdout=log, stderr=subprocess.STDOUT)
        if not wait_for_socket(self.daemon_sock, 300, lambda: self.daemon.poll() is None):
            raise LabError("crossnicd did not come up:\n" +
                           (self.tmp / "daemon.log").read_text())

    def stop_daemon(self) -> None:
        """Stop crossnicd as an administrator would (SIGTERM); it must exit cleanly."""
        self.daemon.terminate()
        if self.daemon.wait(120):
            raise LabError(f"crossnicd exited with {self.daemon.returncode}:\n" +
                           (self.tmp / "daemon.log").read_text())

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return sh(sys.executable, "-m", "crossnic", *args, "--daemon", str(self.daemon_sock),
                  check=False, timeout=300)

    def ok(self, *args: str) -> str:
        r = self.cli(*args)
        if r.returncode:
            raise LabError(f"crossnic {' '.join(args)}: {r.stderr}")
        return r.stdout

    def vf(self, n: int) -> dict:
        return json.loads(self.ok("show-vf", str(n), "--json"))[0]

    def stop(self) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.terminate()
            self.daemon.wait(60)
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)
        self._log.close()
        shutil.rmtree(self.run_dir, ignore_errors=True)


class BondChassis:
    """Two cards whose port 0 is cabled to one switch (a Linux bridge in namespace ``ext``,
    with the station's address on it) and a guest (namespace ``guest``) whose ``crossnic vf``
    aggregates VF ``vf`` of both cards as ``bond0``: the setup of the aggregation tests and the
    failover benchmark. :meth:`close` removes everything it made."""

    EXT_IP, GUEST_IP = "10.8.0.100", "10.8.0.21"
    MACS = ("02:ab:00:00:00:0a", "02:ab:00:00:00:0b")

    def __init__(self, tmp: Path, tag: str, vf: int = 1):
        self.tmp, self.vf = Path(tmp), vf
        self.ext, self.guest = f"cnbx{tag}", f"cnbg{tag}"
        self.taps = [f"cnb{n}{tag}" for n in "ab"]
        self.cards: list[LabCard] = []
        self.bond: subprocess.Popen | None = None
        self.status = self.tmp / "bond.json"
        try:
            for n, tap in zip("ab", self.taps, strict=True):
                (self.tmp / n).mkdir(exist_ok=True)
                self.cards.append(LabCard(self.tmp / n, f"tap:{tap}"))
            for c in self.cards:
                c.start()
            self._network()
            for c, mac in zip(self.cards, self.MACS, strict=True):
                c.ok("create-vf", str(vf), "--owner", "vm1", "--over", "port0", "--mac", mac,
                     "--allow-ip", self.GUEST_IP)
            self._start_bond()
        except BaseException:
            self.close()
            raise

    def _network(self) -> None:
        ext = self.ext
        sh("ip", "netns", "add", ext)
        # (its own MAC: a bridge otherwise takes its lowest port's, and changes it when that
        # port goes, as a lost card's TAP does)
        sh("ip", "-n", ext, "link", "add", "br0", "address", "02:5e:00:00:00:01", "type",
           "bridge")
        for tap in self.taps:
            sh("ip", "link", "set", tap, "netns", ext)
            sh("ip", "-n", ext, "link", "set", tap, "master", "br0")
            sh("ip", "-n", ext, "link", "set", tap, "up")
        sh("ip", "-n", ext, "addr", "add", f"{self.EXT_IP}/24", "dev", "br0")
        sh("ip", "-n", ext, "link", "set", "br0", "up")
        sh("ip", "netns", "add", self.guest)
        sh("ip", "netns", "exec", self.guest, "sysctl", "-qw",
           "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")

    def _start_bond(self) -> None:
        args = []
        for c in self.cards:
            args += ["--card", f"sim:{c.card_sock}", "--vf", str(self.vf)]
        self._bond_log = open(self.tmp / "bond.log", "w")
        self.bond = subprocess.Popen(
            ["ip", "netns", "exec", self.guest, sys.executable, "-m", "crossnic", "vf", *args,
             "--ifname", "bond0", "--ip", f"{self.GUEST_IP}/24", "--status", str(self.status)],
            stdout=self._bond_log, stderr=subprocess.STDOUT)
        wait_ready(self.bond, self.status, 120, log=self.tmp / "bond.log")

    def state(self) -> dict:
        return json.loads(self.status.read_text())

    def in_ns(self, ns: str, *args: str, **kw) -> subprocess.Popen:
        """A lab traffic tool in namespace ``ns``."""
        return in_ns(ns, *args, **kw)

    def close(self) -> None:
        if self.bond is not None and self.bond.poll() is None:
            self.bond.terminate()
            self.bond.wait(60)
        for c in self.cards:
            c.stop()
        for ns in (self.ext, self.guest):
            sh("ip", "netns", "del", ns, check=False)


class PathChassis:
    """One host with two cards in a chassis (their daemons share a chassis directory), both
    port 0s cabled to one switch (a bridge in namespace ``ext`` with the station's address):
    VNICs ``a1``/``a2`` on card A and ``b1`` on card B, each in a VNS of its own. Between a1
    and a2 the card's switch carries frames, between a1 and b1 host memory, between any of
    them and the station the wire: the setup of the media-path tests and benchmark."""

    EXT_IP = "10.7.0.100"
    IPS = {"a1": "10.7.0.11", "a2": "10.7.0.12", "b1": "10.7.0.21"}

    def __init__(self, tmp: Path, tag: str):
        self.tmp, self.tag = Path(tmp), tag
        self.ext = f"cnpx{tag}"
        self.taps = [f"cnp{n}{tag}" for n in "ab"]
        self.cards: list[LabCard] = []
        chassis = self.tmp / "chassis"
        try:
            for serial, (n, tap) in enumerate(zip("ab", self.taps, strict=True), start=1):
                (self.tmp / n).mkdir(exist_ok=True)
                self.cards.append(LabCard(self.tmp / n, f"tap:{tap}", daemon_args=(
                    "--serial", str(serial), "--chassis", str(chassis))))
            for c in self.cards:
                c.start()
            self._network()
            for vnic, ip in self.IPS.items():
                card = self.card(vnic)
                card.ok("create-vns", self.ns(vnic), "--ip", f"{ip}/24")
                card.ok("create-vnic", self.vnic(vnic), "--over", "port0", "--vns", self.ns(vnic))
        except BaseException:
            self.close()
            raise

    def card(self, vnic: str) -> LabCard:
        return self.cards["ab".index(vnic[0])]

    def ns(self, vnic: str) -> str:
        return f"cnp{vnic}{self.tag}"

    def vnic(self, vnic: str) -> str:
        return f"v{vnic}"

    def view(self, vnic: str) -> dict:
        return json.loads(self.card(vnic).ok("show-vnic", self.vnic(vnic), "--json"))[0]

    def _network(self) -> None:
        sh("ip", "netns", "add", self.ext)
        sh("ip", "-n", self.ext, "link", "add", "br0", "address", "02:5e:00:00:00:02", "type",
           "bridge")
        for tap in self.taps:
            sh("ip", "link", "set", tap, "netns", self.ext)
            sh("ip", "-n", self.ext, "link", "set", tap, "master", "br0")
            sh("ip", "-n", self.ext, "link", "set", tap, "up")
        sh("ip", "-n", self.ext, "addr", "add", f"{self.EXT_IP}/24", "dev", "br0")
        sh("ip", "-n", self.ext, "link", "set", "br0", "up")

    def close(self) -> None:
        for c in self.cards:
            c.stop()
        sh("ip", "netns", "del", self.ext, check=False)
        for vnic in self.IPS:
            sh("ip", "netns", "del", self.ns(vnic), check=False)


def stream_progress(result: Path) -> dict[int, int]:
    """Bytes received so far per client port, from a ``tcp-serve`` or ``udp-count`` RESULT."""
    try:
        return {int(k): v["bytes"] for k, v in json.loads(Path(result).read_text()).items()}
    except (OSError, ValueError):
        return {}


def card_rates(regs, result: Path, seconds: float) -> dict[int, float]:
    """Bits per second of card time at which a ``tcp-serve`` or ``udp-count`` receives each
    connection (by client port) over ``seconds`` of wall time: its byte counts against the
    card's cycle counter (the simulator runs far slower than the card would; card time is
    what the card's scheduler and rate limits see)."""
    first = regs.read("nic.cycles"), stream_progress(result)
    time.sleep(seconds)
    last = regs.read("nic.cycles"), stream_progress(result)
    card_seconds = ((last[0] - first[0]) % (1 << 32)) / CLOCK_HZ
    return {port: (last[1][port] - first[1].get(port, 0)) * 8 / card_seconds
            for port in last[1]}


# --- traffic tools (run in a namespace) --------------------------------------------------------
def payload(sport: int, size: int) -> bytes:
    return random.Random(sport).randbytes(size)


def _save(path: str, state) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(state, f)
    os.replace(path + ".tmp", path)


def tcp_serve(addr: str, port: int, count: int, result: str) -> None:
    lock = threading.Lock()
    state: dict[str, dict] = {}

    def save() -> None:
        with lock:
            _save(result, state)

    def read(conn: socket.socket, peer: int, addr: str) -> None:
        h, n, last = hashlib.sha256(), 0, 0.0
        while data := conn.recv(65536):
            h.update(data)
            n += len(data)
            with lock:
                state[str(peer)] = {"bytes": n}
            if time.monotonic() - last > 0.2:
                last = time.monotonic()
                save()
        conn.close()
        with lock:
            state[str(peer)] = {"bytes": n, "sha256": h.hexdigest(), "addr": addr}
        save()

    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(count)
    save()
    threads = []
    for _ in range(count):
        conn, peer = s.accept()
        t = threading.Thread(target=read, args=(conn, peer[1], peer[0]))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()


def tcp_send(addr: str, port: int, sport: int, size: int, pace: float) -> None:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)    # the port may be in TIME_WAIT
    s.settimeout(300)
    s.bind(("", sport))
    sport = s.getsockname()[1]
    data = payload(sport, size)
    start = time.monotonic()
    s.connect((addr, port))
    for at in range(0, size, 8192):
        s.sendall(data[at:at + 8192])
        if pace:
            time.sleep(pace)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)                       # the server's close: everything arrived
    seconds = time.monotonic() - start
    s.close()
    print(json.dumps({"sha256": hashlib.sha256(data).hexdigest(), "sport": sport,
                      "seconds": round(seconds, 4)}))


def udp_send(addr: str, port: int, sport: int, interval: float, seconds: float) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("", sport))
    start = time.monotonic()
    n = 0
    while (now := time.monotonic()) - start < seconds:
        s.sendto(n.to_bytes(4, "big") + bytes(60), (addr, port))
        n += 1
        time.sleep(max(0.0, start + n * interval - now))
    print(n)


def udp_recv(addr: str, port: int, seconds: float, result: str) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    s.settimeout(0.2)
    _save(result, {"ready": True, "arrivals": {}})
    arrivals: dict[int, float] = {}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            data = s.recv(2048)
        except TimeoutError:
            continue
        arrivals.setdefault(int.from_bytes(data[:4], "big"), time.time())
    _save(result, {"ready": True, "done": True, "arrivals": arrivals})


def udp_blast(addr: str, port: int, sport: int, size: int, rate: float,
              seconds: float) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("", sport))
    s.connect((addr, port))
    data = payload(sport, size)
    start = time.monotonic()
    n = 0
    while (now := time.monotonic()) - start < seconds:
        try:
            s.send(data)
        except OSError:             # a full queue on the host (ENOBUFS): the excess is dropped
            pass
        n += 1
        time.sleep(max(0.0, start + n / rate - now))


def udp_count(addr: str, port: int, seconds: float, result: str) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    s.settimeout(0.2)
    counts: dict[str, dict] = {}
    _save(result, counts)
    end, last = time.monotonic() + seconds, 0.0
    while time.monotonic() < end:
        try:
            data, (_, sport) = s.recvfrom(65536)
            entry = counts.setdefault(str(sport), {"bytes": 0})
            entry["bytes"] += len(data)
        except TimeoutError:
            pass
        if time.monotonic() - last > 0.2:
            last = time.monotonic()
            _save(result, counts)
    _save(result, counts)


def udp_echo(addr: str, port: int, seconds: float, result: str | None = None) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    s.settimeout(0.2)
    if result:
        _save(result, {"ready": True})
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            data, peer = s.recvfrom(2048)
        except TimeoutError:
            continue
        s.sendto(data, peer)


def udp_ping(addr: str, port: int, count: int, interval: float) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((addr, port))
    rtts: list[float | None] = []
    for n in range(count):
        start = time.monotonic()
        s.send(n.to_bytes(4, "big") + bytes(60))
        rtt = None
        while (left := start + 10 - time.monotonic()) > 0:
            s.settimeout(left)
            try:
                data = s.recv(2048)
            except TimeoutError:
                break
            except ConnectionRefusedError:          # (ICMP port unreachable: no echo there)
                break
            if int.from_bytes(data[:4], "big") == n:    # (not a late answer to a lost one)
                rtt = round(1000 * (time.monotonic() - start), 2)
                break
        rtts.append(rtt)
        time.sleep(max(0.0, start + interval - time.monotonic()))
    print(json.dumps(rtts))


#: What ``capture`` looks for in a frame (``eth-send`` frames of the tests carry it).
MARK = b"crossnic-lab-mark"


def capture(iface: str, seconds: float, result: str) -> None:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))  # ETH_P_ALL
    s.bind((iface, 0))
    s.settimeout(0.2)
    counts: dict[str, int] = {}
    state = {"sources": counts, "marked": 0}
    _save(result, state)
    end = time.monotonic() + seconds
    next_save = time.monotonic() + 0.5
    while time.monotonic() < end:
        try:
            frame, info = s.recvfrom(4096)
        except TimeoutError:
            frame, info = None, None
        if frame is not None and info[2] != socket.PACKET_OUTGOING:
            src = frame[6:12].hex(":")
            counts[src] = counts.get(src, 0) + 1
            state["marked"] += MARK in frame
        if time.monotonic() >= next_save:
            _save(result, state)
            next_save = time.monotonic() + 0.5
    _save(result, state)


def eth_send(iface: str, frame: str, count: int) -> None:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    for _ in range(count):
        s.send(bytes.fromhex(frame))
        time.sleep(0.05)


def main(argv: list[str]) -> None:
    tool, *a = argv
    if tool == "tcp-serve":
        tcp_serve(a[0], int(a[1]), int(a[2]), a[3])
    elif tool == "tcp-send":
        tcp_send(a[0], int(a[1]), int(a[2]), int(a[3]), float(a[4]))
    elif tool == "udp-send":
        udp_send(a[0], int(a[1]), int(a[2]), float(a[3]), float(a[4]))
    elif tool == "udp-recv":
        udp_recv(a[0], int(a[1]), float(a[2]), a[3])
    elif tool == "udp-blast":
        udp_blast(a[0], int(a[1]), int(a[2]), int(a[3]), float(a[4]), float(a[5]))
    elif tool == "udp-count":
        udp_count(a[0], int(a[1]), float(a[2]), a[3])
    elif tool == "udp-echo":
        udp_echo(a[0], int(a[1]), float(a[2]), a[3] if len(a) > 3 else None)
    elif tool == "udp-ping":
        udp_ping(a[0], int(a[1]), int(a[2]), float(a[3]))
    elif tool == "capture":
        capture(a[0], float(a[1]), a[2])
    elif tool == "eth-send":
        eth_send(a[0], a[1], int(a[2]))
    else:
        raise SystemExit(f"unknown tool {tool!r}: tcp-serve, tcp-send, udp-send, udp-recv, "
                         "udp-blast, udp-count, udp-echo, udp-ping, capture, eth-send")


if __name__ == "__main__":
    main(sys.argv[1:])

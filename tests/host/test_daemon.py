"""crossnicd end to end (root): a served card, the daemon on it, the dladm-style CLI; VNS
instances are real network namespaces and VNICs real TAP devices, and TCP between them and an
outside station crosses the simulated card."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from crossnic.host.admin import AdminError, request
from crossnic.sim.serve import wait_for_socket

pytestmark = [
    pytest.mark.xdist_group("daemon_card"),
    pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                       reason="TAP devices and network namespaces need root"),
]

TAG = f"{os.getpid() % 10000}"
WEB, DB, EXT = f"cnweb{TAG}", f"cndb{TAG}", f"cnext{TAG}"


def sh(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, **kw)


class Setup:
    def __init__(self, tmp):
        self.tmp = tmp
        self.card_sock = tmp / "card.sock"
        # in a directory any user may enter (pytest's own are root-only), for the permission test
        self.run_dir = Path(tempfile.mkdtemp(prefix="crossnicd-test-", dir="/run"))
        os.chmod(self.run_dir, 0o711)
        self.daemon_sock = self.run_dir / "crossnicd.sock"
        self.db = tmp / "config.db"
        self.procs: list[subprocess.Popen] = []
        self.daemon: subprocess.Popen | None = None

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return sh(sys.executable, "-m", "crossnic", *args, "--daemon", str(self.daemon_sock),
                  check=False, timeout=300)

    def ok(self, *args: str) -> str:
        r = self.cli(*args)
        assert r.returncode == 0, f"crossnic {' '.join(args)}: {r.stderr}"
        return r.stdout

    def start_daemon(self) -> None:
        log = open(self.tmp / "daemon.log", "a")
        self.daemon = subprocess.Popen(
            [sys.executable, "-m", "crossnic", "daemon", "--device", f"sim:{self.card_sock}",
             "--db", str(self.db), "--daemon", str(self.daemon_sock)],
            stdout=log, stderr=subprocess.STDOUT)
        if not wait_for_socket(self.daemon_sock, 300, lambda: self.daemon.poll() is None):
            pytest.fail((self.tmp / "daemon.log").read_text())

    def stop_daemon(self) -> None:
        self.daemon.terminate()
        assert self.daemon.wait(120) == 0, (self.tmp / "daemon.log").read_text()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    s = Setup(tmp_path_factory.mktemp("daemon"))
    ext_tap = f"cnx{TAG}"
    log = open(s.tmp / "serve.log", "w")
    card = subprocess.Popen([sys.executable, "-m", "crossnic", "sim", "--serve", "--socket",
                             str(s.card_sock), "--port0", f"tap:{ext_tap}", "--memory-mb", "32"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        if not wait_for_socket(s.card_sock, 1200, lambda: card.poll() is None):
            pytest.fail((s.tmp / "serve.log").read_text())
        # the station outside, on port 0's wire
        sh("ip", "netns", "add", EXT)
        sh("ip", "link", "set", ext_tap, "netns", EXT)
        sh("ip", "-n", EXT, "addr", "add", "10.9.0.100/24", "dev", ext_tap)
        sh("ip", "-n", EXT, "link", "set", ext_tap, "up")
        s.start_daemon()
        s.card = card
        yield s
    finally:
        s.card = None
        if s.daemon and s.daemon.poll() is None:
            s.daemon.terminate()
            s.daemon.wait(60)
        card.terminate()
        card.wait(60)
        log.close()
        for ns in (EXT, WEB, DB):
            sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(s.run_dir, ignore_errors=True)


SERVER = textwrap.dedent("""
    import socket, sys
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(1); print("listening", flush=True)
    c, peer = s.accept(); data = b""
    while len(data) < int(sys.argv[2]):
        chunk = c.recv(65536)
        if not chunk: break
        data += chunk
    c.sendall(b"got %d" % len(data)); c.close(); print(peer[0], flush=True)
""")
CLIENT = textwrap.dedent("""
    import socket, sys
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
    c.sendall(bytes(range(256)) * (int(sys.argv[3]) // 256)); print(c.recv(100).decode())
""")


def tcp(server_ns: str, client_ns: str, addr: str, port: int, size: int = 64 * 1024) -> str:
    srv = subprocess.Popen(["ip", "netns", "exec", server_ns, sys.executable, "-c", SERVER,
                            str(port), str(size)], stdout=subprocess.PIPE, text=True)
    try:
        assert srv.stdout.readline().strip() == "listening"
        r = sh("ip", "netns", "exec", client_ns, sys.executable, "-c", CLIENT, addr, str(port),
               str(size), timeout=120, check=False)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == f"got {size}"
        return srv.stdout.readline().strip()
    finally:
        srv.kill()
        srv.wait()


def test_vns_and_vnics_carry_tcp_through_the_card(setup):
    s = setup
    s.ok("create-vns", WEB, "--ip", "10.9.0.1/24", "--mtu", "1500")
    s.ok("create-vns", DB, "--ip", "10.9.0.2/24", "--sysctl", "net.ipv4.ip_default_ttl=33",
         "--route", "10.10.0.0/16,10.9.0.100")
    s.ok("create-vnic", f"v{WEB}", "--over", "port0", "--vns", WEB, "-p",
         "priority=high,maxbw=500M")
    s.ok("create-vnic", f"v{DB}", "--over", "port0", "--vns", DB)
    vnics = json.loads(s.ok("show-vnic", "--json"))
    assert [v["vns"] for v in vnics] == [WEB, DB]
    assert vnics[0]["priority"] == "high" and vnics[0]["maxbw"] == 500_000_000
    assert vnics[0]["mac"].startswith("02:cb:")
    # the namespaces have their parameters
    assert sh("ip", "netns", "exec", DB, "cat", "/proc/sys/net/ipv4/ip_default_ttl"
              ).stdout.strip() == "33"
    assert "10.10.0.0/16 via 10.9.0.100" in sh("ip", "-n", DB, "route").stdout
    assert "10.9.0.1/24" in sh("ip", "-n", WEB, "addr", "show", f"v{WEB}").stdout

    # VNIC to VNIC: switched on the card (hairpin), ARP through the flood ring
    assert tcp(DB, WEB, "10.9.0.2", 5001) == "10.9.0.1"
    # the outside station on port 0's wire to a VNIC, and back
    assert tcp(WEB, EXT, "10.9.0.1", 5002) == "10.9.0.100"
    stats = {r["link"]: r for r in json.loads(s.ok("show-stats", "--json"))}
    assert stats[f"v{WEB}"]["ipackets"] > 40 and stats[f"v{DB}"]["opackets"] > 20
    phys = json.loads(s.ok("show-phys", "--json"))
    assert phys[0]["rx_frames"] > 40 and phys[0]["vnics"] == sorted([f"v{WEB}", f"v{DB}"])
    parse = s.ok("show-vnic", "-p", "-o", "name,vns")
    assert parse.splitlines() == [f"v{WEB}:{WEB}", f"v{DB}:{DB}"]


def test_flows_are_programmed_and_counted(setup):
    s = setup
    s.ok("add-flow", "dbtcp", "--link", f"v{DB}", "-a", "transport=tcp,local_port=5003",
         "-p", "priority=high")
    s.ok("add-flow", "fromweb", "--link", f"v{DB}", "-a", "remote_ip=10.9.0.1")
    tcp(DB, WEB, "10.9.0.2", 5003, size=4096)
    flows = {f["flow"]: f for f in json.loads(s.ok("show-flow", "--json"))}
    assert flows["dbtcp"]["hits"] > 3
    # the flow's frames land in a ring of their own, and still reach the VNIC (TCP worked)
    db_ring = json.loads(s.ok("show-vnic", f"v{DB}", "--json"))[0]["rx_ring"]
    assert flows["dbtcp"]["ring"] not in (0, db_ring)
    # (a hit is counted when the frame is classified, the ring's frame when it is delivered)
    assert 3 < flows["dbtcp"]["ring_frames"] <= flows["dbtcp"]["hits"]
    assert flows["dbtcp"]["transport"] == "tcp" and flows["dbtcp"]["priority"] == "high"
    r = s.cli("add-flow", "bad", "--link", f"v{DB}", "-a", "local_port=80")
    assert r.returncode == 1 and "needs transport" in r.stderr
    s.ok("remove-flow", "fromweb")
    assert [f["flow"] for f in json.loads(s.ok("show-flow", "--json"))] == ["dbtcp"]


def test_vnics_in_a_vlan(setup):
    """Two VNICs in VLAN 7: their frames carry the tag on the card (the MAC table matches MAC
    and VLAN, the flood ring fans ARP out within the VLAN), their TAPs see plain frames."""
    s = setup
    a, b = f"cn7a{TAG}", f"cn7b{TAG}"
    s.ok("create-vns", a, "--ip", "10.9.7.1/24")
    s.ok("create-vns", b, "--ip", "10.9.7.2/24")
    s.ok("create-vnic", f"v{a}", "--over", "port0", "--vlan", "7", "--vns", a)
    s.ok("create-vnic", f"v{b}", "--over", "port0", "--vlan", "7", "--vns", b)
    try:
        assert json.loads(s.ok("show-vnic", f"v{b}", "--json"))[0]["vlan"] == 7
        assert tcp(b, a, "10.9.7.2", 5010, size=8192) == "10.9.7.1"
    finally:
        for n in (a, b):
            s.ok("delete-vnic", f"v{n}")
            s.ok("delete-vns", n)


def test_bad_requests_change_nothing(setup):
    s = setup
    before_ns = sh("ip", "netns", "list").stdout
    before = s.ok("show-vnic", "--json")
    for args, message in [
        (("create-vnic", "vx", "--over", "port0", "--vns", "nosuch"), "no VNS nosuch"),
        (("create-vnic", f"v{WEB}", "--over", "port0"), "exists"),
        (("create-vnic", "vx", "--over", "port7"), "port0..port1"),
        (("create-vnic", "vx", "--over", "port0", "--mac", "01:00:5e:00:00:01"), "group"),
        (("create-vnic", "vx", "--over", "port0", "--mac", "zz"), "not a MAC"),
        (("create-vnic", "vx", "--over", "port0", "-p", "speed=1G"), "unknown link property"),
        (("create-vnic", "vx", "--over", "port0", "-p", "maxbw=fast"), "not a rate"),
        (("create-vns", "nsx", "--ip", "10.1.2.3/99"), "not an address"),
        (("create-vns", "nsx", "--sysctl", "kernel.hostname=x"), "net.* sysctls"),
        (("create-vns", WEB), "exists"),
        (("delete-vns", WEB), "still has VNICs"),
        (("delete-vnic", "nosuch"), "no VNIC"),
        (("set-linkprop", "-p", "priority=urgent", f"v{WEB}"), "low, medium or high"),
    ]:
        r = s.cli(*args)
        assert r.returncode == 1, (args, r.stdout)
        assert message in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    r = s.cli("create-vnic", "vx")                        # argparse: --over is required
    assert r.returncode == 2
    assert s.ok("show-vnic", "--json") == before
    assert sh("ip", "netns", "list").stdout == before_ns
    assert "vx" not in sh("ip", "link").stdout


def test_show_commands_and_who_may_ask(setup):
    s = setup
    props = json.loads(s.ok("show-linkprop", f"v{WEB}", "--json"))
    assert {(p["property"], p["value"]) for p in props} == {("maxbw", 500_000_000),
                                                             ("priority", "high")}
    vns = {v["name"]: v for v in json.loads(s.ok("show-vns", "--json"))}
    assert vns[DB]["sysctls"] == {"net.ipv4.ip_default_ttl": "33"}
    assert vns[WEB]["vnics"] == [f"v{WEB}"] and vns[WEB]["vns_id"] != vns[DB]["vns_id"]
    table = s.ok("show-vnic").splitlines()
    assert table[0].split()[:3] == ["NAME", "OVER", "MAC"] and len(table) == 3
    # a client that is neither root nor in the daemon's group is refused by the daemon itself
    # (the socket opened to everyone for the test; SO_PEERCRED has the connecting euid)
    os.chmod(s.daemon_sock, 0o666)
    os.setegid(65534)
    os.seteuid(65534)
    try:
        with pytest.raises(AdminError, match="permission denied"):
            request("show-vnic", {}, s.daemon_sock)
    finally:
        os.seteuid(0)
        os.setegid(0)
        os.chmod(s.daemon_sock, 0o660)


def test_runtime_changes_and_restart_restores_the_configuration(setup):
    s = setup
    s.ok("set-linkprop", "-p", "maxbw=200M", f"v{DB}")
    s.ok("set-vns", DB, "--sysctl", "net.ipv4.ip_default_ttl=44", "--mtu", "1400")
    assert sh("ip", "netns", "exec", DB, "cat", "/proc/sys/net/ipv4/ip_default_ttl"
              ).stdout.strip() == "44"
    assert "mtu 1400" in sh("ip", "-n", DB, "link", "show", f"v{DB}").stdout
    s.ok("create-vnic", "vtmp", "--over", "port1", "-t")
    s.stop_daemon()
    assert not os.path.exists(f"/run/netns/{WEB}")          # the daemon took its namespaces
    s.start_daemon()
    vnics = {v["name"]: v for v in json.loads(s.ok("show-vnic", "--json"))}
    assert set(vnics) == {f"v{WEB}", f"v{DB}"}               # the temporary VNIC is gone
    assert vnics[f"v{DB}"]["maxbw"] == 200_000_000
    assert sh("ip", "netns", "exec", DB, "cat", "/proc/sys/net/ipv4/ip_default_ttl"
              ).stdout.strip() == "44"
    assert "mtu 1400" in sh("ip", "-n", DB, "link", "show", f"v{DB}").stdout
    assert [f["flow"] for f in json.loads(s.ok("show-flow", "--json"))] == ["dbtcp"]
    assert tcp(DB, WEB, "10.9.0.2", 5004, size=4096) == "10.9.0.1"
    s.ok("delete-vnic", f"v{WEB}")
    s.ok("delete-vns", WEB)
    assert not os.path.exists(f"/run/netns/{WEB}")
    assert [v["name"] for v in json.loads(s.ok("show-vnic", "--json"))] == [f"v{DB}"]


def _children(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(p.name))
    return out


def test_a_lost_card_is_a_clear_error_and_cleanup_still_happens(setup):
    """Last: the simulator is killed under the daemon. Requests fail with "device lost" at once
    (no hang); stopping the daemon still removes its namespaces."""
    s = setup
    for pid in _children(s.card.pid):         # the simulator
        os.kill(pid, 9)
    s.card.kill()                             # and its launcher
    s.card.wait(30)
    # (a killed launcher cannot remove its host-memory file: the test does)
    Path(f"/dev/shm/crossnic-card-{s.card.pid}.mem").unlink(missing_ok=True)
    r = s.cli("show-stats")
    assert r.returncode == 1 and "device lost" in r.stderr, r.stderr
    s.stop_daemon()
    assert not os.path.exists(f"/run/netns/{DB}")

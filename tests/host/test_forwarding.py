"""Local and forwarding receive rings (root): a router VNS with a VNIC in each of two subnets,
``forwarding=on``, between two host VNS instances, all on one served card. Traffic between the
hosts reaches the router's VNICs on their forwarding rings and takes the driver's fast path
(route, TTL, neighbour, out the other VNIC); traffic to the router's own address arrives on
the local ring and goes up its stack. The card's ring counters prove which ring."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from crossnic.gateware.nic_core import NicCore
from crossnic.host.registers import Registers
from crossnic.host.sim_device import SimDevice
from crossnic.sim.lab import LabCard, sh, tcp_transfer

pytestmark = [
    pytest.mark.xdist_group("forwarding"),
    pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                       reason="TAP devices and network namespaces need root"),
]

TAG = f"{os.getpid() % 10000}"
ROUTER, H1, H2 = f"cnfr{TAG}", f"cnfa{TAG}", f"cnfb{TAG}"
R1, R2 = f"r1x{TAG}", f"r2x{TAG}"

# a UDP datagram's TTL as it arrived (IP_RECVTTL)
TTL_RECV = textwrap.dedent("""
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, 12, 1)          # IP_RECVTTL (Linux; not in socket)
    s.bind(("0.0.0.0", int(sys.argv[1]))); s.settimeout(120); print("ready", flush=True)
    data, anc, _, _ = s.recvmsg(100, 64)
    print(int.from_bytes(anc[0][2][:4], sys.byteorder), flush=True)
""")
TTL_SEND = textwrap.dedent("""
    import socket, sys, time
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, int(sys.argv[3]))
    for _ in range(int(sys.argv[4])):
        s.sendto(b"ttl", (sys.argv[1], int(sys.argv[2]))); time.sleep(1)
""")




@pytest.fixture(scope="module")
def card(tmp_path_factory):
    c = LabCard(tmp_path_factory.mktemp("forwarding"), "none")
    try:
        c.start()
        c.ok("create-vns", H1, "--ip", "10.41.1.10/24", "--route", "10.41.2.0/24,10.41.1.1")
        c.ok("create-vns", H2, "--ip", "10.41.2.10/24", "--route", "10.41.1.0/24,10.41.2.1")
        c.ok("create-vns", ROUTER)
        c.ok("create-vnic", R1, "--over", "port0", "--vns", ROUTER, "--ip", "10.41.1.1/24",
             "-p", "forwarding=on")
        c.ok("create-vnic", R2, "--over", "port0", "--vns", ROUTER, "--ip", "10.41.2.1/24",
             "-p", "forwarding=on")
        c.ok("create-vnic", f"h1x{TAG}", "--over", "port0", "--vns", H1)
        c.ok("create-vnic", f"h2x{TAG}", "--over", "port0", "--vns", H2)
        yield c
    finally:
        c.stop()
        for ns in (ROUTER, H1, H2):
            sh("ip", "netns", "del", ns, check=False)


def view(c: LabCard, name: str) -> dict:
    return json.loads(c.ok("show-vnic", name, "--json"))[0]


def ring_frames(c: LabCard) -> dict[str, int]:
    """Frames the card put on each router VNIC's local and forwarding rings, and the fast
    and slow path counts of the driver."""
    out = {}
    with SimDevice(c.card_sock) as dev:
        regs = Registers(NicCore().regmap(), dev.read32, dev.write32)
        for name in (R1, R2):
            v = view(c, name)
            out[f"{name}.local"] = regs.counters(f"rx_ring[{v['rx_ring']}]")["frames"]
            out[f"{name}.forward"] = regs.counters(f"rx_ring[{v['forward_ring']}]")["frames"]
            out[f"{name}.fast"], out[f"{name}.slow"] = v["fwd_fast"], v["fwd_slow"]
    return out


def test_a_router_vns_forwards_on_its_forwarding_rings(card):
    v = view(card, R1)
    assert v["forwarding"] and v["forward_ring"] != v["rx_ring"] and v["ips"] == ["10.41.1.1/24"]
    assert sh("ip", "netns", "exec", ROUTER, "cat", "/proc/sys/net/ipv4/ip_forward"
              ).stdout.strip() == "1"
    before = ring_frames(card)
    tcp_transfer(H2, H1, "10.41.2.10", 7001, 64 * 1024)
    d = {k: n - before[k] for k, n in ring_frames(card).items()}
    print(f"H1 -> H2 through the router: {d}")
    # ~45 full segments one way, their ACKs the other: all on the forwarding rings, almost
    # all by the fast path (the first, before the neighbours were known, by the stack)
    assert d[f"{R1}.forward"] >= 45 and d[f"{R2}.forward"] >= 10
    assert d[f"{R1}.fast"] >= 40 and d[f"{R2}.fast"] >= 8
    # (every frame of the ring went one way or the other; the last may still be on its way)
    assert 0 <= d[f"{R1}.forward"] - d[f"{R1}.fast"] - d[f"{R1}.slow"] <= 2
    # nothing of it went up the router's stack through the local rings but ARP for itself
    assert d[f"{R1}.local"] <= 3 and d[f"{R2}.local"] <= 3


def test_the_fast_path_decrements_the_ttl(card):
    recv = subprocess.Popen(["ip", "netns", "exec", H2, sys.executable, "-c", TTL_RECV, "7002"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert recv.stdout.readline().strip() == "ready"
        before = ring_frames(card)
        send = subprocess.Popen(["ip", "netns", "exec", H1, sys.executable, "-c", TTL_SEND,
                                 "10.41.2.10", "7002", "9", "60"])
        try:
            assert recv.stdout.readline().strip() == "8"
        finally:
            send.kill()
        assert ring_frames(card)[f"{R1}.fast"] > before[f"{R1}.fast"]
    finally:
        recv.kill()
        recv.wait()


def test_an_expiring_ttl_goes_up_the_stack(card):
    """TTL 1 at the router: the fast path leaves it to the stack, which answers with ICMP
    time exceeded (what a router must do)."""
    before = ring_frames(card)
    probe = textwrap.dedent("""
        import socket, sys
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 1)
        s.setsockopt(socket.IPPROTO_IP, 11, 1)          # IP_RECVERR (Linux)
        s.connect(("10.41.2.10", 7003)); s.settimeout(5)
        for _ in range(40):
            s.send(b"x")
            try:
                s.recv(10)
            except TimeoutError:
                continue
            except OSError as e:
                print(e.errno, flush=True); break
    """)
    r = sh("ip", "netns", "exec", H1, sys.executable, "-c", probe, timeout=300)
    assert r.stdout.strip() == str(113), r.stdout      # EHOSTUNREACH: time exceeded
    assert ring_frames(card)[f"{R1}.slow"] > before[f"{R1}.slow"]


def test_traffic_to_the_router_itself_arrives_on_the_local_ring(card):
    before = ring_frames(card)
    tcp_transfer(ROUTER, H1, "10.41.1.1", 7004, 64 * 1024)
    d = {k: n - before[k] for k, n in ring_frames(card).items()}
    assert d[f"{R1}.local"] >= 45
    assert d[f"{R1}.forward"] <= 3 and d[f"{R1}.fast"] == 0


def test_bad_requests_and_forwarding_off(card):
    r = card.cli("set-linkprop", "-p", "forwarding=maybe", R1)
    assert r.returncode == 1 and "forwarding is on or off" in r.stderr
    r = card.cli("create-vnic", f"bad{TAG}", "--over", "port0", "--ip", "10.41.3.1/24")
    assert r.returncode == 1 and "need the VNIC in a VNS" in r.stderr
    r = card.cli("create-vnic", f"bad{TAG}", "--over", "port0", "--vns", ROUTER, "--ip",
                 "10.41.3.1")
    assert r.returncode == 1 and "ADDRESS/PREFIX" in r.stderr
    assert sh("ip", "link", "show", f"bad{TAG}", check=False).returncode != 0
    card.ok("set-linkprop", "-p", "forwarding=off", R1, "-t")
    v = view(card, R1)
    assert not v["forwarding"] and v["forward_ring"] == v["rx_ring"]
    # the router's stack still forwards, from the one ring
    tcp_transfer(H2, H1, "10.41.2.10", 7005, 16 * 1024)
    card.ok("set-linkprop", "-p", "forwarding=on", R1, "-t")
    assert view(card, R1)["forwarding"]

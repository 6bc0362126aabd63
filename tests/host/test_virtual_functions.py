"""Virtual functions end to end (root): a served card, crossnicd as the PF, and guests that hold
only a VF: ``crossnic vf`` in the guest's own network namespace brings its VF up as a Linux
interface, traffic to and from a station on port 0's wire crosses the card, and every request
the guest makes (by changing its interface, or raw through the mailbox) is checked against the
configuration database, applied or refused, and audited."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_daemon import peer_of

from crossnic.gateware.nic_core import FULL_OPTIONS, NicCore
from crossnic.host.device import BusError
from crossnic.host.registers import Registers
from crossnic.host.sim_device import SimDevice
from crossnic.host.vf_mailbox import VfMailbox, VfOp, VfStatus, mac_words
from crossnic.sim.lab import LabCard, sh, station, wait_ready

pytestmark = [
    pytest.mark.xdist_group("vf_card"),
    pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                       reason="TAP devices and network namespaces need root"),
]

TAG = f"{os.getpid() % 10000}"
EXT, GUEST = f"cnvx{TAG}", f"cnvm{TAG}"
EXT_IP, GUEST_IP = "10.7.0.100", "10.7.0.21"
GUEST_MAC, ALLOWED_MAC, OTHER_MAC = "02:aa:00:00:00:01", "02:aa:00:00:00:02", "02:bb:00:00:00:09"


@pytest.fixture(scope="module")
def card(tmp_path_factory):
    ext_tap = f"cnv{TAG}"
    s = LabCard(tmp_path_factory.mktemp("vf"), f"tap:{ext_tap}")
    try:
        s.start()
        station(EXT, ext_tap, f"{EXT_IP}/24")
        sh("ip", "netns", "add", GUEST)
        yield s
    finally:
        s.stop()
        for ns in (EXT, GUEST):
            sh("ip", "netns", "del", ns, check=False)


def vf_view(card, n: int) -> dict:
    return json.loads(card.ok("show-vf", str(n), "--json"))[0]


def audit(card, n: int) -> list[dict]:
    return json.loads(card.ok("show-vf-audit", str(n), "--json"))


def wait_until(check, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Guest:
    """``crossnic vf`` running in the guest namespace."""

    def __init__(self, card, n: int, ifname: str = "eth0", ip: str = GUEST_IP):
        self.status = card.tmp / f"guest{n}.json"
        self.log = open(card.tmp / f"guest{n}.log", "w")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", GUEST, sys.executable, "-m", "crossnic", "vf", "--card",
             f"sim:{card.card_sock}", "--vf", str(n), "--ifname", ifname, "--ip",
             f"{ip}/24", "--status", str(self.status)],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_ready(self.proc, self.status, 120, log=Path(self.log.name))

    def state(self) -> dict:
        return json.loads(self.status.read_text())

    def stop(self) -> None:
        self.proc.terminate()
        assert self.proc.wait(30) == 0, Path(self.log.name).read_text()
        self.log.close()


def guest_link(field: str) -> str:
    out = json.loads(sh("ip", "-n", GUEST, "-j", "link", "show", "eth0").stdout)[0]
    return out[field]


def test_guest_traffic_and_guarded_interface_changes(card):
    card.ok("create-vf", "1", "--owner", "vm1", "--over", "port0", "--mac", GUEST_MAC,
            "--allow-op", "set-mac,mtu", "--allow-mac", ALLOWED_MAC)
    v = vf_view(card, 1)
    assert (v["owner"], v["mac"], v["trust"]) == ("vm1", GUEST_MAC, "off")
    guest = Guest(card, 1)
    try:
        assert guest_link("address") == GUEST_MAC
        # The guest reaches the station and the station the guest (ARP both ways: the
        # station's broadcast reaches the guest through the PF's relay).
        assert peer_of(EXT, GUEST, EXT_IP, 5301, 32768) == GUEST_IP
        sh("ip", "-n", EXT, "neigh", "flush", "all")
        assert peer_of(GUEST, EXT, GUEST_IP, 5302, 32768) == EXT_IP
        assert guest.state()["rx_frames"] > 20 and guest.state()["tx_frames"] > 10

        # An allowed MAC: applied on the card, the guest keeps it and still talks.
        sh("ip", "-n", GUEST, "link", "set", "eth0", "address", ALLOWED_MAC)
        wait_until(lambda: guest.state()["mac"] == ALLOWED_MAC, what="the MAC request")
        assert vf_view(card, 1)["mac"] == ALLOWED_MAC
        sh("ip", "-n", EXT, "neigh", "flush", "all")
        assert peer_of(GUEST, EXT, GUEST_IP, 5303) == EXT_IP
        # A MAC not in the list: refused, put back on the interface.
        sh("ip", "-n", GUEST, "link", "set", "eth0", "address", OTHER_MAC)
        wait_until(lambda: guest_link("address") == ALLOWED_MAC, what="the MAC put back")
        assert vf_view(card, 1)["mac"] == ALLOWED_MAC
        # MTU within the limit: applied; above it: refused and put back.
        sh("ip", "-n", GUEST, "link", "set", "eth0", "mtu", "1400")
        wait_until(lambda: vf_view(card, 1)["mtu"] == 1400, what="the MTU request")
        sh("ip", "-n", GUEST, "link", "set", "eth0", "mtu", "1600")
        wait_until(lambda: guest_link("mtu") == 1400, what="the MTU put back")
        # Promiscuous mode needs trust: refused, the flag goes off again.
        sh("ip", "-n", GUEST, "link", "set", "eth0", "promisc", "on")
        wait_until(lambda: "PROMISC" not in guest_link("flags") and
                   any(a["op"] == "set-rxmode" for a in audit(card, 1)), what="promisc refused")
        rows = audit(card, 1)
        verdicts = [(a["op"], a["verdict"]) for a in rows]
        assert verdicts == [("set-mac", "applied"), ("set-mac", "denied"),
                            ("set-mtu", "applied"), ("set-mtu", "denied"),
                            ("set-rxmode", "denied")], verdicts
        assert all(a["owner"] == "vm1" for a in rows)
        assert "not in the allowed list" in rows[1]["reason"]
        # With trust, promiscuous mode is allowed.
        card.ok("set-vf", "1", "--trust", "on")
        sh("ip", "-n", GUEST, "link", "set", "eth0", "promisc", "on")
        wait_until(lambda: vf_view(card, 1)["rxmode"] == 1, what="promisc with trust")
        assert "PROMISC" in guest_link("flags")
        assert guest.state()["denied"] == 3
    finally:
        guest.stop()
    # The guest's driver stopped its rings; the card never refused it anything.
    v = vf_view(card, 1)
    assert (v["reg_denied"], v["dma_denied"]) == (0, 0)
    card.ok("delete-vf", "1")
    assert all(x["vf"] != 1 for x in json.loads(card.ok("show-vf", "--json")))


SEND = """
import socket, sys
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether
ifname, mac, ip, dst = sys.argv[1:5]
frames = {
    "GOOD": Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src=ip, dst=dst) / UDP(dport=9),
    "BADMAC": Ether(src="02:cc:00:00:00:03", dst="ff:ff:ff:ff:ff:ff") / IP(src=ip, dst=dst)
              / UDP(dport=9),
    "BADIP": Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="10.7.0.99", dst=dst)
             / UDP(dport=9),
    "BADVLAN": Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=5) / IP(src=ip, dst=dst)
               / UDP(dport=9),
}
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
for name in sys.argv[5:]:
    s.send(bytes(frames[name] / (b"MARK-" + name.encode() + b"-" * 20)))
"""
SNIFF = """
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((sys.argv[1], 0)); s.settimeout(0.2)
print("ready", flush=True)
seen, end = set(), time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    try:
        data = s.recv(4096)
    except TimeoutError:
        continue
    k = data.find(b"MARK-")
    if k >= 0:
        seen.add(data[k + 5:].split(b"-")[0].decode())
print(",".join(sorted(seen)), flush=True)
"""


SEND_TO = """
import socket, sys
from scapy.layers.l2 import Ether
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for dst in sys.argv[2:]:
    s.send(bytes(Ether(src="02:00:00:00:00:77", dst=dst, type=0x88B5)
                 / (b"MARK-" + dst.replace(":", "").encode() + b"-" * 40)))
"""


def _seen(ns: str, ifname: str, send: list[str]) -> set[str]:
    """Markers a sniffer on ``ifname`` in ``ns`` saw while ``send`` ran."""
    sniff = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SNIFF, ifname,
                              "8"], stdout=subprocess.PIPE, text=True)
    assert sniff.stdout.readline().strip() == "ready"
    sh(*send, timeout=60)
    out = sniff.stdout.readline().strip()
    sniff.wait(30)
    return set(out.split(",")) - {""}


def sent_and_seen(card, ifname: str, mac: str, ip: str, names: list[str]) -> set[str]:
    """Send ``names`` frames from the guest's ``ifname`` (raw), return the ones the station
    received."""
    return _seen(EXT, f"cnv{TAG}", ["ip", "netns", "exec", GUEST, sys.executable, "-c", SEND,
                                    ifname, mac, ip, EXT_IP, *names])


def station_to_guest(ifname: str, dsts: list[str]) -> set[str]:
    """Send a frame to each MAC of ``dsts`` from the station; the ones the guest's ``ifname``
    received (as hex MACs)."""
    return _seen(GUEST, ifname, ["ip", "netns", "exec", EXT, sys.executable, "-c", SEND_TO,
                                 f"cnv{TAG}", *dsts])


def test_a_second_mac_gets_an_intermediate_vnic_to_the_guests_ring(card):
    mac, second, refused = "02:aa:00:00:00:44", "02:aa:00:00:04:01", "02:aa:00:00:04:02"
    card.ok("create-vf", "4", "--owner", "vm4", "--over", "port0", "--mac", mac,
            "--allow-op", "add-mac", "--allow-mac", second)
    guest = Guest(card, 4, "eth4", "10.7.0.44")
    hexed = second.replace(":", "")
    try:
        assert station_to_guest("eth4", [second]) == set()         # not the guest's yet
        sh("ip", "netns", "exec", GUEST, "bridge", "fdb", "add", second, "dev", "eth4", "self")
        rows = wait_until(lambda: [r for r in json.loads(card.ok("show-vnic", "--json"))
                                   if r["name"] == "vf4.1"], what="the intermediate VNIC")
        own = json.loads(card.ok("show-vnic", "vf4", "--json"))[0]
        assert rows[0]["mac"] == second and rows[0]["rx_ring"] == own["rx_ring"]
        assert rows[0]["vnic_id"] != own["vnic_id"]
        assert station_to_guest("eth4", [second]) == {hexed}    # straight to its ring
        assert guest.state()["macs"] == [second]
        # One it may not have: refused, taken off the interface again, audited.
        sh("ip", "netns", "exec", GUEST, "bridge", "fdb", "add", refused, "dev", "eth4", "self")
        wait_until(lambda: refused not in sh("ip", "netns", "exec", GUEST, "bridge", "fdb",
                                             "show", "dev", "eth4").stdout,
                   what="the refused MAC taken off")
        assert [(a["op"], a["verdict"], a["args"]) for a in audit(card, 4)] == [
            ("add-mac", "applied", second), ("add-mac", "denied", refused)]
        # Removing the address removes the VNIC and its classifier entry.
        sh("ip", "netns", "exec", GUEST, "bridge", "fdb", "del", second, "dev", "eth4", "self")
        wait_until(lambda: not any(r["name"] == "vf4.1" for r in
                                   json.loads(card.ok("show-vnic", "--json"))),
                   what="the intermediate VNIC removed")
        assert station_to_guest("eth4", [second]) == set()
        assert audit(card, 4)[-1]["op"] == "del-mac"
    finally:
        guest.stop()
    card.ok("delete-vf", "4")


def test_spoofed_frames_from_a_guest_are_dropped_by_the_card(card):
    mac, ip = "02:aa:00:00:00:33", "10.7.0.33"
    card.ok("create-vf", "3", "--owner", "vm3", "--over", "port0", "--mac", mac,
            "--allow-ip", ip)
    v = vf_view(card, 3)
    assert (v["spoofchk"], v["ips"], v["spoofed"]) == ("on", [ip], 0)
    guest = Guest(card, 3, "eth3", ip)
    try:
        names = ["GOOD", "BADMAC", "BADIP", "BADVLAN"]
        assert sent_and_seen(card, "eth3", mac, ip, names) == {"GOOD"}
        assert vf_view(card, 3)["spoofed"] == 3
        # With the check off the card lets them through (and counts nothing).
        card.ok("set-vf", "3", "--spoofchk", "off")
        assert sent_and_seen(card, "eth3", mac, ip, ["BADMAC", "BADIP"]) == {"BADMAC", "BADIP"}
        assert vf_view(card, 3)["spoofed"] == 3
        card.ok("set-vf", "3", "--spoofchk", "on")
        assert sent_and_seen(card, "eth3", mac, ip, ["BADMAC", "GOOD"]) == {"GOOD"}
        assert vf_view(card, 3)["spoofed"] == 4
    finally:
        guest.stop()
    card.ok("delete-vf", "3")


def raw_vf(card, n: int) -> tuple[SimDevice, Registers]:
    dev = SimDevice(card.card_sock, vf=n)
    return dev, Registers(NicCore(**FULL_OPTIONS).vf_window(), dev.read32, dev.write32)


def test_every_request_type_is_checked_and_floods_are_limited(card):
    card.ok("create-vf", "2", "--owner", "tenant2", "--over", "port0", "--allow-op",
            "vlan,rate,allmulti", "--allow-vlan", "7", "--max-tx-rate", "100M",
            "--request-rate", "2")
    dev, regs = raw_vf(card, 2)
    try:
        mbox = VfMailbox(regs)
        pace = 0.6                                  # within its budget of 2 a second
        cfg = mbox.request(VfOp.GET_CONFIG)
        assert cfg.status is VfStatus.OK and cfg.results[4] << 12 >= 0x1000
        asks = [((VfOp.SET_VLAN, 7), VfStatus.OK), ((VfOp.SET_VLAN, 9), VfStatus.DENIED),
                ((VfOp.SET_VLAN, 5000), VfStatus.MALFORMED),
                ((VfOp.SET_RATE, 50), VfStatus.OK), ((VfOp.SET_RATE, 500), VfStatus.DENIED),
                ((VfOp.SET_RXMODE, 2), VfStatus.OK), ((VfOp.SET_RXMODE, 1), VfStatus.DENIED),
                ((VfOp.SET_RXMODE, 8), VfStatus.MALFORMED),
                ((VfOp.SET_MTU, 1400), VfStatus.DENIED),
                ((VfOp.SET_MAC, *mac_words(0x02CC00000001)), VfStatus.DENIED),
                ((VfOp.ADD_MAC, *mac_words(0x02CC00000002)), VfStatus.DENIED),
                ((VfOp.SET_MAC, *mac_words(0x01005E000001)), VfStatus.MALFORMED)]
        for (op, *args), want in asks:
            time.sleep(pace)
            assert mbox.request(op, *args).status is want, (op, args)
        time.sleep(pace)
        bogus = mbox.request(99)                    # not an op at all
        assert bogus.status is VfStatus.MALFORMED
        v = vf_view(card, 2)
        assert v["vlan"] == 7 and v["max_tx_rate"] == 50_000_000 and v["rxmode"] == 2
        rows = audit(card, 2)
        assert [r["verdict"] for r in rows] == [
            "applied", "denied", "malformed", "applied", "denied", "applied", "denied",
            "malformed", "denied", "denied", "denied", "malformed", "malformed"]
        # The PF's rate is on the VF's transmit rings, out of the guest's reach.
        ring = int(v["rings"].split("-")[0])
        with SimDevice(card.card_sock) as pf_dev:
            pf = Registers(NicCore(**FULL_OPTIONS).regmap(), pf_dev.read32, pf_dev.write32)
            assert pf.read(f"tx_ring[{ring}].maxbw") > 0

        # A flood: requests as fast as the guest can send them are answered, most of them
        # RATE_LIMITED, and the daemon keeps serving everyone.
        # What gets through is what its budget (2 at once, 2 a second) allows, however slowly
        # a loaded machine lets the guest send.
        mbox.timeout = 30
        start = time.monotonic()
        statuses = [mbox.request(VfOp.SET_VLAN, 7).status for _ in range(30)]
        allowed = 2 + 2 * (time.monotonic() - start)
        limited = statuses.count(VfStatus.RATE_LIMITED)
        assert statuses.count(VfStatus.OK) + limited == 30, statuses
        assert statuses.count(VfStatus.OK) <= allowed + 1 and limited >= 1, (statuses, allowed)
        assert vf_view(card, 2)["requests_refused_rate"] >= limited
        assert any(r["verdict"] == "rate-limited" for r in audit(card, 2))
        # Writing request words while the PF holds a request: refused by the card, counted.
        for k, w in enumerate([VfOp.SET_VLAN, 7]):
            regs.write(f"port.request{k}", w)
        regs.write("port.mbox", 1)
        regs.write("port.request1", 9)              # too late: frozen
        regs.write("port.mbox", 1)                  # and a second send
        wait_until(lambda: regs.read_field("port.mbox", "reply"), what="the reply")
        assert regs.read("port.reply0") >> 16 in (VfStatus.OK, VfStatus.RATE_LIMITED)
        regs.write("port.mbox", 2)
        assert vf_view(card, 2)["mbox_overrun"] >= 1

        # Register escapes: beyond the window (the BAR) and holes and rings it does not own.
        with pytest.raises(BusError):
            dev.read32(NicCore(**FULL_OPTIONS).vf_windows.window_words)
        before = vf_view(card, 2)["reg_denied"]
        for word in (0x40, 0x100 + 5 * 32, 0x200 + 32 * 3 + 8, 0x3FF):
            with pytest.raises(BusError):
                dev.write32(word, 0xBAD)
        assert vf_view(card, 2)["reg_denied"] == before + 4
    finally:
        dev.close()
        card.cli("delete-vf", "2")          # (whatever failed: the next tests start clean)
    # Its window is closed now.
    dev, regs = raw_vf(card, 2)
    try:
        with pytest.raises(BusError):
            regs.read("port.info")
    finally:
        dev.close()


def test_pf_controls_are_checked(card):
    bad = [("create-vf", "9", "--owner", "x"),              # the card has VFs 0..7
           ("create-vf", "3", "--owner", "x", "--allow-op", "reboot"),
           ("create-vf", "3", "--owner", "x", "--over", "port7"),
           ("set-vf", "3", "--trust", "on"),                  # not created
           ("delete-vf", "3")]
    for args in bad:
        r = card.cli(*args)
        assert r.returncode == 1 and r.stderr.startswith(f"crossnic: {args[0]}:"), r
    assert json.loads(card.ok("show-vf", "--json")) == []
    r = card.cli("create-vf", "x", "--owner", "y")
    assert r.returncode == 2                                  # argparse: not a number



def test_a_guest_whose_vf_is_taken_away_stops_cleanly(card):
    r = sh("ip", "netns", "exec", GUEST, sys.executable, "-m", "crossnic", "vf", "--card",
           f"sim:{card.card_sock}", "--vf", "6", "--ifname", "eth6", check=False, timeout=120)
    assert r.returncode == 1 and "not enabled" in r.stderr, r.stderr
    card.ok("create-vf", "5", "--owner", "vm5", "--over", "port0")
    guest = Guest(card, 5, "eth5", "10.7.0.55")
    card.ok("delete-vf", "5")
    assert guest.proc.wait(60) == 3
    guest.log.close()
    assert "VF 5 is gone" in Path(guest.log.name).read_text()
    assert "eth5" not in sh("ip", "-n", GUEST, "link").stdout


def test_vfs_survive_a_daemon_restart(card):
    card.ok("create-vf", "6", "--owner", "vm6", "--over", "port0", "--mac", "02:aa:00:00:00:66",
            "--allow-op", "mtu,vlan", "--allow-vlan", "3", "--allow-ip", "10.7.0.66",
            "--trust", "on", "--max-tx-rate", "20M")
    before = vf_view(card, 6)
    card.stop_daemon()
    card.start_daemon()
    after = vf_view(card, 6)
    keys = ("owner", "mac", "vlan", "spoofchk", "trust", "ips", "max_tx_rate", "allow", "rings")
    assert {k: after[k] for k in keys} == {k: before[k] for k in keys}
    card.ok("delete-vf", "6")
    assert json.loads(card.ok("show-vf", "--json")) == []

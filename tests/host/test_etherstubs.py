"""Etherstubs and virtual wires (root, served card): three wires whose VNS instances use the
same addresses, two on one etherstub (VLANs 10 and 20) and one on a second etherstub (VLAN 10
again). Each wire's hosts reach each other and only each other; no frame of one wire reaches a
VNIC of another, nor the card's wire; the card itself refuses etherstub VLANs from the wire and
from a wire port's VNIC; the objects are refused when malformed, survive a daemon restart and
go as one. A router VNS with a VNIC on an etherstub and one on a port joins a private network
to the cable, as in Crossbow."""

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from crossnic.gateware.nic_core import NicCore
from crossnic.host.registers import Registers
from crossnic.host.sim_device import SimDevice
from crossnic.sim.lab import MARK, LabCard, LabError, in_ns, sh, station, tcp_transfer, wait_ready

pytestmark = [
    pytest.mark.xdist_group("etherstubs"),
    pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                       reason="TAP devices and network namespaces need root"),
]

TAG = f"{os.getpid() % 10000}"
EXT = f"cnex{TAG}"                   # a station on the card's port 0 wire
PORT_NS = f"cnep{TAG}"               # a VNS with a VNIC of port 0
ROUTER, PRIVATE = f"cner{TAG}", f"cnev{TAG}"    # a router VNS, a host behind it on stub0
#: wire -> (etherstub, VLAN); every wire's two hosts are 10.77.0.1 and 10.77.0.2
WIRES = {"red": ("stub0", 10), "green": ("stub0", 20), "blue": ("stub1", 10)}
ADDRS = ("10.77.0.1", "10.77.0.2")


def ns(wire: str, k: int) -> str:
    return f"cne{wire[0]}{k}{TAG}"


def vnic(wire: str, k: int) -> str:
    return f"{wire[0]}{k}x{TAG}"


def setup_wire(c: LabCard, wire: str) -> None:
    """Red is made with its VNICs in one request; the others get theirs one by one."""
    stub, vlan = WIRES[wire]
    for k in (0, 1):
        c.ok("create-vns", ns(wire, k))
    if wire == "red":
        c.ok("create-vwire", f"{wire}{TAG}", "--vlan", str(vlan), "--link", stub,
             *(arg for k, addr in enumerate(ADDRS)
               for arg in ("--vnic", f"{vnic(wire, k)},vns={ns(wire, k)},ip={addr}/24")))
        return
    c.ok("create-vwire", f"{wire}{TAG}", "--vlan", str(vlan), "--link", stub)
    for k, addr in enumerate(ADDRS):
        c.ok("create-vnic", vnic(wire, k), "--over", stub, "--vlan", str(vlan),
             "--vns", ns(wire, k), "--ip", f"{addr}/24")


@pytest.fixture(scope="module")
def card(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("etherstubs")
    tap = f"cne{TAG}"
    c = LabCard(tmp, f"tap:{tap}")
    try:
        c.start()
        station(EXT, tap, "10.77.0.100/24")         # the same subnet, on the wire
        c.ok("create-etherstub", "stub0")
        c.ok("create-etherstub", "stub1")
        for wire in WIRES:
            setup_wire(c, wire)
        c.ok("create-vns", PORT_NS)
        c.ok("create-vnic", f"px{TAG}", "--over", "port0", "--vns", PORT_NS,
             "--ip", "10.77.0.9/24")
        yield c
    finally:
        c.stop()
        for name in [EXT, PORT_NS, ROUTER, PRIVATE, *(ns(w, k) for w in WIRES for k in (0, 1))]:
            sh("ip", "netns", "del", name, check=False)


def view(c: LabCard, name: str) -> dict:
    return json.loads(c.ok("show-vnic", name, "--json"))[0]


def counters(c: LabCard) -> dict[str, int]:
    with SimDevice(c.card_sock) as dev:
        regs = Registers(NicCore().regmap(), dev.read32, dev.write32)
        return {"drop_stub_vlan": regs.counters("rx_dma")["drop_stub_vlan"],
                **{f"tx_switch.{k}": n for k, n in regs.counters("tx_switch").items()},
                "eth0_tx": regs.read("eth0_tx.frames")}


class Captures:
    """A ``capture`` on each named interface (in its namespace) while the block runs."""

    def __init__(self, where: dict[str, str], out: Path, seconds: float = 240):
        self.dir = out
        self.procs = {iface: in_ns(namespace, "capture", iface, str(seconds),
                                   str(self.dir / iface))
                      for iface, namespace in where.items()}

    def __enter__(self):
        for iface, proc in self.procs.items():
            wait_ready(proc, self.dir / iface)
        return self

    def __exit__(self, *exc):
        time.sleep(1)                               # the last saves
        for p in self.procs.values():
            p.kill()
            p.wait()

    def seen(self, iface: str) -> dict:
        return json.loads((self.dir / iface).read_text())


def ping(src_ns: str, dst_ns: str, addr: str, count: int = 3) -> list:
    with tempfile.TemporaryDirectory(prefix="crossnic-echo-") as tmp:
        ready = Path(tmp) / "ready"
        echo = in_ns(dst_ns, "udp-echo", "0.0.0.0", "7300", "120", str(ready))
        try:
            wait_ready(echo, ready)
            out = in_ns(src_ns, "udp-ping", addr, "7300", str(count), "0.2",
                        stdout=subprocess.PIPE, text=True).communicate(timeout=120)[0]
            return json.loads(out)
        finally:
            echo.kill()
            echo.wait()


def neighbour(namespace: str, addr: str) -> str | None:
    out = sh("ip", "-n", namespace, "-j", "neigh", "show", addr).stdout
    entries = json.loads(out or "[]")
    return entries[0].get("lladdr") if entries else None


def test_the_objects_as_created(card):
    wires = {w["name"]: w for w in json.loads(card.ok("show-vwire", "--json"))}
    assert set(wires) == {f"{w}{TAG}" for w in WIRES}
    card_vlans = set()
    for wire, (stub, vlan) in WIRES.items():
        w = wires[f"{wire}{TAG}"]
        assert (w["vlan"], w["links"]) == (vlan, [stub])
        assert w["vnics"] == [vnic(wire, 0), vnic(wire, 1)]
        v0, v1 = view(card, vnic(wire, 0)), view(card, vnic(wire, 1))
        assert (v0["over"], v0["vlan"], v0["vwire"]) == (stub, vlan, f"{wire}{TAG}")
        assert v0["card_vlan"] == v1["card_vlan"] >= 4000          # one card VLAN per wire
        assert w["card_vlans"] == [f"{stub}:{v0['card_vlan']}"]
        card_vlans.add(v0["card_vlan"])
        assert v0["path"] == f"{vnic(wire, 1)}:card"                # no wire
    assert len(card_vlans) == 3                    # red, green, blue: each its own
    stubs = {s["name"]: s for s in json.loads(card.ok("show-etherstub", "--json"))}
    assert stubs["stub0"]["vwires"] == [f"red{TAG}", f"green{TAG}"]
    assert len(stubs["stub0"]["vlans"]) == 2 and stubs["stub1"]["vnics"] == [
        vnic("blue", 0), vnic("blue", 1)]
    table = card.ok("show-vwire", f"red{TAG}")
    assert table.splitlines()[0].split() == ["NAME", "VLAN", "LINKS", "VNICS", "CARD_VLANS",
                                             "RX_FRAMES", "TX_FRAMES"]


def test_wires_with_the_same_addresses_do_not_see_each_other(card, tmp_path):
    macs = {w: {view(card, vnic(w, k))["mac"] for k in (0, 1)} for w in WIRES}
    where = {vnic(w, k): ns(w, k) for w in WIRES for k in (0, 1)}
    where[f"cne{TAG}"] = EXT                        # the card's wire, seen from outside
    before = counters(card)
    with Captures(where, tmp_path) as cap:
        rtts = {w: ping(ns(w, 0), ns(w, 1), ADDRS[1]) for w in WIRES}
    after = counters(card)
    print(f"round trips {rtts}; card {({k: after[k] - before[k] for k in after})}")
    for wire in WIRES:
        assert None not in rtts[wire], f"{wire}: a probe was lost"
        # each host resolved its own wire's peer, though three answer to 10.77.0.2
        assert neighbour(ns(wire, 0), ADDRS[1]) == view(card, vnic(wire, 1))["mac"]
        for k in (0, 1):
            sources = cap.seen(vnic(wire, k))["sources"]
            peer = view(card, vnic(wire, 1 - k))["mac"]
            assert sources.get(peer, 0) >= 3, (wire, k, sources)      # the probes, the ARP
            assert set(sources) <= macs[wire], (wire, k, sources)     # and nothing else
    outside = set(cap.seen(f"cne{TAG}")["sources"])
    assert not outside & set().union(*macs.values()), outside
    # the card's switch turned everything around; broadcasts' wire copies went nowhere
    assert after["tx_switch.hairpin"] - before["tx_switch.hairpin"] >= 18
    assert after["tx_switch.no_port"] > before["tx_switch.no_port"]
    assert after["tx_switch.stub_refused"] == before["tx_switch.stub_refused"]


def eth_frame(dst: str, src: str, vlan: int) -> str:
    tag = (0x8100).to_bytes(2, "big") + vlan.to_bytes(2, "big")
    body = bytes.fromhex(dst.replace(":", "") + src.replace(":", "")) + tag
    return (body + (0x88B5).to_bytes(2, "big") + MARK + bytes(30)).hex()


def test_the_card_refuses_etherstub_vlans_from_and_to_the_wire(card, tmp_path):
    """A station on the wire, and a tenant of a port VNIC, each send a frame tagged with red's
    card VLAN to a red VNIC's exact MAC: the card drops the first as it comes in
    (``drop_stub_vlan``) and refuses the second in its switch (``stub_refused``)."""
    target = view(card, vnic("red", 1))
    port_vnic = f"px{TAG}"
    before = counters(card)
    with Captures({vnic("red", 1): ns("red", 1)}, tmp_path) as cap:
        frame = eth_frame(target["mac"], "02:00:00:77:00:64", target["card_vlan"])
        in_ns(EXT, "eth-send", f"cne{TAG}", frame, "5").wait(60)
        frame = eth_frame(target["mac"], view(card, port_vnic)["mac"], target["card_vlan"])
        in_ns(PORT_NS, "eth-send", port_vnic, frame, "5").wait(60)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            now = counters(card)
            if (now["drop_stub_vlan"] - before["drop_stub_vlan"] >= 5
                    and now["tx_switch.stub_refused"] - before["tx_switch.stub_refused"] >= 5):
                break
            time.sleep(0.5)
    assert now["drop_stub_vlan"] - before["drop_stub_vlan"] == 5
    assert now["tx_switch.stub_refused"] - before["tx_switch.stub_refused"] == 5
    assert cap.seen(vnic("red", 1))["marked"] == 0
    # and the driver refuses an etherstub VLAN on a port
    r = card.cli("create-vnic", f"pv{TAG}", "--over", "port0", "--vlan", "4000")
    assert r.returncode and "etherstub VLANs" in r.stderr


@pytest.mark.parametrize("args, error", [
    (["create-vwire", "w1", "--vlan", "10", "--link", "stub0"], "is virtual wire red"),
    (["create-vwire", "w1", "--vlan", "0", "--link", "stub0"], "VLAN ID is 1..4094"),
    (["create-vwire", "w1", "--vlan", "30", "--link", "stub9"], "physical port"),
    (["create-vwire", "w1", "--vlan", "4001", "--link", "port0"], "etherstub VLANs"),
    (["create-vwire", "w1", "--vlan", "30", "--link", "stub0,stub0"], "named twice"),
    (["create-vwire", "stub1", "--vlan", "30", "--link", "stub0"], "exists"),
    (["create-etherstub", "port0"], "exists"),
    (["create-etherstub", "bad name!"], "name"),
    (["delete-etherstub", "stub1"], "has VNICs"),
    (["delete-etherstub", "stub9"], "no etherstub"),
    (["delete-vwire", "w9"], "no virtual wire"),
    (["create-vnic", "v9", "--over", "stub9"], "physical port"),
    (["create-vwire", "w1", "--vlan", "40", "--link", "stub0", "--vnic", "a9,over=stub1"],
     "over one of the wire's links"),
    (["create-vwire", "w1", "--vlan", "40", "--link", "stub0", "--vnic", "a9,speed=1G"],
     "NAME then over="),
    # the second VNIC cannot have the first's address in the wire: neither they nor the wire stay
    (["create-vwire", "w1", "--vlan", "40", "--link", "stub0",
      "--vnic", f"a8,vns={ns('red', 0)},ip=10.77.0.1/24",
      "--vnic", f"a9,vns={ns('red', 1)},ip=10.77.0.1/24"], "already an address of VNIC a8"),
])
def test_bad_requests_are_refused(card, args, error):
    def objects():      # (not their traffic counters: the namespaces' own chatter moves them)
        return (card.ok("show-vwire", "-p", "-o", "name,vlan,links,vnics,card_vlans"),
                card.ok("show-etherstub", "-p"),
                card.ok("show-vnic", "-p", "-o", "name,over,vlan,card_vlan"))
    before = objects()
    r = card.cli(*args)
    assert r.returncode == 1 and error in r.stderr, r.stderr
    assert objects() == before


def test_a_router_vns_joins_an_etherstub_to_the_cable(card):
    """A private network on stub0 (VLAN 30, 10.78.0.0/24) behind a router VNS whose other VNIC
    is on port 0 (10.79.0.0/24, where the cable's station also is): TCP from the private host
    to the station crosses the router's forwarding fast path both ways, unNATed."""
    card.ok("create-vwire", f"gw{TAG}", "--vlan", "30", "--link", "stub0")
    card.ok("create-vns", PRIVATE, "--ip", "10.78.0.2/24", "--route", "default,10.78.0.1")
    card.ok("create-vnic", f"hx{TAG}", "--over", "stub0", "--vlan", "30", "--vns", PRIVATE)
    card.ok("create-vns", ROUTER)
    card.ok("create-vnic", f"ra{TAG}", "--over", "stub0", "--vlan", "30", "--vns", ROUTER,
            "--ip", "10.78.0.1/24", "-p", "forwarding=on")
    card.ok("create-vnic", f"rb{TAG}", "--over", "port0", "--vns", ROUTER,
            "--ip", "10.79.0.1/24", "-p", "forwarding=on")
    sh("ip", "-n", EXT, "addr", "add", "10.79.0.100/24", "dev", f"cne{TAG}")
    sh("ip", "-n", EXT, "route", "add", "10.78.0.0/24", "via", "10.79.0.1")
    got = tcp_transfer(EXT, PRIVATE, "10.79.0.100", 7301, 64 * 1024)
    assert got["peer"] == "10.78.0.2"
    inside, outside = view(card, f"ra{TAG}"), view(card, f"rb{TAG}")
    print(f"64 KiB private -> cable in {got['seconds']:.1f} s; fast path: stub side "
          f"{inside['fwd_fast']}, port side {outside['fwd_fast']}")
    assert inside["fwd_fast"] >= 30 and outside["fwd_fast"] >= 5
    wire = json.loads(card.ok("show-vwire", f"gw{TAG}", "--json"))[0]
    assert wire["vnics"] == [f"hx{TAG}", f"ra{TAG}"]


def test_ports_share_their_vlans_and_a_wire_owns_its_vnics(card):
    """The card's switch joins a VLAN across its ports, so a wire's VLAN on a port is its VLAN
    on every port; a wire is made before its VNICs, never over VNICs someone else made."""
    card.ok("create-vwire", f"pw{TAG}", "--vlan", "60", "--link", "port0")
    r = card.cli("create-vwire", "w2", "--vlan", "60", "--link", "port1")
    assert r.returncode == 1 and "across its ports" in r.stderr, r.stderr
    card.ok("create-vnic", f"pv{TAG}", "--over", "port0", "--vlan", "100")
    r = card.cli("create-vwire", "w3", "--vlan", "100", "--link", "port0")
    assert r.returncode == 1 and f"has VNICs (pv{TAG})" in r.stderr, r.stderr
    card.ok("delete-vwire", f"pw{TAG}")


def test_a_restart_keeps_them_and_a_wire_goes_as_one(card):
    # a daemon whose etherstub VLANs would swallow a stored VNIC's refuses to start
    card.daemon.terminate()
    card.daemon.wait(60)
    card.daemon_args = ("--stub-vlans", "50")
    with pytest.raises(LabError, match=f"VNIC pv{TAG} .VLAN 100. in the card's etherstub VLANs"):
        card.start()
    card.daemon_args = ()
    card.start()
    card.ok("create-etherstub", "-t", "tstub")
    r = card.cli("create-vnic", "v9", "--over", "tstub")
    assert r.returncode == 1 and "is temporary" in r.stderr
    card.ok("create-vnic", "-t", "v9", "--over", "tstub", "--vlan", "5")
    card.daemon.terminate()
    card.daemon.wait(60)
    card.start()
    assert [s["name"] for s in json.loads(card.ok("show-etherstub", "--json"))] == [
        "stub0", "stub1"]                           # the temporary one and its VNIC are gone
    assert "v9" not in {v["name"] for v in json.loads(card.ok("show-vnic", "--json"))}
    wires = {w["name"]: w for w in json.loads(card.ok("show-vwire", "--json"))}
    assert wires[f"blue{TAG}"]["vnics"] == [vnic("blue", 0), vnic("blue", 1)]
    assert None not in ping(ns("blue", 0), ns("blue", 1), ADDRS[1], count=2)
    card.ok("delete-vwire", f"green{TAG}")
    assert f"green{TAG}" not in card.ok("show-vwire")
    names = {v["name"] for v in json.loads(card.ok("show-vnic", "--json"))}
    assert not names & {vnic("green", 0), vnic("green", 1)}
    assert vnic("green", 0) not in sh("ip", "-n", ns("green", 0), "link").stdout
    card.ok("delete-vwire", f"blue{TAG}")
    card.ok("delete-etherstub", "stub1")
    assert [s["name"] for s in json.loads(card.ok("show-etherstub", "--json"))] == ["stub0"]
    # red is untouched by its neighbours going
    assert None not in ping(ns("red", 0), ns("red", 1), ADDRS[1], count=2)

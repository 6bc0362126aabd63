"""Media-based transfer in a chassis (root): two served cards in one host, their daemons in one
chassis, both cabled to one switch (:class:`~crossnic.sim.lab.PathChassis`). VNICs of one card
talk through its switch, VNICs of two cards through host memory between the drivers, anything
else over the wire; each choice is shown (``show-vnic -o path``) and counted, and the cards'
own counters prove where the frames went."""

import json
import os
import time

import pytest

from crossnic.sim.lab import PathChassis, tcp_transfer

pytestmark = [
    pytest.mark.xdist_group("chassis"),
    pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                       reason="TAP devices and network namespaces need root"),
]


@pytest.fixture(scope="module")
def chassis(tmp_path_factory):
    c = PathChassis(tmp_path_factory.mktemp("chassis"), f"{os.getpid() % 10000}")
    try:
        yield c
    finally:
        c.close()


#: Frames the driver's path counters and a port's counter may differ by when read together.
SLACK = 2


def counts(c: PathChassis) -> dict:
    """Each VNIC's frames by path, and each card's frames on its wire."""
    out = {v: {k: c.view(v)[k] for k in ("card_frames", "host_frames", "wire_frames",
                                          "host_rx_frames")} for v in c.IPS}
    for n, card in zip("ab", c.cards, strict=True):
        out[n] = json.loads(card.ok("show-phys", "--json"))[0]["tx_frames"]
    return out


def quiet_counts(c: PathChassis, timeout: float = 30.0) -> dict:
    """:func:`counts` once two readings a second apart agree: the previous test's connection
    may still be closing (its last ACK follows the peer's FIN through a simulated card) and a
    window opened before it has would count that frame."""
    last, end = counts(c), time.monotonic() + timeout
    while time.monotonic() < end:
        time.sleep(1)
        now = counts(c)
        if now == last:
            return now
        last = now
    raise AssertionError(f"the chassis's counters did not settle in {timeout:.0f} s: {last}")


def delta(after: dict, before: dict) -> dict:
    return {k: ({f: v[f] - before[k][f] for f in v} if isinstance(v, dict) else v - before[k])
            for k, v in after.items()}


def test_same_card_goes_through_the_cards_switch(chassis):
    c = chassis
    before = quiet_counts(c)
    tcp_transfer(c.ns("a2"), c.ns("a1"), c.IPS["a2"], 6001, 32 * 1024)
    d = delta(counts(c), before)
    assert d["a1"]["card_frames"] >= 22 and d["a2"]["card_frames"] >= 10
    assert d["a1"]["host_frames"] == d["a2"]["host_frames"] == 0
    # only what went to the wire by choice (broadcast and multicast: ARP, IPv6's neighbour
    # discovery) left card A's port, far fewer than the connection's segments
    # (a frame or two either way: the driver counts a frame when it posts it, the port when
    # it has sent it, and the two are read one after the other)
    wire = d["a1"]["wire_frames"] + d["a2"]["wire_frames"]
    assert d["a"] <= wire + SLACK and wire < d["a1"]["card_frames"] / 2
    assert c.view("a1")["path"].split()[0] == "va2:card"


def test_another_card_in_the_host_goes_through_host_memory(chassis):
    c = chassis
    # no peer VNIC is used before a frame from it proved it shares this card's segment
    assert "vb1@" not in c.view("a1")["path"]
    before = quiet_counts(c)
    tcp_transfer(c.ns("b1"), c.ns("a1"), c.IPS["b1"], 6002, 256 * 1024)
    d = delta(counts(c), before)
    print(f"a1 -> b1: {d}")
    # 256 KiB is ~180 full-size segments: all but the first frames (ARP) go host memory
    assert d["a1"]["host_frames"] >= 150 and d["b1"]["host_rx_frames"] >= 150
    # (and its ACKs back, as many as TCP chose to send)
    assert d["b1"]["host_frames"] >= 5 and d["a1"]["host_rx_frames"] >= 5
    assert d["a1"]["card_frames"] == d["b1"]["card_frames"] == 0
    # neither card's wire carried the connection: what left was chosen for the wire (ARP,
    # neighbour discovery)
    wire = d["a1"]["wire_frames"] + d["a2"]["wire_frames"]
    assert d["a"] <= wire + SLACK and wire < d["a1"]["host_frames"] / 4
    assert d["b"] <= d["b1"]["wire_frames"] + SLACK and d["b1"]["wire_frames"] < 45
    assert "vb1@card2:host" in c.view("a1")["path"].split()
    shown = c.card("a1").ok("show-vnic", "va1", "-p", "-o", "path,host_frames").strip()
    assert shown.startswith("va2\\:card vb1@card2\\:host *\\:wire:")   # (-p escapes ':')
    assert "va1@card1:host" in c.view("b1")["path"].split()


def test_other_stations_go_over_the_wire(chassis):
    c = chassis
    before = quiet_counts(c)
    tcp_transfer(c.ns("a1"), c.ext, c.IPS["a1"], 6003, 16 * 1024)
    d = delta(counts(c), before)
    assert d["a1"]["wire_frames"] >= 8 and d["a"] >= d["a1"]["wire_frames"] - SLACK
    assert d["a1"]["host_frames"] == d["a1"]["card_frames"] == 0
    assert c.view("a1")["path"].split()[-1] == "*:wire"


def test_a_peer_that_leaves_is_reached_over_the_wire_again(chassis):
    """Card B's daemon stops: card A drops it from the chassis (its VNICs are gone with it)."""
    c = chassis
    c.cards[1].daemon.terminate()
    assert c.cards[1].daemon.wait(60) == 0
    for _ in range(50):
        if "@card2" not in c.view("a1")["path"]:
            break
        time.sleep(0.2)
    assert "@card2" not in c.view("a1")["path"]
    assert not (c.tmp / "chassis" / "card2.json").exists()

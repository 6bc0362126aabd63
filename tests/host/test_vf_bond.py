"""Link aggregation over VFs of two cards (root): two served cards, each with its own crossnicd
as PF, their port 0 cabled to one switch (a Linux bridge in the station's namespace), and a
guest whose ``crossnic vf`` holds VF 1 of each card as one interface (:class:`crossnic.sim.lab.
BondChassis`). Connections spread over the cards by a hash of their 5-tuple, each staying on its
card; pulling a cable or losing a whole card moves them to the other card with every byte of
every established connection delivered."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from test_virtual_functions import wait_until

from crossnic.host.vf_guest import choose_member, flow_key
from crossnic.sim.lab import BondChassis, wait_ready
from crossnic.sim.serve import set_cable

pytestmark = [
    pytest.mark.xdist_group("vf_bond"),
    pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                       reason="TAP devices and network namespaces need root"),
]

EXT_IP, GUEST_IP = BondChassis.EXT_IP, BondChassis.GUEST_IP


@pytest.fixture(scope="module")
def chassis(tmp_path_factory):
    c = BondChassis(tmp_path_factory.mktemp("bond"), f"{os.getpid() % 10000}")
    try:
        yield c
    finally:
        c.close()


def sports_per_member() -> list[int]:
    """A client port for each card: the hash the aggregate uses sends its connection there."""
    out: dict[int, int] = {}
    for sport in range(41000, 41100):
        frame = bytes(Ether() / IP(src=GUEST_IP, dst=EXT_IP) / TCP(sport=sport, dport=6000))
        out.setdefault(choose_member(flow_key(frame), [0, 1]), sport)
        if len(out) == 2:
            return [out[0], out[1]]
    raise AssertionError("no client port hashes to each card")


class Streams:
    """Checked TCP streams from the guest to the station (``tcp-serve``/``tcp-send`` of
    :mod:`crossnic.sim.lab`)."""

    def __init__(self, chassis: BondChassis, tmp: Path, port: int, sports: list[int],
                 size: int, pace: float):
        self.result, self.size = tmp / f"streams{port}.json", size
        self.server = chassis.in_ns(chassis.ext, "tcp-serve", EXT_IP, str(port),
                                    str(len(sports)), str(self.result))
        wait_ready(self.server, self.result)
        self.clients = {sport: chassis.in_ns(chassis.guest, "tcp-send", EXT_IP, str(port),
                                             str(sport), str(size), str(pace),
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                             text=True)
                        for sport in sports}

    def received(self) -> dict[int, int]:
        try:
            got = json.loads(self.result.read_text())
        except ValueError:
            return {}
        return {int(k): v["bytes"] for k, v in got.items()}

    def under_way(self, least: int) -> bool:
        got = self.received()
        return len(got) == len(self.clients) and min(got.values()) >= least

    def check(self, timeout: float = 180) -> None:
        """Every stream ends, every byte arrived, in order."""
        for sport, client in self.clients.items():
            out, err = client.communicate(timeout=timeout)
            assert client.returncode == 0, err
            self.clients[sport] = json.loads(out)["sha256"]
        assert self.server.wait(60) == 0
        got = json.loads(self.result.read_text())
        for sport, digest in self.clients.items():
            assert (got[str(sport)]["bytes"], got[str(sport)]["sha256"]) == (self.size, digest), \
                sport


def tx_frames(chassis: BondChassis) -> list[int]:
    return [c.vf(1)["tx_frames"] for c in chassis.cards]


def test_each_connection_goes_through_one_card(chassis, tmp_path):
    for member, sport in enumerate(sports_per_member()):
        before = tx_frames(chassis)
        Streams(chassis, tmp_path, 6000 + member, [sport], 64 * 1024, 0).check(120)
        sent = [a - b for a, b in zip(tx_frames(chassis), before, strict=True)]
        # 64 KiB is 46 segments: all of them on the card the hash chose, nothing of the
        # connection on the other (at most an ARP exchange through the active card).
        assert sent[member] >= 46, sent
        assert sent[1 - member] <= 3, sent
    state = chassis.state()
    assert [m["state"] for m in state["members"]] == ["up", "up"]
    assert state["active"] == 0 and state["failovers"] == 0
    assert all(m["tx_frames"] >= 46 for m in state["members"])


def test_a_pulled_cable_moves_its_connections_without_loss(chassis, tmp_path):
    cards = chassis.cards
    sports = sports_per_member()
    streams = Streams(chassis, tmp_path, 6100, sports, 192 * 1024, 0.01)
    wait_until(lambda: streams.under_way(48 * 1024), 120, "both streams under way")
    assert not set_cable(cards[0].card_sock, 0, "down")
    streams.check()
    state = chassis.state()
    assert [m["state"] for m in state["members"]] == ["down", "up"]
    assert state["active"] == 1 and state["failovers"] == 1
    down = [e for e in state["events"] if e["event"] == "down"]
    assert down[-1]["member"] == 0 and "link" in down[-1]["why"]
    assert cards[0].vf(1)["link"] == "down" and cards[1].vf(1)["link"] == "up"
    # New connections all go through the card left; the cable back, the card rejoins.
    before = tx_frames(chassis)
    Streams(chassis, tmp_path, 6101, sports, 32 * 1024, 0).check()
    after = tx_frames(chassis)
    assert after[1] - before[1] >= 2 * 23 and after[0] == before[0]
    assert set_cable(cards[0].card_sock, 0, "up")
    wait_until(lambda: chassis.state()["members"][0]["state"] == "up", 30, "the card back")


def test_a_lost_card_moves_its_connections_without_loss(chassis, tmp_path):
    assert [m["state"] for m in chassis.state()["members"]] == ["up", "up"]
    streams = Streams(chassis, tmp_path, 6200, sports_per_member(), 192 * 1024, 0.01)
    wait_until(lambda: streams.under_way(48 * 1024), 120, "both streams under way")
    lost = chassis.cards[1].proc             # the active card, gone with everything on it
    lost.terminate()
    lost.wait(60)
    streams.check()
    state = chassis.state()
    assert [m["state"] for m in state["members"]] == ["up", "gone"]
    assert state["active"] == 0
    assert chassis.bond.poll() is None

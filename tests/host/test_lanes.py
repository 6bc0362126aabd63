"""Lanes and dynamic polling (:mod:`crossnic.host.lanes`).

The state machine is driven here against a scripted ring (how many frames each poll finds) to
check the register writes of each step; ``test_a_stalled_lane_polls_until_drained`` then
backs up a real lane on the simulated card and reads its counters."""

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from crossnic.host.lanes import Lane
from crossnic.sim.lab import LabCard, in_ns, sh, station, wait_ready

BUDGET = 4


class _Ring:
    def __init__(self, index: int):
        self.index = index

    def reg(self, name: str) -> str:
        return f"rx_ring[{self.index}].{name}"


class _Vnic:
    def __init__(self):
        self.name, self.rx, self.fwd = "v0", _Ring(3), None
        self.tap, self.tx_full, self.backlog = None, False, {}


class _Driver:
    """What a lane needs of the driver, with a ring that holds ``backlog`` frames."""

    def __init__(self):
        self.lock = threading.RLock()
        self.backlog = 0
        self.writes: list[tuple[str, int]] = []

    def _transmit(self, v) -> int:
        return 0

    def _write(self, pairs) -> None:
        self.writes += pairs

    def _rx_pending(self, ring) -> bool:
        return self.backlog > 0

    def _receive(self, ring, forward: bool = False, budget: int | None = None) -> int:
        got = min(self.backlog, budget)
        self.backlog -= got
        return got


@pytest.fixture
def lane():
    d = _Driver()
    lane = Lane(d, _Vnic(), budget=BUDGET)
    lane._fired = False
    yield d, lane
    lane.stop()


def test_light_load_is_interrupt_driven(lane):
    d, lane = lane
    d.backlog = 2
    lane.interrupt()
    lane._turn()
    assert (lane.mode, d.backlog) == ("interrupt", 0)
    assert d.writes == [("rx_ring[3].irq_status", 1)]       # acknowledged, never masked
    assert lane.stats == {"interrupts": 1, "polls": 1, "to_poll": 0, "to_interrupt": 0,
                          "frames": 2, "missed": 0, "errors": 0}
    d.writes.clear()
    lane._turn()                          # no interrupt, nothing waiting: nothing to do
    assert d.writes == [] and lane.stats["polls"] == 1


def test_the_watchdog_serves_a_frame_whose_interrupt_was_lost(lane):
    d, lane = lane
    d.backlog = 1
    lane._turn()                          # idle: a frame waits (its interrupt may be coming)
    assert d.writes == [] and lane.stats["missed"] == 0 and d.backlog == 1
    lane._turn()                          # still waiting, still no interrupt: missed
    assert d.writes == [("rx_ring[3].irq_status", 1)] and d.backlog == 0
    assert lane.stats["missed"] == 1 and lane.stats["polls"] == 1


def test_a_backed_up_ring_is_polled_without_interrupts_until_it_drains(lane):
    d, lane = lane
    d.backlog = 3 * BUDGET + 1
    lane.interrupt()
    lane._turn()                          # a full budget: mask and poll
    assert lane.mode == "poll"
    assert d.writes == [("rx_ring[3].irq_status", 1), ("rx_ring[3].irq_mask", 1)]
    d.writes.clear()
    lane._turn()
    lane._turn()                          # polls with no acknowledgement in between
    assert d.writes == [] and lane.mode == "poll" and d.backlog == 1
    lane._turn()                          # a short poll: drained, unmasked
    assert lane.mode == "interrupt"
    assert d.writes == [("rx_ring[3].irq_status", 1), ("rx_ring[3].irq_mask", 0)]
    assert lane.stats == {"interrupts": 1, "polls": 5, "to_poll": 1, "to_interrupt": 1,
                          "frames": 3 * BUDGET + 1, "missed": 0, "errors": 0}


def test_frames_that_come_in_while_unmasking_are_taken(lane):
    d, lane = lane
    d.backlog = BUDGET
    lane.interrupt()
    lane._turn()
    assert lane.mode == "poll"
    polls = []
    real = d._receive

    def receive(ring, forward=False, budget=None):
        got = real(ring, forward, budget)
        polls.append(got)
        if len(polls) == 1:
            d.backlog = 2                 # arrive between the short poll and the unmask
        return got

    d._receive = receive
    lane._turn()
    assert lane.mode == "interrupt" and d.backlog == 0 and polls == [0, 2]


def test_a_lane_thread_serves_its_interrupts():
    d = _Driver()
    lane = Lane(d, _Vnic(), budget=BUDGET)
    lane.start()
    try:
        d.backlog = 10 * BUDGET
        lane.interrupt()
        end = time.monotonic() + 10
        while (d.backlog or lane.mode != "interrupt") and time.monotonic() < end:
            time.sleep(0.01)
        assert d.backlog == 0 and lane.mode == "interrupt"
        assert lane.stats["to_poll"] >= 1 and lane.stats["to_interrupt"] >= 1
    finally:
        lane.stop()
    assert not lane._thread.is_alive()


def test_a_lane_survives_a_bug_and_counts_it():
    d = _Driver()
    failures = [RuntimeError("boom")]

    def transmit(v):
        if failures:
            raise failures.pop()
        return 0

    d._transmit = transmit
    lane = Lane(d, _Vnic(), budget=BUDGET)
    lane.start()
    try:
        d.backlog = 3
        lane.interrupt()
        end = time.monotonic() + 10
        while d.backlog and time.monotonic() < end:
            time.sleep(0.01)
        assert d.backlog == 0 and lane.stats["errors"] == 1 and "boom" in lane.error
    finally:
        lane.stop()


# --- a real lane on the simulated card --------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                                reason="TAP devices and network namespaces need root")
TAG = f"{os.getpid() % 10000}"
EXT, QUIET = f"cnlx{TAG}", f"cnlq{TAG}"
EXT_IP, QUIET_IP = "10.43.0.100", "10.43.0.1"


@pytest.fixture(scope="module")
def card(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lanes")
    tap = f"cnl{TAG}"
    c = LabCard(tmp, f"tap:{tap}")
    try:
        c.start()
        station(EXT, tap, f"{EXT_IP}/24")
        c.ok("create-vns", QUIET, "--ip", f"{QUIET_IP}/24")
        c.ok("create-vnic", "lq0", "--over", "port0", "--vns", QUIET)
        yield c
    finally:
        c.stop()
        sh("ip", "netns", "del", EXT, check=False)
        sh("ip", "netns", "del", QUIET, check=False)


def lane_of(card: LabCard, vnic: str) -> dict:
    rows = card.ok("show-vnic", vnic, "-p", "-o", "lane").strip().split(":")
    names = ["name", "lane", "interrupts", "polls", "to_poll", "to_interrupt", "frames",
             "missed", "errors"]
    return dict(zip(names, [rows[0], rows[1], *map(int, rows[2:])], strict=True))


@needs_root
def test_a_stalled_lane_polls_until_drained(card, tmp_path: Path):
    """Light traffic is interrupt driven; frames that pile up while the daemon is stopped
    (SIGSTOP: a host that fell behind) make the lane mask its interrupt and poll until the
    ring is empty, then go back to interrupts; every datagram arrives."""
    mac = json.loads(card.ok("show-vnic", "lq0", "--json"))[0]["mac"]
    sh("ip", "-n", EXT, "neigh", "replace", QUIET_IP, "lladdr", mac, "dev", f"cnl{TAG}")
    result = tmp_path / "count.json"
    counter = in_ns(QUIET, "udp-count", QUIET_IP, "7700", "3600", str(result))
    try:
        wait_ready(counter, result)
        send = ["udp-send", QUIET_IP, "7700", "47700"]
        light = in_ns(EXT, *send, "0.5", "4", stdout=subprocess.PIPE, text=True)
        first = int(light.communicate(timeout=60)[0])
        calm = lane_of(card, "lq0")
        assert calm["lane"] == "interrupt" and calm["interrupts"] >= 1, calm
        assert calm["to_poll"] == 0, calm
        # 60 datagrams while the daemon is stopped: more than three budgets wait in the ring
        # (the light traffic's were all taken: the daemon is idle when it stops)
        os.kill(card.daemon.pid, signal.SIGSTOP)
        try:
            burst = in_ns(EXT, *send, "0.05", "3", stdout=subprocess.PIPE, text=True)
            sent = int(burst.communicate(timeout=60)[0])
            time.sleep(8)                 # the simulated card takes them all in
        finally:
            os.kill(card.daemon.pid, signal.SIGCONT)
        end = time.monotonic() + 120
        while time.monotonic() < end:
            after = lane_of(card, "lq0")
            got = json.loads(result.read_text()).get("47700", {}).get("bytes", 0) // 64
            if after["to_interrupt"] > calm["to_interrupt"] and got >= first + sent:
                break
            time.sleep(0.5)
        assert after["to_poll"] > calm["to_poll"], after
        assert after["to_interrupt"] > calm["to_interrupt"] and after["lane"] == "interrupt", \
            after
        assert got == first + sent, (got, first, sent)
        assert after["missed"] == 0 and after["errors"] == 0, after   # every frame had its
        # interrupt
    finally:
        counter.kill()
        counter.wait()


@needs_root
def test_show_vnic_o_lane(card):
    out = card.ok("show-vnic", "-o", "lane")
    head = out.splitlines()[0].split()
    assert head == ["NAME", "LANE", "LANE_INTERRUPTS", "LANE_POLLS", "LANE_TO_POLL",
                    "LANE_TO_INTERRUPT", "LANE_FRAMES", "LANE_MISSED", "LANE_ERRORS"], out
    assert out.splitlines()[1].split()[:2] == ["lq0", "interrupt"], out

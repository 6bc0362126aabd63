# Ref: IEEE 1800.2 (UVM) as implemented by pyuvm
"""pyuvm environment of the whole card: random tables, random traffic, host-memory monitor.

The test runs in rounds. Each round the table sequence draws a new random
:class:`~crossnic.sim.scenario.Scenario` and programs it over AXI4-Lite (the card is idle
then, so the model knows which configuration each frame meets), the traffic sequence sends a
burst of random frames on both ports at once (one driver per port, GMII at line rate), the
host monitor waits until the card has dealt with every frame and then reads every ring's
completions and buffers from host memory, and the scoreboard checks each against the
reference model. The report phase prints the coverage summary: table hits and misses, classes,
casts, ring wraps, drops by reason.

Used by ``tests/gateware/tb_nic_uvm.py`` (CI: 20,000 frames) and by the soak command
``python -m crossnic.sim.soak`` (any number of frames).
"""

import random
from collections import Counter

from pyuvm import (
    uvm_analysis_port,
    uvm_component,
    uvm_driver,
    uvm_env,
    uvm_sequence,
    uvm_sequence_item,
    uvm_sequencer,
)

from crossnic.gateware.layouts import DropReason
from crossnic.host.classifier import writes
from crossnic.sim.model.classifier import ClassifierModel
from crossnic.sim.scenario import random_scenario
from crossnic.sim.scoreboard import RxScoreboard

__all__ = ["FrameItem", "ProgramItem", "NicEnv", "RoundSequence", "coverage_report"]

RINGS = 16
RING_LOG2 = 9               # 512 slots per ring


class FrameItem(uvm_sequence_item):
    """One frame for one port."""

    def __init__(self, name: str, port: int, frame: bytes):
        super().__init__(name)
        self.port = port
        self.frame = frame


class ProgramItem(uvm_sequence_item):
    """A new table configuration (a Scenario) to load into the idle card."""

    def __init__(self, name: str, scenario):
        super().__init__(name)
        self.scenario = scenario


class RoundSequence(uvm_sequence):
    """One round: program a random scenario, then ``frames`` random frames on both ports."""

    def __init__(self, name: str, rng: random.Random, frames: int):
        super().__init__(name)
        self.rng = rng
        self.frames = frames

    async def body(self):
        sc = random_scenario(self.rng, rings=RINGS)
        item = ProgramItem("program", sc)
        await self.start_item(item)
        await self.finish_item(item)
        for k in range(self.frames):
            item = FrameItem(f"frame{k}", self.rng.randrange(2), sc.frame(self.rng))
            await self.start_item(item)
            await self.finish_item(item)


class CardDriver(uvm_driver):
    """Programs tables (waiting for the card to be idle first) and puts frames on the wire.

    Frames are queued on the port's GMII source and the driver moves on at once, so both
    ports stream back to back; every frame is published on ``ap`` for the scoreboard.
    """

    card = None              # the Card, set by the test once the simulation runs
    monitor = None           # the HostMonitor that drains the card before programming

    def build_phase(self):
        self.ap = uvm_analysis_port("ap", self)
        self.program_ap = uvm_analysis_port("program_ap", self)

    async def run_phase(self):
        while True:
            item = await self.seq_item_port.get_next_item()
            if isinstance(item, ProgramItem):
                for w in self.card.wire:
                    await w.wait()
                await self.monitor.drain()
                await self.card.apply(writes(item.scenario.config))
                self.program_ap.write(item.scenario)
            else:
                self.ap.write((item.port, item.frame))
                await self.card.send(item.port, item.frame)
            self.seq_item_port.item_done()


class HostMonitor(uvm_component):
    """Host side of the rings: posts buffers, collects completions, feeds the scoreboard."""

    def build_phase(self):
        self.ap = uvm_analysis_port("ap", self)
        self.sent = 0
        self.frames = _Subscriber("frames", self, self.count_sent)

    async def bind(self, card) -> None:
        """Lay the rings out in the card's host memory, configure and fill them."""
        self.card = card
        self.rings = await card.open_rings(RINGS, RING_LOG2)
        self.wraps = Counter()

    def count_sent(self, _item) -> None:
        self.sent += 1

    async def drain(self) -> None:
        """Wait until the card has delivered or dropped every frame sent, then read the rings."""
        await self.card.settle(self.sent)
        for ring in self.rings:
            before = ring.cpl_tail
            done = await self.card.collect(ring)
            for c, data in done:
                self.ap.write((ring.index, c, data))
            if done and (ring.cpl_tail & ~(ring.size - 1)) != (before & ~(ring.size - 1)):
                self.wraps[ring.index] += 1


class _Subscriber(uvm_component):
    """Calls ``fn`` for every item written to its ``analysis_export``."""

    def __init__(self, name, parent, fn):
        super().__init__(name, parent)
        self.fn = fn

    def build_phase(self):
        from pyuvm import uvm_analysis_export

        class _Export(uvm_analysis_export):
            def write(export_self, item):
                self.fn(item)
        self.analysis_export = _Export("analysis_export", self)


class Scoreboard(uvm_component):
    """The reference model per configuration; every frame and completion checked."""

    def build_phase(self):
        self.board: RxScoreboard | None = None
        self.boards: list[RxScoreboard] = []
        self.frames = _Subscriber("frames", self, self.sent)
        self.completions = _Subscriber("completions", self, self.received)
        self.programs = _Subscriber("programs", self, self.programmed)

    def programmed(self, scenario) -> None:
        if self.board is not None:
            self.check_round(self.board)
        self.board = RxScoreboard(ClassifierModel(scenario.config), set(range(RINGS)))
        self.boards.append(self.board)

    def sent(self, item) -> None:
        self.board.sent(*item)

    def received(self, item) -> None:
        self.board.received(*item)

    def check_round(self, board: RxScoreboard) -> None:
        assert not board.mismatches, "\n".join(board.mismatches[:10])
        assert board.missing() == 0, f"{board.missing()} frames never arrived"

    def totals(self) -> tuple[Counter, Counter, int]:
        drops, coverage, delivered = Counter(), Counter(), 0
        for b in self.boards:
            drops.update(b.drops)
            coverage.update(b.coverage)
            coverage.update({f"table {k}": v for k, v in b.model.counters.items()})
            delivered += b.delivered
        return drops, coverage, delivered


class NicEnv(uvm_env):
    def build_phase(self):
        self.sequencer = uvm_sequencer("sequencer", self)
        self.driver = CardDriver("driver", self)
        self.monitor = HostMonitor("monitor", self)
        self.scoreboard = Scoreboard("scoreboard", self)

    def connect_phase(self):
        self.driver.seq_item_port.connect(self.sequencer.seq_item_export)
        self.driver.monitor = self.monitor
        self.driver.ap.connect(self.scoreboard.frames.analysis_export)
        self.driver.program_ap.connect(self.scoreboard.programs.analysis_export)
        self.driver.ap.connect(self.monitor.frames.analysis_export)
        self.monitor.ap.connect(self.scoreboard.completions.analysis_export)


def coverage_report(env: NicEnv, wraps: Counter) -> str:
    drops, coverage, delivered = env.scoreboard.totals()
    lines = [f"frames delivered {delivered}, dropped {sum(drops.values())}"]
    lines.append("drops by reason: " + ", ".join(
        f"{r.name.lower()} {drops.get(r, 0)}" for r in DropReason if r is not DropReason.NONE))
    for prefix in ("table", "cast", "class", "flow"):
        lines.append(f"{prefix}: " + ", ".join(f"{k.split(' ', 1)[1]} {v}" for k, v in
                                                sorted(coverage.items()) if k.startswith(prefix)))
    rings = sorted((int(k.split()[1]), v) for k, v in coverage.items() if k.startswith("ring "))
    lines.append("rings used: " + ", ".join(f"{r}:{v}" for r, v in rings))
    lines.append("ring wraps: " + ", ".join(f"{r}:{v}" for r, v in sorted(wraps.items())))
    return "\n".join(lines)

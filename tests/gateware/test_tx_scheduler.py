"""TxScheduler in amaranth.sim: strict priority, round robin, maxbw token buckets."""

import heapq
import random
import time
from collections import deque

import pytest
from sim_csr import run

from crossnic.gateware.layouts import Priority
from crossnic.gateware.tx_scheduler import (
    RATE_BITS,
    TxScheduler,
    rate_register,
    rate_step,
    register_rate,
)
from crossnic.sim.model.scheduler import Config, TxSchedulerModel, max_window_excess

CLK = 125e6
RINGS = 64


class Engine:
    """Stands in for the DMA engine: shows work, takes offers, answers each with a debit.

    ``backlog[r]`` is the frames ring *r* still has (``None``: endless); ``length[r]`` their
    size. An offer is taken when ``accept(cycle)`` says so; its debit follows ``latency`` clocks
    later (one debit per clock at most, as the engine gives them).
    """

    def __init__(self, dut, *, latency: int = 24):
        self.dut = dut
        self.latency = latency
        self.backlog: dict[int, int | None] = {}
        self.length: dict[int, int] = {}
        self.grants: list[tuple[int, int]] = []        # (cycle, ring)
        self.limited: set[int] = set()
        self.cancels = 0
        self.cycle = 0
        self.debits: list[tuple] = []      # heap: (due, seq, ring, len, limited)
        self._driven: dict[str, int] = {}

    def _set(self, ctx, name: str, signal, value) -> None:
        """Drive ``signal`` only when its value changes (the simulation runs faster)."""
        if self._driven.get(name) != value:
            ctx.set(signal, value)
            self._driven[name] = value

    def post(self, ring: int, frames: int | None, length: int = 1000) -> None:
        self.backlog[ring] = frames
        self.length[ring] = length

    def _debit(self, due: int, ring: int, length: int, limited: bool) -> None:
        heapq.heappush(self.debits, (due, len(self.grants) + self.cancels, ring, length,
                                     limited))

    def work(self) -> int:
        return sum(1 << r for r, left in self.backlog.items() if left is None or left > 0)

    async def configure(self, ctx, ring: int, *, priority: Priority | None = None,
                        rate: int | None = None) -> None:
        cfg = self.dut.cfg
        ctx.set(cfg.ring, ring)
        if priority is not None:
            ctx.set(cfg.priority, priority)
            ctx.set(cfg.priority_we, 1)
        if rate is not None:
            ctx.set(cfg.rate, rate)
            ctx.set(cfg.rate_we, 1)
            self.limited.discard(ring)
            if rate:
                self.limited.add(ring)
        await self.step(ctx)
        ctx.set(cfg.priority_we, 0)
        ctx.set(cfg.rate_we, 0)

    async def step(self, ctx, accept: bool = True) -> None:
        dut = self.dut
        self._set(ctx, "work", dut.work, self.work())
        if self.debits and self.debits[0][0] <= self.cycle:
            _, _, ring, length, limited = heapq.heappop(self.debits)
            self._set(ctx, "debit", dut.debit.valid, 1)
            ctx.set(dut.debit.payload, {"ring": ring, "length": length, "limited": limited})
        else:
            self._set(ctx, "debit", dut.debit.valid, 0)
        self._set(ctx, "take", dut.take, int(accept))
        _, _, valid, offer = await ctx.tick().sample(dut.offer_valid, dut.offer)
        ring = offer.ring
        if valid:
            self.last_offer_limited = offer.limited
        if valid and accept:
            left = self.backlog.get(ring, 0)
            if left == 0:
                # the offer was made before the work went away: the engine finds nothing and
                # answers at once with a zero debit
                self.cancels += 1
                self._debit(self.cycle + 2, ring, 0, offer.limited)
            else:
                self.grants.append((self.cycle, ring))
                if left is not None:
                    self.backlog[ring] = left - 1
                self._debit(self.cycle + self.latency, ring, self.length[ring],
                            offer.limited)
        self.cycle += 1

    async def run(self, ctx, cycles: int, accept=None) -> list[int]:
        start = len(self.grants)
        for _ in range(cycles):
            await self.step(ctx, True if accept is None else accept(self.cycle))
        return [r for _, r in self.grants[start:]]


async def settle_reset(ctx, eng: Engine) -> None:
    await eng.run(ctx, RINGS + 4)          # the rate memory is swept after reset


def test_strict_priority_between_levels():
    dut = TxScheduler(RINGS)
    eng = Engine(dut)

    async def bench(ctx):
        await settle_reset(ctx, eng)
        await eng.configure(ctx, 5, priority=Priority.HIGH)
        await eng.configure(ctx, 9, priority=Priority.MEDIUM)
        await eng.configure(ctx, 63, priority=Priority.MEDIUM)
        for r in (5, 9, 20, 33, 63):
            eng.post(r, None)
        got = await eng.run(ctx, 300)
        assert len(got) >= 50 and set(got[1:]) == {5}
        eng.post(5, 0)
        got = await eng.run(ctx, 300)
        assert set(got[2:]) == {9, 63}
        eng.post(9, 0)
        eng.post(63, 0)
        got = await eng.run(ctx, 300)
        assert set(got[2:]) == {20, 33}
        # a higher level coming back wins from its first grant on
        eng.post(9, 3)
        got = await eng.run(ctx, 100)
        first = got.index(9)
        assert first <= 1 and got[first:first + 3] == [9, 9, 9]
        assert set(got[first + 3:]) == {20, 33}
        # priority 3 counts as HIGH; moving a ring down a level takes effect at once
        await eng.configure(ctx, 33, priority=3)
        got = await eng.run(ctx, 100)
        assert set(got[2:]) == {33}
        await eng.configure(ctx, 33, priority=Priority.LOW)
        got = await eng.run(ctx, 100)
        assert set(got[2:]) == {20, 33}

    run(dut, bench)


def test_round_robin_within_a_level():
    dut = TxScheduler(RINGS)
    eng = Engine(dut)
    high = [3, 17, 40, 63]

    async def bench(ctx):
        await settle_reset(ctx, eng)
        for r in high:
            await eng.configure(ctx, r, priority=Priority.HIGH)
            eng.post(r, None)
        eng.post(0, None)                             # LOW: never served meanwhile
        got = await eng.run(ctx, 400)
        start = got.index(3)
        cycle = got[start:start + 4 * (len(got[start:]) // 4)]
        assert cycle == high * (len(cycle) // 4) and len(cycle) >= 40
        eng.post(17, 0)
        got = await eng.run(ctx, 200)
        start = got.index(3, 2)
        cycle = got[start:start + 3 * (len(got[start:]) // 3)]
        assert cycle == [3, 40, 63] * (len(cycle) // 3)
        # a slow engine (takes a grant now and then) still sees the turns
        got = await eng.run(ctx, 600, accept=lambda c: c % 37 == 0)
        counts = {r: got.count(r) for r in (3, 40, 63)}
        assert max(counts.values()) - min(counts.values()) <= 1 and 0 not in got

    run(dut, bench)


def check_window_bound(times: list[int], length: int, bits_per_s: float, step_bytes: float,
                       ) -> None:
    """Over every window [t_i, t_j] of grant times the bytes granted stay within
    ``rate * window + one frame + two refill steps``."""
    per_clock = bits_per_s / 8 / CLK
    for i in range(len(times)):
        for j in range(i + 1, len(times)):
            sent = (j - i + 1) * length
            allowed = per_clock * (times[j] - times[i]) + length + 2 * step_bytes
            assert sent <= allowed, (i, j, sent, allowed)


def test_maxbw_rates_are_met_and_never_exceeded():
    """Two HIGH rings at 100 and 300 Mb/s with 1000-byte frames and two backlogged unlimited
    LOW rings, 120 000 clocks (0.96 ms): the limited rings get their rate within 2%, never more
    than a frame ahead over any window, and the LOW rings share the rest equally."""
    dut = TxScheduler(RINGS)
    eng = Engine(dut)
    rates = {10: 100e6, 11: 300e6}
    cycles = 120_000

    async def bench(ctx):
        await settle_reset(ctx, eng)
        for r, bps in rates.items():
            await eng.configure(ctx, r, priority=Priority.HIGH, rate=rate_register(bps))
            eng.post(r, None)
        for r in (40, 41):
            eng.post(r, None)
        await eng.run(ctx, cycles)

    run(dut, bench)
    for r, bps in rates.items():
        times = [c for c, g in eng.grants if g == r]
        measured = (len(times) - 1) * 1000 * 8 / ((times[-1] - times[0]) / CLK)
        assert abs(measured / bps - 1) < 0.02, (r, measured)
        step = rate_register(bps) / 2**16
        check_window_bound(times, 1000, register_rate(rate_register(bps)), step)
    low = [sum(1 for _, g in eng.grants if g == r) for r in (40, 41)]
    assert abs(low[0] - low[1]) <= 1 and min(low) > 500


def test_limited_ring_does_not_starve_others_and_rates_change_at_run_time():
    """A rate-limited HIGH ring with endless work leaves the grants in between to a LOW ring;
    raising, lowering and removing its limit takes effect while it runs."""
    dut = TxScheduler(RINGS)
    eng = Engine(dut, latency=10)
    ring, other = 7, 50
    phases = [(400e6, 30_000), (1.2e9, 20_000), (0, 6_000), (200e6, 40_000)]
    spans = []

    async def bench(ctx):
        await settle_reset(ctx, eng)
        await eng.configure(ctx, ring, priority=Priority.HIGH)
        eng.post(ring, None, length=1500)
        eng.post(other, None, length=64)
        for bps, cycles in phases:
            await eng.configure(ctx, ring, rate=rate_register(bps))
            start = eng.cycle
            await eng.run(ctx, cycles)
            spans.append((start + 300, eng.cycle))

    run(dut, bench)
    for (bps, _), (start, end) in zip(phases, spans, strict=True):
        times = [c for c, g in eng.grants if g == ring and start <= c < end]
        others = sum(1 for c, g in eng.grants if g == other and start <= c < end)
        if bps == 0:
            assert others == 0 and len(times) > 800    # unlimited HIGH ring takes everything
            continue
        measured = (len(times) - 1) * 1500 * 8 / ((times[-1] - times[0]) / CLK)
        assert abs(measured / bps - 1) < 0.02, (bps, measured)
        assert others > 500                            # the LOW ring keeps going
        check_window_bound(times, 1500, register_rate(rate_register(bps)),
                           rate_register(bps) / 2**16)


def test_every_grant_needs_its_debit_before_a_limited_ring_goes_again():
    """A limited ring whose debit has not come back is not granted again, however many tokens
    it has; an unlimited ring does not wait for its debits."""
    dut = TxScheduler(RINGS)
    eng = Engine(dut, latency=2000)
    async def bench(ctx):
        await settle_reset(ctx, eng)
        await eng.configure(ctx, 1, rate=rate_register(3e9))
        eng.post(1, None, length=64)
        got = await eng.run(ctx, 1500)
        assert got.count(1) == 1
        await eng.run(ctx, 1000)
        assert sum(1 for _, g in eng.grants if g == 1) == 2
        eng.post(1, 0)
        eng.post(2, None, length=64)
        got = await eng.run(ctx, 500)
        assert got.count(2) > 50

    run(dut, bench)


def test_only_limited_offers_rate_limited_rings_only():
    """With ``only_limited`` (the engine's reserved slot) a backlogged unlimited HIGH ring is
    passed over for a limited LOW ring, which is then taken at its rate; offers say which kind
    of ring they are."""
    dut = TxScheduler(RINGS)
    eng = Engine(dut, latency=10)

    async def bench(ctx):
        await settle_reset(ctx, eng)
        await eng.configure(ctx, 4, priority=Priority.HIGH)
        await eng.configure(ctx, 30, rate=rate_register(1e9))
        eng.post(4, None, length=64)
        eng.post(30, None, length=1000)
        ctx.set(dut.only_limited, 1)
        got = await eng.run(ctx, 20_000)
        assert set(got[1:]) == {30}
        assert eng.last_offer_limited == 1
        times = [c for c, g in eng.grants if g == 30]
        measured = (len(times) - 1) * 1000 * 8 / ((times[-1] - times[0]) / CLK)
        assert abs(measured / 1e9 - 1) < 0.02
        ctx.set(dut.only_limited, 0)
        got = await eng.run(ctx, 300)
        assert set(got[2:]) == {4}
        assert eng.last_offer_limited == 0

    run(dut, bench)


def test_rate_register_conversion():
    assert rate_step() == pytest.approx(238.4185791015625)
    assert rate_step(rings=8) == pytest.approx(8 * 238.4185791015625)
    assert rate_register(0) == 0
    assert rate_register(1) == 1
    assert rate_register(100e6) == 419430
    assert register_rate(rate_register(100e6)) == pytest.approx(100e6, rel=1e-6)
    assert rate_register(1e9, rings=8) == round(1e9 / rate_step(rings=8))
    with pytest.raises(ValueError):
        rate_register(4.1e9)
    with pytest.raises(ValueError):
        rate_register(-1)
    for bad in (2, 48, 512):
        with pytest.raises(ValueError):
            TxScheduler(bad)


class RandomEngine:
    """A random DMA engine for the scoreboard test: random backlogs and frame lengths, random
    accept/stall patterns and ``only_limited`` stretches, debits after random latencies (one per
    clock, in any order across rings), and random level/rate writes while it runs.

    Each phase draws a new traffic pattern; the inputs of every clock go to the gateware and to
    the model alike.
    """

    LENGTHS = (14, 60, 64, 128, 512, 1000, 1500, 1518, 9018)

    def __init__(self, rng: random.Random, rings: int, phase_cycles: int, max_latency: int):
        self.rng = rng
        self.rings = rings
        self.phase_cycles = phase_cycles
        self.max_latency = max_latency
        self.queue = [deque() for _ in range(rings)]     # frame lengths waiting
        self.endless = [False] * rings
        self.debits: list[tuple] = []      # heap: (due, seq, ring, bytes, limited)
        self.seq = 0
        self.configs: deque[Config] = deque()
        self.rate = [0] * rings
        self.counts = dict.fromkeys(["cancels", "config_writes", "prio3", "only_limited"], 0)
        self.phase = -1
        self.new_phase()
        # a rate write while the rate memory is being swept after reset is ignored
        self.configs.appendleft(Config(1, rate=12345))

    def frame(self) -> int:
        rng = self.rng
        return rng.choice(self.LENGTHS) if rng.random() < 0.3 else rng.randint(60, 1518)

    def new_phase(self) -> None:
        rng = self.rng
        self.phase += 1
        self.accept = rng.choice(["always", "random", "bursty", "slow"])
        self.p_accept = rng.uniform(0.1, 0.9)
        self.stall = 0
        self.latency = rng.choice([(1, 4), (4, 40), (20, self.max_latency), (1, self.max_latency)])
        self.p_post = rng.uniform(0.01, 0.08)
        self.only_limited_mode = self.phase % 3 == 2 or rng.random() < 0.15
        self.only_limited = False
        self.p_config = rng.choice([0, 1 / 500, 1 / 60])
        for r in range(self.rings):
            if rng.random() < 0.4:
                self.configs.append(self.random_config(r))
            if rng.random() < 0.1:
                self.queue[r].clear()
        # a few rings with endless work, mostly rate-limited (an unlimited one starves the
        # levels below its own, which is right but covers nothing)
        self.endless = [False] * self.rings
        for r in rng.sample(range(self.rings), rng.randint(0, 3)):
            self.endless[r] = True
            if rng.random() < 0.8:
                self.configs.append(Config(r, rate=self.rate_between(20e6, 2e9)))

    def rate_between(self, low: float, high: float) -> int:
        """A random rate register value, in bit/s (the largest rate is 4 Gb/s * 64 / rings)."""
        top = register_rate((1 << RATE_BITS) - 1, rings=self.rings)
        return rate_register(self.rng.uniform(low, min(high, top)), rings=self.rings)

    def random_config(self, ring: int) -> Config:
        rng = self.rng
        priority = rng.choice([0, 1, 2, 3]) if rng.random() < 0.8 else None
        rate = None
        if rng.random() < 0.7:
            kind = rng.random()
            if kind < 0.35:
                rate = 0
            elif kind < 0.8:
                rate = self.rate_between(20e6, 3.9e9)
            elif kind < 0.9:
                rate = rng.randint(1, 64)                # a few bytes per refill
            else:
                rate = (1 << RATE_BITS) - 1
        return Config(ring, priority, rate)

    def inputs(self, cycle: int, offered: int | None) -> dict:
        """This clock's inputs; ``offered`` is the ring offered in the clock before."""
        rng = self.rng
        if cycle and cycle % self.phase_cycles == 0:
            self.new_phase()
        if offered is not None and not self.endless[offered] and rng.random() < 0.02:
            self.queue[offered].clear()          # work gone while offered: the take is void
        if rng.random() < self.p_post:
            r = rng.randrange(self.rings)
            self.queue[r].extend(self.frame() for _ in range(rng.randint(1, 8)))
        if rng.random() < 0.0005:
            self.queue[rng.randrange(self.rings)].clear()
        work = sum(1 << r for r in range(self.rings) if self.queue[r] or self.endless[r])
        if self.accept == "always":
            take = True
        elif self.accept == "random":
            take = rng.random() < self.p_accept
        elif self.accept == "slow":
            take = rng.random() < 0.03
        else:
            if self.stall == 0 and rng.random() < 0.02:
                self.stall = rng.randint(1, 300)
            self.stall = max(0, self.stall - 1)
            take = self.stall == 0
        if self.only_limited_mode and rng.random() < 0.02:
            self.only_limited = not self.only_limited
        self.counts["only_limited"] += self.only_limited
        debit = None
        if self.debits and self.debits[0][0] <= cycle:
            _, _, r, length, limited = heapq.heappop(self.debits)
            debit = (r, length, limited)
        if rng.random() < self.p_config:
            self.configs.append(self.random_config(rng.randrange(self.rings)))
        config = self.configs.popleft() if self.configs else None
        if config is not None:
            self.counts["config_writes"] += 1
            self.counts["prio3"] += config.priority == 3
        return {"work": work, "take": take, "only_limited": self.only_limited,
                "debit": debit, "config": config}

    def taken(self, cycle: int, ring: int, limited: bool) -> int:
        """The engine took ``ring``'s offer (``limited``: as it said): the bytes it will debit
        (0: nothing was there)."""
        if self.endless[ring]:
            length = self.frame()
        elif self.queue[ring]:
            length = self.queue[ring].popleft()
        else:
            length = 0
            self.counts["cancels"] += 1
        low, high = self.latency
        self.seq += 1
        heapq.heappush(self.debits, (cycle + self.rng.randint(low, high), self.seq, ring, length,
                                     limited))
        return length


class ScriptedEngine:
    """An engine following a script for the corner cases random traffic seldom reaches.

    ``script[cycle]`` changes ``work``, ``take``, ``only_limited``, the debit ``latency`` and
    frame ``length`` from that clock on, or writes a ``config`` in that clock. Every take is
    debited ``latency`` clocks later.
    """

    def __init__(self, script: dict[int, dict]):
        self.script = script
        self.now = {"work": 0, "take": True, "only_limited": False, "latency": 10, "length": 64}
        self.debits: list[tuple] = []         # heap: (due, ring, bytes, limited)
        self.takes: list[tuple[int, int]] = []             # (cycle, ring)
        self.debited: list[tuple[int, int]] = []           # (cycle, ring)
        self.max_latency = 0

    def inputs(self, cycle: int, offered: int | None) -> dict:
        changes = dict(self.script.get(cycle, {}))
        config = changes.pop("config", None)
        self.now.update(changes)
        self.max_latency = max(self.max_latency, self.now["latency"])
        debit = None
        if self.debits and self.debits[0][0] <= cycle:
            _, ring, length, limited = heapq.heappop(self.debits)
            debit = (ring, length, limited)
            self.debited.append((cycle, ring))
        return {"work": self.now["work"], "take": self.now["take"],
                "only_limited": self.now["only_limited"], "debit": debit, "config": config}

    def taken(self, cycle: int, ring: int, limited: bool) -> int:
        self.takes.append((cycle, ring))
        heapq.heappush(self.debits, (cycle + self.now["latency"], ring, self.now["length"],
                                     limited))
        return self.now["length"]


def run_scoreboard(eng, rings: int, cycles: int) -> tuple[TxSchedulerModel, dict]:
    """Drive the gateware and the model with the inputs ``eng`` gives every clock and compare
    every clock's offer (valid, ring, limited) and the rate read-back.

    Returns the model and what was seen: the mismatches (``(cycle, what, got, want)``, the
    first 20, then ``None`` for each further one), the offers, per ring its takes as
    ``(cycle, bytes, rate, clock of the last rate write, limited)``, the largest token count.
    """
    dut = TxScheduler(rings)
    model = TxSchedulerModel(rings)
    seen = {"mismatches": [], "offers": 0, "takes": [[] for _ in range(rings)],
            "rate_since": [0] * rings, "max_tokens": 0}

    def check(cycle, what, got, want):
        if got != want:
            mismatches = seen["mismatches"]
            mismatches.append((cycle, what, got, want) if len(mismatches) < 20 else None)

    async def bench(ctx):
        driven = {}

        def drive(signal, value):
            if driven.get(id(signal)) != value:
                ctx.set(signal, value)
                driven[id(signal)] = value

        cfg = dut.cfg
        cfg_ring, offered, want_rdata = 0, None, 0
        for cycle in range(cycles):
            i = eng.inputs(cycle, offered)
            drive(dut.work, i["work"])
            drive(dut.take, int(i["take"]))
            drive(dut.only_limited, int(i["only_limited"]))
            drive(dut.debit.valid, int(i["debit"] is not None))
            if i["debit"] is not None:
                ring, length, limited = i["debit"]
                ctx.set(dut.debit.payload, {"ring": ring, "length": length, "limited": limited})
            c = i["config"]
            drive(cfg.priority_we, int(c is not None and c.priority is not None))
            drive(cfg.rate_we, int(c is not None and c.rate is not None))
            if c is not None:
                cfg_ring = c.ring
                drive(cfg.ring, c.ring)
                drive(cfg.priority, getattr(c.priority, "value", c.priority or 0))
                drive(cfg.rate, c.rate or 0)
                if c.rate is not None and not model.sweeping:
                    seen["rate_since"][c.ring] = cycle
            last_rdata, want_rdata = want_rdata, model.rate[cfg_ring]
            want = model.step(**i)
            _, _, valid, ring, limited, rdata = await ctx.tick().sample(
                dut.offer_valid, dut.offer.ring, dut.offer.limited, cfg.rate_rdata)
            got = (ring, bool(limited)) if valid else None
            offered = ring if valid else None
            check(cycle, "offer", got, want and (want.ring, want.limited))
            if cycle > 0:           # the rate of the ring presented in the clock before
                check(cycle, "rate_rdata", rdata, last_rdata)
            seen["offers"] += valid
            seen["max_tokens"] = max(seen["max_tokens"], *model.tokens)
            if valid and i["take"]:
                length = eng.taken(cycle, ring, bool(limited))
                seen["takes"][ring].append((cycle, length, model.rate[ring],
                                            seen["rate_since"][ring], bool(limited)))

    run(dut, bench)
    return model, seen


@pytest.mark.parametrize("seed, rings, phases, phase_cycles", [
    (1, 8, 10, 4_000),
    (2, 64, 10, 4_000),
])
def test_random_traffic_against_the_model(seed, rings, phases, phase_cycles):
    """Constrained-random levels, rates (unlimited, tiny, up to the largest), backlogs, frame
    lengths, accept/stall patterns, ``only_limited`` stretches, debit latencies and run-time
    reconfiguration: every clock's offer equals the model's (so every grant does), the rate
    bound holds over every window of constant rate, and the run covered what it should."""
    start = time.monotonic()
    eng = RandomEngine(random.Random(seed), rings, phase_cycles, max_latency=400)
    model, seen = run_scoreboard(eng, rings, phases * phase_cycles)
    elapsed = time.monotonic() - start
    assert seen["mismatches"] == [], seen["mismatches"][:20]

    # the documented bound, on the gateware's takes: a limited ring at a constant rate, from
    # when takes and debits made before the rate was written can no longer matter
    settle = eng.max_latency + rings + 8
    checked = 0
    for takes in seen["takes"]:
        segments: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for cycle, length, rate, since, limited in takes:
            if rate and limited and cycle >= since + settle:
                segments.setdefault((since, rate), []).append((cycle, length))
        for (_, rate), seg in segments.items():
            assert max_window_excess(seg, rate, rings=rings) <= 0, (rate, seg)
            checked += len(seg)

    s, counts = model.stats, eng.counts
    limited_rings = {r for r, takes in enumerate(seen["takes"]) if any(t[4] for t in takes)}
    never_throttled = {r for r in limited_rings if not model.throttled_rings >> r & 1}
    summary = {"cycles": model.cycle, "seconds": round(elapsed, 1), "offers": seen["offers"],
               "takes": s["takes"], "limited_takes": s["limited_takes"],
               "grants": {p.name: n for p, n in model.grants.items()},
               "rr_wraps": {p.name: n for p, n in model.wraps.items()},
               "limited_rings": len(limited_rings),
               "limited_rings_never_throttled": len(never_throttled),
               "clocks_throttled_by_tokens": s["throttled_tokens"],
               "clocks_throttled_held": s["throttled_held"],
               "window_checked_takes": checked, **counts,
               "debits_lost": s["debits_lost"], "debits_lost_limited": s["debits_lost_limited"],
               "rate_writes_ignored": s["rate_writes_ignored"]}
    print(summary)
    assert all(n > 20 for n in model.grants.values()), summary
    assert all(n > 0 for n in model.wraps.values()), summary
    assert len(limited_rings) >= 3 and len(never_throttled) <= len(limited_rings) // 8, summary
    assert s["throttled_held"] > 0 and s["limited_takes"] > 50, summary
    assert checked > 30, summary
    assert counts["cancels"] > 0 and counts["only_limited"] > 0 and counts["prio3"] > 0, summary
    assert s["rate_writes_ignored"] >= 1, summary


def test_reconfiguration_corners_against_the_model():
    """Corners random traffic seldom reaches, scored clock by clock against the model.

    * A limited ring at the largest rate held for longer than 256 refills: its tokens stop at
      the ceiling (65536 bytes), which shows in what a 65535-byte debit leaves for the frames
      after it.
    * A limited ring made unlimited while its frame is held, taken as unlimited, then limited
      again: that take released the hold, so it is taken again before any debit is back, and
      of the debits of its unlimited frames arriving closer together than the walker's round
      only some are charged (the model counts them as ``debits_lost``).
    """
    top = (1 << RATE_BITS) - 1
    ceiling = ScriptedEngine({        # 8 rings: the next take comes before the next refill
        8: {"config": Config(1, rate=top)},
        10: {"work": 0b10, "length": 65535, "latency": 2200},
        20: {"length": 700, "latency": 1},
    })
    model, seen = run_scoreboard(ceiling, 8, 2600)
    assert seen["mismatches"] == [], seen["mismatches"]
    assert seen["max_tokens"] == 1 << 32

    hold = ScriptedEngine({
        10: {"config": Config(2, rate=1 << 20)},
        14: {"work": 0b100, "length": 64, "latency": 300},
        20: {"config": Config(2, rate=0)},
        76: {"take": False},
        86: {"config": Config(2, rate=1 << 20)},
        96: {"take": True},
    })
    model, seen = run_scoreboard(hold, 8, 700)      # a visit every 8 clocks, a take every 5
    assert seen["mismatches"] == [], seen["mismatches"]
    first_debit = hold.debited[0][0]
    limited = [limited for cycle, _, _, _, limited in seen["takes"][2] if cycle < first_debit]
    assert limited[0] and not limited[1] and limited[-1] and len(limited) > 3
    assert model.stats["debits_lost_limited"] > 0

"""TxScheduler in amaranth.sim: strict priority, round robin, maxbw token buckets."""

import heapq

import pytest
from sim_csr import run

from crossnic.gateware.layouts import Priority
from crossnic.gateware.tx_scheduler import (
    TxScheduler,
    rate_register,
    rate_step,
    register_rate,
)

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
        self.debits: list[tuple[int, int, int, int]] = []     # heap: (due, seq, ring, len)
        self._driven: dict[str, int] = {}

    def _set(self, ctx, name: str, signal, value) -> None:
        """Drive ``signal`` only when its value changes (the simulation runs faster)."""
        if self._driven.get(name) != value:
            ctx.set(signal, value)
            self._driven[name] = value

    def post(self, ring: int, frames: int | None, length: int = 1000) -> None:
        self.backlog[ring] = frames
        self.length[ring] = length

    def _debit(self, due: int, ring: int, length: int) -> None:
        heapq.heappush(self.debits, (due, len(self.grants) + self.cancels, ring, length))

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
            _, _, ring, length = heapq.heappop(self.debits)
            self._set(ctx, "debit", dut.debit.valid, 1)
            ctx.set(dut.debit.payload, {"ring": ring, "length": length})
        else:
            self._set(ctx, "debit", dut.debit.valid, 0)
        self._set(ctx, "take", dut.take, int(accept))
        _, _, valid, offer = await ctx.tick().sample(dut.offer_valid, dut.offer)
        ring = offer.ring
        self.last_offer_limited = offer.limited
        if valid and accept:
            left = self.backlog.get(ring, 0)
            if left == 0:
                # the offer was made before the work went away: the engine finds nothing and
                # answers at once with a zero debit
                self.cancels += 1
                self._debit(self.cycle + 2, ring, 0)
            else:
                self.grants.append((self.cycle, ring))
                if left is not None:
                    self.backlog[ring] = left - 1
                self._debit(self.cycle + self.latency, ring, self.length[ring])
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

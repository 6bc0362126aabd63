import pytest
from amaranth.sim import Simulator

from crossnic.gateware.csr import Counter, CounterBank


async def _read(ctx, dut, addr):
    ctx.set(dut.csr.addr, addr)
    ctx.set(dut.csr.r_stb, 1)
    await ctx.tick()
    ctx.set(dut.csr.r_stb, 0)
    await ctx.tick().repeat(CounterBank.read_latency - 1)
    return ctx.get(dut.csr.r_data)


def _sim(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_register_allocation():
    dut = CounterBank([Counter("bytes", "b", width=64), Counter("drops", "d", width=32)])
    assert [(r.name, r.addr, r.part) for r in dut.registers] == [
        ("bytes", 0, "lo"), ("bytes", 1, "hi"), ("drops", 2, "")]


def test_wide_counter_reads_atomically_and_clears():
    dut = CounterBank([Counter("bytes", "b", width=40, inc_width=16), Counter("d", "d")])

    async def bench(ctx):
        ctx.set(dut.inc.bytes, 0xFFFF)
        for _ in range(0x10001):     # 0xFFFF * 0x10001 = 0xFFFF_FFFF
            await ctx.tick()
        ctx.set(dut.inc.bytes, 1)    # carries into bit 32 while we read
        lo = await _read(ctx, dut, 0)
        hi = await _read(ctx, dut, 1)
        assert hi << 32 | lo == 0xFFFF_FFFF   # a torn read would give 0x1_FFFF_FFFF
        lo = await _read(ctx, dut, 0)
        hi = await _read(ctx, dut, 1)
        assert hi << 32 | lo == 0xFFFF_FFFF + 2 * CounterBank.read_latency   # two reads later
        ctx.set(dut.inc.bytes, 0)
        ctx.set(dut.csr.addr, 0)
        ctx.set(dut.csr.w_stb, 1)
        await ctx.tick()
        ctx.set(dut.csr.w_stb, 0)
        await ctx.tick()
        assert await _read(ctx, dut, 0) == 0
        assert await _read(ctx, dut, 3) == 0   # a 32-bit counter has no high word
        assert await _read(ctx, dut, 7) == 0   # unmapped: zero, no hang

    _sim(dut, bench)


def test_duplicate_names_rejected():
    with pytest.raises(ValueError, match="unique"):
        CounterBank([Counter("a", "a"), Counter("a", "b")])


BANKS = {
    "four": [Counter("a", "a"), Counter("b", "b", width=64, inc_width=16),
             Counter("c", "c", width=20, inc_width=4), Counter("d", "d", width=32)],
    "one": [Counter("b", "b", width=64, inc_width=16)],
    "two": [Counter("a", "a", width=40, inc_width=3), Counter("d", "d", width=32)],
}


@pytest.mark.parametrize("bank", list(BANKS))
def test_random_increments_clears_and_reads_match_a_model(bank):
    """The RAM-backed bank against plain Python counters: increments every clock, clears and
    reads at random moments (including a clear of the counter the sweep is moving)."""
    import random
    counters = BANKS[bank]
    dut = CounterBank(counters)
    rng = random.Random(7)

    async def bench(ctx):
        model = {c.name: 0 for c in counters}
        for _ in range(600):
            incs = {c.name: rng.randrange(1 << c.inc_width) for c in counters}
            for name, v in incs.items():
                ctx.set(getattr(dut.inc, name), v)
            k = rng.randrange(len(counters))
            c = counters[k]
            action = rng.random()
            if action < 0.1:                        # clear: that counter loses this clock's inc
                ctx.set(dut.csr.addr, 2 * k)
                ctx.set(dut.csr.w_stb, 1)
                await ctx.tick()
                ctx.set(dut.csr.w_stb, 0)
                for name, v in incs.items():
                    model[name] = 0 if name == c.name else model[name] + v
            elif action < 0.4:                      # read lo (and hi), value as of the r_stb edge
                ctx.set(dut.csr.addr, 2 * k)
                ctx.set(dut.csr.r_stb, 1)
                await ctx.tick()
                expect = model[c.name] % (1 << c.width)
                for name, v in incs.items():
                    model[name] += v
                ctx.set(dut.csr.r_stb, 0)
                for name in incs:
                    ctx.set(getattr(dut.inc, name), 0)
                await ctx.tick()
                got = ctx.get(dut.csr.r_data)
                if c.width > 32:
                    ctx.set(dut.csr.addr, 2 * k + 1)
                    await ctx.tick().repeat(2)
                    got |= ctx.get(dut.csr.r_data) << 32
                assert got == expect, (c.name, got, expect)
            else:
                await ctx.tick()
                for name, v in incs.items():
                    model[name] += v

    _sim(dut, bench)

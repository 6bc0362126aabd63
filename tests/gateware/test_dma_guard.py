"""DmaGuard in amaranth.sim: a VF's DMA reaches only its windows; refusals answer in order."""

import random
from collections import deque
from functools import partial

from amaranth.sim import Simulator

from crossnic.gateware.dma_guard import RESP_SLVERR, DmaGuard

PAGE = 4096
VFS = 4
# VF 1 owns rings 8..11 with pages [0x10, 0x14) and [0x40, 0x41); VF 2 (rings 12..13) is
# disabled but its rings stay held to its (empty) windows; VF 0 owns rings 4..5 and no memory
# at all; VF 3 owns no rings, so ring 16 is the PF's.
GRANTS = [
    dict(enable=1, ring_base=4, ring_count=2, windows=[(0, 0), (5, 5)]),
    dict(enable=1, ring_base=8, ring_count=4, windows=[(0x10, 0x14), (0x40, 0x41)]),
    dict(enable=0, ring_base=12, ring_count=2, windows=[(0, 0), (0, 0)]),
    dict(enable=1, ring_base=16, ring_count=0, windows=[(0, 1 << 40), (0, 0)]),
]


def allowed(ring: int, addr: int, nbytes: int) -> bool:
    for g in GRANTS:
        if g["ring_base"] <= ring < g["ring_base"] + g["ring_count"]:
            end = addr + nbytes - 1
            return end < 1 << 64 and any(b * PAGE <= addr and end < lim * PAGE
                                         for b, lim in g["windows"])
    return True


def owner(ring: int) -> int | None:
    for v, g in enumerate(GRANTS):
        if g["ring_base"] <= ring < g["ring_base"] + g["ring_count"]:
            return v
    return None


def run(requests, *, seed=1, stall=0.3):
    """Issue ``requests`` (kind, ring, addr, beats) through the guard to a memory; return the
    engine's responses in order, the memory's writes, and the refusal pulses per VF."""
    rng = random.Random(seed)
    dut = DmaGuard(vfs=VFS, ring_bits=6)
    memory: dict[int, int] = {}
    reads = [r for r in requests if r[0] == "r"]
    writes = [r for r in requests if r[0] == "w"]
    got_r, got_b, denied = [], [], [0] * VFS
    done = {"r": False, "b": False}

    async def grants(ctx):
        for v, g in enumerate(GRANTS):
            gr = dut.grants[v]
            ctx.set(gr.enable, g["enable"])
            ctx.set(gr.ring_base, g["ring_base"])
            ctx.set(gr.ring_count, g["ring_count"])
            for k, (b, lim) in enumerate(g["windows"]):
                ctx.set(gr.windows[k].base, b)
                ctx.set(gr.windows[k].limit, lim)
        async for _, _, r, w in ctx.tick().sample(dut.denied_r, dut.denied_w):
            for v in range(VFS):
                denied[v] += (r >> v & 1) + (w >> v & 1)

    async def issue(ctx, p, items):
        await ctx.tick().repeat(3)
        for n, (_, ring, addr, beats) in enumerate(items):
            ctx.set(getattr(dut.i, f"{p}valid"), 1)
            ctx.set(getattr(dut.i, f"{p}addr"), addr)
            ctx.set(getattr(dut.i, f"{p}len"), beats - 1)
            ctx.set(getattr(dut.i, f"{p}size"), 3)
            ctx.set(getattr(dut.i, f"{p}id"), n & 1)
            ctx.set(getattr(dut.i, f"{p}user"), ring)
            await ctx.tick().until(getattr(dut.i, f"{p}ready"))
            ctx.set(getattr(dut.i, f"{p}valid"), 0)

    async def wdata(ctx):
        for n, (_, _, _, beats) in enumerate(writes):
            for b in range(beats):
                ctx.set(dut.i.wvalid, 1)
                ctx.set(dut.i.wdata, n << 16 | b)
                ctx.set(dut.i.wstrb, 0xFF)
                ctx.set(dut.i.wlast, b == beats - 1)
                await ctx.tick().until(dut.i.wready)
            ctx.set(dut.i.wvalid, 0)

    async def collect(ctx, p, count, out):
        for _ in range(20_000):
            if len(out) == count:
                break
            ctx.set(getattr(dut.i, f"{p}ready"), rng.random() > stall)
            if p == "r":
                _, _, valid, ready, resp, last, rdata = await ctx.tick().sample(
                    dut.i.rvalid, dut.i.rready, dut.i.rresp, dut.i.rlast, dut.i.rdata)
                if valid and ready:
                    out.append((resp, last, rdata))
            else:
                _, _, valid, ready, resp = await ctx.tick().sample(
                    dut.i.bvalid, dut.i.bready, dut.i.bresp)
                if valid and ready:
                    out.append(resp)
        done[p] = True

    async def memory_reads(ctx):
        pending = deque()
        while not done["r"]:
            ctx.set(dut.o.arready, rng.random() > stall)
            if pending:
                addr, left = pending[0]
                ctx.set(dut.o.rvalid, 1)
                ctx.set(dut.o.rdata, memory.get(addr, 0xA5A5))
                ctx.set(dut.o.rlast, left == 1)
            else:
                ctx.set(dut.o.rvalid, 0)
            _, _, arv, arr, araddr, arlen, rv, rr = await ctx.tick().sample(
                dut.o.arvalid, dut.o.arready, dut.o.araddr, dut.o.arlen, dut.o.rvalid,
                dut.o.rready)
            if rv and rr:
                addr, left = pending.popleft()
                if left > 1:
                    pending.appendleft((addr + 8, left - 1))
            if arv and arr:
                pending.append((araddr, arlen + 1))

    async def memory_writes(ctx):
        aws, bs = deque(), deque()
        while not done["b"]:
            ctx.set(dut.o.awready, rng.random() > stall)
            ctx.set(dut.o.wready, bool(aws) and rng.random() > stall)
            ctx.set(dut.o.bvalid, bool(bs))
            _, _, awv, awr, awaddr, awlen, wv, wr, wdata, wlast, bv, br = \
                await ctx.tick().sample(dut.o.awvalid, dut.o.awready, dut.o.awaddr,
                                        dut.o.awlen, dut.o.wvalid, dut.o.wready, dut.o.wdata,
                                        dut.o.wlast, dut.o.bvalid, dut.o.bready)
            if bv and br:
                bs.popleft()
            if wv and wr:
                addr, left = aws[0]
                memory[addr] = wdata
                assert wlast == (left == 1)
                if left == 1:
                    aws.popleft()
                    bs.append(0)
                else:
                    aws[0] = (addr + 8, left - 1)
            if awv and awr:
                aws.append((awaddr, awlen + 1))

    sim = Simulator(dut)
    sim.add_clock(8e-9)
    sim.add_process(grants)
    sim.add_testbench(partial(issue, p="ar", items=reads))
    sim.add_testbench(partial(issue, p="aw", items=writes))
    sim.add_testbench(wdata)
    sim.add_testbench(partial(collect, p="r", count=sum(r[3] for r in reads), out=got_r))
    sim.add_testbench(partial(collect, p="b", count=len(writes), out=got_b))
    sim.add_process(memory_reads)
    sim.add_process(memory_writes)
    sim.run()
    assert done["r"] and done["b"], "the guard hung"
    return got_r, got_b, memory, denied


def test_vf_dma_is_confined_to_its_windows():
    cases = [
        ("w", 1, 0x9000, 2),              # PF ring: anywhere
        ("w", 8, 0x10000, 4),             # VF 1 inside window 0
        ("w", 9, 0x13FF8, 1),             # last 8 bytes of window 0
        ("w", 9, 0x13FF8, 2),             # runs past the limit
        ("w", 10, 0x0FFF8, 2),            # starts before the base
        ("w", 11, 0x40800, 1),            # inside window 1
        ("w", 4, 0x5000, 1),              # VF 0: empty windows
        ("w", 12, 0x700000, 1),           # a disabled VF's ring: still held to its windows
        ("w", 8, (1 << 64) - 8, 2),       # wraps past 2**64
        ("w", 16, 0x1000, 1),             # a ring of a VF with no rings: the PF's
    ]
    reads = [("r", *c[1:]) for c in cases]
    got_r, got_b, memory, denied = run(cases + reads)

    expect_b = [0 if allowed(r, a, 8 * n) else RESP_SLVERR for _, r, a, n in cases]
    assert got_b == expect_b
    written = {a + 8 * k for _, r, a, n in cases if allowed(r, a, 8 * n) for k in range(n)}
    assert set(memory) == written
    # Reads: passed ones return what was written (or the memory's filler), refused ones zeros
    # with SLVERR, every burst the length asked and in order.
    beats = iter(got_r)
    for _, ring, addr, n in reads:
        for k in range(n):
            resp, last, rdata = next(beats)
            assert last == (k == n - 1)
            if allowed(ring, addr, 8 * n):
                assert resp == 0
            else:
                assert (resp, rdata) == (RESP_SLVERR, 0)
    refused = [owner(r) for _, r, a, n in cases if not allowed(r, a, 8 * n)]
    assert denied == [2 * refused.count(v) for v in range(VFS)]   # writes and reads


def test_random_traffic_keeps_order_under_backpressure():
    rng = random.Random(7)
    cases = []
    for _ in range(60):
        ring = rng.choice([0, 3, 4, 8, 9, 11, 12])
        addr = rng.choice([0x10000, 0x13000, 0x40000, 0x5000, 0x80000]) + 8 * rng.randrange(512)
        cases.append((rng.choice("rw"), ring, addr, rng.randrange(1, 9)))
    got_r, got_b, memory, denied = run(cases, seed=3, stall=0.5)
    writes = [c for c in cases if c[0] == "w"]
    assert got_b == [0 if allowed(r, a, 8 * n) else RESP_SLVERR for _, r, a, n in writes]
    resp = [g[0] for g in got_r]
    expect = [0 if allowed(r, a, 8 * n) else RESP_SLVERR
              for kind, r, a, n in cases if kind == "r" for _ in range(n)]
    assert resp == expect
    assert all(not (8 <= r < 12) or allowed(r, a, 8 * n) or
               all(a + 8 * k not in memory for k in range(n)) for _, r, a, n in writes)
    assert sum(denied) == sum(not allowed(r, a, 8 * n) for _, r, a, n in cases)

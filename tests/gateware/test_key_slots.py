"""KeySlots in amaranth.sim: store, read back with kind, zeroize one, zeroize all, and the sweep
after reset that leaves no secret from before it."""

from amaranth import ClockDomain, Module
from amaranth.sim import Simulator

from crossnic.gateware.crypto.key_slots import KeySlots, SlotKind


async def write(ctx, dut, slot, kind, value):
    ctx.set(dut.write.payload, {"slot": slot, "kind": kind, "data": value})
    ctx.set(dut.write.valid, 1)
    await ctx.tick().until(dut.write.ready)
    ctx.set(dut.write.valid, 0)


async def read(ctx, dut, slot):
    ctx.set(dut.read_slot.payload, slot)
    ctx.set(dut.read_slot.valid, 1)
    await ctx.tick().until(dut.read_slot.ready)
    ctx.set(dut.read_slot.valid, 0)
    ctx.set(dut.read_data.ready, 1)
    while True:
        _, _, valid, payload = await ctx.tick().sample(dut.read_data.valid, dut.read_data.payload)
        if valid:
            ctx.set(dut.read_data.ready, 0)
            return SlotKind(payload.kind), payload.data


def run(testbench, slots=8):
    """``testbench(ctx, dut, rst)``, with the sync domain's reset as a signal it can drive."""
    dut = KeySlots(slots)
    m = Module()
    m.domains.sync = cd = ClockDomain()
    m.submodules.dut = dut

    async def bench(ctx):
        await testbench(ctx, dut, cd.rst)

    sim = Simulator(m)
    sim.add_clock(1e-8, domain="sync")
    sim.add_testbench(bench)
    sim.run()


def test_store_read_zeroize():
    async def tb(ctx, dut, rst):
        await ctx.tick().until(dut.ready)          # the sweep after reset
        secret = (1 << 255) | 0x1234
        await write(ctx, dut, 3, SlotKind.SECRET, secret)
        await write(ctx, dut, 4, SlotKind.AEAD_KEY, 0xABCD)
        assert await read(ctx, dut, 3) == (SlotKind.SECRET, secret)
        assert await read(ctx, dut, 4) == (SlotKind.AEAD_KEY, 0xABCD)
        assert await read(ctx, dut, 5) == (SlotKind.EMPTY, 0)
        assert await read(ctx, dut, 200) == (SlotKind.EMPTY, 0)     # no such slot
        await write(ctx, dut, 3, SlotKind.EMPTY, secret)             # zeroize one
        assert await read(ctx, dut, 3) == (SlotKind.EMPTY, 0)
        assert await read(ctx, dut, 4) == (SlotKind.AEAD_KEY, 0xABCD)
        ctx.set(dut.zeroize_all, 1)
        await ctx.tick()
        ctx.set(dut.zeroize_all, 0)
        assert not ctx.get(dut.ready)
        assert await read(ctx, dut, 4) == (SlotKind.EMPTY, 0)        # empty during the sweep
        await ctx.tick().until(dut.ready)
        assert await read(ctx, dut, 4) == (SlotKind.EMPTY, 0)
        assert [ctx.get(dut.data[k]) for k in range(8)] == [0] * 8
    run(tb)


def test_reset_sweeps_the_memory():
    """A reset clears the kinds at once; the sweep then overwrites the block RAM, so a slot
    written again later cannot show bytes from before the reset."""
    async def tb(ctx, dut, rst):
        await ctx.tick().until(dut.ready)
        for k in range(8):
            await write(ctx, dut, k, SlotKind.SECRET, 0x5EC12E7 << k)
        assert ctx.get(dut.data[5]) == 0x5EC12E7 << 5
        ctx.set(rst, 1)
        await ctx.tick()
        ctx.set(rst, 0)
        assert await read(ctx, dut, 2) == (SlotKind.EMPTY, 0)        # at once
        await ctx.tick().until(dut.ready)
        assert [ctx.get(dut.data[k]) for k in range(8)] == [0] * 8
    run(tb)

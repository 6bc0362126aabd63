"""MacTable in amaranth.sim: matching, counters, programming under traffic, bad register writes."""

import random

import pytest
from sim_csr import CsrPort, run
from streams import request

from crossnic.gateware.mac_table import CMD_LOAD, CMD_STORE, MacTable
from crossnic.gateware.regmap import RegisterMap

TABLE = MacTable(32, 6)
REGS = RegisterMap("t", [TABLE.block("mac")])


def _csr(dut) -> CsrPort:
    return CsrPort(dut.csr, dut.block("mac"), MacTable.read_latency)


async def csr_write(ctx, dut, name, value):
    await _csr(dut).write(ctx, name, value)


async def csr_read(ctx, dut, name):
    return await _csr(dut).read(ctx, name)


async def program(ctx, dut, index, mac, vlan, vnic, valid=True):
    await csr_write(ctx, dut, "index", index)
    await csr_write(ctx, dut, "mac_lo", mac & 0xFFFF_FFFF)
    await csr_write(ctx, dut, "mac_hi", mac >> 32)
    await csr_write(ctx, dut, "ctrl", vlan | vnic << 16 | int(valid) << 31)
    await csr_write(ctx, dut, "cmd", CMD_STORE)


async def lookup(ctx, dut, mac, vlan, port=""):
    """One lookup; returns (hit, index, vnic)."""
    r = await request(ctx, getattr(dut, f"{port}lookup"), getattr(dut, f"{port}result"),
                      {"mac": mac, "vlan": vlan})
    return (r.hit, r.index, r.vnic)


def test_exact_match_on_mac_and_vlan():
    dut = MacTable(32, 6)
    macs = [0x020000000000 + k for k in range(32)]

    async def bench(ctx):
        for k, mac in enumerate(macs):
            await program(ctx, dut, k, mac, vlan=k % 3, vnic=(k * 7) % 64)
        for k, mac in enumerate(macs):
            assert await lookup(ctx, dut, mac, k % 3) == (1, k, (k * 7) % 64)
            assert (await lookup(ctx, dut, mac, k % 3 + 1))[0] == 0     # other VLAN: miss
        assert (await lookup(ctx, dut, 0x02FF00000000, 0))[0] == 0      # unknown MAC
        await program(ctx, dut, 5, macs[5], 2, 9, valid=False)          # disabled entry
        assert (await lookup(ctx, dut, macs[5], 2))[0] == 0
        await program(ctx, dut, 9, macs[3], 0, 33)                      # duplicate of entry 3
        assert await lookup(ctx, dut, macs[3], 0) == (1, 3, (3 * 7) % 64)   # lowest wins
        # read an entry back through the staging registers
        await csr_write(ctx, dut, "index", 7)
        await csr_write(ctx, dut, "cmd", CMD_LOAD)
        assert await csr_read(ctx, dut, "mac_lo") == macs[7] & 0xFFFF_FFFF
        assert await csr_read(ctx, dut, "mac_hi") == macs[7] >> 32
        assert await csr_read(ctx, dut, "ctrl") == 7 % 3 | 49 << 16 | 1 << 31
        assert await csr_read(ctx, dut, "cmd") == 0

    run(dut, bench)


def test_hit_and_miss_counters_back_to_back():
    """Lookups back to back, many on the same entry in a row: every hit is counted."""
    dut = MacTable(8, 4)
    rng = random.Random(4)
    keys = [(0x0A0000000000 + k, 0) for k in range(8)]
    stream = [rng.choice([*keys[:4], (0x0B0000000000, 0)]) for _ in range(300)]
    stream += [keys[2]] * 50                                           # a long run on one entry

    async def bench(ctx):
        for k, (mac, vlan) in enumerate(keys[:4]):
            await program(ctx, dut, k, mac, vlan, k)
        for mac, vlan in stream:
            await lookup(ctx, dut, mac, vlan)
        await ctx.tick().repeat(3)
        for k in range(4):
            await csr_write(ctx, dut, "index", k)
            assert await csr_read(ctx, dut, "hits") == stream.count(keys[k]), k
        assert await csr_read(ctx, dut, "misses") == stream.count((0x0B0000000000, 0))
        await csr_write(ctx, dut, "index", 2)
        await csr_write(ctx, dut, "hits", 0)                            # clear entry 2 only
        await ctx.tick()
        assert await csr_read(ctx, dut, "hits") == 0
        await csr_write(ctx, dut, "index", 1)
        assert await csr_read(ctx, dut, "hits") == stream.count(keys[1])
        await csr_write(ctx, dut, "misses", 0)
        assert await csr_read(ctx, dut, "misses") == 0

    run(dut, bench)


def test_entry_rewritten_under_traffic_is_atomic():
    """Lookups back to back while entry 0 moves from (mac A, vnic 1) to (mac B, vnic 2): A gives
    vnic 1 then misses, B misses then gives vnic 2; nothing in between."""
    dut = MacTable(32, 6)
    mac_a, mac_b = 0x021111111111, 0x022222222222
    seen = []

    async def traffic(ctx):
        for k in range(120):
            mac = mac_a if k % 2 else mac_b
            hit, _, vnic = await lookup(ctx, dut, mac, 0)
            seen.append((mac, hit, vnic))

    async def software(ctx):
        await program(ctx, dut, 0, mac_a, 0, 1)
        await ctx.tick().repeat(1000)
        await program(ctx, dut, 0, mac_b, 0, 2)          # staging then one store

    run(dut, traffic, software)
    a = [(hit, vnic) for mac, hit, vnic in seen if mac == mac_a]
    b = [(hit, vnic) for mac, hit, vnic in seen if mac == mac_b]
    assert set(a) <= {(0, 0), (1, 1), (0, 2)} and set(b) <= {(0, 0), (0, 1), (1, 2)}
    hits_a = [k for k, (h, _) in enumerate(a) if h]
    hits_b = [k for k, (h, _) in enumerate(b) if h]
    assert hits_a and hits_b
    assert hits_a == list(range(hits_a[0], hits_a[-1] + 1))     # A hit in one contiguous run
    assert hits_b[-1] == len(b) - 1 and hits_b == list(range(hits_b[0], len(b)))
    assert all(v == 1 for h, v in a if h) and all(v == 2 for h, v in b if h)


def test_out_of_range_index_is_ignored():
    dut = MacTable(32, 6)

    async def bench(ctx):
        await csr_write(ctx, dut, "index", 5)
        await csr_write(ctx, dut, "index", 1000)
        assert await csr_read(ctx, dut, "index") == 5

    run(dut, bench)


def test_block_describes_the_registers():
    names = [r.register.key for r in REGS.registers()]
    assert names == ["index", "mac_lo", "mac_hi", "ctrl", "cmd", "hits", "misses"]
    ctrl = REGS["mac.ctrl"].register
    assert {f.name: (f.offset, f.width) for f in ctrl.fields} == \
        {"vlan": (0, 12), "vnic": (16, 6), "valid": (31, 1)}
    with pytest.raises(ValueError):
        MacTable(0)
    with pytest.raises(ValueError):
        MacTable(32, 9)


def test_second_port_for_the_transmit_path():
    """tx_lookup answers like lookup, at the same time, and is not counted."""
    dut = MacTable(8, 4, tx_port=True)
    answers = {}

    def port(prefix):
        async def bench(ctx):
            await ctx.tick().repeat(30)                   # after the programming
            answers[prefix] = await lookup(ctx, dut, 0x020000000003, 5, prefix)
        return bench

    async def software(ctx):
        await program(ctx, dut, 3, 0x020000000003, 5, 9)
        await ctx.tick().repeat(60)
        await csr_write(ctx, dut, "index", 3)
        assert await csr_read(ctx, dut, "hits") == 1

    run(dut, software, port(""), port("tx_"))
    assert answers == {"": (1, 3, 9), "tx_": (1, 3, 9)}


def test_lookup_latency():
    """The documented latency: 32 entries in 2 lanes, 18 clocks."""
    dut = MacTable(32, 6)

    async def bench(ctx):
        ctx.set(dut.lookup.valid, 1)
        ctx.set(dut.result.ready, 1)
        await ctx.tick().until(dut.lookup.ready)
        ctx.set(dut.lookup.valid, 0)
        clocks = 0
        while not ctx.get(dut.result.valid):
            await ctx.tick()
            clocks += 1
        assert clocks == dut.latency

    run(dut, bench)

"""LocalIpTable in amaranth.sim: IPv4/IPv6 matching, owners, counters, updates under traffic."""

import ipaddress
import random

import pytest
from sim_csr import CsrPort, run
from streams import request

from crossnic.gateware.local_ip_table import FAMILY_IPV4, FAMILY_IPV6, LocalIpTable


def addr(text: str) -> tuple[int, int]:
    a = ipaddress.ip_address(text)
    return (FAMILY_IPV4 if a.version == 4 else FAMILY_IPV6), int(a)


async def program(ctx, csr, index, family, value, vnic, valid=True, vlan=0):
    await csr.write(ctx, "index", index)
    for k in range(4):
        await csr.write(ctx, f"addr{k}", value >> 32 * k & 0xFFFF_FFFF)
    await csr.write(ctx, "ctrl", family | vnic << 8 | vlan << 16 | int(valid) << 31)
    await csr.write(ctx, "cmd", 1)


async def lookup(ctx, dut, family, value, vlan=0):
    r = await request(ctx, dut.lookup, dut.result,
                      {"family": family, "addr": value, "vlan": vlan})
    return r.hit, r.index, r.vnic


def test_ipv4_and_ipv6_addresses_map_to_their_owner():
    dut = LocalIpTable(16)
    csr = CsrPort(dut.csr, dut.block(), dut.read_latency)
    owned = [("10.0.0.1", 3), ("10.0.0.2", 4), ("2001:db8::1", 3), ("fe80::1", 7),
             ("192.168.1.1", 9)]

    async def bench(ctx):
        for k, (text, vnic) in enumerate(owned):
            await program(ctx, csr, k, *addr(text), vnic)
        for k, (text, vnic) in enumerate(owned):
            assert await lookup(ctx, dut, *addr(text)) == (1, k, vnic)
        # same bits, other family: no match (10.0.0.1 vs ::a00:1)
        assert (await lookup(ctx, dut, FAMILY_IPV6, int(ipaddress.ip_address("10.0.0.1"))))[0] == 0
        assert (await lookup(ctx, dut, *addr("10.0.0.3")))[0] == 0
        assert (await lookup(ctx, dut, 0, int(ipaddress.ip_address("10.0.0.1"))))[0] == 0
        await program(ctx, csr, 1, *addr("10.0.0.2"), 4, valid=False)
        assert (await lookup(ctx, dut, *addr("10.0.0.2")))[0] == 0
        # counters: hits of entry 0 (two lookups), misses of IP lookups only
        await csr.write(ctx, "index", 0)
        assert await csr.read(ctx, "hits") == 1
        assert await csr.read(ctx, "misses") == 3
        await csr.write(ctx, "hits", 0)
        await ctx.tick()
        assert await csr.read(ctx, "hits") == 0
        # load entry 2 back into staging
        await csr.write(ctx, "index", 2)
        await csr.write(ctx, "cmd", 2)
        value = int(ipaddress.ip_address("2001:db8::1"))
        assert [await csr.read(ctx, f"addr{k}") for k in range(4)] == \
            [value >> 32 * k & 0xFFFF_FFFF for k in range(4)]
        assert await csr.read(ctx, "ctrl") == FAMILY_IPV6 | 3 << 8 | 1 << 31
        await csr.write(ctx, "index", 99)                 # out of range: ignored
        assert await csr.read(ctx, "index") == 2

    run(dut, bench)


def test_one_address_in_several_vlans_has_an_owner_in_each():
    """Two networks on one card (virtual wires) may use the same address: an entry matches only
    in its VLAN."""
    dut = LocalIpTable(16)
    csr = CsrPort(dut.csr, dut.block(), dut.read_latency)

    async def bench(ctx):
        await program(ctx, csr, 0, *addr("10.77.0.2"), 5, vlan=4000)
        await program(ctx, csr, 1, *addr("10.77.0.2"), 6, vlan=4001)
        await program(ctx, csr, 2, *addr("10.77.0.2"), 7)
        assert await lookup(ctx, dut, *addr("10.77.0.2"), vlan=4001) == (1, 1, 6)
        assert await lookup(ctx, dut, *addr("10.77.0.2"), vlan=4000) == (1, 0, 5)
        assert await lookup(ctx, dut, *addr("10.77.0.2")) == (1, 2, 7)
        assert (await lookup(ctx, dut, *addr("10.77.0.2"), vlan=10))[0] == 0
        await csr.write(ctx, "index", 1)
        await csr.write(ctx, "cmd", 2)
        assert await csr.read(ctx, "ctrl") == FAMILY_IPV4 | 6 << 8 | 4001 << 16 | 1 << 31

    run(dut, bench)


def test_random_lookups_back_to_back_against_a_dictionary():
    dut = LocalIpTable(16)
    csr = CsrPort(dut.csr, dut.block(), dut.read_latency)
    rng = random.Random(7)
    entries = [(rng.choice([FAMILY_IPV4, FAMILY_IPV6]), rng.getrandbits(32), rng.randrange(256))
               for _ in range(16)]
    entries = [(f, a if f == FAMILY_IPV4 else a << 96 | 0x2001, v) for f, a, v in entries]
    owner = {}
    for k, (f, a, v) in enumerate(entries):
        owner.setdefault((f, a), (k, v))
    keys = [rng.choice([(f, a) for f, a, _ in entries] + [(FAMILY_IPV4, 1), (FAMILY_IPV6, 2)])
            for _ in range(400)]
    got = []

    async def bench(ctx):
        for k, e in enumerate(entries):
            await program(ctx, csr, k, *e)
        for key in keys:
            hit, index, vnic = await lookup(ctx, dut, *key)
            got.append((hit, index, vnic) if hit else (0,))

    run(dut, bench)
    want = [(1, *owner[k]) if k in owner else (0,) for k in keys]
    assert got == want


def test_bad_parameters():
    with pytest.raises(ValueError):
        LocalIpTable(0)
    with pytest.raises(ValueError):
        LocalIpTable(16, 9)

"""FlowTable in amaranth.sim: every flowadm attribute, precedence, counters, programming under
traffic, back-pressure, throughput and random tables, all against a Python reference matcher."""

import ipaddress
import itertools
import random
import re

import pytest
from amaranth.sim import Simulator

from crossnic.gateware.flow_table import (
    CMD_LOAD,
    CMD_STORE,
    FAMILY_IPV4,
    FAMILY_IPV6,
    FAMILY_NONE,
    PRIORITY_HIGH,
    PRIORITY_MEDIUM,
    FlowEntry,
    FlowKey,
    FlowTable,
)
from crossnic.gateware.regmap import Access, RegisterMap

REGS = RegisterMap("t", [FlowTable().block("flow")])
A = {r.register.name: r.addr for r in REGS.registers()}
STAGING = [r.register for r in REGS.registers()
           if r.register.name not in ("index", "cmd", "hits", "misses")]
TCP, UDP, ICMP = 6, 17, 1


def flow(**fields) -> dict:
    """An entry (FlowEntry field names; absent fields 0, ``valid`` 1). ``local_ip`` /
    ``remote_ip`` take a network and set the family; ``transport`` sets proto_en."""
    e = {"valid": 1}
    for attr, side in (("local_ip", "dst"), ("remote_ip", "src")):
        if attr in fields:
            n = ipaddress.ip_network(fields.pop(attr))
            e[f"{side}_ip"], e[f"{side}_prefix"] = int(n.network_address), n.prefixlen
            e["family"], e["family_en"] = (FAMILY_IPV4 if n.version == 4 else FAMILY_IPV6), 1
    if "transport" in fields:
        e["proto"], e["proto_en"] = fields.pop("transport"), 1
    for f in ("local_port", "remote_port"):
        if f in fields:
            side = "dst" if f == "local_port" else "src"
            e[f"{side}_port"], e[f"{side}_port_en"] = fields.pop(f), 1
    e.update(fields)
    return e


def key(src="0.0.0.0", dst="0.0.0.0", proto=TCP, sport=0, dport=0, dscp=0, vnic=0, vlan=0,
        family=None) -> dict:
    """A lookup key; the family follows the addresses unless given."""
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if family is None:
        family = FAMILY_IPV4 if s.version == 4 else FAMILY_IPV6
    return {"vnic": vnic, "vlan": vlan, "family": family, "proto": proto, "src_ip": int(s),
            "dst_ip": int(d), "src_port": sport, "dst_port": dport, "dscp": dscp}


# --- the reference matcher ------------------------------------------------------------------

def matches(e: dict, k: dict) -> bool:
    if not e.get("valid"):
        return False
    for f in ("vnic", "vlan", "proto", "src_port", "dst_port"):
        if e.get(f"{f}_en") and e.get(f, 0) != k[f]:
            return False
    sp, dp, fam = e.get("src_prefix", 0), e.get("dst_prefix", 0), e.get("family", 0)
    if (e.get("family_en") or sp or dp) and fam != k["family"]:
        return False
    width = 32 if fam == FAMILY_IPV4 else 128
    for side, p in (("src", sp), ("dst", dp)):
        p = min(p, width)
        mask = ((1 << p) - 1) << (width - p)
        if (k[f"{side}_ip"] ^ e.get(f"{side}_ip", 0)) & mask:
            return False
    return not (k["dscp"] ^ e.get("dscp", 0)) & e.get("dscp_mask", 0)


def reference(table: dict[int, dict], k: dict) -> tuple[int, int, int, int, int]:
    """(hit, index, ring, priority, drop) of the lowest matching entry."""
    for index in sorted(table):
        e = table[index]
        if matches(e, k):
            return 1, index, e.get("ring", 0), e.get("priority", 0), e.get("drop", 0)
    return 0, 0, 0, 0, 0


# --- bus helpers ----------------------------------------------------------------------------

def entry_words(e: dict) -> dict[str, int]:
    """The staging words of an entry, laid out from the block description (as the driver)."""
    words = {}
    for reg in STAGING:
        if m := re.fullmatch(r"(src_ip|dst_ip)(\d)", reg.name):
            words[reg.name] = e.get(m[1], 0) >> 32 * int(m[2]) & 0xFFFF_FFFF
        else:
            words[reg.name] = sum(e.get(f.name, 0) << f.offset for f in reg.fields)
    return words


async def csr_write(ctx, dut, name, value):
    ctx.set(dut.csr.addr, A[name] if isinstance(name, str) else name)
    ctx.set(dut.csr.w_data, value)
    ctx.set(dut.csr.w_stb, 1)
    await ctx.tick()
    ctx.set(dut.csr.w_stb, 0)


async def csr_read(ctx, dut, name):
    ctx.set(dut.csr.addr, A[name] if isinstance(name, str) else name)
    ctx.set(dut.csr.r_stb, 1)
    await ctx.tick()
    ctx.set(dut.csr.r_stb, 0)
    await ctx.tick().repeat(FlowTable.read_latency - 1)
    return ctx.get(dut.csr.r_data)


async def program(ctx, dut, index, e: dict):
    for name, value in entry_words(e).items():
        await csr_write(ctx, dut, name, value)
    await csr_write(ctx, dut, "index", index)
    await csr_write(ctx, dut, "cmd", CMD_STORE)


async def program_table(ctx, dut, table: dict[int, dict]):
    for index, e in table.items():
        await program(ctx, dut, index, e)


async def load(ctx, dut, index) -> dict[str, int]:
    """Load entry[index] into staging, wait for cmd to read 0, read the staging words."""
    await csr_write(ctx, dut, "index", index)
    await csr_write(ctx, dut, "cmd", CMD_LOAD)
    assert await csr_read(ctx, dut, "cmd") == 1            # under way
    while await csr_read(ctx, dut, "cmd"):
        pass
    return {reg.name: await csr_read(ctx, dut, reg.name) for reg in STAGING}


def run(dut, *benches, background=()):
    sim = Simulator(dut)
    sim.add_clock(8e-9)
    for b in benches:
        sim.add_testbench(b)
    for b in background:
        sim.add_testbench(b, background=True)
    sim.run()


def run_lookups(dut, table, keys, *, stall=0.0, idle=0.0, seed=0, software=None):
    """Program ``table``, stream ``keys`` and collect one result per key (result.ready dropped
    with probability ``stall``, lookups held back with ``idle``). ``software(ctx, state)`` runs
    on the register bus once the table is programmed, alongside the lookups, until
    ``state["done"]`` (all lookups accepted)."""
    rng = random.Random(seed)
    results, state = [], {"go": False, "done": False}

    async def driver(ctx):
        await program_table(ctx, dut, table)
        state["go"] = True
        for k in keys:
            while idle and rng.random() < idle:
                await ctx.tick()
            ctx.set(dut.lookup.payload, k)
            ctx.set(dut.lookup.valid, 1)
            await ctx.tick().until(dut.lookup.ready)
            ctx.set(dut.lookup.valid, 0)
        state["done"] = True

    async def collector(ctx):
        while len(results) < len(keys):
            ready = not (stall and rng.random() < stall)
            ctx.set(dut.result.ready, ready)
            _, _, valid, res = await ctx.tick().sample(dut.result.valid, dut.result.payload)
            if valid and ready:
                results.append((res.hit, res.index, res.ring, res.priority, res.drop))

    async def bus(ctx):
        while not state["go"]:
            await ctx.tick()
        await software(ctx, state)

    run(dut, driver, collector, *([bus] if software else []))
    return results


# --- tests ----------------------------------------------------------------------------------

FLOWADM = {     # index: entry; every flowadm attribute and combination, plus link and family
    0: flow(local_ip="10.0.0.1/32", ring=1),
    1: flow(local_ip="10.1.2.0/24", ring=2, priority=PRIORITY_MEDIUM),
    2: flow(local_ip="2001:db8:1:2::/64", ring=3),
    3: flow(remote_ip="192.168.0.0/16", ring=4),
    4: flow(remote_ip="2001:db8:aa::/48", ring=5),
    5: flow(transport=TCP, local_port=443, ring=6, priority=PRIORITY_HIGH),
    6: flow(transport=UDP, remote_port=53, ring=7),
    7: flow(dscp=46, dscp_mask=0x3F, ring=8, priority=PRIORITY_HIGH),      # EF exactly
    8: flow(dscp=0b101000, dscp_mask=0b111000, ring=9),                     # class selector 5
    9: flow(transport=ICMP, ring=10, drop=1),
    10: flow(vnic=3, vnic_en=1, ring=11),
    11: flow(vlan=100, vlan_en=1, ring=12),
    12: flow(family=FAMILY_IPV6, family_en=1, ring=13),
    13: flow(family=FAMILY_NONE, family_en=1, ring=14),
    14: flow(local_ip="172.16.0.0/12", remote_ip="172.31.0.0/16", ring=15),
    15: flow(transport=TCP, local_port=8080, remote_port=5000, ring=16),
    16: flow(vnic=5, vnic_en=1, vlan=7, vlan_en=1, local_ip="10.9.0.0/24", transport=TCP,
             local_port=22, ring=17),
    17: flow(remote_ip="0.0.0.0/0", ring=18),          # prefix 0: any IPv4 frame
}

FLOWADM_CASES = [   # (key, index it must hit, or None for a miss)
    (key(dst="10.0.0.1"), 0),
    (key(dst="10.0.0.1", proto=UDP, sport=9, dport=9, dscp=3, vnic=1, vlan=2), 0),
    (key(dst="10.0.0.1", src="::", family=FAMILY_IPV6), 12),  # v6 key, low bits alike: no
    (key(dst="10.1.2.200"), 1),
    (key(dst="10.1.3.200"), 17),                               # outside the /24
    (key(dst="10.0.0.2"), 17),
    (key(dst="2001:db8:1:2:ffff::1", src="::1"), 2),
    (key(dst="2001:db8:1:3::1", src="::1"), 12),               # outside the /64
    (key(src="192.168.77.1", dst="8.8.8.8"), 3),
    (key(src="192.169.0.1", dst="8.8.8.8"), 17),
    (key(src="2001:db8:aa:ffff::9", dst="::2"), 4),
    (key(src="2001:db8:ab::9", dst="::2"), 12),
    (key(dst="8.8.8.8", dport=443), 5),
    (key(dst="8.8.8.8", dport=443, proto=UDP), 17),             # transport matters
    (key(dst="8.8.8.8", dport=444), 17),
    (key(dst="8.8.8.8", proto=UDP, sport=53, dport=1024), 6),
    (key(dst="8.8.8.8", proto=UDP, sport=54), 17),
    (key(dst="8.8.8.8", proto=TCP, sport=53), 17),
    (key(dst="8.8.8.8", dscp=46), 7),
    (key(dst="8.8.8.8", dscp=47), 8),                           # 0b101111: class 5
    (key(dst="8.8.8.8", dscp=0b101010), 8),
    (key(dst="8.8.8.8", dscp=0b100000), 17),
    (key(dst="8.8.8.8", proto=ICMP), 9),
    (key(dst="8.8.8.8", vnic=3), 10),
    (key(dst="8.8.8.8", vnic=4, vlan=100), 11),
    (key(src="::1", dst="::2"), 12),
    (key(family=FAMILY_NONE, proto=0), 13),
    (key(family=FAMILY_NONE, proto=0, vnic=3), 10),
    (key(family=3, proto=0), None),                            # nothing matches family 3
    (key(dst="172.20.1.1", src="172.31.9.9"), 14),
    (key(dst="172.20.1.1", src="172.30.9.9"), 17),
    (key(dst="172.32.1.1", src="172.31.9.9"), 17),
    (key(dst="8.8.8.8", dport=8080, sport=5000), 15),
    (key(dst="8.8.8.8", dport=8080, sport=5001), 17),
    (key(dst="10.9.0.77", dport=22, vnic=5, vlan=7), 16),
    (key(dst="10.9.0.77", dport=22, vnic=5, vlan=8), 17),
    (key(dst="10.9.1.77", dport=22, vnic=5, vlan=7), 17),
    (key(dst="10.9.0.77", dport=23, vnic=5, vlan=7), 17),
    (key(dst="10.9.0.77", dport=22, vnic=5, vlan=7, proto=UDP), 17),
]


def test_every_flowadm_attribute():
    """Each case hits the entry written for it (the reference agrees), with its ring,
    priority and drop."""
    dut = FlowTable()
    table = {k + 20: e for k, e in FLOWADM.items()}            # rows 10.., both lanes
    expected = [reference(table, k) for k, _ in FLOWADM_CASES]
    for (_, want), exp in zip(FLOWADM_CASES, expected, strict=True):
        assert exp[:2] == ((1, want + 20) if want is not None else (0, 0))
    assert run_lookups(dut, table, [k for k, _ in FLOWADM_CASES]) == expected
    assert (1, 25, 6, PRIORITY_HIGH, 0) in expected and (1, 29, 10, 0, 1) in expected


def test_lowest_index_wins_across_lanes_and_rows():
    dut = FlowTable()
    k = key(dst="10.0.0.1", dport=80)
    wide, narrow = flow(local_ip="10.0.0.0/8", ring=1), flow(local_ip="10.0.0.1/32", ring=2)
    cases = [
        ({9: wide, 40: narrow}, 9),
        ({40: wide, 9: narrow}, 9),
        ({6: wide, 7: narrow}, 6),                             # same row, lanes 0 and 1
        ({7: wide, 8: narrow}, 7),                             # lane 1 of an earlier row
        ({7: {**wide, "valid": 0}, 8: narrow}, 8),             # disabled entries never match
        ({63: narrow}, 63),                                    # the last entry
        ({0: narrow, 63: wide}, 0),
    ]
    results = []

    async def bench(ctx):
        ctx.set(dut.result.ready, 1)
        for table, _ in cases:
            for index in (0, 6, 7, 8, 9, 40, 63):             # the others stay empty
                await program(ctx, dut, index, table.get(index, {}))
            ctx.set(dut.lookup.payload, k)
            ctx.set(dut.lookup.valid, 1)
            await ctx.tick().until(dut.lookup.ready)
            ctx.set(dut.lookup.valid, 0)
            (r,) = await ctx.tick().sample(dut.result.payload).until(dut.result.valid)
            results.append((r.hit, r.index, r.ring))

    run(dut, bench)
    assert results == [(1, want, cases[n][0][want]["ring"]) for n, (_, want) in enumerate(cases)]


def test_miss_returns_zeros():
    dut = FlowTable()
    table = {3: flow(transport=TCP, local_port=22, ring=9, priority=2, drop=1)}
    got = run_lookups(dut, table, [key(dst="1.2.3.4", dport=22), key(dst="1.2.3.4", dport=21)])
    assert got == [(1, 3, 9, 2, 1), (0, 0, 0, 0, 0)]


def test_hit_counters_misses_and_clear():
    """Lookups every clock (entries = lanes: one-row scans), long runs on one entry: every hit
    is counted through the read-modify-write bypass; writes clear."""
    dut = FlowTable(entries=4, lanes=4)
    rng = random.Random(4)
    table = {k: flow(transport=TCP, local_port=1000 + k, ring=k) for k in range(3)}
    choices = [key(dport=1000 + k) for k in range(3)] + [key(dport=2000)]
    keys = [rng.choice(choices) for _ in range(200)] + [choices[1]] * 40 + [choices[3]] * 5
    counts = {}
    state = {}

    async def driver(ctx):
        await program_table(ctx, dut, table)
        ctx.set(dut.result.ready, 1)
        gaps, cycle = [], 0
        for k in keys:
            ctx.set(dut.lookup.payload, k)
            ctx.set(dut.lookup.valid, 1)
            while True:
                _, _, ready = await ctx.tick().sample(dut.lookup.ready)
                cycle += 1
                if ready:
                    gaps.append(cycle)
                    break
        ctx.set(dut.lookup.valid, 0)
        state["gaps"] = {b - a for a, b in itertools.pairwise(gaps)}
        await ctx.tick().repeat(dut.latency + 3)
        for k in range(4):
            await csr_write(ctx, dut, "index", k)
            counts[k] = await csr_read(ctx, dut, "hits")
        counts["misses"] = await csr_read(ctx, dut, "misses")
        await csr_write(ctx, dut, "index", 1)
        await csr_write(ctx, dut, "hits", 0)                    # clears entry 1 only
        await ctx.tick().repeat(4)                             # read 5 clocks after the clear
        counts["1 cleared"] = await csr_read(ctx, dut, "hits")
        await csr_write(ctx, dut, "index", 2)
        counts["2 kept"] = await csr_read(ctx, dut, "hits")
        await csr_write(ctx, dut, "misses", 123)
        counts["misses cleared"] = await csr_read(ctx, dut, "misses")

    run(dut, driver)
    assert state["gaps"] == {1}                                # a lookup every clock
    want = [reference(table, k)[1] if reference(table, k)[0] else None for k in keys]
    assert counts == {0: want.count(0), 1: want.count(1), 2: want.count(2), 3: 0,
                      "misses": want.count(None), "1 cleared": 0, "2 kept": want.count(2),
                      "misses cleared": 0}
    assert counts[1] > 40


def test_clear_amid_hits_on_the_same_entry():
    """A clear written while hits on the entry complete every clock: it is neither delayed
    until they stop nor undone by the increments in flight; the count is exactly the hits
    whose results came after the clear's clock."""
    dut = FlowTable(entries=2, lanes=2)
    accepted, seen = [], {}

    async def bench(ctx):
        await program(ctx, dut, 1, flow(local_port=7, ring=1))
        await csr_write(ctx, dut, "index", 1)
        ctx.set(dut.result.ready, 1)
        ctx.set(dut.lookup.payload, key(dport=7))
        ctx.set(dut.lookup.valid, 1)
        ctx.set(dut.csr.addr, A["hits"])
        for cycle in range(60):
            ctx.set(dut.csr.w_stb, cycle == 30)
            _, _, ready = await ctx.tick().sample(dut.lookup.ready)
            if ready:
                accepted.append(cycle)
        ctx.set(dut.csr.w_stb, 0)
        ctx.set(dut.lookup.valid, 0)
        await ctx.tick().repeat(dut.latency + 4)
        seen["hits"] = await csr_read(ctx, dut, "hits")

    run(dut, bench)
    assert accepted == list(range(60))
    # A hit is counted in the clock before its result is valid; the clear acts from clock 31.
    assert seen["hits"] == sum(a + dut.latency - 1 >= 31 for a in accepted)
    assert 20 < seen["hits"] < 40                      # neither put off to the end nor undone


def test_store_then_load_round_trips_through_staging():
    dut = FlowTable()
    rng = random.Random(7)
    e = {f: rng.getrandbits(FlowEntry[f].width) for f in FlowEntry.members}
    e["valid"] = 1
    other = flow(local_ip="10.0.0.0/8", ring=5)
    got = {}

    async def bench(ctx):
        await program(ctx, dut, 37, e)
        await program(ctx, dut, 12, other)                      # staging now holds `other`
        got[37] = await load(ctx, dut, 37)
        got[50] = await load(ctx, dut, 50)                      # never written: all zero
        got[12] = await load(ctx, dut, 12)
        assert await csr_read(ctx, dut, "cmd") == 0
        assert await csr_read(ctx, dut, "index") == 12

    run(dut, bench)
    assert got[37] == entry_words(e)
    assert got[50] == dict.fromkeys(entry_words(e), 0)
    assert got[12] == entry_words(other)


@pytest.mark.parametrize(("entries", "lookups"), [(64, 150), (8, 400)])
def test_reprogramming_under_traffic_is_atomic(entries, lookups):
    """One entry flips between two flows (different match fields and actions) every few dozen
    clocks while lookups stream: every result is what the whole old or the whole new table
    gives, the results follow the stores in order, and the stores (at every phase of the scan)
    never disturb the rows the scan reads."""
    dut = FlowTable(entries, 2)
    flip = entries * 5 // 8 | 1
    old = flow(local_ip="10.0.0.0/8", transport=TCP, ring=1)
    new = flow(transport=UDP, remote_port=1000, dscp=46, dscp_mask=0x3F, ring=2,
               priority=PRIORITY_HIGH, drop=1)
    base = {0: flow(transport=ICMP, ring=50), entries // 4: flow(local_port=9999, ring=51),
            flip: old, entries - 1: flow(ring=99)}
    tables = [base, {**base, flip: new}]
    choices = [key(dst="10.1.1.1"),                                         # old only
               key(dst="11.1.1.1", proto=UDP, sport=1000, dscp=46),         # new only
               key(dst="10.1.1.1", proto=UDP, sport=1000, dscp=46),         # new (UDP)
               key(dst="11.1.1.1"),                                         # neither
               key(dst="10.1.1.1", proto=ICMP), key(dst="10.1.1.1", dport=9999)]
    rng = random.Random(3)
    keys = [rng.choice(choices) for _ in range(lookups)]
    stores = []

    async def software(ctx, state):
        while not state["done"]:
            await ctx.tick().repeat(rng.randrange(10, 60))
            await program(ctx, dut, flip, old if len(stores) % 2 else new)
            stores.append(1)

    results = run_lookups(dut, base, keys, software=software)
    versions = []
    for k, r in zip(keys, results, strict=True):
        allowed = [v for v, t in enumerate(tables) if reference(t, k) == r]
        assert allowed, (k, r)
        if len(allowed) == 1:
            versions.append(allowed[0])
    changes = sum(a != b for a, b in itertools.pairwise(versions))
    assert versions[0] == 0 and 10 <= changes <= len(stores)


def test_back_pressure_keeps_order_and_results():
    dut = FlowTable(entries=16, lanes=2)
    rng = random.Random(11)
    table = {k: flow(transport=TCP, local_port=k, ring=k, priority=k % 3) for k in range(16)}
    keys = [key(dport=rng.randrange(20)) for _ in range(80)]
    got = run_lookups(dut, table, keys, stall=0.7, idle=0.3, seed=5)
    assert got == [reference(table, k) for k in keys]


def random_entry(rng: random.Random) -> dict:
    fam = rng.choice([FAMILY_NONE, FAMILY_IPV4, FAMILY_IPV6, FAMILY_IPV4, FAMILY_IPV6])
    width = 32 if fam == FAMILY_IPV4 else 128
    e = {"valid": int(rng.random() < 0.9), "family": fam,
         "family_en": int(rng.random() < 0.3), "ring": rng.getrandbits(8),
         "priority": rng.getrandbits(2), "drop": int(rng.random() < 0.2)}
    for f, bits in (("vnic", 8), ("vlan", 12), ("proto", 8), ("src_port", 16),
                    ("dst_port", 16)):
        e[f] = rng.choice([0, 1, 6, 17, rng.getrandbits(bits)])
        e[f"{f}_en"] = int(rng.random() < 0.25)
    for side in ("src", "dst"):
        e[f"{side}_ip"] = rng.getrandbits(width) if fam else 0
        e[f"{side}_prefix"] = rng.choice([0, 0, rng.randrange(width + 1), width,
                                          rng.randrange(256)]) if fam else 0
    e["dscp"], e["dscp_mask"] = rng.getrandbits(6), rng.choice([0, 0x3F, rng.getrandbits(6)])
    return e


def key_near(e: dict, rng: random.Random) -> dict:
    """A key that matches ``e`` (if it is valid), then perhaps one field disturbed."""
    fam = e["family"] if (e["family_en"] or e["src_prefix"] or e["dst_prefix"]) \
        else rng.choice([0, 1, 2])
    width = {FAMILY_NONE: 0, FAMILY_IPV4: 32, FAMILY_IPV6: 128}[fam]
    k = {"family": fam, "dscp": (e["dscp"] & e["dscp_mask"]) | (rng.getrandbits(6) &
                                                                ~e["dscp_mask"])}
    for f, bits in (("vnic", 8), ("vlan", 12), ("proto", 8), ("src_port", 16),
                    ("dst_port", 16)):
        k[f] = e[f] if e[f"{f}_en"] else rng.getrandbits(bits)
    for side in ("src", "dst"):
        p = min(e[f"{side}_prefix"], width)
        low = (1 << (width - p)) - 1
        k[f"{side}_ip"] = (e[f"{side}_ip"] & ~low | rng.getrandbits(width) & low) if width \
            else 0
    if rng.random() < 0.4:
        f = rng.choice(list(k))
        k[f] ^= 1 << rng.randrange(FlowKey[f].width)
    return k


@pytest.mark.parametrize(("entries", "lanes", "lookups"), [(64, 2, 300), (12, 4, 120),
                                                           (5, 1, 80)])
def test_random_tables_against_the_reference(entries, lanes, lookups):
    rng = random.Random(entries * 100 + lanes)
    table = {k: random_entry(rng) for k in range(entries)}
    keys = [key_near(table[rng.randrange(entries)], rng) for _ in range(lookups)]
    want = [reference(table, k) for k in keys]
    assert len({w[1] for w in want if w[0]}) > entries // 3          # many entries win
    assert sum(not w[0] for w in want) >= lookups // 40               # and some keys miss
    assert run_lookups(FlowTable(entries, lanes), table, keys) == want


@pytest.mark.parametrize(("entries", "lanes"), [(64, 2), (64, 4), (10, 4), (4, 4)])
def test_throughput_and_latency(entries, lanes):
    """With result.ready held, a lookup is accepted every ceil(entries / lanes) clocks and its
    result is valid ``latency`` = rows + 6 clocks later."""
    dut = FlowTable(entries, lanes)
    rows = -(-entries // lanes)
    assert (dut.rows, dut.interval, dut.latency) == (rows, rows, rows + 6)
    accepted, done = [], []

    async def bench(ctx):
        await program(ctx, dut, entries - 1, flow(ring=7))
        ctx.set(dut.result.ready, 1)
        ctx.set(dut.lookup.valid, 1)
        ctx.set(dut.lookup.payload, key(dst="1.1.1.1"))
        for cycle in range(12 * rows + 20):
            _, _, ready, valid, res = await ctx.tick().sample(
                dut.lookup.ready, dut.result.valid, dut.result.payload)
            if ready:
                accepted.append(cycle)
            if valid:
                done.append(cycle)
                assert (res.hit, res.index, res.ring) == (1, entries - 1, 7)

    run(dut, bench)
    assert {b - a for a, b in itertools.pairwise(accepted)} == {rows}
    assert done[0] - accepted[0] == dut.latency
    assert len(done) >= len(accepted) - dut.latency // rows - 1


def test_bad_register_writes_are_harmless():
    dut = FlowTable(entries=16, lanes=2)
    e = flow(local_ip="10.0.0.0/8", ring=3)
    k = key(dst="10.2.3.4")
    seen = {}

    async def lookup(ctx):
        ctx.set(dut.result.ready, 1)
        ctx.set(dut.lookup.payload, k)
        ctx.set(dut.lookup.valid, 1)
        await ctx.tick().until(dut.lookup.ready)
        ctx.set(dut.lookup.valid, 0)
        (r,) = await ctx.tick().sample(dut.result.payload).until(dut.result.valid)
        return r.hit, r.index

    async def bench(ctx):
        await program(ctx, dut, 5, e)
        await csr_write(ctx, dut, "index", 16)                 # out of range: ignored
        await csr_write(ctx, dut, "index", 0xFFFF_FFFF)
        seen["index"] = await csr_read(ctx, dut, "index")
        await csr_write(ctx, dut, "match", 0)                  # staging: entry invalid
        for bad in (0, 3, 5, 0x101, 0xFFFF_FFFF):              # unknown commands: ignored
            await csr_write(ctx, dut, "cmd", bad)
        seen["after bad cmd"] = await lookup(ctx)
        for hole in (*range(10, 16), *range(24, 32)):         # unmapped words
            await csr_write(ctx, dut, hole, 0xFFFF_FFFF)
            assert await csr_read(ctx, dut, hole) == 0
        await csr_write(ctx, dut, "cmd", CMD_LOAD)             # a load, and at once a store
        await csr_write(ctx, dut, "cmd", CMD_STORE)            # while busy: ignored
        while await csr_read(ctx, dut, "cmd"):
            pass
        seen["after busy store"] = await lookup(ctx)
        seen["match"] = await csr_read(ctx, dut, "match")      # the load went through

    run(dut, bench)
    assert seen == {"index": 5, "after bad cmd": (1, 5), "after busy store": (1, 5),
                    "match": 1 << 31 | 1 << 2}


def test_block_describes_the_registers():
    names = {r.register.key: r.addr for r in REGS.registers()}
    assert names == {"index": 0, "cmd": 1, "hits": 2, "misses": 3, "match": 4, "link": 5,
                     "l3": 6, "ports": 7, "prefix": 8, "action": 9,
                     **{f"src_ip{k}": 16 + k for k in range(4)},
                     **{f"dst_ip{k}": 20 + k for k in range(4)}}
    assert REGS["flow.hits"].register.access is Access.WC
    assert REGS["flow.misses"].register.access is Access.WC
    assert REGS["flow.l3"].register.access is Access.RW
    # every entry field is in exactly one staging register, as wide as in FlowEntry
    staged = {f.name: f.width for reg in STAGING for f in reg.fields if f.name != "value"}
    staged["src_ip"] = staged["dst_ip"] = 128
    assert staged == {name: FlowEntry[name].width for name in FlowEntry.members}
    assert REGS.blocks[0].addr_width == len(FlowTable().csr.addr)
    for bad in ({"entries": 0}, {"entries": 1025}, {"lanes": 3}, {"lanes": 32},
                {"entries": 2, "lanes": 4}):
        with pytest.raises(ValueError):
            FlowTable(**bad)

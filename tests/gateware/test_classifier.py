"""Classifier in amaranth.sim: random configurations and traffic scored against the model,
directed cases for each rule, counters, and table updates under traffic."""

import dataclasses
import itertools
import random

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Dot1Q, Ether
from sim_csr import CsrPort, run

from crossnic.gateware.classifier import Classifier
from crossnic.gateware.layouts import Cast, ClassResult, DropReason, FrameClass, Priority
from crossnic.host.classifier import (
    ClassifierConfig,
    FlowEntry,
    LocalIp,
    MacEntry,
    Policy,
    VnicSettings,
    ip_key,
    writes,
)
from crossnic.sim.model.classifier import FLOOD_VNIC, ClassifierModel
from crossnic.sim.model.parser import parse, to_gateware
from crossnic.sim.scenario import mac_text, random_scenario


class Bench:
    """A Classifier with named register access and a frame driver/collector."""

    def __init__(self, **params):
        self.dut = Classifier(**params)
        self.ports = {b.name: CsrPort(p, b, Classifier.read_latency)
                      for b, p in zip(self.dut.blocks(), self.dut.csr_ports(), strict=True)}

    async def write(self, ctx, path: str, value: int) -> None:
        block = path.split(".")[0].split("[")[0]
        await self.ports[block].write(ctx, path, value)

    async def read(self, ctx, path: str) -> int:
        block = path.split(".")[0].split("[")[0]
        return await self.ports[block].read(ctx, path)

    async def load(self, ctx, config: ClassifierConfig) -> None:
        for path, value in writes(config):
            await self.write(ctx, path, value)

    async def classify(self, ctx, frames: list[tuple[bytes, int]], results: list,
                       *, ready_every: int = 1) -> None:
        """Offer every frame's metadata back to back; collect the results as they come."""
        dut = self.dut
        pending = [(to_gateware(parse(f)), port) for f, port in frames]
        clock = 0
        while len(results) < len(frames):
            if pending:
                ctx.set(dut.i.payload.meta.as_value(), pending[0][0])
                ctx.set(dut.i.payload.port, pending[0][1])
            ctx.set(dut.i.valid, bool(pending))
            ctx.set(dut.result.ready, clock % ready_every == 0)
            _, _, took, done, res = await ctx.tick().sample(
                dut.i.ready, dut.result.valid & dut.result.ready, dut.result.payload)
            if took and pending:
                pending.pop(0)
            if done:
                results.append(decode(res))
            clock += 1
            assert clock < 200 * len(frames) + 1000, "classifier stopped answering"
        ctx.set(dut.i.valid, 0)


def decode(res) -> dict:
    """A sampled ClassResult as the model's dict: enums as members, checksums as ints."""
    value = {}
    for name, fld in ClassResult.as_shape():
        v = getattr(res, name)
        if name in ("ip_csum", "l4_csum"):
            v = int(getattr(v, "value", v))
        elif isinstance(fld.shape, type) and not isinstance(v, fld.shape):
            v = fld.shape(v)
        value[name] = v if hasattr(v, "name") else int(v)
    return value


def expected(model: ClassifierModel, frame: bytes, port: int) -> dict:
    r = model.classify(parse(frame), port)
    r["ip_csum"], r["l4_csum"] = int(r["ip_csum"].value), int(r["l4_csum"].value)
    return r


def _frame(dst: str, vlan: int = 0, l3=None) -> bytes:
    eth = Ether(dst=dst, src="02:00:00:00:99:01")
    if vlan:
        eth = eth / Dot1Q(vlan=vlan)
    data = bytes(eth / (l3 if l3 is not None else IP(src="192.0.2.1", dst="192.0.2.2")
                        / UDP(sport=1, dport=2)))
    return data + bytes(max(0, 60 - len(data)))


def test_rules_by_example():
    """Each rule of the module doc on one frame: VNIC by MAC+VLAN, local/forward ring, unknown
    unicast, flooding, multicast filter, disabled VNIC, flow steering and flow drop."""
    b = Bench()
    mac_a, mac_b = 0x0200_0000_0A01, 0x0200_0000_0B01
    cfg = ClassifierConfig(
        macs=[MacEntry(mac_a, 0, 1), MacEntry(mac_b, 10, 2), MacEntry(0x0100_5E00_0001, 0, 1)],
        vnics={1: VnicSettings(True, Priority.MEDIUM, 7, local_ring=3, forward_ring=4),
               2: VnicSettings(False, Priority.HIGH, 8, 5, 6)},
        local_ips=[LocalIp.of("10.0.0.1", 1), LocalIp.of("10.0.0.2", 2)],
        flows=[FlowEntry(ring=9, priority=Priority.HIGH, vnic=1, proto=6, local_port=443),
               FlowEntry(ring=0, drop=True, vnic=1, proto=17, remote_port=53)],
        policy=Policy(flood_ring=12, mcast_filter=1 << (0x01 ^ 0x5E ^ 0x02)))
    a, bb = mac_text(mac_a), mac_text(mac_b)
    cases = [
        (_frame(a, l3=IP(dst="10.0.0.1") / UDP(sport=7, dport=7)),
         dict(vnic=1, ring=3, cls=FrameClass.LOCAL, vns_id=7)),
        (_frame(a, l3=IP(dst="10.0.0.2") / UDP(sport=7, dport=7)),
         dict(vnic=1, ring=4, cls=FrameClass.FORWARD)),
        (_frame(a, l3=IP(dst="10.0.0.1") / TCP(dport=443)), dict(ring=9, flow_hit=1,
                                                                  flow_id=0)),
        (_frame(a, l3=IP(dst="10.0.0.1") / UDP(sport=53)), dict(drop=DropReason.FLOW_DROP)),
        (_frame(a, vlan=10), dict(drop=DropReason.UNKNOWN_UNICAST)),     # right MAC, wrong VLAN
        (_frame(bb, vlan=10), dict(vnic=2, drop=DropReason.VNIC_DISABLED)),
        (_frame("ff:ff:ff:ff:ff:ff", l3=ARP(pdst="10.0.0.1")),
         dict(vnic=FLOOD_VNIC, ring=12, cast=Cast.BROADCAST, drop=DropReason.NONE)),
        (_frame("01:00:5e:00:00:01"), dict(vnic=1, cast=Cast.MULTICAST)),  # subscribed
        (_frame("01:00:5e:00:00:02"), dict(vnic=FLOOD_VNIC, ring=12)),     # passes the filter
        (_frame("01:00:5e:00:00:03"), dict(drop=DropReason.MULTICAST_FILTER)),
    ]
    results = []

    async def bench(ctx):
        await b.load(ctx, cfg)
        await b.classify(ctx, [(f, 1) for f, _ in cases], results)
        assert await b.read(ctx, "classifier_stats.frames.lo") == len(cases)
        assert await b.read(ctx, "classifier_stats.flooded.lo") == 2
        assert await b.read(ctx, "classifier_stats.unknown_unicast.lo") == 1
        await b.write(ctx, "flow_table.index", 0)
        assert await b.read(ctx, "flow_table.hits") == 1

    run(b.dut, bench)
    model = ClassifierModel(cfg)
    for (frame, want), got in zip(cases, results, strict=True):
        assert got == expected(model, frame, 1)
        assert {k: got[k] for k in want} == want, (want, got)


def test_etherstub_vlans_are_refused_from_the_wire():
    """With ``stub_vlans.base`` set, a frame tagged with an etherstub VLAN is dropped
    (``STUB_VLAN``) when it comes from a wire port, even to a VNIC's exact MAC and VLAN;
    the same frame from the hairpin (an etherstub's own VNIC sent it) is delivered, and VLANs
    below the base are untouched. With the base 0 nothing is refused."""
    b = Bench(ports=2)
    stub_mac, wire_mac = 0x0200_0000_0C01, 0x0200_0000_0D01
    cfg = ClassifierConfig(
        macs=[MacEntry(stub_mac, 4000, 1), MacEntry(wire_mac, 10, 2)],
        vnics={1: VnicSettings(True, Priority.MEDIUM, 1, 3, 3),
               2: VnicSettings(True, Priority.MEDIUM, 2, 5, 5)},
        policy=Policy(flood_ring=12, stub_vlan_base=4000))
    stub, wire = mac_text(stub_mac), mac_text(wire_mac)
    hairpin = 2
    cases = [
        (_frame(stub, vlan=4000), 0, dict(vnic=1, drop=DropReason.STUB_VLAN)),
        (_frame(stub, vlan=4000), 1, dict(vnic=1, drop=DropReason.STUB_VLAN)),
        (_frame(stub, vlan=4000), hairpin, dict(vnic=1, ring=3, drop=DropReason.NONE)),
        (_frame("ff:ff:ff:ff:ff:ff", vlan=4090), 0, dict(drop=DropReason.STUB_VLAN)),
        (_frame("ff:ff:ff:ff:ff:ff", vlan=4090), hairpin, dict(ring=12, drop=DropReason.NONE)),
        (_frame(wire, vlan=10), 0, dict(vnic=2, ring=5, drop=DropReason.NONE)),
        (_frame(stub), 0, dict(drop=DropReason.UNKNOWN_UNICAST)),       # untagged: VLAN 0
    ]
    results, after = [], []

    async def bench(ctx):
        await b.load(ctx, cfg)
        assert await b.read(ctx, "classifier.stub_vlans") == 4000
        await b.classify(ctx, [(f, port) for f, port, _ in cases], results)
        await b.write(ctx, "classifier.stub_vlans", 0)
        await b.classify(ctx, [(cases[0][0], 0)], after)

    run(b.dut, bench)
    model = ClassifierModel(cfg)
    for (frame, port, want), got in zip(cases, results, strict=True):
        assert got == expected(model, frame, port)
        assert {k: got[k] for k in want} == want, (want, got)
    assert after[0]["drop"] == DropReason.NONE and after[0]["ring"] == 3


@pytest.mark.parametrize("seed, stub_base", [(1, 0), (2, 0), (3, 20)])
def test_random_scenarios_match_the_model(seed, stub_base):
    """Random tables and frames against the model; with ``stub_base`` the scenario's VLAN 20
    is an etherstub VLAN and frames come from the wires and the hairpin (port 2)."""
    rng = random.Random(seed)
    sc = random_scenario(rng)
    if stub_base:
        sc.config.policy = dataclasses.replace(sc.config.policy, stub_vlan_base=stub_base)
    frames = [(sc.frame(rng), rng.randrange(3 if stub_base else 2)) for _ in range(150)]
    b = Bench()
    results = []

    async def bench(ctx):
        await b.load(ctx, sc.config)
        await b.classify(ctx, frames, results, ready_every=1 + seed % 2)
        model = ClassifierModel(sc.config)
        for (frame, port), got in zip(frames, results, strict=True):
            assert got == expected(model, frame, port)
        for name, value in model.counters.items():
            assert await b.read(ctx, f"classifier_stats.{name}.lo") == value, name

    run(b.dut, bench)


def test_throughput_one_frame_per_flow_scan():
    """Back to back, the classifier takes a frame every FlowTable interval (at most 42 clocks
    for two ports of 64-byte frames at line rate)."""
    b = Bench()
    frames = [(_frame("ff:ff:ff:ff:ff:ff"), 0)] * 40
    accepted = []

    async def bench(ctx):
        dut = b.dut
        ctx.set(dut.result.ready, 1)
        ctx.set(dut.i.payload.meta.as_value(), to_gateware(parse(frames[0][0])))
        ctx.set(dut.i.valid, 1)
        for clock in range(40 * 45):
            _, _, took = await ctx.tick().sample(dut.i.ready)
            if took:
                accepted.append(clock)
            if len(accepted) == len(frames):
                break
        ctx.set(dut.i.valid, 0)

    run(b.dut, bench)
    gaps = [y - x for x, y in itertools.pairwise(accepted[10:])]
    assert gaps and max(gaps) <= 42, gaps


def test_tables_change_under_traffic():
    """Moving a MAC from VNIC 1 to VNIC 2 while frames flow: each frame goes to one or the other
    (never a mix of the two VNICs' settings), first all to 1, then all to 2."""
    b = Bench()
    mac = 0x0200_0000_0C01
    cfg = ClassifierConfig(macs=[MacEntry(mac, 0, 1)],
                           vnics={1: VnicSettings(True, Priority.LOW, 1, 1, 1),
                                  2: VnicSettings(True, Priority.HIGH, 2, 2, 2)})
    frames = [(_frame(mac_text(mac)), 0)] * 60
    results = []

    async def traffic(ctx):
        await ctx.tick().repeat(200)
        await b.classify(ctx, frames, results)

    async def software(ctx):
        await b.load(ctx, cfg)
        await ctx.tick().repeat(200 + 20 * 40)
        for path, value in writes(ClassifierConfig(macs=[MacEntry(mac, 0, 2)])):
            if path.startswith("mac_table"):
                await b.write(ctx, path, value)

    run(b.dut, traffic, software)
    seen = [(r["vnic"], r["vns_id"], r["ring"], r["priority"]) for r in results]
    assert set(seen) == {(1, 1, 1, Priority.LOW), (2, 2, 2, Priority.HIGH)}
    first2 = seen.index((2, 2, 2, Priority.HIGH))
    assert all(s[0] == 1 for s in seen[:first2]) and all(s[0] == 2 for s in seen[first2:])


def test_ip_key():
    assert ip_key("10.0.0.1") == (1, 0x0A000001)
    assert ip_key("::1") == (2, 1)

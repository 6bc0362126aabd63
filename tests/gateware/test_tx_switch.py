"""TxSwitch with a real MacTable in amaranth.sim: hairpin for the card's own VNICs, wire for the
rest, both for broadcast/multicast, VLAN tags, back-pressure on one target of two."""

import random

from amaranth import Module
from amaranth.lib import stream, wiring
from scapy.layers.l2 import Dot1Q, Ether
from sim_csr import CsrPort, run, task
from streams import recv_frame, send_frame

from crossnic.gateware.csr import CsrSignature
from crossnic.gateware.mac_table import MacTable, mac_match_layout
from crossnic.gateware.packet import PacketSignature
from crossnic.gateware.regmap import Block
from crossnic.gateware.tx_switch import TX_SWITCH_COUNTERS, TxRoute, TxSwitch
from crossnic.host.classifier import MacEntry, mac_writes


class Bench(wiring.Component):
    def __init__(self):
        self.table = MacTable(8, 6, tx_port=True)
        self.switch = TxSwitch(2, mac_match_layout(8, 6))
        super().__init__({
            "i": wiring.In(PacketSignature(4)),
            "route": wiring.In(stream.Signature(TxRoute)),
            "port0": wiring.Out(PacketSignature(4)),
            "port1": wiring.Out(PacketSignature(4)),
            "hairpin": wiring.Out(PacketSignature(4)),
            "mac_csr": wiring.In(CsrSignature(len(self.table.csr.addr))),
            "csr": wiring.In(CsrSignature(len(self.switch.csr.addr))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.table = t = self.table
        m.submodules.switch = s = self.switch
        wiring.connect(m, s.mac_lookup, t.tx_lookup)
        wiring.connect(m, t.tx_result, s.mac_result)
        for name in ("i", "route"):
            wiring.connect(m, wiring.flipped(getattr(self, name)), getattr(s, name))
        for name in ("port0", "port1", "hairpin"):
            wiring.connect(m, getattr(s, name), wiring.flipped(getattr(self, name)))
        wiring.connect(m, wiring.flipped(self.mac_csr), t.csr)
        wiring.connect(m, wiring.flipped(self.csr), s.csr)
        return m


VNIC_MAC = 0x0200_0000_0001


def frame(dst: str, vlan: int = 0, size: int = 60) -> bytes:
    eth = Ether(dst=dst, src="02:00:00:00:00:09", type=0x88B5)
    if vlan:
        eth = Ether(dst=dst, src="02:00:00:00:00:09") / Dot1Q(vlan=vlan, type=0x88B5)
    data = bytes(eth)
    return data + bytes(range(256))[:max(0, size - len(data))]


def switch_cases(entries: list[MacEntry], cases: list, counts: dict, *, seed: int,
                 stub_vlan_base: int = 0) -> None:
    """Program ``entries``, send each (frame, port, expected targets) of ``cases`` with random
    back-pressure on the targets: each frame reaches exactly its targets, and the counters
    read ``counts``."""
    dut = Bench()
    mac = CsrPort(dut.mac_csr, dut.table.block("mac_table"), 2)
    stats = CsrPort(dut.csr, Block.from_counters("tx_switch", "", TX_SWITCH_COUNTERS), 2)
    got = {"port0": [], "port1": [], "hairpin": []}
    rng = random.Random(seed)

    async def software_and_source(ctx):
        ctx.set(dut.switch.stub_vlan_base, stub_vlan_base)
        for k, e in enumerate(entries):
            for path, value in mac_writes(k, e):
                await mac.write(ctx, path, value)
        for f, port, _ in cases:
            ctx.set(dut.route.p.port, port)
            ctx.set(dut.route.valid, 1)
            await send_frame(ctx, dut.i, f, 4)
            ctx.set(dut.route.valid, 0)
        await ctx.tick().repeat(2000)
        assert {c.name: await stats.read(ctx, f"{c.name}.lo")
                for c in TX_SWITCH_COUNTERS} == counts

    async def sink(ctx, name):
        while True:
            f, _, _ = await recv_frame(ctx, getattr(dut, name), 4, stall=0.5, rng=rng,
                                       timeout=10**9)
            got[name].append(f)

    run(dut, software_and_source, background=[task(sink, n) for n in got])
    for name in got:
        assert got[name] == [f for f, _, want in cases if name in want], name


def test_each_frame_goes_where_a_switch_would_send_it():
    cases = [  # (frame, port, expected targets)
        (frame("02:00:00:00:00:01"), 0, {"hairpin"}),
        (frame("02:00:00:00:00:01", vlan=7), 1, {"port1"}),            # other VLAN: external
        (frame("02:00:00:00:00:02", vlan=7), 1, {"hairpin"}),
        (frame("ff:ff:ff:ff:ff:ff", size=300), 1, {"port1", "hairpin"}),
        (frame("01:00:5e:00:00:01"), 0, {"port0", "hairpin"}),
        (frame("02:99:00:00:00:01", size=1000), 0, {"port0"}),
        (frame("02:99:00:00:00:01"), 3, set()),                          # no such port: dropped
        (frame("02:00:00:00:00:01", size=14), 1, {"hairpin"}),
    ]
    switch_cases([MacEntry(VNIC_MAC, 0, 1), MacEntry(0x0200_0000_0002, 7, 2)], cases,
                 {"wire": 2, "hairpin": 3, "flood": 2, "no_port": 1, "hairpin_overflow": 0,
                  "stub_refused": 0}, seed=1)


def test_etherstub_rings_and_wire_rings_never_share_a_vlan():
    """With etherstub VLANs from 4000 up, a ring of port 2 (no wire: an etherstub's) reaches
    the card's VNICs of its VLAN only by the hairpin, and its broadcast's wire copy goes
    nowhere; a wire port's ring sending into an etherstub VLAN, or an etherstub's ring
    sending outside them, is refused whole (``stub_refused``), even to a VNIC's exact MAC."""
    stub = 2
    cases = [  # (frame, port, expected targets)
        (frame("02:00:00:00:00:05", vlan=4000), stub, {"hairpin"}),       # stub VNIC to stub VNIC
        (frame("ff:ff:ff:ff:ff:ff", vlan=4000), stub, {"hairpin"}),       # flood: card only
        (frame("02:99:00:00:00:01", vlan=4000), stub, set()),             # unknown: nowhere
        (frame("02:00:00:00:00:05", vlan=4000), 0, set()),                # wire ring: refused
        (frame("02:00:00:00:00:05", vlan=4001), 1, set()),                # refused
        (frame("02:00:00:00:00:01"), stub, set()),                        # untagged: refused
        (frame("02:00:00:00:00:02", vlan=7), stub, set()),                # wire VLAN: refused
        (frame("02:00:00:00:00:01"), 0, {"hairpin"}),                     # wire rings as before
        (frame("02:99:00:00:00:01", vlan=7), 1, {"port1"}),
    ]
    switch_cases([MacEntry(VNIC_MAC, 0, 1), MacEntry(0x0200_0000_0002, 7, 2),
                  MacEntry(0x0200_0000_0005, 4000, 3)], cases,
                 {"wire": 1, "hairpin": 2, "flood": 1, "no_port": 2, "hairpin_overflow": 0,
                  "stub_refused": 4}, seed=2, stub_vlan_base=4000)

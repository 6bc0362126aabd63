"""cocotb testbench of the whole NicCore (run by test_nic_core.py): GMII frames in on both ports
(cocotbext-eth), host memory as cocotbext-axi AxiRam, registers over AxiLiteMaster; the host
side of the rings is crossnic.host.rings, the scoreboard the reference model."""

import random

import cocotb
from cocotb.triggers import ClockCycles

from crossnic.gateware.nic_core import NIC_ID
from crossnic.host.classifier import writes
from crossnic.sim.cocotb_util import params
from crossnic.sim.model.classifier import ClassifierModel
from crossnic.sim.nic_bench import Card
from crossnic.sim.scenario import random_scenario
from crossnic.sim.scoreboard import RxScoreboard


@cocotb.test()
async def identity(dut):
    card = await Card.start(dut)
    assert await card.read("nic.id") == NIC_ID
    assert await card.read("nic.params") & 0xFF == 2
    await card.write("nic.scratch", 0x12345678)
    assert await card.read("nic.scratch") == 0x12345678
    # the cycle counter is card time: it advances by the clocks between two reads
    t0 = await card.read("nic.cycles")
    await ClockCycles(dut.clk, 1000)
    t1 = await card.read("nic.cycles")
    assert 1000 < (t1 - t0) % (1 << 32) < 1100


@cocotb.test()
async def random_traffic(dut):
    """A random scenario; frames on both ports at once; every ring checked by the model."""
    p = params()
    rng = random.Random(p.get("seed", 1))
    card = await Card.start(dut)
    sc = random_scenario(rng, rings=16)
    await card.apply(writes(sc.config))
    rings = await card.open_rings(16, 8)
    board = RxScoreboard(ClassifierModel(sc.config), {r.index for r in rings})
    frames = p.get("frames", 200)
    for k in range(frames):
        port = k % 2
        frame = sc.frame(rng)
        board.sent(port, frame)
        await card.send(port, frame)
    await card.settle(frames)
    for ring in rings:
        for c, data in await card.collect(ring, repost=False):
            board.received(ring.index, c, data)
    dut._log.info(board.report())
    assert not board.mismatches, "\n".join(board.mismatches[:10])
    assert board.missing() == 0
    for reason, n in board.drops.items():
        assert await card.read(f"rx_dma.drop_{reason.name.lower()}") == n, reason
    for name, n in board.model.counters.items():
        assert await card.read(f"classifier_stats.{name}") == n, name


@cocotb.test()
async def transmit_and_hairpin(dut):
    """A VNIC's transmit ring: a frame for the outside leaves on its port; a frame for another
    VNIC of the card is switched back into that VNIC's receive ring and never reaches a wire;
    broadcast goes to both; the head is written back."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    from crossnic.gateware.layouts import Priority
    from crossnic.host.classifier import ClassifierConfig, MacEntry, Policy, VnicSettings
    from crossnic.sim.scenario import mac_text

    card = await Card.start(dut)
    mac_a, mac_b = 0x0200_0000_0A01, 0x0200_0000_0B01
    cfg = ClassifierConfig(macs=[MacEntry(mac_a, 0, 0), MacEntry(mac_b, 0, 1)],
                           vnics={0: VnicSettings(True, Priority.MEDIUM, 1, 0, 0),
                                  1: VnicSettings(True, Priority.MEDIUM, 2, 1, 1)},
                           policy=Policy(flood_ring=2))
    await card.apply(writes(cfg))
    rx = await card.open_rings(3, 4)
    tx = card.tx_rings(1, 4)[0]
    await card.apply(tx.setup(port=1, vnic=0))

    def frame(dst: str, tag: int) -> bytes:
        return bytes(Ether(dst=dst, src=mac_text(mac_a)) / IP(src="10.0.0.1", dst="10.0.0.2")
                     / UDP(sport=tag, dport=9) / bytes(30))

    outside, to_b, bcast = (frame("02:99:00:00:00:01", 1), frame(mac_text(mac_b), 2),
                            frame("ff:ff:ff:ff:ff:ff", 3))
    await card.apply(tx.send(card.ram.write, [outside, to_b, bcast]))
    wire = []
    for _ in range(2):
        f = await card.tx_wire[1].recv()
        wire.append(bytes(f.get_payload()))
    assert wire == [outside, bcast]
    await card.settle(2)
    got = {}
    for ring in rx:
        got[ring.index] = [(c["port"], c["vnic"], data)
                           for c, data in await card.collect(ring, repost=False)]
    assert got == {0: [], 1: [(2, 1, to_b)], 2: [(2, 0xFF, bcast)]}, got
    assert card.tx_wire[0].empty()
    assert tx.room(card.ram.read) == tx.size and tx.head == 3
    assert await card.read("tx_switch.wire") == 1
    assert await card.read("tx_switch.hairpin") == 1
    assert await card.read("tx_switch.flood") == 1
    assert await card.read("tx_ring[0].frames") == 3
    assert await card.read("eth1_tx.frames") == 2

"""cocotb testbench of the whole NicCore (run by test_nic_core.py): GMII frames in on both ports
(cocotbext-eth), host memory as cocotbext-axi AxiRam, registers over AxiLiteMaster; the host
side of the rings is crossnic.host.rings, the scoreboard the reference model."""

import random

import cocotb

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


@cocotb.test()
async def random_traffic(dut):
    """A random scenario; frames on both ports at once; every ring checked by the model."""
    p = params()
    rng = random.Random(p.get("seed", 1))
    card = await Card.start(dut)
    sc = random_scenario(rng, rings=16)
    await card.apply(writes(sc.config))
    rings = card.rings(16, 8)
    for ring in rings:
        ring.clear_completions(card.ram.write)
        await card.apply(ring.setup())
        await card.apply(ring.post(card.ram.write))
    board = RxScoreboard(ClassifierModel(sc.config), {r.index for r in rings})
    frames = p.get("frames", 200)
    for k in range(frames):
        port = k % 2
        frame = sc.frame(rng)
        board.sent(port, frame)
        await card.send(port, frame)
    await card.settle(frames)
    for ring in rings:
        done, doorbell = ring.poll(card.ram.read)
        for c, data in done:
            board.received(ring.index, c, data)
        await card.apply(doorbell)
    dut._log.info(board.report())
    assert not board.mismatches, "\n".join(board.mismatches[:10])
    assert board.missing() == 0
    for reason, n in board.drops.items():
        assert await card.read(f"rx_dma.drop_{reason.name.lower()}") == n, reason
    for name, n in board.model.counters.items():
        assert await card.read(f"classifier_stats.{name}") == n, name

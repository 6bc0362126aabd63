"""cocotb side of ``crossnic sim --nic``: the whole card, tables from the configuration, a
capture replayed on one port, every ring read back. Talks to :mod:`crossnic.sim.nic_replay`
through files named in ``params()``."""

import json
from pathlib import Path

import cocotb

from crossnic.host.classifier import writes
from crossnic.sim.cocotb_util import params
from crossnic.sim.nic_bench import Card
from crossnic.sim.nic_config import parse
from crossnic.sim.replay_tb import read_frames


@cocotb.test()
async def replay(dut):
    p = params()
    config = parse(json.loads(Path(p["config"]).read_text()))
    frames = read_frames(Path(p["frames"]))
    card = await Card.start(dut)
    await card.apply(writes(config.classifier))
    rings = await card.open_rings(config.rings, 8)
    out = []
    for k, frame in enumerate(frames):
        await card.send(p["port"], frame)
        if not p["line_rate"] or k % 200 == 199:
            await card.settle(k + 1)
            for ring in rings:
                out += [{"ring": ring.index, "completion": c, "data": data.hex()}
                        for c, data in await card.collect(ring)]
    await card.settle(len(frames))
    for ring in rings:
        out += [{"ring": ring.index, "completion": c, "data": data.hex()}
                for c, data in await card.collect(ring, repost=False)]
    counters = {}
    for block in ("rx_dma", "classifier_stats", f"eth{p['port']}_rx"):
        for r in card.regmap.registers():
            if r.block == block and r.register.part in ("", "lo"):
                counters[f"{block}.{r.register.name}"] = await card.read(
                    f"{block}.{r.register.name}")
    flows = []
    for k in range(len(config.classifier.flows)):
        await card.write("flow_table.index", k)
        flows.append(await card.read("flow_table.hits"))
    Path(p["results"]).write_text(json.dumps({"completions": out, "counters": counters,
                                              "flow_hits": flows}))

"""pyuvm constrained-random test of the whole card (tests/gateware/test_nic_core.py, and
``python -m crossnic.sim.soak``): rounds of random
table programming and random traffic on both ports, scored against the reference model."""

import random

import cocotb
import pyuvm
from pyuvm import uvm_test

from crossnic.sim.cocotb_util import params
from crossnic.sim.nic_bench import Card
from crossnic.sim.nic_env import NicEnv, RoundSequence, coverage_report


@pyuvm.test()
class RandomRounds(uvm_test):
    """``frames`` frames (params) in rounds of ``round`` frames, each round a new scenario."""

    def build_phase(self):
        self.env = NicEnv("env", self)

    async def run_phase(self):
        self.raise_objection()
        p = params()
        card = await Card.start(cocotb.top)
        self.env.driver.card = card
        await self.env.monitor.bind(card)
        rng = random.Random(p.get("seed", 1))
        total, per_round = p.get("frames", 20000), p.get("round", 1000)
        for r in range(0, total, per_round):
            await RoundSequence(f"round{r}", rng, min(per_round, total - r)).start(
                self.env.sequencer)
        await self.env.monitor.drain()
        self.env.scoreboard.check_round(self.env.scoreboard.board)
        self.report = coverage_report(self.env, self.env.monitor.wraps)
        self.logger.info("coverage\n" + self.report)
        self.drop_objection()

"""The whole card in Verilator: registers, random traffic on both ports into 16 rings."""

import json

import pytest

from crossnic.gateware.nic_core import NicCore


@pytest.mark.parametrize("testcase", ["identity", "random_traffic", "transmit_and_hairpin"])
def test_nic_core(run_cocotb, testcase):
    run_cocotb(NicCore(), "tb_nic_core", testcase=testcase, params={"frames": 200, "seed": 1})


def test_nic_core_uvm(run_cocotb):
    """pyuvm: 20 rounds of a new random configuration and 1,000 random frames on both ports,
    0 mismatches against the model (the soak command runs more)."""
    run_cocotb(NicCore(), "crossnic.sim.nic_uvm_tb",
               params={"frames": 20000, "round": 1000, "seed": 3})


def test_line_rate_both_ports_no_drops(run_cocotb, tmp_path):
    """64-byte frames back to back on both ports into eight rings: every one delivered intact
    (benchmarks/core.py runs 100,000)."""
    out = tmp_path / "results.json"
    run_cocotb(NicCore(), "crossnic.sim.core_bench_tb", testcase="line_rate",
               params={"frames": 1000, "size": 60, "results": str(out)})
    r = json.loads(out.read_text())
    # 42 clocks per frame is the wire; the end of a short run adds the pipeline's latency and
    # the 5 us granularity of the testbench's completion polling (100,000 frames: 42.01)
    assert r["delivered"] == 1000 and r["clocks_per_frame"] < 45

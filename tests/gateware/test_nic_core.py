"""The whole card in Verilator: registers, random traffic on both ports into 16 rings."""

import pytest

from crossnic.gateware.nic_core import NicCore


@pytest.mark.parametrize("testcase", ["identity", "random_traffic"])
def test_nic_core(run_cocotb, testcase):
    run_cocotb(NicCore(), "tb_nic_core", testcase=testcase, params={"frames": 200, "seed": 1})


def test_nic_core_uvm(run_cocotb):
    """pyuvm: 20 rounds of a new random configuration and 1,000 random frames on both ports,
    0 mismatches against the model (the soak command runs more)."""
    run_cocotb(NicCore(), "tb_nic_uvm", params={"frames": 2000, "round": 500, "seed": 3})

"""The whole card in Verilator, directed: full and starved rings, table updates under
traffic, bad register accesses (tb_nic_directed.py)."""

import pytest

from crossnic.gateware.nic_core import NicCore


@pytest.mark.parametrize("testcase", ["ring_full", "descriptor_starvation",
                                      "table_update_under_traffic", "bad_csr_accesses"])
def test_nic_directed(run_cocotb, testcase):
    # NicCore() with default parameters: the Verilator build is shared with test_nic_core.
    run_cocotb(NicCore(), "tb_nic_directed", testcase=testcase)

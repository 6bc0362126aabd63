"""AxiLiteCsrBridge: cocotbext-axi in Verilator (tb_axil.py), and argument checks."""

import pytest
from tb_axil import design, regmap

from crossnic.gateware.axil import AxiLiteCsrBridge


@pytest.mark.parametrize("testcase", ["registers_by_map", "bad_accesses_are_answered",
                                      "concurrent_reads_and_writes"])
def test_axil_bridge(run_cocotb, testcase):
    run_cocotb(design(), "tb_axil", testcase=testcase)


def test_read_latency_checked():
    with pytest.raises(ValueError, match="latency"):
        AxiLiteCsrBridge(regmap(), 0)

"""The offload engine in Verilator (testbench ``tb_offload.py``) against the reference model
and an independent software key schedule, and the model against RFC 8448's trace."""

import pytest

from crossnic.gateware.crypto.offload import OffloadEngine

pytestmark = pytest.mark.xdist_group("offload")


@pytest.mark.parametrize("testcase", ["handshake", "refusals", "export_policy",
                                      "secrets_stay_on_the_card", "function_reset",
                                      "random_commands", "constant_time"])
def test_offload_engine(run_cocotb, testcase):
    run_cocotb(OffloadEngine(), "tb_offload", testcase=testcase)

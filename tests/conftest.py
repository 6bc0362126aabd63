"""Shared pytest fixtures: run a cocotb testbench (``tb_*.py`` beside the test) on a design."""

from pathlib import Path

import pytest

from crossnic.sim.harness import simulate


@pytest.fixture
def run_cocotb(request, tmp_path):
    """``run_cocotb(design, "tb_module", testcase=..., params={...})`` -> run directory.

    The testbench module is looked up beside the calling test file; each call runs in the test's
    own temporary directory, so parallel workers never share results or waves.
    """
    calls = 0

    def run(design, module: str, **kwargs):
        nonlocal calls
        calls += 1
        kwargs.setdefault("module_dir", Path(request.path).parent)
        kwargs.setdefault("test_dir", tmp_path / f"sim{calls}")
        return simulate(design, module, **kwargs)

    return run


def pytest_collection_modifyitems(config, items):
    """Soak runs (``@pytest.mark.slow``) only when asked for: ``pytest -m slow``."""
    if "slow" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="soak run: python -m pytest -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)

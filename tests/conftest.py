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


#: Tests the default run leaves out, and the command that runs them.
OPT_IN = {"slow": "soak run: python -m pytest -m slow",
          "synth": "full-board build: python -m pytest -m synth"}


def pytest_collection_modifyitems(config, items):
    """Soak runs (``@pytest.mark.slow``) and full-board builds (``@pytest.mark.synth``, a few
    minutes each) only when asked for: ``pytest -m slow`` / ``pytest -m synth``."""
    asked = config.option.markexpr or ""
    for marker, why in OPT_IN.items():
        if marker in asked:
            continue
        skip = pytest.mark.skip(reason=why)
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)

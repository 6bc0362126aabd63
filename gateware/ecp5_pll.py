# Ref: Lattice TN1263, ECP5 and ECP5-5G sysCLOCK PLL/DCS/DCC Usage Guide (EHXPLLL, phase shift)
"""An ECP5 ``EHXPLLL`` wrapper that solves its dividers from the wanted frequencies.

The PLL multiplies the board oscillator up to the 125 MHz clocks the NIC needs (core ``sync``,
Ethernet transmit and, where the FPGA provides the RGMII transmit clock skew, a 90 degree copy).
Frequencies follow ``f_out = f_in / CLKI_DIV * CLKFB_DIV`` with feedback from ``CLKOP``, and
``f_vco = f_out(CLKOP) * CLKOP_DIV``; the VCO must stay within 400..800 MHz and the phase detector
input (``f_in / CLKI_DIV``) within 3.125..400 MHz. Static phase shifts are set in VCO cycles
(``CPHASE``) and eighths of a VCO cycle (``FPHASE``), counted from ``(DIV - 1) // 2``, the value
the open toolchain's ``ecppll`` uses for zero phase.

(The sysCLOCK PLL guide is TN1263; TN1265 is the ECP5 high-speed I/O guide used by ``rgmii``.)
"""

from dataclasses import dataclass

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["PllOutput", "PllConfig", "solve_pll", "EHXPLLL"]

VCO_MIN_MHZ = 400.0
VCO_MAX_MHZ = 800.0
PFD_MIN_MHZ = 3.125
PFD_MAX_MHZ = 400.0
_OUTPUTS = ("CLKOP", "CLKOS", "CLKOS2", "CLKOS3")


@dataclass(frozen=True)
class PllOutput:
    """One solved PLL output: divider, static phase and the frequency actually produced."""
    name: str
    div: int
    cphase: int
    fphase: int
    freq_mhz: float
    phase_deg: float


@dataclass(frozen=True)
class PllConfig:
    """Solved ``EHXPLLL`` parameters."""
    clki_mhz: float
    clki_div: int
    clkfb_div: int
    vco_mhz: float
    outputs: tuple[PllOutput, ...]

    @property
    def pfd_mhz(self) -> float:
        return self.clki_mhz / self.clki_div


def _phase(div: int, phase_deg: float) -> tuple[int, int]:
    """``(CPHASE, FPHASE)`` for ``phase_deg`` on an output divided by ``div`` from the VCO."""
    steps = round(phase_deg / 360.0 * div * 8)      # in eighths of a VCO cycle
    return (div - 1) // 2 + steps // 8, steps % 8


def solve_pll(clki_mhz: float, outputs: list[tuple[float, float]], *,
              tolerance: float = 1e-6) -> PllConfig:
    """Find dividers for ``outputs``, a list of ``(freq_mhz, phase_deg)``; the first is CLKOP.

    Every output must be produced exactly (relative error within ``tolerance``); among exact
    solutions the one with the VCO closest to the middle of its range wins.

    Raises
    ------
    ValueError
        When no divider set produces the outputs, or more than four outputs are asked for.
    """
    if not 1 <= len(outputs) <= len(_OUTPUTS):
        raise ValueError(f"EHXPLLL has 1 to 4 outputs, not {len(outputs)}")
    if clki_mhz <= 0 or any(f <= 0 for f, _ in outputs):
        raise ValueError("PLL frequencies must be positive")
    f_op = outputs[0][0]
    best = None
    for clki_div in range(1, 129):
        pfd = clki_mhz / clki_div
        if not PFD_MIN_MHZ <= pfd <= PFD_MAX_MHZ:
            continue
        for clkfb_div in range(1, 81):
            if abs(pfd * clkfb_div - f_op) > tolerance * f_op:
                continue
            for op_div in range(1, 129):
                vco = f_op * op_div
                if not VCO_MIN_MHZ <= vco <= VCO_MAX_MHZ:
                    continue
                divs = [op_div]
                for f, _ in outputs[1:]:
                    d = round(vco / f)
                    if not 1 <= d <= 128 or abs(vco / d - f) > tolerance * f:
                        break
                    divs.append(d)
                else:
                    score = abs(vco - (VCO_MIN_MHZ + VCO_MAX_MHZ) / 2)
                    if best is None or score < best[0]:
                        best = (score, clki_div, clkfb_div, vco, divs)
    if best is None:
        wanted = ", ".join(f"{f} MHz" for f, _ in outputs)
        raise ValueError(f"no EHXPLLL setting makes {wanted} from {clki_mhz} MHz")
    _, clki_div, clkfb_div, vco, divs = best
    solved = []
    for name, div, (_, phase) in zip(_OUTPUTS, divs, outputs, strict=False):
        cphase, fphase = _phase(div, phase)
        solved.append(PllOutput(name, div, cphase, fphase, vco / div, phase))
    return PllConfig(clki_mhz, clki_div, clkfb_div, vco, tuple(solved))


class EHXPLLL(wiring.Component):
    """An ECP5 PLL with up to four outputs, feedback from ``CLKOP``.

    Parameters
    ----------
    clki_mhz : float
        Input clock frequency.
    outputs : list of (freq_mhz, phase_deg)
        Wanted outputs; the first is ``CLKOP`` (phase 0 expected: it is the feedback).

    Attributes
    ----------
    clk_in : Signal, in
        Reference clock (from the board oscillator).
    clk_out : Signal(n), out
        The outputs, ``clk_out[0]`` is ``CLKOP``.
    locked : Signal, out
        PLL lock; hold the derived domains in reset until it is set.
    config : PllConfig
        The solved dividers (also written into the build report).
    """

    def __init__(self, clki_mhz: float, outputs: list[tuple[float, float]]):
        self.config = solve_pll(clki_mhz, outputs)
        super().__init__({
            "clk_in":  In(1),
            "clk_out": Out(len(outputs)),
            "locked":  Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        params = {
            "a_FREQUENCY_PIN_CLKI": f"{cfg.clki_mhz:g}",
            "a_ICP_CURRENT": "12",
            "a_LPF_RESISTOR": "8",
            "a_MFG_ENABLE_FILTEROPAMP": "1",
            "a_MFG_GMCREF_SEL": "2",
            "p_PLLRST_ENA": "DISABLED",
            "p_INTFB_WAKE": "DISABLED",
            "p_STDBY_ENABLE": "DISABLED",
            "p_DPHASE_SOURCE": "DISABLED",
            "p_OUTDIVIDER_MUXA": "DIVA",
            "p_OUTDIVIDER_MUXB": "DIVB",
            "p_OUTDIVIDER_MUXC": "DIVC",
            "p_OUTDIVIDER_MUXD": "DIVD",
            "p_CLKI_DIV": cfg.clki_div,
            "p_CLKFB_DIV": cfg.clkfb_div,
            "p_FEEDBK_PATH": "CLKOP",
            "i_CLKI": self.clk_in,
            "i_CLKFB": self.clk_out[0],
            "i_RST": Const(0),
            "i_STDBY": Const(0),
            "i_PHASESEL0": Const(0),
            "i_PHASESEL1": Const(0),
            "i_PHASEDIR": Const(1),
            "i_PHASESTEP": Const(1),
            "i_PHASELOADREG": Const(1),
            "i_PLLWAKESYNC": Const(0),
            "i_ENCLKOP": Const(0),
            "o_LOCK": self.locked,
        }
        for n, out in enumerate(cfg.outputs):
            params[f"a_FREQUENCY_PIN_{out.name}"] = f"{out.freq_mhz:g}"
            params[f"p_{out.name}_ENABLE"] = "ENABLED"
            params[f"p_{out.name}_DIV"] = out.div
            params[f"p_{out.name}_CPHASE"] = out.cphase
            params[f"p_{out.name}_FPHASE"] = out.fphase
            params[f"o_{out.name}"] = self.clk_out[n]
        m.submodules.pll = Instance("EHXPLLL", **params)
        return m

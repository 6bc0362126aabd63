# Ref: nextpnr docs (--report JSON: "utilization", "fmax"; log "Max frequency for clock")
"""Read nextpnr's results back: Fmax per clock net, resource use, and the pass/fail verdict.

nextpnr's ``--report`` JSON is the primary source; its log (``top.tim``) is the fallback for
anything the JSON lacks (older nextpnr, or a run that stopped before writing the report). Clock
nets are matched to the board top's domains by name, so the verdict is stated per domain against
the targets of ``constraints/<board>.toml``.
"""

import json
import re
from dataclasses import asdict, dataclass, field

__all__ = [
    "ClockResult", "Utilisation", "BuildReport", "parse_report_json", "parse_log",
    "clock_aliases", "match_domain", "evaluate",
]

# nextpnr ECP5 cell types -> the resource names the report prints.
_RESOURCES = {
    "lut": ("TRELLIS_COMB",),
    "ff": ("TRELLIS_FF",),
    "bram": ("DP16KD",),
    "dsp": ("MULT18X18D",),
    "io": ("TRELLIS_IO",),
    "pll": ("EHXPLLL",),
}

_FMAX_RE = re.compile(
    r"Max frequency for clock\s+'(?P<clock>[^']+)':\s+(?P<fmax>[\d.]+)\s+MHz"
    r"\s+\((?P<verdict>PASS|FAIL)\s+at\s+(?P<target>[\d.]+)\s+MHz\)")
_UTIL_RE = re.compile(r"^Info:\s+(?P<cell>[A-Z0-9_]+):\s+(?P<used>\d+)/\s*(?P<avail>\d+)")


@dataclass
class ClockResult:
    """One clock domain: what nextpnr achieved against our target."""
    domain: str
    net: str | None
    target_mhz: float
    fmax_mhz: float | None          # None: no timed path on this clock

    @property
    def met(self) -> bool:
        return self.fmax_mhz is None or self.fmax_mhz >= self.target_mhz

    @property
    def slack_mhz(self) -> float | None:
        return None if self.fmax_mhz is None else self.fmax_mhz - self.target_mhz


@dataclass
class Utilisation:
    """Resource use: ``used``/``available`` per kind (lut, ff, bram, dsp, io, pll)."""
    used: dict[str, int] = field(default_factory=dict)
    available: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, kind: str) -> int:
        return self.used.get(kind, 0)


@dataclass
class BuildReport:
    """Everything ``crossnic build`` reports, also written as JSON in the build directory."""
    board: str
    part: str
    datapath: str
    clocks: list[ClockResult]
    utilisation: Utilisation
    stage_seconds: dict[str, float]
    unmatched_clocks: dict[str, float] = field(default_factory=dict)  # net -> fmax
    pll: dict | None = None
    rgmii: dict | None = None

    @property
    def timing_met(self) -> bool:
        return all(c.met for c in self.clocks)

    @property
    def build_seconds(self) -> float:
        return round(sum(self.stage_seconds.values()), 1)

    def to_json(self) -> dict:
        d = asdict(self)
        d["timing_met"] = self.timing_met
        d["build_seconds"] = self.build_seconds
        for c, obj in zip(d["clocks"], self.clocks, strict=True):
            c["met"] = obj.met
            c["slack_mhz"] = obj.slack_mhz
        return d


def parse_report_json(text: str) -> tuple[dict[str, float], Utilisation]:
    """``(fmax per clock net, utilisation)`` from nextpnr's ``--report`` JSON."""
    raw = json.loads(text)
    fmax = {}
    for net, entry in (raw.get("fmax") or {}).items():
        achieved = entry.get("achieved") if isinstance(entry, dict) else None
        if achieved is not None:
            fmax[net] = float(achieved)
    return fmax, _utilisation({k: (v.get("used", 0), v.get("available", 0))
                               for k, v in (raw.get("utilization") or {}).items()
                               if isinstance(v, dict)})


def parse_log(text: str) -> tuple[dict[str, float], Utilisation]:
    """``(fmax per clock net, utilisation)`` from a nextpnr log; the last report of each wins.

    nextpnr prints Fmax after placement and again after routing; the routed numbers come last.
    """
    fmax = {}
    for match in _FMAX_RE.finditer(text):
        fmax[match["clock"]] = float(match["fmax"])
    cells = {}
    for line in text.splitlines():
        match = _UTIL_RE.match(line.strip())
        if match:
            cells[match["cell"]] = (int(match["used"]), int(match["avail"]))
    return fmax, _utilisation(cells)


def _utilisation(cells: dict[str, tuple[int, int]]) -> Utilisation:
    util = Utilisation()
    for kind, names in _RESOURCES.items():
        util.used[kind] = sum(cells.get(n, (0, 0))[0] for n in names)
        util.available[kind] = sum(cells.get(n, (0, 0))[1] for n in names)
    return util


def clock_aliases(netlist_json: str, domains: list[str], top: str = "top") -> dict[str, str]:
    """Map every net name of the synthesised netlist that carries a domain's clock to the domain.

    nextpnr names a clock after whichever alias Yosys kept (``bridge.clk``, ``x.eth0_rx_clk``),
    so names alone are unreliable; connectivity is not. Amaranth names a domain's clock ``clk``
    for ``sync`` and ``<domain>_clk`` otherwise, in every module that uses it; the net bit most of
    those names share is the domain's clock, and every name on that bit is an alias of it.
    """
    module = json.loads(netlist_json)["modules"][top]
    bit_names: dict[int, list[str]] = {}
    for name, entry in module.get("netnames", {}).items():
        bits = entry.get("bits", [])
        if len(bits) == 1 and isinstance(bits[0], int):
            bit_names.setdefault(bits[0], []).append(name)
    aliases = {}
    for dom in domains:
        leaf = "clk" if dom == "sync" else f"{dom}_clk"
        votes: dict[int, int] = {}
        for bit, names in bit_names.items():
            n = sum(1 for name in names if name == leaf or name.endswith("." + leaf))
            if n:
                votes[bit] = n
        if votes:
            bit = max(votes, key=votes.get)
            for name in bit_names[bit]:
                aliases.setdefault(name, dom)
    return aliases


def match_domain(net: str, domains: list[str]) -> str | None:
    """The domain whose clock ``net`` is, judged by name (``$glbnet$`` prefixes ignored).

    Nets are named after what drives them: a domain's own clock signal (``eth0_rx_clk``), the
    RX_CLK input buffer of port *n* (``eth<n>_rgmii_rx.clk_buf.i``), or the PLL output feeding the
    domain (``pll.clk_out[k]`` is resolved by the caller's ``aliases``).
    """
    name = net.removeprefix("$glbnet$")
    for dom in sorted(domains, key=len, reverse=True):
        if name in (dom, f"{dom}_clk", f"{dom}.clk") or name.startswith(f"{dom}_clk"):
            return dom
        port = re.fullmatch(r"eth(\d+)_rx", dom)
        if port and name.startswith(f"eth{port[1]}_rgmii_rx."):
            return dom
    return None


def evaluate(fmax: dict[str, float], targets: dict[str, float],
             aliases: dict[str, str] | None = None) -> tuple[list[ClockResult], dict[str, float]]:
    """Per-domain results against ``targets`` (MHz), and the clock nets no domain claimed.

    ``aliases`` maps extra net names (e.g. PLL outputs) to domains. When several nets belong to
    one domain the slowest counts.
    """
    aliases = aliases or {}
    results = {d: ClockResult(d, None, t, None) for d, t in targets.items()}
    unmatched = {}
    for net, f in fmax.items():
        bare = net.removeprefix("$glbnet$")
        dom = aliases.get(bare) or match_domain(net, list(targets))
        if dom is None:
            unmatched[net] = f
            continue
        r = results[dom]
        if r.fmax_mhz is None or f < r.fmax_mhz:
            r.net, r.fmax_mhz = net, f
    return list(results.values()), unmatched

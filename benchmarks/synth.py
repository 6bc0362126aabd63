# Ref: nextpnr-ecp5 timing/utilisation report; crossnic.boards.build
"""Build every board and tabulate Fmax per clock, resource use and build time.

Run from the repository root (about 2-5 minutes per board on 2 cores)::

    python benchmarks/synth.py                      # all boards -> benchmarks/results/synth.json
    python benchmarks/synth.py --boards versa_ecp5 --json /tmp/synth.json --build-dir /tmp/b

Exit status 0 when every board met timing, 1 when one missed, 2 when a board could not be built.
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from crossnic.boards.build import BuildError, ToolchainError, build_board
from crossnic.boards.platforms import BOARDS

__all__ = ["main", "run"]

HEADER = ("board", "clock", "Fmax MHz", "target", "LUT", "FF", "BRAM", "DSP", "build s")


def run(boards: list[str], build_dir: Path, *, quiet: bool = False) -> list[dict]:
    """Build ``boards``; one result dict per board (the build report, or the error)."""
    results = []
    for name in boards:
        def progress(line, name=name):
            if not quiet:
                print(f"  [{name}] {line}", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        try:
            report = build_board(name, build_dir / name, progress=progress)
        except (BuildError, ToolchainError) as e:
            results.append({"board": name, "error": str(e),
                            "build_seconds": round(time.monotonic() - t0, 1)})
            continue
        results.append(report.to_json())
    return results


def table(results: list[dict]) -> str:
    rows = [HEADER]
    for r in results:
        if "error" in r:
            rows.append((r["board"], "ERROR", r["error"].splitlines()[0][:40], "", "", "", "",
                         "", f"{r['build_seconds']:.0f}"))
            continue
        used = r["utilisation"]["used"]
        for k, c in enumerate(r["clocks"]):
            fmax = "-" if c["fmax_mhz"] is None else f"{c['fmax_mhz']:.1f}"
            if c["fmax_mhz"] is not None and not c["met"]:
                fmax += " FAIL"
            first = k == 0
            rows.append((r["board"] if first else "", c["domain"], fmax, f"{c['target_mhz']:.0f}",
                         str(used["lut"]) if first else "", str(used["ff"]) if first else "",
                         str(used["bram"]) if first else "", str(used["dsp"]) if first else "",
                         f"{r['build_seconds']:.0f}" if first else ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    return "\n".join("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
                     for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boards", nargs="+", choices=list(BOARDS), default=list(BOARDS))
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/synth.json"),
                        help="where to write the results (default: %(default)s)")
    parser.add_argument("--build-dir", type=Path, default=Path("build/synth-bench"),
                        help="build directories go here (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no per-stage progress")
    args = parser.parse_args(argv)

    results = run(args.boards, args.build_dir, quiet=args.quiet)
    print(table(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "machine": {"python": platform.python_version(), "cpu_count": __import__("os").cpu_count(),
                    "platform": platform.platform()},
        "results": results,
    }, indent=2) + "\n")
    print(f"results: {args.json}")
    if any("error" in r for r in results):
        return 2
    return 0 if all(r["timing_met"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())

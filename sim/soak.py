"""Soak run of the whole card: the pyuvm random environment for as many frames as asked.

    python -m crossnic.sim.soak [--frames 200000] [--round 1000] [--seed N]

Each round programs a new random configuration and sends ``--round`` random frames on both
ports; every frame is checked against the reference model. Prints the coverage summary.
"""

import argparse
import random
import sys
import tempfile
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crossnic.sim.soak",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--round", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=None, help="default: a random seed")
    args = parser.parse_args(argv)
    if args.frames < 1 or args.round < 1:
        parser.error("--frames and --round must be positive")
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    print(f"soak: {args.frames} frames, rounds of {args.round}, seed {seed}", flush=True)
    from crossnic.gateware.nic_core import NicCore
    from crossnic.sim.harness import SimulationError, simulate
    with tempfile.TemporaryDirectory() as tmp:
        try:
            run = simulate(NicCore(), "crossnic.sim.nic_uvm_tb", test_dir=Path(tmp) / "run",
                           params={"frames": args.frames, "round": args.round, "seed": seed})
        except SimulationError as e:
            print(e, file=sys.stderr)
            print(f"soak: FAILED (seed {seed})", file=sys.stderr)
            return 1
        log = (run / "sim.log").read_text(errors="replace")
        start = log.find("coverage")
        print(log[start:log.find("cocotb.regression", start)].strip() if start >= 0 else log)
    print(f"soak: passed (seed {seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``crossnic`` command line (argparse everywhere; every subcommand exits non-zero on error)."""

import argparse
import sys

from . import __version__

__all__ = ["main"]


class CliError(Exception):
    """A user-facing error: printed as ``crossnic: error: ...`` with exit status 2."""


def _cmd_version(args) -> int:
    print(f"crossnic {__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crossnic", description="Open FPGA NIC: simulate, build and manage the card.")
    parser.add_argument("--version", action="version", version=f"crossnic {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("version", help="print the crossnic version")
    p.set_defaults(func=_cmd_version)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CliError as e:
        print(f"crossnic: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

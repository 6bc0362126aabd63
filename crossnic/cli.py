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


def _cmd_sim(args) -> int:
    from pathlib import Path

    from .sim.replay import ReplayError, main
    if args.cable:
        from .sim.serve import ServeError, cable_main
        try:
            return cable_main(args)
        except ServeError as e:
            raise CliError(str(e)) from None
    if args.serve:
        from .sim.serve import ServeError
        from .sim.serve import main as serve
        try:
            return serve(args)
        except ServeError as e:
            raise CliError(str(e)) from None
    if not args.out:
        raise CliError("sim needs --out DIR (or --serve to run the card as a device)")
    try:
        if not args.nic:
            return main(args)
        from .sim.nic_replay import replay_nic
        from .sim.samples import sample_path
        capture = Path(args.input) if args.input else Path(str(sample_path()))
        r = replay_nic(capture, Path(args.out), args.config and Path(args.config),
                       port=args.port, line_rate=args.line_rate, limit=args.limit)
    except ReplayError as e:
        raise CliError(str(e)) from None
    print(f"{r['frames']} frames in, {r['delivered']} delivered: "
          + ", ".join(f"ring {k}: {n}" for k, n in r["per_ring"].items()))
    print(f"wrote {args.out}/ring0..{r['rings'] - 1}.pcap, completions.json, completions.csv, "
          "counters.json")
    return 0


def _cmd_demo(args) -> int:
    from .host.demo import DemoError, main
    try:
        return main(args)
    except DemoError as e:
        raise CliError(str(e)) from None


def _cmd_build(args) -> int:
    from .boards.build import BuildError, ToolchainError, build_board, format_report
    from .boards.platforms import BOARDS
    if args.list:
        for b in BOARDS.values():
            print(f"{b.name:<18} {b.part:<20} {b.title}")
        return 0
    if not args.board:
        raise CliError(f"--board NAME is required; boards: {', '.join(BOARDS)} (see --list)")
    if args.board not in BOARDS:
        raise CliError(f"unknown board {args.board!r}; boards: {', '.join(BOARDS)}")
    out = args.out or f"build/{args.board}"
    try:
        report = build_board(args.board, out, datapath=args.datapath, seed=args.seed)
    except (ToolchainError, ValueError) as e:
        raise CliError(str(e)) from None
    except BuildError as e:
        print(f"crossnic: build failed: {e}", file=sys.stderr)
        return 3
    print(format_report(report, out))
    return 0 if report.timing_met else 1


def _cmd_regmap(args) -> int:
    import json

    from .boards.platforms import BOARDS
    from .boards.top import BoardTop
    if args.vf:
        from .gateware.nic_core import FULL_OPTIONS, NicCore
        regmap = NicCore(**FULL_OPTIONS).vf_window()
    elif args.board is None:
        from .gateware.nic_core import FULL_OPTIONS, NicCore
        regmap = NicCore(**FULL_OPTIONS).regmap()
    elif args.board not in BOARDS:
        raise CliError(f"unknown board {args.board!r}; boards: {', '.join(BOARDS)}")
    else:
        board = BOARDS[args.board]
        try:
            regmap = BoardTop(board, board.constraints(), datapath=args.datapath).regmap()
        except ValueError as e:
            raise CliError(str(e)) from None
    if args.format == "markdown":
        sys.stdout.write(regmap.markdown())
    elif args.format == "json":
        print(json.dumps(regmap.to_json(), indent=2))
    else:
        for r in regmap.registers():
            print(f"{r.addr:#06x}  {r.register.access.value:<3}  {r.path}")
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crossnic", description="Open FPGA NIC: simulate, build and manage the card.")
    parser.add_argument("--version", action="version", version=f"crossnic {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("version", help="print the crossnic version")
    p.set_defaults(func=_cmd_version)

    p = sub.add_parser(
        "sim", help="replay a capture through the simulated card",
        description="Replay an Ethernet capture (pcap/pcapng) through the Verilator simulation "
                    "of the card's receive path and write what came out: rx.pcap, frames.json, "
                    "frames.csv (per input frame: delivered or drop reason, parsed headers) and "
                    "counters.json.")
    p.add_argument("--in", dest="input", metavar="PCAP",
                   help="capture to replay (default: the sample shipped with crossnic)")
    p.add_argument("--out", metavar="DIR", help="directory for the results")
    p.add_argument("--fcs", choices=["absent", "present"], default="absent",
                   help="whether captured frames end with their FCS (default: absent, a "
                        "correct FCS is appended)")
    p.add_argument("--line-rate", action="store_true",
                   help="send frames back to back at the minimum gap (outcome per frame is "
                        "then only delivered/dropped)")
    p.add_argument("--max-length", type=_positive, default=1518, metavar="N",
                   help="longest frame accepted, FCS included (default 1518; +4 with VLAN tag)")
    p.add_argument("--limit", type=_positive, metavar="N", help="replay only the first N frames")
    p.add_argument("--nic", action="store_true",
                   help="the whole card: classifier tables from --config, frames DMA'd into "
                        "rings; writes ring<N>.pcap, completions.json/csv, counters.json")
    p.add_argument("--config", metavar="JSON",
                   help="with --nic: the card's tables (default: the bundled nic.json)")
    p.add_argument("--port", type=int, choices=[0, 1], default=0,
                   help="with --nic: the port the capture arrives on (default 0)")
    p.add_argument("--serve", action="store_true",
                   help="run the whole card as a device for drivers (crossnicd, SimDevice) "
                        "until a client stops it or Ctrl-C")
    p.add_argument("--socket", metavar="PATH",
                   help="with --serve: the card's Unix socket (default /run/crossnic/sim0.sock)")
    for k in range(2):
        p.add_argument(f"--port{k}", default="none", metavar="CABLE",
                       help=f"with --serve: what port {k} is cabled to: none (default), other "
                            "(the card's other port), tap:NAME (a Linux TAP device), "
                            "udp:LOCAL:REMOTE (a port of another served card)")
    p.add_argument("--memory-mb", type=_positive, default=64, metavar="N",
                   help="with --serve: host memory the card can reach (default 64)")
    p.add_argument("--cable", metavar="PORTn=STATE",
                   help="to a served card (--socket): pull (down), plug back (up) or show "
                        "the cable of a port, e.g. port0=down: its link drops on both ends")
    p.set_defaults(func=_cmd_sim)

    p = sub.add_parser(
        "build", help="synthesize the board top for an FPGA board (open toolchain)",
        description="Build the two-port MAC echo design for a board with Yosys, nextpnr-ecp5 and "
                    "ecppack (YoWASP builds from PyPI), then print Fmax per clock domain against "
                    "the targets in constraints/<board>.toml and the resource use. Writes the "
                    "bitstream, logs, regmap.json and crossnic-build.json to the build directory.",
        epilog="exit status: 0 timing met, 1 timing failed, 2 usage or missing toolchain, "
               "3 a tool failed")
    p.add_argument("--board", metavar="NAME", help="board to build (see --list)")
    p.add_argument("--out", metavar="DIR", help="build directory (default: build/NAME)")
    p.add_argument("--list", action="store_true", help="list the boards and exit")
    p.add_argument("--datapath", choices=["ports", "echo"], default="ports",
                   help="ports: RxPort/TxPort echo (default); echo: bring-up RGMII loop")
    p.add_argument("--seed", type=int, help="nextpnr placement seed (default: from constraints)")
    p.set_defaults(func=_cmd_build)

    p = sub.add_parser(
        "regmap", help="print the card's register map (text, markdown or JSON)",
        description="Print the registers of the NIC core (BAR0), or of a board top's UART "
                    "bridge with --board, from the register description the gateware decoder "
                    "and the host accessors also use. docs/regmap.md is `crossnic regmap "
                    "--markdown`; docs/board-regmap.md is `crossnic regmap --board versa_ecp5 "
                    "--markdown`; docs/vf-regmap.md (a virtual function's window) is "
                    "`crossnic regmap --vf --markdown`.")
    p.add_argument("--board", metavar="NAME",
                   help="a board top's UART register map instead of the NIC core's")
    p.add_argument("--vf", action="store_true",
                   help="the register window of one virtual function (its VF BAR)")
    p.add_argument("--datapath", choices=["ports", "echo"], default="ports")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", dest="format", action="store_const", const="markdown",
                     help="the reference document")
    fmt.add_argument("--json", dest="format", action="store_const", const="json",
                     help="one record per register")
    p.set_defaults(func=_cmd_regmap, format="text")

    p = sub.add_parser(
        "demo", help="the simulated card carrying Linux traffic between namespaces (root)",
        description="Start the simulated card with port 0 cabled to an external-host network "
                    "namespace, run crossnicd, create two VNS instances with a VNIC each, "
                    "ping and transfer over TCP between them and to the external host, print "
                    "the card's counters, and remove everything again. Needs root.")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_cmd_demo)

    from .host.admin import add_parsers
    add_parsers(sub)
    _add_tls_parser(sub)
    _add_vf_parser(sub)
    return parser


# The TLS endpoints and the guest's VF driver import the card's layouts (Amaranth) and the
# crypto stack: they load when their command runs, so every other command starts in a tenth of
# a second instead of most of one.
def _cmd_tls(args) -> int:
    from .host.tls_cli import run
    return run(args)


def _cmd_vf(args) -> int:
    from .host.vf_guest import run
    return run(args)


def _add_tls_parser(sub) -> None:
    import os

    from .host.admin import DEFAULT_SOCKET
    p = sub.add_parser("tls", help="TLS 1.3 with the handshake on the card's offload engine",
                       description="TLS 1.3 client and server whose ECDHE, key schedule and "
                       "record encryption run on the card (through crossnicd), or in software.")
    tsub = p.add_subparsers(dest="tls_cmd", required=True)

    def common(q):
        q.add_argument("--backend", choices=("card", "soft"), default="card",
                       help="card: the offload engine via crossnicd (default); soft: software")
        q.add_argument("--daemon", default=str(DEFAULT_SOCKET), metavar="SOCKET",
                       help=f"crossnicd's socket (default {DEFAULT_SOCKET})")
        q.add_argument("--json", action="store_true", help="handshake summary as JSON")
        q.set_defaults(func=_cmd_tls)

    c = tsub.add_parser("connect", help="connect to a TLS 1.3 server")
    c.add_argument("target", metavar="HOST:PORT")
    c.add_argument("--cafile", help="PEM certificates to trust (default: accept any, but the "
                   "CertificateVerify signature is always checked)")
    c.add_argument("--servername", help="SNI name (default: HOST)")
    c.add_argument("--send", help="send this text after the handshake (\\n escapes work)")
    c.add_argument("--expect", help="stop reading once this text arrived")
    c.add_argument("--wait", type=float, default=5.0, help="seconds to read answers (5)")
    c.add_argument("--timeout", type=float, default=10.0, help="connect timeout (10 s); the "
                   "handshake may take 120 s")
    common(c)

    s = tsub.add_parser("serve", help="accept TLS 1.3 clients and echo what they send")
    s.add_argument("--listen", default="0.0.0.0:4433", metavar="ADDR:PORT")
    s.add_argument("--cert", help="PEM certificate (default: a new self-signed P-256 one)")
    s.add_argument("--key", help="PEM private key of --cert")
    s.add_argument("--name", default=os.uname().nodename, help="CN of the self-signed cert")
    s.add_argument("--count", type=int, default=0, help="stop after this many clients")
    s.add_argument("--upper", action="store_true", help="echo in upper case")
    s.add_argument("--client-ca", metavar="PEM",
                   help="require client certificates issued by these CAs")
    s.add_argument("--subscriptions", action="store_true",
                   help="with --client-ca: raise each client's connection to its subscription "
                        "level (crossnicd's subscribers, by certificate CN) while it lasts")
    common(s)


def _add_vf_parser(sub) -> None:
    p = sub.add_parser("vf", help="guest side: bring a virtual function up as an interface",
                       description="The guest's VF driver: holds only the VF's register window "
                       "and the memory its PF granted, and moves frames between the VF's rings "
                       "and a TAP interface in the caller's network namespace (run it with ip "
                       "netns exec). Interface changes become requests to the PF. With a VF "
                       "of several cards (--card/--vf given once per card), one interface "
                       "aggregates them: connections spread by a hash of their 5-tuple and "
                       "move to the cards left when a link or a card goes down.")
    p.add_argument("--card", action="append", metavar="sim:SOCKET",
                   help="the served card (default sim:/run/crossnic/sim0.sock); repeat, with "
                        "--vf, to aggregate VFs of several cards")
    p.add_argument("--vf", type=int, action="append", required=True,
                   help="VF number (one per --card)")
    p.add_argument("--ifname", default="eth0", help="interface name (default eth0)")
    p.add_argument("--ip", action="append", metavar="ADDR/LEN", help="address (repeatable)")
    p.add_argument("--status", metavar="PATH", help="write counters as JSON here (0.5 s)")
    p.set_defaults(func=_cmd_vf)


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

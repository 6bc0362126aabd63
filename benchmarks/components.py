# Ref: Yosys synth_ecp5, nextpnr-ecp5 (--report)
"""Fmax and size of single gateware components on an ECP5, before they are assembled.

Each component is wrapped so that all its inputs come from registers fed by an LFSR and all its
outputs are registered and folded into one pin: the timing is the component's own,
register to register, at 125 MHz. Yosys and nextpnr-ecp5 come from YoWASP (PyPI).

    python benchmarks/components.py [--device 25k|45k|um5g-45k] [--only NAME ...] [--seed N]
                                    [--json benchmarks/results/components.json] [--keep DIR]
                                    [--profile NAME] [--synth-opt=ARGS ...]
                                    [--nextpnr-opt=ARGS ...]

``--keep DIR`` leaves each build (netlist, nextpnr log with the critical paths) in DIR/<n>.
``--profile`` picks a named set of tool options (see ``PROFILES``); ``--synth-opt`` and
``--nextpnr-opt`` add to it (write them with ``=``, e.g. ``--nextpnr-opt=--tmg-ripup``).
"""

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from amaranth import *
from amaranth.back import rtlil
from amaranth.lib import wiring

from crossnic.boards.build import find_toolchain

ROOT = Path(__file__).resolve().parents[1]
#: --device choices: nextpnr part, package, speed grade, and the name of the chip.
DEVICES = {
    "25k": ("25k", "CABGA256", "6", "LFE5U-25F-6"),
    "45k": ("45k", "CABGA381", "6", "LFE5U-45F-6"),
    "um5g-45k": ("um5g-45k", "CABGA381", "8", "LFE5UM5G-45F-8 (versa_ecp5)"),
}

#: --profile choices: (extra synth_ecp5 options, extra nextpnr-ecp5 options).
#: "timing" (the default) weighs timing six times as much as nextpnr's default in the HeAP
#: placer (--placer-heap-timingweight 60 instead of 10). On NicCore (LFE5UM5G-45F-8, 76% of the
#: LUTs) it gave 127.2, 134.5, 133.1 and 128.9 MHz with seeds 1 to 4; nextpnr's defaults
#: ("nextpnr") gave 96.7 and 116.5 MHz with seeds 1 and 3 (89.7 with seed 2, in the README), and
#: a weight of 30 gave 110.0, 106.4 and 125.6 MHz. Router2 with --tmg-ripup did not converge on
#: it; a 140 MHz constraint placed and routed it exactly as 125 MHz did (the clock misses both);
#: --placer-heap-critexp 4 changed nothing. Yosys 0.70's synth_ecp5 already maps with abc9.
PROFILES = {
    "timing": ([], ["--placer-heap-timingweight", "60"]),
    "nextpnr": ([], []),
}


class Harness(Elaboratable):
    """Drives every input port of ``dut`` from an LFSR and XORs every output into ``o``."""

    def __init__(self, dut: wiring.Component):
        self.dut = dut
        self.o = Signal()

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        ins, outs = [], []
        for _path, member, value in dut.signature.flatten(dut):
            (ins if member.flow == wiring.In else outs).append(Value.cast(value))
        width = sum(len(v) for v in ins)
        lfsr = Signal(max(width, 64), init=1)
        m.d.sync += lfsr.eq(Cat(lfsr[1:], lfsr[0] ^ lfsr[2] ^ lfsr[3] ^ lfsr[5]))
        staged = Signal(width)
        m.d.sync += staged.eq(lfsr[:width])             # inputs from registers
        offset = 0
        for v in ins:
            m.d.comb += v.eq(staged[offset:offset + len(v)])
            offset += len(v)
        folded = Signal(len(outs))
        m.d.sync += folded.eq(Cat(v.xor() for v in outs))   # outputs into registers
        m.d.sync += self.o.eq(folded.xor())
        return m


def components() -> dict:
    from crossnic.boards.top import BoardInfo
    from crossnic.gateware.axil import AxiLiteCsrBridge
    from crossnic.gateware.flow_table import FlowTable
    from crossnic.gateware.mac_table import MacTable
    from crossnic.gateware.regmap import Block, RegisterMap
    from crossnic.gateware.rx_port import RX_COUNTERS
    regmap = RegisterMap("bench", [BoardInfo.describe(0),
                                   Block.from_counters("rx", "", RX_COUNTERS)])
    from crossnic.gateware.classifier import Classifier
    from crossnic.gateware.crypto.aes import Aes128
    from crossnic.gateware.crypto.gcm import Aes128Gcm
    from crossnic.gateware.crypto.ghash import Ghash
    from crossnic.gateware.crypto.hkdf import Hkdf
    from crossnic.gateware.crypto.hmac import HmacSha256
    from crossnic.gateware.crypto.offload import OffloadEngine
    from crossnic.gateware.crypto.sha256 import Sha256
    from crossnic.gateware.crypto.x25519 import X25519
    from crossnic.gateware.dma_guard import DmaGuard
    from crossnic.gateware.nic_core import FULL_OPTIONS, NicCore
    from crossnic.gateware.rx_dma import RxDmaEngine
    from crossnic.gateware.tx_dma import TxDmaEngine
    from crossnic.gateware.tx_spoof_check import TxSpoofCheck
    from crossnic.gateware.vf_control import VfControl
    from crossnic.gateware.vf_windows import VfWindows
    vfs = FULL_OPTIONS["vfs"]
    return {
        # The whole card with its port clocks tied to the core clock: the core's own paths.
        "NicCore(2 ports, 64 rings)": lambda: DomainRenamer(
            {"eth0_rx": "sync", "eth1_rx": "sync"})(NicCore()),
        "Classifier(32 MAC, 16 IP, 64 flows)": lambda: Classifier(),
        "RxDmaEngine(64 rings)": lambda: RxDmaEngine(4, rings=64),
        "TxDmaEngine(64 rings)": lambda: TxDmaEngine(rings=64),
        "MacTable(32 entries)": lambda: MacTable(32, 6),
        "MacTable(64 entries)": lambda: MacTable(64, 6),
        "FlowTable(64 entries, 2 lanes)": lambda: FlowTable(64, 2),
        "AxiLiteCsrBridge": lambda: AxiLiteCsrBridge(regmap, 3),
        "Sha256": lambda: Sha256(),
        "HmacSha256": lambda: HmacSha256(),
        "Hkdf": lambda: Hkdf(),
        "X25519": lambda: X25519(),
        "Aes128": lambda: Aes128(),
        "Ghash": lambda: Ghash(),
        "Aes128Gcm": lambda: Aes128Gcm(),
        # the handshake block: cores, key slots, command processor
        "OffloadEngine": lambda: OffloadEngine(),
        # virtual functions: what NicCore(vfs=8) adds (two guards: receive and transmit)
        "VfControl(8 VFs)": lambda: VfControl(vfs),
        "VfWindows(8 VFs)": lambda: VfWindows(NicCore(vfs=vfs).regmap(), vfs),
        "DmaGuard(8 VFs)": lambda: DmaGuard(vfs=vfs, ring_bits=6),
        "TxSpoofCheck(8 VFs)": lambda: TxSpoofCheck(vfs),
        "NicCore(2 ports, 64 rings, 8 VFs)": lambda: DomainRenamer(
            {"eth0_rx": "sync", "eth1_rx": "sync"})(NicCore(vfs=vfs)),
    }


def build(name: str, make, device: str, workdir: Path, tools: dict, seed: int = 1,
          synth_opts=(), nextpnr_opts=()) -> dict:
    top = Harness(make())
    clk, o = Signal(name="clk"), Signal(name="o")
    m = Module()
    m.domains.sync = ClockDomain(reset_less=True)
    m.d.comb += [ClockSignal("sync").eq(clk), o.eq(top.o)]
    m.submodules.top = top
    (workdir / "top.il").write_text(rtlil.convert(m, ports=[clk, o]))
    started = time.monotonic()
    synth = " ".join(["synth_ecp5", *synth_opts, "-top top -json top.json"])
    subprocess.run([tools["yosys"], "-q", "-p", f"read_rtlil top.il; {synth}"],
                   cwd=workdir, check=True)
    (workdir / "top.lpf").write_text('FREQUENCY PORT "clk" 125 MHZ;\n')
    part, package, speed, _ = DEVICES[device]
    subprocess.run([tools["nextpnr-ecp5"], f"--{part}", "--package", package, "--speed", speed,
                    "--json", "top.json", "--lpf",
                    "top.lpf", "--lpf-allow-unconstrained", "--report", "report.json",
                    "--seed", str(seed),
                    "--timing-allow-fail", "--quiet", "--log", "pnr.log", *nextpnr_opts],
                   cwd=workdir, check=True)
    report = json.loads((workdir / "report.json").read_text())
    fmax = min(c["achieved"] for c in report["fmax"].values())
    used = {k.lower(): v["used"] for k, v in report["utilization"].items()
            if k in ("TRELLIS_COMB", "TRELLIS_FF", "DP16KD", "TRELLIS_RAMW", "MULT18X18D")}
    return {"component": name, "seed": seed, "fmax_mhz": round(fmax, 1),
            "luts": used.get("trellis_comb"),
            "ffs": used.get("trellis_ff"), "bram": used.get("dp16kd"),
            "lutram": used.get("trellis_ramw"), "dsp": used.get("mult18x18d"),
            "synth_opts": list(synth_opts), "nextpnr_opts": list(nextpnr_opts),
            "seconds": round(time.monotonic() - started, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=list(DEVICES), default="25k")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/components.json")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the build directories (nextpnr log, report) under DIR")
    parser.add_argument("--seed", type=int, default=1,
                        help="nextpnr's placement seed (placement-bound designs vary with it)")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="build only the components whose name contains NAME (repeatable)")
    parser.add_argument("--profile", choices=list(PROFILES), default="timing",
                        help="named tool options (default: %(default)s)")
    parser.add_argument("--synth-opt", action="append", default=[], metavar="ARGS",
                        help="more synth_ecp5 options, e.g. --synth-opt=-dff (repeatable)")
    parser.add_argument("--nextpnr-opt", action="append", default=[], metavar="ARGS",
                        help="more nextpnr-ecp5 options, e.g. --nextpnr-opt=--tmg-ripup or "
                             "--nextpnr-opt='--router router2' (repeatable)")
    args = parser.parse_args(argv)
    synth_opts, nextpnr_opts = PROFILES[args.profile]
    synth_opts = [*synth_opts, *(o for a in args.synth_opt for o in shlex.split(a))]
    nextpnr_opts = [*nextpnr_opts, *(o for a in args.nextpnr_opt for o in shlex.split(a))]
    options = dict(seed=args.seed, synth_opts=synth_opts, nextpnr_opts=nextpnr_opts)
    selected = {name: make for name, make in components().items()
                if not args.only or any(o in name for o in args.only)}
    if not selected:
        parser.error(f"no component matches {args.only}; have: {', '.join(components())}")
    tools = find_toolchain()
    results = []
    for k, (name, make) in enumerate(selected.items()):
        if args.keep:
            workdir = args.keep / str(k)
            workdir.mkdir(parents=True, exist_ok=True)
            results.append(build(name, make, args.device, workdir, tools, **options))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                results.append(build(name, make, args.device, Path(tmp), tools, **options))
        r = results[-1]
        print(f"{r['component']:<24} {r['fmax_mhz']:>7.1f} MHz  LUT4 {r['luts']:>5}  "
              f"FF {r['ffs']:>5}  BRAM {r['bram']}  LUTRAM {r['lutram']}  DSP {r.get('dsp')}  "
              f"({r['seconds']} s)",
              flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"device": f"{DEVICES[args.device][3]}, 125 MHz "
                                               "constraint, register-to-register",
                                     "profile": args.profile,
                                     "results": results}, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

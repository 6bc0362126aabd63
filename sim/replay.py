"""``crossnic sim``: replay a capture through the simulated card and report what it did.

Each frame of the capture goes onto the GMII wire of a Verilator simulation of the receive
datapath (MAC, buffer, header parser). Out come the frames the card delivered (pcap), one
record per input frame with its fate (delivered or the drop counter that took it) and the
parsed metadata (JSON and CSV), and the port counters (JSON).
"""

import csv
import ipaddress
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .model.parser import ParsedFrame, from_gateware

__all__ = ["ReplayOptions", "ReplayResult", "read_capture", "replay"]

DLT_EN10MB = 1


class ReplayError(Exception):
    """The capture or the options cannot be replayed (message is for the user)."""


@dataclass
class ReplayOptions:
    fcs: str = "absent"          # "absent": append a correct FCS; "present": frames carry one
    line_rate: bool = False      # back-to-back at minimum IFG instead of one frame at a time
    max_length: int = 1518
    limit: int | None = None
    width: int = 4


@dataclass
class ReplayResult:
    records: list[dict]
    counters: dict[str, int]
    delivered: int
    sim_seconds: float
    wall_seconds: float          # the simulation itself, without build and start-up
    build_seconds: float
    build_cached: bool


def read_capture(path: Path, limit: int | None = None) -> list[tuple[float, bytes]]:
    """``(timestamp, frame)`` pairs of an Ethernet pcap or pcapng file."""
    from scapy.error import Scapy_Exception
    from scapy.utils import RawPcapReader

    if not path.is_file():
        raise ReplayError(f"capture {path} does not exist")
    frames = []
    try:
        with RawPcapReader(str(path)) as reader:
            for data, meta in reader:
                linktype = getattr(meta, "linktype", None) or getattr(reader, "linktype", None)
                if linktype not in (None, DLT_EN10MB):
                    raise ReplayError(f"{path}: link type {linktype} is not Ethernet (1)")
                frames.append((_timestamp(reader, meta), bytes(data)))
                if limit is not None and len(frames) >= limit:
                    break
    except Scapy_Exception as e:
        raise ReplayError(f"{path}: not a pcap/pcapng capture ({e})") from None
    if not frames:
        raise ReplayError(f"{path}: the capture holds no frames")
    return frames


def _timestamp(reader, meta) -> float:
    if hasattr(meta, "tshigh"):      # pcapng
        return ((meta.tshigh << 32) | meta.tslow) / meta.tsresol
    return meta.sec + meta.usec / (1e9 if getattr(reader, "nano", False) else 1e6)


def replay(capture: Path, out_dir: Path, options: ReplayOptions,
           progress=lambda msg: None) -> ReplayResult:
    """Replay ``capture`` and write ``rx.pcap``, ``frames.json``, ``frames.csv`` and
    ``counters.json`` into ``out_dir``."""
    from ..gateware.rx_pipeline import RxPipeline
    from ..gateware.rx_port import RX_COUNTERS
    from .harness import build, simulate
    from .replay_tb import read_frames, write_frames

    if options.fcs not in ("absent", "present"):
        raise ReplayError(f"--fcs must be 'absent' or 'present', not {options.fcs!r}")
    if not 64 <= options.max_length <= 9018:
        raise ReplayError(f"--max-length must be 64..9018, not {options.max_length}")
    frames = read_capture(capture, options.limit)
    if options.fcs == "present" and any(len(f) < 4 for _, f in frames):
        raise ReplayError("--fcs present, but some frames are shorter than an FCS")
    out_dir.mkdir(parents=True, exist_ok=True)

    pipeline = RxPipeline(width=options.width, fifo_depth=buffer_depth(options))
    registers = [{"name": r.name, "addr": r.addr, "part": r.part} for r in pipeline.registers]
    accounting = [c.name for c in RX_COUNTERS
                  if c.name == "frames_ok" or c.name.startswith("drop_")]
    progress(f"building the simulated card ({len(frames)} frames to replay)")
    started = time.monotonic()
    vbuild = build(pipeline)   # its undefined `rx` domain becomes the rx_clk/rx_rst ports
    progress(f"build {'reused from cache' if vbuild.cached else 'done'} "
             f"({time.monotonic() - started:.1f} s); simulating")
    with tempfile.TemporaryDirectory(prefix="crossnic-sim-") as tmp:
        tmp = Path(tmp)
        write_frames(tmp / "frames.bin", [f for _, f in frames])
        simulate(vbuild, "crossnic.sim.replay_tb", testcase="replay", test_dir=tmp / "run",
                 params={"frames": str(tmp / "frames.bin"), "delivered": str(tmp / "out.bin"),
                         "results": str(tmp / "results.json"), "width": options.width,
                         "fcs": options.fcs, "line_rate": options.line_rate,
                         "max_length": options.max_length, "registers": registers,
                         "accounting": accounting})
        results = json.loads((tmp / "results.json").read_text())
        delivered = read_frames(tmp / "out.bin")

    records = _records(frames, options, results, delivered)
    _write_outputs(out_dir, capture, options, records, results, delivered)
    return ReplayResult(records, results["counters"], len(delivered), results["sim_ns"] / 1e9,
                        results["sim_wall_seconds"], vbuild.build_seconds, vbuild.cached)


def buffer_depth(options: ReplayOptions) -> int:
    """Receive-buffer beats: the default 1024, or room for two of the longest frames (with a
    VLAN tag) when ``--max-length`` asks for jumbo frames, so they are not all overflow drops."""
    beats = -(-(options.max_length + 4) // options.width)
    depth = 1024
    while depth < 2 * beats:
        depth *= 2
    return depth


def _records(frames, options, results, delivered) -> list[dict]:
    """One record per input frame; delivered frames are matched in order by content."""
    fcs = 4 if options.fcs == "present" else 0
    records, d = [], 0
    for n, ((stamp, frame), outcome) in enumerate(zip(frames, results["outcomes"], strict=True)):
        body = frame[:len(frame) - fcs] if fcs else frame
        record = {"index": n, "time": stamp, "length": len(body),
                  "wire_length": len(body) + 4, "outcome": outcome}
        is_next = d < len(delivered) and delivered[d] == body
        if outcome == "frames_ok" or (outcome == "line-rate" and is_next):
            if not is_next:
                raise RuntimeError(f"frame {n} was counted as delivered but did not come out "
                                   "intact: the datapath corrupted it")
            record["outcome"] = "delivered"
            record["metadata"] = describe(from_gateware(results["metadata"][d]))
            d += 1
        elif outcome == "line-rate":
            record["outcome"] = "dropped"
        records.append(record)
    if d != len(delivered):
        raise RuntimeError(f"{len(delivered) - d} delivered frames match no input frame")
    return records


def _mac(value: int) -> str:
    return ":".join(f"{b:02x}" for b in value.to_bytes(6, "big"))


def describe(m: ParsedFrame) -> dict:
    """The metadata in the units a person reads: MAC/IP strings, enum names, flag lists."""
    out = m.as_dict()
    out["dst_mac"], out["src_mac"] = _mac(m.dst_mac), _mac(m.src_mac)
    for key in ("l3", "l4", "ip_csum", "l4_csum"):
        out[key] = out[key].name.lower()
    out["errors"] = sorted(m.errors)
    if m.l3.name in ("IPV4", "ARP"):
        out["ip_src"] = str(ipaddress.IPv4Address(m.ip_src & 0xFFFF_FFFF))
        out["ip_dst"] = str(ipaddress.IPv4Address(m.ip_dst & 0xFFFF_FFFF))
    elif m.l3.name == "IPV6":
        out["ip_src"] = str(ipaddress.IPv6Address(m.ip_src))
        out["ip_dst"] = str(ipaddress.IPv6Address(m.ip_dst))
    else:
        out["ip_src"] = out["ip_dst"] = ""
    out["ethertype"] = f"0x{m.ethertype:04x}"
    return out


CSV_COLUMNS = ["index", "length", "wire_length", "outcome", "dst_mac", "src_mac", "vlan_vid",
               "ethertype", "l3", "ip_src", "ip_dst", "l4", "l4_src_port", "l4_dst_port",
               "ip_csum", "l4_csum", "broadcast", "multicast", "errors"]


def _write_outputs(out_dir, capture, options, records, results, delivered) -> None:
    from scapy.utils import RawPcapWriter

    with RawPcapWriter(str(out_dir / "rx.pcap"), linktype=DLT_EN10MB, nano=True,
                       sync=True) as writer:
        writer.write_header(None)    # also for an empty result: a valid, empty capture
        for t_ns, frame in zip(results["delivered_ns"], delivered, strict=True):
            sec, nsec = divmod(int(t_ns), 10**9)
            writer.write_packet(frame, sec=sec, usec=nsec)
    (out_dir / "frames.json").write_text(json.dumps({
        "capture": str(capture), "options": vars(options), "frames": records,
        "counters": results["counters"]}, indent=1) + "\n")
    (out_dir / "counters.json").write_text(json.dumps(results["counters"], indent=1) + "\n")
    with open(out_dir / "frames.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for r in records:
            row = {**r, **r.get("metadata", {})}
            if isinstance(row.get("errors"), list):
                row["errors"] = " ".join(row["errors"])
            writer.writerow(row)


def summary_lines(result: ReplayResult) -> list[str]:
    lines = [f"{'#':>4} {'len':>5}  {'outcome':<16} what the parser saw"]
    for r in result.records:
        m = r.get("metadata")
        seen = ""
        if m:
            l4 = f" {m['l4']} {m['l4_src_port']}->{m['l4_dst_port']}" \
                if m["l4"] in ("tcp", "udp") else (f" {m['l4']}" if m["l4"] != "none" else "")
            vlan = f" vlan {m['vlan_vid']}" if m["vlan_tagged"] else ""
            ips = f" {m['ip_src']}->{m['ip_dst']}" if m["ip_src"] else ""
            flags = [f"ip_csum={m['ip_csum']}"] if m["ip_csum"] == "bad" else []
            flags += [f"l4_csum={m['l4_csum']}"] if m["l4_csum"] == "bad" else []
            flags += m["errors"]
            seen = f"{m['l3']}{vlan}{ips}{l4}" + (f"  [{', '.join(flags)}]" if flags else "")
        lines.append(f"{r['index']:>4} {r['length']:>5}  {r['outcome']:<16} {seen}")
    lines.append("counters: " + ", ".join(f"{k}={v}" for k, v in result.counters.items() if v))
    lines.append(f"{result.delivered} of {len(result.records)} frames delivered; "
                 f"{result.sim_seconds * 1e6:.1f} us simulated in {result.wall_seconds:.1f} s")
    return lines


def main(args) -> int:
    """Handler of ``crossnic sim`` (argparse namespace from :mod:`crossnic.cli`)."""
    from .samples import sample_path
    capture = Path(args.input) if args.input else Path(str(sample_path()))
    options = ReplayOptions(fcs=args.fcs, line_rate=args.line_rate,
                            max_length=args.max_length, limit=args.limit)
    out_dir = Path(args.out)
    result = replay(capture, out_dir, options,
                    progress=lambda msg: print(f"crossnic sim: {msg}", file=sys.stderr))
    for line in summary_lines(result):
        print(line)
    print(f"wrote {out_dir}/rx.pcap, frames.json, frames.csv, counters.json")
    return 0

"""``crossnic sim`` end to end: the real RX MAC + parser in Verilator on real captures."""

import json
import struct
import zlib

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import RawPcapReader, wrpcap

from crossnic.cli import main
from crossnic.sim.model.parser import parse
from crossnic.sim.replay import describe
from crossnic.sim.samples import sample_frames


def _read_pcap(path):
    with RawPcapReader(str(path)) as reader:
        return [bytes(data) for data, _ in reader]


def test_sample_replay(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["sim", "--out", str(out)]) == 0
    frames = [f for _, f in sample_frames()]
    report = json.loads((out / "frames.json").read_text())
    outcomes = [r["outcome"] for r in report["frames"]]
    expected = ["drop_runt" if len(f) < 60 else "drop_giant" if len(f) > 1514 else "delivered"
                for f in frames]
    assert outcomes == expected
    # every delivered frame came out byte-exact and in order
    assert _read_pcap(out / "rx.pcap") == [f for f, o in zip(frames, expected, strict=True)
                                           if o == "delivered"]
    # the gateware's metadata equals the reference parser's, field by field
    for record, frame in zip(report["frames"], frames, strict=True):
        if record["outcome"] == "delivered":
            assert record["metadata"] == describe(parse(frame)), record["index"]
    counters = json.loads((out / "counters.json").read_text())
    assert counters["frames_ok"] == expected.count("delivered")
    assert counters["drop_runt"] == 1 and counters["drop_giant"] == 1
    assert counters["bytes_ok"] == sum(len(f) for f, o in zip(frames, expected, strict=True)
                                       if o == "delivered")
    csv_lines = (out / "frames.csv").read_text().splitlines()
    assert len(csv_lines) == len(frames) + 1 and csv_lines[0].startswith("index,length")
    printed = capsys.readouterr().out
    assert "drop_giant" in printed and "delivered" in printed


def test_fcs_present_and_line_rate(tmp_path):
    """A capture with FCS, one of them wrong; sent back to back at the minimum gap."""
    pkts = []
    for n in range(20):
        body = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP()
                     / UDP(sport=n, dport=9) / bytes(18 + 37 * n))
        fcs = struct.pack("<I", zlib.crc32(body) ^ (0xFF if n == 7 else 0))
        pkts.append(Ether(body + fcs))
    capture = tmp_path / "in.pcap"
    wrpcap(str(capture), pkts)

    out = tmp_path / "exact"
    assert main(["sim", "--in", str(capture), "--out", str(out), "--fcs", "present"]) == 0
    report = json.loads((out / "frames.json").read_text())
    assert [r["outcome"] for r in report["frames"]] == \
        ["drop_fcs" if n == 7 else "delivered" for n in range(20)]

    out = tmp_path / "fast"
    assert main(["sim", "--in", str(capture), "--out", str(out), "--fcs", "present",
                 "--line-rate"]) == 0
    report = json.loads((out / "frames.json").read_text())
    assert [r["outcome"] for r in report["frames"]] == \
        ["dropped" if n == 7 else "delivered" for n in range(20)]
    assert report["counters"]["drop_fcs"] == 1 and report["counters"]["frames_ok"] == 19
    assert len(_read_pcap(out / "rx.pcap")) == 19


@pytest.mark.parametrize("argv,message", [
    (["--in", "/nonexistent.pcap"], "does not exist"),
    (["--in", __file__], "not a pcap"),
    (["--limit", "0"], "must be positive"),
    (["--max-length", "x"], "not a number"),
    (["--fcs", "maybe"], "invalid choice"),
])
def test_bad_arguments(tmp_path, capsys, argv, message):
    try:
        code = main(["sim", "--out", str(tmp_path / "o"), *argv])
    except SystemExit as e:
        code = e.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_jumbo_frames_with_max_length(tmp_path):
    """--max-length 9018 delivers 9000-byte frames (the receive buffer grows to hold them);
    one byte over the limit is a giant."""
    pkts = [Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP() / UDP(dport=9)
            / bytes(n - 42) for n in (9014, 9015, 1500)]
    capture = tmp_path / "jumbo.pcap"
    wrpcap(str(capture), pkts)
    out = tmp_path / "out"
    assert main(["sim", "--in", str(capture), "--out", str(out), "--max-length", "9018"]) == 0
    report = json.loads((out / "frames.json").read_text())
    assert [r["outcome"] for r in report["frames"]] == ["delivered", "drop_giant", "delivered"]
    assert _read_pcap(out / "rx.pcap") == [bytes(pkts[0]), bytes(pkts[2])]

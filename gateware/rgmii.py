# Ref: RGMII v2.0 (HP, 2002) sections 3-4; Lattice TN1262 (ECP5 sysIO) and TN1265
#      (ECP5 high-speed I/O: IDDRX1F/ODDRX1F generic DDR, DELAYG input delay)
"""RGMII <-> GMII adapters for 1000 Mb/s, with the DDR I/O taken from the platform.

RGMII carries a GMII octet in four wires clocked on both edges of a 125 MHz clock: the rising edge
carries ``data[3:0]`` and ``RX_DV``/``TX_EN`` on the control wire, the falling edge carries
``data[7:4]`` and ``DV xor ER`` (so an idle line with no error keeps the control wire low on both
edges, and an error inside a frame shows as a control wire that drops on the falling edge).

Each adapter is split in two so the logic can be tested without the I/O primitives:

* :class:`RgmiiRxDecoder` / :class:`RgmiiTxEncoder` hold the single-data-rate logic and see the
  edge pairs (``[0]`` = rising edge, ``[1]`` = the falling edge after it) as plain signals;
* :class:`RgmiiRx` / :class:`RgmiiTx` wrap them with :class:`amaranth.lib.io.DDRBuffer`, which the
  ECP5 platform turns into ``IDDRX1F``/``ODDRX1F`` in the I/O cells. ``ddr_buffer=`` lets a test
  substitute a behavioural DDR model.

Clock skew (read this before putting the design on a board): RGMII v2.0 sends clock and data
edge-aligned and needs 1.5..2 ns of clock delay at each receiver. Either the PHY adds it
("RGMII-ID", internal delay mode, chosen by strap pins or MDIO registers) or the FPGA does. This
design never touches the PHY registers, so the board constraints say where each delay comes from:

* receive: ``rx_delay_taps > 0`` puts an ECP5 ``DELAYG`` (about 25 ps a tap) on RXD/RX_CTL before
  the IDDR, delaying data relative to the received clock (which already arrives late by its
  pin-to-global-clock insertion delay); ``0`` relies on the PHY's internal RX delay;
* transmit: ``RgmiiTx(clk_domain="tx90")`` forwards TX_CLK from a PLL output shifted 90 degrees
  (2 ns at 125 MHz) so the PHY samples mid-bit; ``clk_domain="tx"`` sends TX_CLK edge-aligned and
  relies on the PHY's internal TX delay.

nextpnr does not analyse pin-to-IDDR or ODDR-to-pin timing, so a met Fmax says nothing about this
skew budget: it has to be right by construction (and checked on the bench).
Only 1000 Mb/s is handled; 10/100 Mb/s RGMII (one nibble per clock, 2.5/25 MHz) is not.
"""

from amaranth import *
from amaranth.lib import data, io, wiring
from amaranth.lib.wiring import In, Out

from .gmii import GmiiSignature

__all__ = [
    "DELAYG_TAP_PS", "delay_taps", "RgmiiRxDecoder", "RgmiiTxEncoder", "Ecp5DelayedDDRInput",
    "RgmiiRx", "RgmiiTx",
]

DELAYG_TAP_PS = 25          # ECP5 DELAYG step, TN1265 (nominal)
DELAYG_MAX_TAPS = 127


def delay_taps(delay_ns: float) -> int:
    """Number of ``DELAYG`` taps closest to ``delay_ns`` (raises if out of the 0..127 range)."""
    taps = round(delay_ns * 1000 / DELAYG_TAP_PS)
    if not 0 <= taps <= DELAYG_MAX_TAPS:
        raise ValueError(f"RGMII fabric delay {delay_ns} ns needs {taps} DELAYG taps; "
                         f"the ECP5 has 0..{DELAYG_MAX_TAPS} ({DELAYG_TAP_PS} ps each)")
    return taps


class RgmiiRxDecoder(wiring.Component):
    """Edge pairs -> GMII, one register stage, in the ``rx`` domain.

    Attributes
    ----------
    ddr_data : ArrayLayout(4, 2), in
        ``[0]`` nibble sampled on the rising edge (``RXD[3:0]``), ``[1]`` on the falling edge.
    ddr_ctl : ArrayLayout(1, 2), in
        ``[0]`` = RX_DV, ``[1]`` = RX_DV xor RX_ER.
    gmii : GmiiSignature, out
        The decoded octet stream (``en`` = RX_DV, ``er`` = RX_ER).
    """

    ddr_data: In(data.ArrayLayout(4, 2))
    ddr_ctl:  In(data.ArrayLayout(1, 2))
    gmii:     Out(GmiiSignature())

    def elaborate(self, platform):
        m = Module()
        m.d.rx += [
            self.gmii.data.eq(Cat(self.ddr_data[0], self.ddr_data[1])),
            self.gmii.en.eq(self.ddr_ctl[0]),
            self.gmii.er.eq(self.ddr_ctl[0] ^ self.ddr_ctl[1]),
        ]
        return m


class RgmiiTxEncoder(wiring.Component):
    """GMII -> edge pairs, one register stage, in the ``tx`` domain.

    Attributes
    ----------
    gmii : GmiiSignature, in
        Octets to send (``en`` = TX_EN, ``er`` = TX_ER).
    ddr_data : ArrayLayout(4, 2), out
        ``[0]`` = ``TXD[3:0]`` for the rising edge, ``[1]`` = ``TXD[7:4]`` for the falling edge.
    ddr_ctl : ArrayLayout(1, 2), out
        ``[0]`` = TX_EN, ``[1]`` = TX_EN xor TX_ER.
    """

    gmii:     In(GmiiSignature())
    ddr_data: Out(data.ArrayLayout(4, 2))
    ddr_ctl:  Out(data.ArrayLayout(1, 2))

    def elaborate(self, platform):
        m = Module()
        m.d.tx += [
            self.ddr_data[0].eq(self.gmii.data[0:4]),
            self.ddr_data[1].eq(self.gmii.data[4:8]),
            self.ddr_ctl[0].eq(self.gmii.en),
            self.ddr_ctl[1].eq(self.gmii.en ^ self.gmii.er),
        ]
        return m


class Ecp5DelayedDDRInput(wiring.Component):
    """An ECP5 DDR input with a fixed ``DELAYG`` between the pad and the ``IDDRX1F``.

    Same ``i`` member and edge order as an input :class:`amaranth.lib.io.DDRBuffer`; used when the
    FPGA must provide the RGMII receive skew (``amaranth.lib.io`` has no delay-line buffer).
    """

    def __init__(self, port, *, i_domain: str, taps: int):
        self._port = port
        self._domain = i_domain
        self._taps = taps
        super().__init__({"i": In(data.ArrayLayout(len(port), 2))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.pad = pad = io.Buffer("i", self._port)
        for bit in range(len(self._port)):
            delayed = Signal(name=f"delayed{bit}")
            m.submodules[f"delay{bit}"] = Instance(
                "DELAYG", p_DEL_MODE="USER_DEFINED", p_DEL_VALUE=self._taps,
                i_A=pad.i[bit], o_Z=delayed)
            m.submodules[f"iddr{bit}"] = Instance(
                "IDDRX1F", i_SCLK=ClockSignal(self._domain), i_RST=Const(0), i_D=delayed,
                o_Q0=self.i[0][bit], o_Q1=self.i[1][bit])
        return m


class RgmiiRx(wiring.Component):
    """RGMII receive pins -> GMII in the ``rx`` domain, which this block clocks from RX_CLK.

    The parent creates the ``rx`` domain (usually renamed per port) and its reset; this block
    drives the domain's clock from the RX_CLK pin and, on a real platform, constrains it to
    ``clock_hz`` (otherwise nextpnr would check it against its 12 MHz default).

    Parameters
    ----------
    pins : object with ``rx_clk``, ``rx_ctl``, ``rx_data`` ports
        From ``platform.request("eth_rgmii", n, dir="-")``.
    rx_delay_taps : int
        ``DELAYG`` taps on RXD/RX_CTL (0 = rely on the PHY's RX delay). See the module docstring.
    ddr_buffer : callable
        DDR buffer factory with the :class:`amaranth.lib.io.DDRBuffer` signature.

    Attributes
    ----------
    gmii : GmiiSignature, out
        Received octets, one clock after the falling-edge nibble.
    """

    gmii: Out(GmiiSignature())

    def __init__(self, pins, *, rx_delay_taps: int = 0, clock_hz: float = 125e6,
                 ddr_buffer=io.DDRBuffer):
        if not 0 <= rx_delay_taps <= DELAYG_MAX_TAPS:
            raise ValueError(f"rx_delay_taps must be 0..{DELAYG_MAX_TAPS}, not {rx_delay_taps}")
        self._pins = pins
        self._taps = rx_delay_taps
        self._clock_hz = clock_hz
        self._ddr_buffer = ddr_buffer
        super().__init__()

    def _ddr_in(self, port):
        if self._taps:
            return Ecp5DelayedDDRInput(port, i_domain="rx", taps=self._taps)
        return self._ddr_buffer("i", port, i_domain="rx")

    def elaborate(self, platform):
        m = Module()
        m.submodules.clk_buf = clk_buf = io.Buffer("i", self._pins.rx_clk)
        m.d.comb += ClockSignal("rx").eq(clk_buf.i)
        if hasattr(platform, "add_clock_constraint") and hasattr(self._pins.rx_clk, "io"):
            # On the pin: a constraint on an internal net would not survive synthesis by name.
            platform.add_clock_constraint(self._pins.rx_clk.io, self._clock_hz)

        m.submodules.data_ddr = data_ddr = self._ddr_in(self._pins.rx_data)
        m.submodules.ctl_ddr = ctl_ddr = self._ddr_in(self._pins.rx_ctl)
        m.submodules.decoder = decoder = RgmiiRxDecoder()
        m.d.comb += [
            decoder.ddr_data.eq(data_ddr.i),
            decoder.ddr_ctl.eq(ctl_ddr.i),
        ]
        wiring.connect(m, decoder.gmii, wiring.flipped(self.gmii))
        return m


class RgmiiTx(wiring.Component):
    """GMII in the ``tx`` domain -> RGMII transmit pins, with TX_CLK forwarded by a DDR output.

    TX_CLK is a DDR output of 1 (rising edge) then 0 (falling edge) clocked by ``clk_domain``:
    ``"tx"`` gives an edge-aligned clock (the PHY adds the skew), a 90 degree copy of the ``tx``
    clock (domain ``"tx90"``) gives a centre-aligned one (the FPGA adds the skew).

    Parameters
    ----------
    pins : object with ``tx_clk``, ``tx_ctl``, ``tx_data`` ports
    clk_domain : str
        Domain clocking the TX_CLK output (``"tx"`` or ``"tx90"``).
    ddr_buffer : callable
        DDR buffer factory with the :class:`amaranth.lib.io.DDRBuffer` signature.

    Attributes
    ----------
    gmii : GmiiSignature, in
        Octets to send, in the ``tx`` domain.
    """

    gmii: In(GmiiSignature())

    def __init__(self, pins, *, clk_domain: str = "tx", ddr_buffer=io.DDRBuffer):
        if clk_domain not in ("tx", "tx90"):
            raise ValueError(f"clk_domain must be 'tx' or 'tx90', not {clk_domain!r}")
        self._pins = pins
        self._clk_domain = clk_domain
        self._ddr_buffer = ddr_buffer
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.encoder = encoder = RgmiiTxEncoder()
        wiring.connect(m, wiring.flipped(self.gmii), encoder.gmii)

        m.submodules.data_ddr = data_ddr = self._ddr_buffer("o", self._pins.tx_data, o_domain="tx")
        m.submodules.ctl_ddr = ctl_ddr = self._ddr_buffer("o", self._pins.tx_ctl, o_domain="tx")
        m.submodules.clk_ddr = clk_ddr = self._ddr_buffer(
            "o", self._pins.tx_clk, o_domain=self._clk_domain)
        m.d.comb += [
            data_ddr.o.eq(encoder.ddr_data),
            ctl_ddr.o.eq(encoder.ddr_ctl),
            clk_ddr.o[0].eq(1),
            clk_ddr.o[1].eq(0),
        ]
        return m

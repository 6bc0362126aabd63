# Ref: RGMII v2.0; Lattice TN1263 (sysCLOCK PLL), TN1262 (sysIO), TN1265 (high-speed I/O, DDR)
"""ECP5 boards for crossnic: platforms, the board top and ``crossnic build``.

Usage::

    crossnic build --list
    crossnic build --board versa_ecp5 [--out build/versa_ecp5]
    python benchmarks/synth.py            # every board, table + benchmarks/results/synth.json

Modules:

* :mod:`.platforms` - amaranth-boards platforms reshaped for two RGMII ports (shared PHY
  management pins on the Colorlight 5A-75B), the board list, and the timing targets and RGMII
  skew choices read from ``constraints/<board>.toml``;
* :mod:`.top` - the board top: per port RgmiiRx -> RxPort -> TxPort -> RgmiiTx (a frame echo),
  a PLL for the 125 MHz core and transmit clocks, statistics readable over the UART register
  bridge (:mod:`crossnic.gateware.uart_bridge`), activity LEDs;
* :mod:`.build` - runs Yosys, nextpnr-ecp5 and ecppack (YoWASP builds from PyPI) stage by stage;
* :mod:`.report` - reads nextpnr's report back into Fmax per clock domain and resource use.

RGMII clock skew: the PHYs are not configured over MDIO, so each board's constraints file says
whether the 1.5-2 ns clock-to-data delay comes from the PHY (RGMII-ID) or from the FPGA (a
``DELAYG`` on the receive data, a 90 degree PLL output for the transmit clock); see
:mod:`crossnic.gateware.rgmii`. nextpnr does not time the pins, so this is by construction only and
has not been checked on hardware.
"""

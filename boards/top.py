# Ref: RGMII v2.0; IEEE 802.3-2022 clause 35 (GMII); Lattice TN1263 (EHXPLLL), TN1265 (DDR I/O)
"""The board top: a two-port MAC echo with statistics readable over the board UART.

For each port ``n``::

    RGMII pins -> RgmiiRx (eth<n>_rx, clocked by the PHY's RX_CLK) -> RxPort -> sync (125 MHz core)
      -> TxPort -> RgmiiTx (eth_tx, 125 MHz from the PLL) -> RGMII pins

so every good frame a port receives is sent back out of the same port (FCS checked and stripped by
RxPort, appended again by TxPort). ``datapath="echo"`` replaces RxPort/TxPort by a direct
RGMII -> GMII -> RGMII loop clocked by RX_CLK, to check a board's PHY wiring without the MAC.

Clocks: one ``EHXPLLL`` makes ``sync`` (CLKOP) and ``eth_tx`` (CLKOS) at 125 MHz from the board
oscillator, plus ``eth_tx90`` (CLKOS2, 90 degrees) when the board constraints have the FPGA provide
the RGMII transmit clock skew. Every domain is held in reset until the PLL locks (and while the
board's reset button is pressed); the PHYs are held in reset about 17 ms longer.

Registers (word addresses; blocks of ``2**block_bits`` words): block 0 board information, block 1
board counters, then RxPort and TxPort statistics of each port, as :meth:`BoardTop.regmap`
describes them (:mod:`crossnic.gateware.regmap`); ``crossnic build`` writes it to ``regmap.json``
and ``crossnic regmap`` prints it. The host reaches
them through :class:`~crossnic.gateware.uart_bridge.UartCsrBridge` on the board UART.

LEDs show PLL lock, a heartbeat, PHY reset release, UART traffic and per-port activity (each
received or sent frame lights its LED for about 34 ms), as far as the board has LEDs.
"""

from amaranth import *
from amaranth.lib import cdc, io, wiring
from amaranth.lib.wiring import In, Out

from crossnic.gateware.csr import Counter, CounterBank, CsrSignature
from crossnic.gateware.csr_decoder import CsrDecoder
from crossnic.gateware.ecp5_pll import EHXPLLL
from crossnic.gateware.regmap import Access, Block, Field, Register, RegisterMap
from crossnic.gateware.rgmii import RgmiiRx, RgmiiTx, delay_taps
from crossnic.gateware.rx_port import RX_COUNTERS, RxPort
from crossnic.gateware.tx_port import TX_COUNTERS, TxPort
from crossnic.gateware.uart_bridge import UartCsrBridge

from .platforms import Board, BoardConstraints

__all__ = ["BOARD_ID", "ActivityLed", "CsrDecoder", "BoardInfo", "BoardTop"]

BOARD_ID = int.from_bytes(b"CNIC", "little")   # reads back as the bytes "CNIC" over the UART
CORE_MHZ = 125.0
PHY_RESET_CYCLES = 1 << 21                    # ~16.8 ms at 125 MHz (PHYs need >= 10 ms)
LED_STRETCH_CYCLES = 1 << 22                  # ~34 ms at 125 MHz
UART_TIMEOUT_CYCLES = int(CORE_MHZ * 1e6 * 0.1)   # abandon half-sent commands after 100 ms


class ActivityLed(wiring.Component):
    """Lights ``led`` for ``stretch`` clocks after each ``pulse`` so short events are visible.

    ``led`` is a register (a clock after ``pulse``): it drives a pin and the status register
    across the chip, so the timer's zero test stays out of those paths.
    """

    pulse: In(1)
    led: Out(1)

    def __init__(self, stretch: int = LED_STRETCH_CYCLES):
        self._stretch = stretch
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self._stretch + 1))
        with m.If(self.pulse):
            m.d.sync += [timer.eq(self._stretch), self.led.eq(1)]
        with m.Elif(timer != 0):
            m.d.sync += [timer.eq(timer - 1), self.led.eq(timer != 1)]
        return m


class BoardInfo(wiring.Component):
    """Block 0: identification, configuration, live status, a scratch word, UART error counts.

    Attributes
    ----------
    status : Signal(32), in
        Live status bits (see :data:`BoardTop.STATUS_BITS`).
    uart_errors : Signal(32), in
        ``framing_errors | timeouts << 16`` from the bridge.
    """

    #: clocks from ``csr.r_stb`` to valid ``csr.r_data``
    read_latency = 2

    def __init__(self, config: int):
        self._config = config
        super().__init__({
            "csr": In(CsrSignature(3)),
            "status": In(32),
            "uart_errors": In(32),
        })

    @classmethod
    def describe(cls, config: int, name: str = "board") -> Block:
        """The registers of a block built with ``config``, fields and reset values included
        (without making the component, which would then have to be elaborated)."""
        ro = Access.RO
        ports, datapath, mhz = config & 0xFF, config >> 8 & 0xFF, config >> 16
        status = tuple(Field(bit, n, 1, ro, BoardTop.STATUS_DOCS[bit])
                       for n, bit in enumerate(BoardTop.STATUS_BITS))
        return Block(name, "Board identification, configuration, status, scratch, UART errors.", (
            Register.word("id", 0, ro, "reads 0x43494e43: the bytes 'CNIC' (little-endian)",
                          reset=BOARD_ID),
            Register("config", 1, "Build-time configuration.", (
                Field("ports", 0, 8, ro, "Ethernet ports", ports),
                Field("datapath", 8, 8, ro, "0 echo, 1 RxPort/TxPort", datapath),
                Field("core_mhz", 16, 16, ro, "core (sync) clock in MHz", mhz))),
            Register("status", 2, "Live status bits.", status),
            Register.word("scratch", 3, Access.RW, "read/write, for testing the register path"),
            Register("uart_errors", 4, "Errors seen by the UART bridge (wrap).", (
                Field("framing_errors", 0, 16, ro, "bytes with a bad stop bit"),
                Field("timeouts", 16, 16, ro, "commands abandoned half-way"))),
        ), cls.read_latency)

    def elaborate(self, platform):
        m = Module()
        scratch = Signal(32)
        values = [C(BOARD_ID, 32), C(self._config, 32), self.status, scratch, self.uart_errors]
        word = Signal(32)
        with m.If(self.csr.r_stb):
            m.d.sync += word.eq(0)
            with m.Switch(self.csr.addr):
                for addr, value in enumerate(values):
                    with m.Case(addr):
                        m.d.sync += word.eq(value)
        m.d.sync += self.csr.r_data.eq(word)    # the same read latency as a CounterBank
        with m.If(self.csr.w_stb & (self.csr.addr == 3)):
            m.d.sync += scratch.eq(self.csr.w_data)
        return m


class BoardTop(Elaboratable):
    """Two-port MAC echo with counters, a UART register bridge and status LEDs.

    Parameters
    ----------
    board : Board
    constraints : BoardConstraints
        Timing targets and the RGMII skew choices (``constraints/<board>.toml``).
    datapath : "ports" or "echo"
        ``"ports"``: RgmiiRx -> RxPort -> TxPort -> RgmiiTx per port; ``"echo"``: direct loop.
    """

    STATUS_BITS = ("pll_locked", "phy_ready", "eth0_rx", "eth0_tx", "eth1_rx", "eth1_tx")
    STATUS_DOCS = {
        "pll_locked": "the PLL is locked",
        "phy_ready": "the PHYs are out of reset",
        **{f"eth{n}_{d}": f"port {n} {verb} a frame in the last ~34 ms (activity LED)"
           for n in range(2) for d, verb in (("rx", "received"), ("tx", "sent"))},
    }

    def __init__(self, board: Board, constraints: BoardConstraints, *, datapath: str = "ports"):
        if datapath not in ("ports", "echo"):
            raise ValueError(f"datapath must be 'ports' or 'echo', not {datapath!r}")
        if datapath == "echo" and constraints.tx_clock_shift_deg != 0:
            # The echo loop forwards RX_CLK as TX_CLK; it has no 90-degree clock to shift it.
            raise ValueError(
                f"{board.name}: the echo datapath cannot add the {constraints.tx_clock_shift_deg:g}"
                "-degree TX clock shift its constraints ask for; use the ports datapath")
        self.board = board
        self.constraints = constraints
        self.datapath = datapath

    # -- register map -------------------------------------------------------------------------

    def _config(self) -> int:
        """BoardInfo's ``config`` word: ports, datapath, core MHz."""
        return self.board.ports | int(self.datapath == "ports") << 8 | int(CORE_MHZ) << 16

    def regmap(self) -> RegisterMap:
        """The registers the host reaches over the UART, block by block (no elaboration needed)."""
        blocks = [BoardInfo.describe(self._config(), "board"),
                  Block.from_counters("counters", "Frame events seen at the RGMII pins (32-bit).",
                                      self._counter_list())]
        if self.datapath == "ports":
            for n in range(self.board.ports):
                blocks += [
                    Block.from_counters(f"eth{n}_rx", f"Port {n} receive statistics (RxPort).",
                                        RX_COUNTERS),
                    Block.from_counters(f"eth{n}_tx", f"Port {n} transmit statistics (TxPort).",
                                        TX_COUNTERS),
                ]
        return RegisterMap(f"{self.board.name} board registers (UART bridge)", blocks)

    def register_map(self) -> list[dict]:
        """Every register as ``{"block", "name", "part", "addr", "access", "reset", "doc"}``."""
        return self.regmap().to_json()

    def _counters(self) -> CounterBank:
        return CounterBank(self._counter_list())

    def _counter_list(self) -> list[Counter]:
        counters = []
        for n in range(self.board.ports):
            counters += [
                Counter(f"eth{n}_rgmii_rx_frames", "frame starts (RX_DV rising) seen on RGMII",
                        width=32),
                Counter(f"eth{n}_rgmii_rx_error_frames", "frames with RX_ER during RX_DV",
                        width=32),
                Counter(f"eth{n}_rgmii_tx_frames", "frames started (TX_EN rising) on RGMII",
                        width=32),
            ]
        return counters

    # -- elaboration ----------------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        board, cons = self.board, self.constraints
        tx90 = cons.tx_clock_shift_deg != 0

        # Clocks and resets.
        clk_res = platform.request(platform.default_clk, dir="-")
        m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_res)
        outputs = [(CORE_MHZ, 0.0), (CORE_MHZ, 0.0)]
        if tx90:
            outputs.append((CORE_MHZ, cons.tx_clock_shift_deg))
        m.submodules.pll = pll = EHXPLLL(board.clock_mhz, outputs)
        self.pll_config = pll.config
        m.d.comb += pll.clk_in.eq(clk_buf.i)

        reset = Signal()
        m.d.comb += reset.eq(~pll.locked)
        if platform.default_rst is not None:
            rst_res = platform.request(platform.default_rst, dir="-")
            m.submodules.rst_buf = rst_buf = io.Buffer("i", rst_res)
            m.d.comb += reset.eq(~pll.locked | rst_buf.i)

        domains = {"sync": 0, "eth_tx": 1}
        if tx90:
            domains["eth_tx90"] = 2
        for name, out in domains.items():
            m.domains += ClockDomain(name)
            m.d.comb += ClockSignal(name).eq(pll.clk_out[out])
            m.submodules[f"rst_{name}"] = cdc.ResetSynchronizer(reset, domain=name)

        # PHY management: hold reset, leave MDC low and MDIO released.
        phy_timer = Signal(range(PHY_RESET_CYCLES + 1))
        phy_ready = Signal()
        with m.If(phy_timer != PHY_RESET_CYCLES):
            m.d.sync += phy_timer.eq(phy_timer + 1)
        m.d.comb += phy_ready.eq(phy_timer == PHY_RESET_CYCLES)
        for k in board.mgmt:
            mgmt = platform.request("eth_mgmt", k, dir="-")
            m.submodules[f"phy{k}_rst"] = rst_o = io.Buffer("o", mgmt.rst)
            m.submodules[f"phy{k}_mdc"] = mdc_o = io.Buffer("o", mgmt.mdc)
            m.submodules[f"phy{k}_mdio"] = mdio = io.Buffer("io", mgmt.mdio)
            m.d.comb += [rst_o.o.eq(~phy_ready), mdc_o.o.eq(0), mdio.oe.eq(0)]

        # Ports.
        blocks = []                       # (name, csr bus), in register-map order
        status = {"pll_locked": pll.locked, "phy_ready": phy_ready}
        m.submodules.counters = counters = self._counters()
        rx_taps = delay_taps(cons.rx_delay_ns)
        for n in range(board.ports):
            pins = platform.request("eth_rgmii", n, dir="-")
            rx_dom = f"eth{n}_rx"
            m.domains += ClockDomain(rx_dom)
            m.submodules[f"rst_{rx_dom}"] = cdc.ResetSynchronizer(reset, domain=rx_dom)
            rgmii_rx = DomainRenamer({"rx": rx_dom})(
                RgmiiRx(pins, rx_delay_taps=rx_taps, clock_hz=cons.clocks.get(rx_dom, 125) * 1e6))
            m.submodules[f"eth{n}_rgmii_rx"] = rgmii_rx

            if self.datapath == "ports":
                tx_dom = "eth_tx"
                rgmii_tx = DomainRenamer({"tx": "eth_tx", "tx90": "eth_tx90"})(
                    RgmiiTx(pins, clk_domain="tx90" if tx90 else "tx"))
                rx_port = DomainRenamer({"rx": rx_dom})(RxPort(width=4))
                tx_port = DomainRenamer({"tx": "eth_tx"})(TxPort(width=4))
                m.submodules[f"eth{n}_rx_port"] = rx_port
                m.submodules[f"eth{n}_tx_port"] = tx_port
                wiring.connect(m, rgmii_rx.gmii, rx_port.gmii)
                wiring.connect(m, rx_port.o, tx_port.i)    # RxPort's output is registered
                wiring.connect(m, tx_port.gmii, rgmii_tx.gmii)
                blocks += [(f"eth{n}_rx", rx_port.csr), (f"eth{n}_tx", tx_port.csr)]
            else:
                # Bring-up stand-in: echo the received octets with RX_CLK as TX_CLK.
                tx_dom = rx_dom
                rgmii_tx = DomainRenamer({"tx": rx_dom, "tx90": rx_dom})(RgmiiTx(pins))
                wiring.connect(m, rgmii_rx.gmii, rgmii_tx.gmii)
            m.submodules[f"eth{n}_rgmii_tx"] = rgmii_tx

            # RGMII-level frame events, moved to `sync` for the counters and LEDs.
            rx_en_d = Signal(name=f"eth{n}_rx_en_d")
            rx_err_seen = Signal(name=f"eth{n}_rx_err_seen")
            tx_en_d = Signal(name=f"eth{n}_tx_en_d")
            gmii_rx, gmii_tx = rgmii_rx.gmii, rgmii_tx.gmii
            m.d[rx_dom] += rx_en_d.eq(gmii_rx.en)
            with m.If(gmii_rx.en & ~rx_en_d):
                m.d[rx_dom] += rx_err_seen.eq(gmii_rx.er)
            with m.Elif(gmii_rx.en & gmii_rx.er):
                m.d[rx_dom] += rx_err_seen.eq(1)
            m.d[tx_dom] += tx_en_d.eq(gmii_tx.en)
            events = {
                "rx_frames": (rx_dom, gmii_rx.en & ~rx_en_d),
                "rx_error_frames": (rx_dom, ~gmii_rx.en & rx_en_d & rx_err_seen),
                "tx_frames": (tx_dom, gmii_tx.en & ~tx_en_d),
            }
            for what, (dom, event) in events.items():
                ps = cdc.PulseSynchronizer(i_domain=dom, o_domain="sync")
                m.submodules[f"eth{n}_{what}_ps"] = ps
                m.d.comb += [ps.i.eq(event),
                             getattr(counters.inc, f"eth{n}_rgmii_{what}").eq(ps.o)]
                if what != "rx_error_frames":
                    led = ActivityLed()
                    m.submodules[f"eth{n}_{what}_led"] = led
                    m.d.comb += led.pulse.eq(ps.o)
                    status[f"eth{n}_{what[:2]}"] = led.led

        # UART register bridge.
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx_buf = uart_rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx_buf = uart_tx = io.Buffer("o", uart.tx)
        m.submodules.info = info = BoardInfo(config=self._config())
        blocks = [("board", info.csr), ("counters", counters.csr), *blocks]
        # The decoder is laid out by the register map, which the host and the docs also use.
        regmap = self.regmap()
        assert [name for name, _ in blocks] == [b.name for b in regmap.blocks]
        latencies = {b.read_latency for b in regmap.blocks}
        assert len(latencies) == 1, f"blocks differ in read latency: {latencies}"
        widths = [len(csr.addr) for _, csr in blocks]
        m.submodules.decoder = decoder = CsrDecoder(widths, regmap.block_bits,
                                                    block_latency=latencies.pop())
        m.submodules.bridge = bridge = UartCsrBridge(
            decoder.addr_width, round(CORE_MHZ * 1e6 / cons.baud), UART_TIMEOUT_CYCLES,
            read_latency=decoder.read_latency)
        wiring.connect(m, bridge.csr, decoder.bus)
        for k, (_, csr) in enumerate(blocks):
            wiring.connect(m, decoder.block(k), csr)
        m.d.comb += [
            bridge.rx.eq(uart_rx.i),
            uart_tx.o.eq(bridge.tx),
            info.uart_errors.eq(Cat(bridge.framing_errors, bridge.timeouts)),
        ]

        uart_led = ActivityLed()
        m.submodules.uart_led = uart_led
        uart_line = Signal(init=1)
        m.submodules.uart_line_sync = cdc.FFSynchronizer(uart_rx.i, uart_line, init=1)
        m.d.comb += uart_led.pulse.eq(~uart_line | ~bridge.tx)
        status["uart"] = uart_led.led

        heartbeat = Signal(27)
        m.d.sync += heartbeat.eq(heartbeat + 1)
        status["heartbeat"] = heartbeat[-1]

        m.d.comb += info.status.eq(Cat(status.get(name, C(0, 1)) for name in self.STATUS_BITS))

        # LEDs.
        for k, name in enumerate(board.leds):
            led = platform.request("led", k, dir="-")
            m.submodules[f"led{k}"] = led_buf = io.Buffer("o", led)
            m.d.comb += led_buf.o.eq(status[name])
        return m

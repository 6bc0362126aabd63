# Ref: TIA/EIA-232 asynchronous serial framing (8N1); crossnic UART register protocol (below)
"""A UART that lets a host read and write the card's registers over the board's serial port.

Framing is 8N1: a start bit (0), eight data bits LSB first, one stop bit (1), ``divisor`` clocks a
bit. The byte protocol (all multi-byte values big-endian for the address, little-endian for data,
so a data word reads as it sits in memory on the host):

========================================  ========================================
host sends                                card answers
========================================  ========================================
``'r'`` A1 A0                             D0 D1 D2 D3: the word at address A1:A0
``'w'`` A1 A0 D0 D1 D2 D3                 ``'k'`` once the word is written
any other byte                            ``'?'``
========================================  ========================================

Addresses are word addresses on a :class:`~crossnic.gateware.csr.CsrSignature` bus (unmapped
addresses read as zero). A command whose remaining bytes do not arrive within ``timeout`` clocks
is abandoned without a reply, so a lost byte or a reset host cannot wedge the parser; a byte with
a bad stop bit is dropped and counted in ``framing_errors``. The host waits for each reply before
sending the next command: bytes that arrive while a reply is being sent are discarded.
"""

from amaranth import *
from amaranth.lib import cdc, stream, wiring
from amaranth.lib.wiring import In, Out

from .csr import CsrSignature

__all__ = ["CMD_READ", "CMD_WRITE", "REPLY_ACK", "REPLY_ERR", "UartRx", "UartTx",
           "UartCsrBridge"]

CMD_READ = ord("r")
CMD_WRITE = ord("w")
REPLY_ACK = ord("k")
REPLY_ERR = ord("?")


class UartRx(wiring.Component):
    """8N1 receiver: samples mid-bit, emits each byte once on ``o`` (no back-pressure).

    Attributes
    ----------
    rx : Signal, in
        Serial line (asynchronous; synchronised here).
    o : stream of 8 bits, out, always ready
        One transfer per received byte.
    framing_error : Signal, out
        One-clock pulse when a byte's stop bit is 0 (the byte is dropped).
    """

    def __init__(self, divisor: int):
        if divisor < 4:
            raise ValueError(f"UART divisor must be at least 4 clocks a bit, not {divisor}")
        self._divisor = divisor
        super().__init__({
            "rx": In(1, init=1),
            "o": Out(stream.Signature(8, always_ready=True)),
            "framing_error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync_rx = cdc.FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(self._divisor * 3 // 2 + 1))
        bit = Signal(range(9))
        shift = Signal(8)
        m.d.sync += self.o.valid.eq(0)
        m.d.sync += self.framing_error.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    # First data bit centre is 1.5 bit times after the start edge.
                    m.d.sync += [timer.eq(self._divisor * 3 // 2 - 1), bit.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shift.eq(Cat(shift[1:], rx)), bit.eq(bit + 1),
                                 timer.eq(self._divisor - 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    with m.If(rx):
                        m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += self.framing_error.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"):
                # Wait for the line to return high before hunting for a start bit again.
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UartTx(wiring.Component):
    """8N1 transmitter.

    Attributes
    ----------
    i : stream of 8 bits, in
        Bytes to send; ``ready`` while the transmitter is idle.
    tx : Signal, out
        Serial line, idle high.
    """

    def __init__(self, divisor: int):
        if divisor < 4:
            raise ValueError(f"UART divisor must be at least 4 clocks a bit, not {divisor}")
        self._divisor = divisor
        super().__init__({
            "i": In(stream.Signature(8)),
            "tx": Out(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self._divisor))
        bits = Signal(10, init=0x3FF)     # stop, data[7:0], start; shifted out LSB first
        count = Signal(range(11))

        m.d.comb += self.tx.eq(bits[0])
        m.d.comb += self.i.ready.eq(count == 0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [bits.eq(Cat(C(0, 1), self.i.payload, C(1, 1))), count.eq(10),
                         timer.eq(self._divisor - 1)]
        with m.Elif(count != 0):
            with m.If(timer != 0):
                m.d.sync += timer.eq(timer - 1)
            with m.Else():
                m.d.sync += [bits.eq(Cat(bits[1:], C(1, 1))), count.eq(count - 1),
                             timer.eq(self._divisor - 1)]
        return m


class UartCsrBridge(wiring.Component):
    """Serial register access: the protocol in the module docstring, on a CSR bus.

    Parameters
    ----------
    addr_width : int
        Width of the CSR word address (at most 16: the protocol carries two address bytes).
    divisor : int
        Clocks per bit (``round(f_clk / baud)``).
    timeout : int
        Clocks a command may wait for its next byte before it is abandoned.
    read_latency : int
        Clocks from ``csr.r_stb`` until ``csr.r_data`` is valid (1 for a bare block; a
        registered decoder in between adds its own).

    Attributes
    ----------
    rx, tx : Signal
        Serial lines.
    csr : CsrSignature, out
        The register bus this bridge initiates reads and writes on.
    framing_errors : Signal(16), out
        Bytes dropped for a bad stop bit (wraps).
    timeouts : Signal(16), out
        Commands abandoned half-way (wraps).
    """

    def __init__(self, addr_width: int, divisor: int, timeout: int, *, read_latency: int = 1):
        if read_latency < 1:
            raise ValueError(f"read latency must be at least 1 clock, not {read_latency}")
        self._read_latency = read_latency
        if not 1 <= addr_width <= 16:
            raise ValueError(f"bridge address width must be 1..16, not {addr_width}")
        if timeout < 16 * divisor:
            raise ValueError("timeout must be longer than one byte time")
        self._divisor = divisor
        self._timeout = timeout
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "csr": Out(CsrSignature(addr_width)),
            "framing_errors": Out(16),
            "timeouts": Out(16),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = urx = UartRx(self._divisor)
        m.submodules.uart_tx = utx = UartTx(self._divisor)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        with m.If(urx.framing_error):
            m.d.sync += self.framing_errors.eq(self.framing_errors + 1)

        addr = Signal(16)
        word = Signal(32)
        count = Signal(range(5))          # bytes left to receive or send
        wait = Signal(range(self._read_latency))   # read data not due yet
        reply = Signal(8)
        timer = Signal(range(self._timeout + 1))
        byte_in = urx.o.valid
        byte = urx.o.payload

        m.d.comb += self.csr.addr.eq(addr)
        m.d.comb += self.csr.w_data.eq(word)
        # Addresses beyond the bus read as zero and ignore writes (they must not alias onto
        # the bus's low addresses).
        width = len(self.csr.addr)
        on_bus = Signal()
        m.d.comb += on_bus.eq(addr[width:] == 0 if width < 16 else 1)

        def wait_byte():
            # Runs while a command waits for more bytes: expire it after `timeout` clocks.
            with m.If(byte_in):
                m.d.sync += timer.eq(self._timeout)
            with m.Elif(timer == 0):
                m.d.sync += self.timeouts.eq(self.timeouts + 1)
                m.next = "IDLE"
            with m.Else():
                m.d.sync += timer.eq(timer - 1)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(byte_in):
                    m.d.sync += [count.eq(2), timer.eq(self._timeout)]
                    with m.If(byte == CMD_READ):
                        m.next = "READ_ADDR"
                    with m.Elif(byte == CMD_WRITE):
                        m.next = "WRITE_ADDR"
                    with m.Else():
                        m.d.sync += reply.eq(REPLY_ERR)
                        m.next = "REPLY"
            for cmd in ("READ", "WRITE"):
                with m.State(f"{cmd}_ADDR"):
                    wait_byte()
                    with m.If(byte_in):
                        m.d.sync += [addr.eq(Cat(byte, addr[:8])), count.eq(count - 1)]
                        with m.If(count == 1):
                            if cmd == "READ":
                                m.next = "READ_STB"
                            else:
                                m.d.sync += count.eq(4)
                                m.next = "WRITE_DATA"
            with m.State("WRITE_DATA"):
                wait_byte()
                with m.If(byte_in):
                    m.d.sync += [word.eq(Cat(word[8:], byte)), count.eq(count - 1)]
                    with m.If(count == 1):
                        m.next = "WRITE_STB"
            with m.State("WRITE_STB"):
                m.d.comb += self.csr.w_stb.eq(on_bus)
                m.d.sync += reply.eq(REPLY_ACK)
                m.next = "REPLY"
            with m.State("READ_STB"):
                with m.If(on_bus):
                    m.d.comb += self.csr.r_stb.eq(1)
                    m.d.sync += wait.eq(self._read_latency - 1)
                    m.next = "READ_DATA"
                with m.Else():
                    m.d.sync += [word.eq(0), count.eq(4)]
                    m.next = "SEND"
            with m.State("READ_DATA"):
                with m.If(wait != 0):
                    m.d.sync += wait.eq(wait - 1)
                with m.Else():
                    m.d.sync += [word.eq(self.csr.r_data), count.eq(4)]
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += [utx.i.payload.eq(word[:8]), utx.i.valid.eq(1)]
                with m.If(utx.i.ready):
                    m.d.sync += [word.eq(word >> 8), count.eq(count - 1)]
                    with m.If(count == 1):
                        m.next = "IDLE"
            with m.State("REPLY"):
                m.d.comb += [utx.i.payload.eq(reply), utx.i.valid.eq(1)]
                with m.If(utx.i.ready):
                    m.next = "IDLE"
        return m

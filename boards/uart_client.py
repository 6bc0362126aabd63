# Ref: crossnic UART register protocol (crossnic.gateware.uart_bridge); POSIX termios (raw 8N1)
"""Host side of the board's UART register bridge: read and write registers, read counters.

Usage with a board built by ``crossnic build`` (``regmap.json`` is in the build directory)::

    from crossnic.boards.uart_client import UartRegisters, read_counters
    with UartRegisters.open_serial("/dev/ttyUSB1") as regs:
        print(hex(regs.read(0)))                       # 0x43494e43, "CNIC"
        print(read_counters(regs, json.load(open("build/versa_ecp5/regmap.json"))))

or by name, through the register description (:mod:`crossnic.host.registers`)::

    board = get_board("versa_ecp5")
    regmap = BoardTop(board, board.constraints()).regmap()
    with UartRegisters.open_serial("/dev/ttyUSB1") as uart:
        regs = Registers(regmap, uart.read, uart.write)
        print(regs.read("eth0_rx.frames_ok"), regs.read_field("board.status", "pll_locked"))
"""

import os
import time
from typing import BinaryIO

from crossnic.gateware.uart_bridge import CMD_READ, CMD_WRITE, REPLY_ACK, REPLY_ERR

__all__ = ["BridgeError", "UartRegisters", "read_counters"]


class BridgeError(Exception):
    """The board did not answer as the protocol says (no reply, short reply, wrong reply)."""


class UartRegisters:
    """Register access over a byte stream that speaks the bridge protocol.

    Parameters
    ----------
    port : binary file object
        Opened for reading and writing (a serial device, or anything with ``read``/``write``).
    timeout : float
        Seconds to wait for a reply.
    """

    def __init__(self, port: BinaryIO, *, timeout: float = 1.0):
        self._port = port
        self._timeout = timeout

    @classmethod
    def open_serial(cls, path: str, baud: int = 115200, *, timeout: float = 1.0):
        """Open a serial device in raw 8N1 mode at ``baud`` (POSIX only)."""
        import termios
        import tty
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        try:
            tty.setraw(fd)
            attrs = termios.tcgetattr(fd)
            speed = getattr(termios, f"B{baud}")
            attrs[4] = attrs[5] = speed
            attrs[6][termios.VMIN] = 0
            attrs[6][termios.VTIME] = 1           # reads return after 0.1 s without data
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
            termios.tcflush(fd, termios.TCIOFLUSH)
        except BaseException:
            os.close(fd)
            raise
        return cls(os.fdopen(fd, "r+b", buffering=0), timeout=timeout)

    def close(self) -> None:
        self._port.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _read_exact(self, n: int) -> bytes:
        data = b""
        deadline = time.monotonic() + self._timeout
        while len(data) < n:
            chunk = self._port.read(n - len(data))
            if chunk:
                data += chunk
            elif time.monotonic() > deadline:
                raise BridgeError(f"expected {n} bytes from the board, got {data!r}")
        return data

    @staticmethod
    def _addr(addr: int) -> bytes:
        if not 0 <= addr < 1 << 16:
            raise ValueError(f"register address must be 0..65535, not {addr}")
        return addr.to_bytes(2, "big")

    def read(self, addr: int) -> int:
        """The 32-bit word at word address ``addr``."""
        self._port.write(bytes([CMD_READ]) + self._addr(addr))
        return int.from_bytes(self._read_exact(4), "little")

    def write(self, addr: int, value: int) -> None:
        """Write a 32-bit word (writing a counter's first word clears the counter)."""
        if not 0 <= value < 1 << 32:
            raise ValueError(f"register value must fit in 32 bits, not {value}")
        self._port.write(bytes([CMD_WRITE]) + self._addr(addr) + value.to_bytes(4, "little"))
        reply = self._read_exact(1)[0]
        if reply != REPLY_ACK:
            what = "command not understood" if reply == REPLY_ERR else f"reply {reply:#04x}"
            raise BridgeError(f"write to {addr:#06x}: {what}")


def read_counters(regs: UartRegisters, regmap: list[dict]) -> dict[str, int]:
    """Every register of ``regmap`` as ``"block.name"`` -> value; 64-bit counters are read low
    word first (which latches the high word), so each is a consistent snapshot."""
    values: dict[str, int] = {}
    for reg in sorted(regmap, key=lambda r: r["addr"]):
        key = f"{reg['block']}.{reg['name']}"
        word = regs.read(reg["addr"])
        if reg["part"] == "hi":
            values[key] = values.get(key, 0) | word << 32
        else:
            values[key] = word
    return values

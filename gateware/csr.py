"""A minimal register bus and the statistics counter bank that sits on it.

The full register map (issue "Datapath") bridges AXI4-Lite onto this bus; blocks only expose
:class:`CsrSignature` ports and describe their registers with :class:`CounterBank.registers`.
"""

from dataclasses import dataclass

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["CsrSignature", "Counter", "CounterRegister", "CounterBank"]


class CsrSignature(wiring.Signature):
    """Word-addressed register bus, seen from the initiator.

    A read strobes ``r_stb`` with ``addr``; a register block's ``r_data`` holds the word on the
    next cycle. Anything that registers the bus on the way (a decoder spanning the chip) adds
    cycles and says so in its ``read_latency``, which the initiator honours. A write strobes
    ``w_stb`` with ``addr`` and ``w_data``. Unmapped addresses read as zero and ignore writes,
    so no access can hang the bus.
    """

    def __init__(self, addr_width: int):
        super().__init__({
            "addr":   Out(addr_width),
            "r_stb":  Out(1),
            "r_data": In(32),
            "w_stb":  Out(1),
            "w_data": Out(32),
        })


@dataclass(frozen=True)
class Counter:
    """One statistics counter: ``inc_width`` bits may be added per clock."""
    name: str
    doc: str
    width: int = 64
    inc_width: int = 1


@dataclass(frozen=True)
class CounterRegister:
    """Where a counter word lives on the bus (for the register map and the driver)."""
    name: str
    addr: int
    part: str   # "lo" or "hi" for counters wider than 32 bits, "" otherwise
    doc: str


class CounterBank(wiring.Component):
    """Free-running statistics counters readable over :class:`CsrSignature`.

    Counters wider than 32 bits span two words; reading the low word latches the high word, so a
    low-then-high read is atomic. Writing any value to a counter's first word clears it.

    Parameters
    ----------
    counters : list of :class:`Counter`
    """

    def __init__(self, counters: list[Counter]):
        names = [c.name for c in counters]
        if len(set(names)) != len(names):
            raise ValueError(f"counter names must be unique: {names}")
        for c in counters:
            if not 1 <= c.width <= 64:
                raise ValueError(f"counter {c.name!r}: width must be 1..64, not {c.width}")
        self._counters = list(counters)
        self._registers = self._allocate()
        addr_width = max(1, (len(self._registers) - 1).bit_length())
        super().__init__({
            "csr": In(CsrSignature(addr_width)),
            "inc": In(data.StructLayout({c.name: c.inc_width for c in counters})),
        })

    def _allocate(self) -> list[CounterRegister]:
        regs = []
        for c in self._counters:
            if c.width > 32:
                regs.append(CounterRegister(c.name, len(regs), "lo", c.doc))
                regs.append(CounterRegister(c.name, len(regs), "hi", c.doc))
            else:
                regs.append(CounterRegister(c.name, len(regs), "", c.doc))
        return regs

    @property
    def counters(self) -> list[Counter]:
        return list(self._counters)

    @property
    def registers(self) -> list[CounterRegister]:
        return list(self._registers)

    def elaborate(self, platform):
        m = Module()
        values = {}
        clear = {}
        for c in self._counters:
            values[c.name] = value = Signal(c.width, name=f"count_{c.name}")
            clear[c.name] = Signal(name=f"clear_{c.name}")
            with m.If(clear[c.name]):
                m.d.sync += value.eq(0)
            with m.Else():
                m.d.sync += value.eq(value + getattr(self.inc, c.name))

        # ``r_data`` follows ``addr`` every cycle, so ``r_stb`` (decoded from the upper address
        # bits by whoever splits the bus) stays out of the wide read multiplexer's timing path;
        # the strobe only latches the high word of a wide counter.
        hi_latch = Signal(32)
        m.d.sync += self.csr.r_data.eq(0)
        with m.Switch(self.csr.addr):
            for reg in self._registers:
                value = values[reg.name]
                with m.Case(reg.addr):
                    if reg.part == "hi":
                        m.d.sync += self.csr.r_data.eq(hi_latch)
                    else:
                        m.d.sync += self.csr.r_data.eq(value[:32])
                        if reg.part == "lo":
                            with m.If(self.csr.r_stb):
                                m.d.sync += hi_latch.eq(value[32:])
                        m.d.comb += clear[reg.name].eq(self.csr.w_stb)
        return m

"""A minimal register bus and the statistics counter bank that sits on it.

The full register map (issue "Datapath") bridges AXI4-Lite onto this bus; blocks only expose
:class:`CsrSignature` ports and describe their registers with :class:`CounterBank.registers`.
"""

from dataclasses import dataclass

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["CsrSignature", "Counter", "CounterRegister", "CounterBank", "counter_registers"]


class CsrSignature(wiring.Signature):
    """Word-addressed register bus, seen from the initiator.

    A read strobes ``r_stb`` with ``addr``; a register block's ``r_data`` holds the word
    ``read_latency`` cycles later (an attribute of the block: 2 for :class:`CounterBank`, whose
    read multiplexer is pipelined). Anything that registers the bus on the way (a decoder
    spanning the chip) adds cycles and says so in its own ``read_latency``, which the initiator
    honours. ``addr`` must be held until the data is due. A write strobes
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


def counter_registers(counters: list[Counter]) -> list[CounterRegister]:
    """Where a :class:`CounterBank` of ``counters`` puts them: counter k owns words 2k (low)
    and 2k+1 (high, absent for counters of 32 bits or fewer), so the bank's read multiplexer
    selects among counters, not words."""
    regs = []
    for k, c in enumerate(counters):
        if c.width > 32:
            regs.append(CounterRegister(c.name, 2 * k, "lo", c.doc))
            regs.append(CounterRegister(c.name, 2 * k + 1, "hi", c.doc))
        else:
            regs.append(CounterRegister(c.name, 2 * k, "", c.doc))
    return regs


class CounterBank(wiring.Component):
    """Free-running statistics counters readable over :class:`CsrSignature`.

    Counters wider than 32 bits span two words; reading the low word latches the high word into
    a latch shared by the bank, so reading a counter's low word and then its high word (with no
    other low-word read of the bank between) is atomic. Writing any value to a counter's first
    word clears it. Read data is valid :attr:`read_latency` clocks after ``r_stb``.

    Parameters
    ----------
    counters : list of :class:`Counter`
    """

    #: clocks from ``csr.r_stb`` to valid ``csr.r_data``
    read_latency = 2

    def __init__(self, counters: list[Counter]):
        names = [c.name for c in counters]
        if len(set(names)) != len(names):
            raise ValueError(f"counter names must be unique: {names}")
        for c in counters:
            if not 1 <= c.width <= 64:
                raise ValueError(f"counter {c.name!r}: width must be 1..64, not {c.width}")
        self._counters = list(counters)
        self._registers = counter_registers(self._counters)
        addr_width = max(1, (2 * len(self._counters) - 1).bit_length())
        super().__init__({
            "csr": In(CsrSignature(addr_width)),
            "inc": In(data.StructLayout({c.name: c.inc_width for c in counters})),
        })

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

        # Reads take two clocks. The first selects the addressed counter's low word (a
        # multiplexer over counters: every high word comes from the one latch) and, on
        # ``r_stb`` at a low word, latches the high word in the same clock; the second picks
        # the low word, the latch or zero. ``r_data`` follows ``addr`` every cycle, so ``r_stb``
        # stays out of the multiplexer's timing path.
        index = self.csr.addr[1:]
        want_hi = self.csr.addr[0]
        hi_latch = Signal(32)
        lo_word = Signal(32)
        has_hi = Signal()      # the addressed counter has a high word
        read_hi = Signal()
        m.d.sync += [lo_word.eq(0), has_hi.eq(0), read_hi.eq(want_hi)]
        with m.Switch(index):
            for k, c in enumerate(self._counters):
                value = values[c.name]
                with m.Case(k):
                    m.d.sync += lo_word.eq(value[:32])
                    m.d.comb += clear[c.name].eq(self.csr.w_stb & ~want_hi)
                    if c.width > 32:
                        m.d.sync += has_hi.eq(1)
                        with m.If(self.csr.r_stb & ~want_hi):
                            m.d.sync += hi_latch.eq(value[32:])
        with m.If(read_hi):
            m.d.sync += self.csr.r_data.eq(Mux(has_hi, hi_latch, 0))
        with m.Else():
            m.d.sync += self.csr.r_data.eq(lo_word)
        return m

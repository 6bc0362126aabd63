"""A minimal register bus and the statistics counter bank that sits on it.

The full register map (issue "Datapath") bridges AXI4-Lite onto this bus; blocks only expose
:class:`CsrSignature` ports and describe their registers with :class:`CounterBank.registers`.
"""

from dataclasses import dataclass

from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
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

    The counts live in a small RAM, not in registers: each counter only has a narrow *pending*
    register that collects its increments, and a sweep visits one counter per clock, adding its
    pending amount into the RAM (a clear takes that clock to write a zero instead). A read
    returns RAM + pending, so it is exact to the clock. This costs one wide adder per bank
    instead of one per counter (a 64-bit counter in registers is
    64 flip-flops and 32 carry cells; the card has 65 of them).

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
        n = len(self._counters)
        width = max(c.width for c in self._counters)
        # The sweep reads a word one clock before it writes it back, so it goes round at least
        # two words (a one-counter bank has a spare one).
        period = max(n, 2)
        m.submodules.counts = counts = Memory(shape=width, depth=period, init=[])
        sweep_r = counts.read_port(transparent_for=())
        ram_w = counts.write_port()
        csr_r = counts.read_port(transparent_for=())   # the value before this clock's write

        index = self.csr.addr[1:]
        want_hi = self.csr.addr[0]
        clearing = Signal()                            # a clear takes the write port
        m.d.comb += clearing.eq(self.csr.w_stb & ~want_hi & (index < n))

        # The sweep, in two registered steps so that no path holds the choice among the pending
        # registers, the RAM's read or the wide adder together: step 0 moves pending[ptr] into
        # `moving` and reads RAM[ptr]; step 1 writes RAM[moving_k] := that word + `moving`.
        # A clear takes the RAM's write port for its clock (RAM[index] := 0, pending[index] :=
        # 0, a move of that counter is dropped) and both steps wait.
        # A counter collects at most `period` clocks of increments before the sweep comes back
        # (``2 ** inc_width - 1`` each); one spare bit covers the clocks clears delay it (a
        # register write takes several clocks, so clears never come back to back).
        ptr = Signal(range(period))
        pending = [Signal(c.inc_width + period.bit_length() + 1, name=f"pending_{c.name}")
                   for c in self._counters]
        moving = Signal(max(len(p) for p in pending))
        moving_k = Signal(range(period))
        moving_valid = Signal()
        with m.If(clearing):
            m.d.comb += [ram_w.addr.eq(index), ram_w.data.eq(0), ram_w.en.eq(1)]
            with m.If(moving_k == index):
                m.d.sync += moving_valid.eq(0)
        with m.Else():
            m.d.sync += [ptr.eq(Mux(ptr == period - 1, 0, ptr + 1)),
                         moving.eq(Array(pending)[ptr]), moving_k.eq(ptr),
                         moving_valid.eq(ptr < n)]
            m.d.comb += [ram_w.addr.eq(moving_k), ram_w.data.eq(sweep_r.data + moving),
                         ram_w.en.eq(moving_valid)]
        m.d.comb += [sweep_r.addr.eq(ptr), sweep_r.en.eq(~clearing)]
        for k, (c, p) in enumerate(zip(self._counters, pending, strict=True)):
            inc = getattr(self.inc, c.name)
            with m.If(clearing & (index == k)):        # the clear wins over this clock's inc
                m.d.sync += p.eq(0)
            with m.Elif(~clearing & (ptr == k)):       # moved into `moving` this clock
                m.d.sync += p.eq(inc)
            with m.Else():
                m.d.sync += p.eq(p + inc)

        # Reads take two clocks. The first takes a snapshot of the addressed counter (its RAM
        # word, its pending amount plus the amount on its way into the RAM, all from before
        # this clock's edge); the second adds them up and picks the low word, the high latch or
        # zero. A low-word read with ``r_stb`` latches the high word of the same sum. ``r_data``
        # follows ``addr`` every cycle, so ``r_stb`` stays out of the multiplexer's timing path.
        m.d.comb += csr_r.addr.eq(index)
        snap_p = Signal(len(moving) + 1)
        snap_ok, snap_hi, snap_latch, snap_has_hi = Signal(), Signal(), Signal(), Signal()
        m.d.sync += [
            snap_p.eq(Array(pending)[index]
                      + Mux(moving_valid & (moving_k == index), moving, 0)),
            snap_ok.eq(index < n),
            snap_hi.eq(want_hi),
            snap_latch.eq(self.csr.r_stb & ~want_hi),
            snap_has_hi.eq(Array(C(c.width > 32, 1) for c in self._counters)[index]),
        ]
        total = Signal(width)
        m.d.comb += total.eq(csr_r.data + snap_p)
        # Counters narrower than the RAM wrap at their own width: mask only the bits where
        # some counter of the bank ends.
        lo, hi = total[:32], total[32:]
        if any(c.width < 32 for c in self._counters):
            lo_mask = Signal(32)
            m.d.sync += lo_mask.eq(Array(C((1 << min(c.width, 32)) - 1, 32)
                                         for c in self._counters)[index])
            lo = lo & lo_mask
        if any(32 < c.width < width for c in self._counters):
            hi_mask = Signal(width - 32)
            m.d.sync += hi_mask.eq(Array(C(((1 << c.width) - 1) >> 32, width - 32)
                                         for c in self._counters)[index])
            hi = hi & hi_mask
        hi_latch = Signal(32)
        with m.If(snap_latch & snap_ok):
            m.d.sync += hi_latch.eq(hi if width > 32 else 0)
        with m.If(~snap_ok):
            m.d.sync += self.csr.r_data.eq(0)
        with m.Elif(snap_hi):
            m.d.sync += self.csr.r_data.eq(Mux(snap_has_hi, hi_latch, 0))
        with m.Else():
            m.d.sync += self.csr.r_data.eq(lo)
        return m

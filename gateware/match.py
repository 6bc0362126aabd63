"""Pieces shared by the classifier's match tables: priority selection and hit counters."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["lowest_match", "HitCounters"]


def lowest_match(items: list[tuple[Value, ...]]) -> tuple[Value, ...]:
    """The item with the lowest position whose flag (element 0) is set, as ``(any, *rest)``.

    A balanced tree of 2:1 choices, log2(n) levels deep instead of an n-long priority chain.
    """
    while len(items) > 1:
        nxt = []
        for k in range(0, len(items), 2):
            if k + 1 == len(items):
                nxt.append(items[k])
                continue
            a, b = items[k], items[k + 1]
            nxt.append((a[0] | b[0], *(Mux(a[0], x, y) for x, y in zip(a[1:], b[1:], strict=True))))
        items = nxt
    return items[0]


class HitCounters(wiring.Component):
    """One 32-bit hit counter per table entry, in a block RAM.

    A hit is counted by read-modify-write in three registered steps: read the count, add one
    (taking the value from a hit one or two steps ahead when it is the same entry: that one is
    not in the RAM yet), write. One hit per clock, every hit counted. A clear request waits for
    a clock with no write from the counting steps (at most three clocks under a hit a clock).

    Attributes
    ----------
    hit, hit_index : In
        Count a hit of entry ``hit_index`` (one per clock).
    read_index : In; read_data : Out
        ``read_data`` is entry ``read_index``'s count one clock later.
    clear, clear_index : In
        Pulse to zero an entry's count.
    """

    def __init__(self, entries: int):
        self._entries = entries
        super().__init__({
            "hit": In(1), "hit_index": In(range(entries)),
            "read_index": In(range(entries)), "read_data": Out(32),
            "clear": In(1), "clear_index": In(range(entries)),
        })

    def elaborate(self, platform):
        m = Module()
        n = self._entries
        m.submodules.ram = ram = Memory(shape=32, depth=n, init=[])
        rmw_read = ram.read_port()
        csr_read = ram.read_port()
        write = ram.write_port()
        m.d.comb += [csr_read.addr.eq(self.read_index), self.read_data.eq(csr_read.data)]
        v0, idx0 = Signal(), Signal(range(n))          # step 0: a hit to count
        v1, idx1 = Signal(), Signal(range(n))          # step 1
        v2, idx2, new2 = Signal(), Signal(range(n)), Signal(32)   # step 2: write new2
        last_w = Signal(32)                            # what step 2 wrote last clock
        from_p2, from_last = Signal(), Signal()        # step 1's bypass choices
        m.d.sync += [v0.eq(self.hit), idx0.eq(self.hit_index)]
        m.d.comb += rmw_read.addr.eq(idx0)
        m.d.sync += [
            v1.eq(v0), idx1.eq(idx0),
            from_p2.eq(v1 & (idx1 == idx0)),
            from_last.eq(v2 & (idx2 == idx0)),
            v2.eq(v1), idx2.eq(idx1),
            new2.eq(Mux(from_p2, new2, Mux(from_last, last_w, rmw_read.data)) + 1),
            last_w.eq(new2),
        ]
        pending = Signal()
        pending_index = Signal(range(n))
        with m.If(self.clear):
            m.d.sync += [pending.eq(1), pending_index.eq(self.clear_index)]
        with m.If(v2):
            m.d.comb += [write.addr.eq(idx2), write.data.eq(new2), write.en.eq(1)]
        with m.Elif(pending):
            m.d.comb += [write.addr.eq(pending_index), write.data.eq(0), write.en.eq(1)]
            with m.If(~self.clear):
                m.d.sync += pending.eq(0)
        return m

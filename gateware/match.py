"""Pieces shared by the classifier's match tables: priority selection, hit counters, and the
scanned exact-match table under the MAC and local-IP tables."""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["lowest_match", "HitCounters", "ScannedTable", "scan_latency", "table_registers",
           "CMD_STORE", "CMD_LOAD"]

#: ``cmd`` register values of the scanned tables.
CMD_STORE, CMD_LOAD = 1, 2


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


def scan_latency(entries: int, lanes: int) -> int:
    """Clocks from a :class:`ScannedTable` lookup's acceptance to its result: one RAM read per
    row, then the lanes' verdicts and the result register."""
    return entries // lanes + 2


class ScannedTable(wiring.Component):
    """A small exact-match table in distributed RAM, searched by scanning it.

    A table of registers compared in parallel costs a comparator per entry and per lookup
    port; the card's whole-core build ran out of LUTs on them. Here entry *k* lives in RAM lane
    ``k % lanes`` at address ``k // lanes``, and a lookup reads one address of every lane per
    clock: ``entries / lanes`` clocks plus two of pipeline, one comparator per lane. The
    classifier has a whole flow-table scan (32 clocks) per frame, so that is free.

    The lowest matching index wins (an earlier step, then a lower lane). An entry is written
    whole in one clock, so a lookup sees every entry either before or after a change, never a
    mix; a lookup that runs while software rewrites several entries may see some old and some
    new, which is what a table of registers did as well.

    Parameters
    ----------
    entries, lanes : int
        ``lanes`` must divide ``entries``.
    entry : data.Layout
        What an entry stores: must have a ``valid`` and a ``vnic`` field.
    key : data.Layout
    matches : function (entry view, key view) -> Value
        Whether a valid entry matches the key (``valid`` is checked here).
    ports : int
        Independent lookup ports (each has its own RAM read ports).

    Attributes
    ----------
    lookup{p} : In(stream of key); result{p} : Out(stream of {hit, index, vnic})
    count_take, count_hit, count_index : Out
        A lookup of port 0 completes (one clock pulse), whether it hit, which entry.
    w_en, w_index, w_data : In
        Replace entry ``w_index`` with ``w_data``.
    r_index : In; r_data : Out
        Entry ``r_index``, as addressed (for software reading the table back).
    """

    def __init__(self, entries: int, lanes: int, entry: data.Layout, key: data.Layout,
                 matches, *, ports: int = 1):
        if entries % lanes:
            raise ValueError(f"lanes ({lanes}) must divide entries ({entries})")
        self._entries, self._lanes, self._entry, self._matches = entries, lanes, entry, matches
        self._ports = ports
        res = data.StructLayout({"hit": 1, "index": range(entries),
                                 "vnic": entry["vnic"].shape})
        members = {
            "count_take": Out(1), "count_hit": Out(1), "count_index": Out(range(entries)),
            "w_en": In(1), "w_index": In(range(entries)), "w_data": In(entry),
            "r_index": In(range(entries)), "r_data": Out(entry),
        }
        for p in range(ports):
            members[f"lookup{p}"] = In(stream.Signature(key))
            members[f"result{p}"] = Out(stream.Signature(res))
        super().__init__(members)

    @property
    def entries(self) -> int:
        return self._entries

    @property
    def steps(self) -> int:
        """Clocks one lookup spends reading the RAM."""
        return self._entries // self._lanes

    def elaborate(self, platform):
        m = Module()
        lanes, depth = self._lanes, self.steps
        mems = []
        for lane in range(lanes):
            mem = Memory(shape=self._entry, depth=depth, init=[])
            m.submodules[f"lane{lane}"] = mem
            mems.append(mem)
            w = mem.write_port()
            r = mem.read_port(domain="comb")
            m.d.comb += [
                w.addr.eq(self.w_index // lanes), w.data.eq(self.w_data),
                w.en.eq(self.w_en & (self.w_index % lanes == lane)),
                r.addr.eq(self.r_index // lanes),
            ]
            with m.If(self.r_index % lanes == lane):
                m.d.comb += self.r_data.eq(r.data)
        for p in range(self._ports):
            take, hit, index = self._scan_port(m, mems, getattr(self, f"lookup{p}"),
                                               getattr(self, f"result{p}"), f"p{p}_")
            if p == 0:
                m.d.comb += [self.count_take.eq(take), self.count_hit.eq(hit),
                             self.count_index.eq(index)]
        return m

    def _scan_port(self, m: Module, mems: list, lookup, result, prefix: str):
        lanes, depth = self._lanes, self.steps
        reads = [mem.read_port() for mem in mems]
        key = Signal.like(lookup.payload, name=f"{prefix}key")
        busy = Signal(name=f"{prefix}busy")          # a lookup is in the pipeline
        issuing = Signal(name=f"{prefix}issuing")
        step = Signal(range(depth), name=f"{prefix}step")
        m.d.comb += lookup.ready.eq(~busy)
        with m.If(lookup.valid & ~busy):
            m.d.sync += [key.eq(lookup.payload), busy.eq(1), issuing.eq(1), step.eq(0)]
        with m.If(issuing):
            m.d.sync += step.eq(step + 1)
            with m.If(step == depth - 1):
                m.d.sync += issuing.eq(0)
        for r in reads:
            m.d.comb += r.addr.eq(step)
        # a: the RAM answers for `step` of the clock before; b: the lanes' verdicts
        a_valid, a_last = Signal(name=f"{prefix}a_valid"), Signal(name=f"{prefix}a_last")
        a_step = Signal(range(depth), name=f"{prefix}a_step")
        m.d.sync += [a_valid.eq(issuing), a_last.eq(issuing & (step == depth - 1)),
                     a_step.eq(step)]
        b_valid, b_last = Signal(name=f"{prefix}b_valid"), Signal(name=f"{prefix}b_last")
        b_step = Signal(range(depth), name=f"{prefix}b_step")
        b_match = Signal(lanes, name=f"{prefix}b_match")
        b_vnic = [Signal.like(r.data.vnic, name=f"{prefix}b_vnic{k}") for k, r in
                  enumerate(reads)]
        m.d.sync += [b_valid.eq(a_valid), b_last.eq(a_last), b_step.eq(a_step)]
        for k, r in enumerate(reads):
            m.d.sync += [b_match[k].eq(a_valid & r.data.valid & self._matches(r.data, key)),
                         b_vnic[k].eq(r.data.vnic)]
        any_, lane, vnic = lowest_match([(b_match[k], C(k, range(lanes)), b_vnic[k])
                                         for k in range(lanes)])
        found = Signal(name=f"{prefix}found")
        f_index = Signal(range(self._entries), name=f"{prefix}f_index")
        f_vnic = Signal.like(b_vnic[0], name=f"{prefix}f_vnic")
        here = Signal(range(self._entries), name=f"{prefix}here")
        m.d.comb += here.eq(b_step * lanes + lane)
        first = b_valid & any_ & ~found
        with m.If(first):
            m.d.sync += [found.eq(1), f_index.eq(here), f_vnic.eq(vnic)]
        done_hit = found | first
        done_index = Mux(found, f_index, here)
        done_vnic = Mux(found, f_vnic, vnic)
        with m.If(b_last):
            m.d.sync += [result.valid.eq(1), result.payload.hit.eq(done_hit),
                         result.payload.index.eq(Mux(done_hit, done_index, 0)),
                         result.payload.vnic.eq(Mux(done_hit, done_vnic, 0)),
                         found.eq(0)]
        take = result.valid & result.ready
        with m.If(take):
            m.d.sync += [result.valid.eq(0), busy.eq(0)]
        return take, result.payload.hit, result.payload.index


def table_registers(m: Module, csr, table: ScannedTable, entry: data.Layout, words,
                    *, index: int, cmd: int, hits: int, misses: int, count_miss: Value) -> None:
    """The register side of a :class:`ScannedTable`: ``index``, staging words, ``cmd`` (1 store
    staging -> entry[index], 2 load entry[index] -> staging), ``hits`` of entry[index] and
    ``misses`` (a write clears either), read latency 2.

    ``words(stage)`` maps each staging word's offset to ``[(bit, slice of stage), ...]``.
    ``count_miss`` qualifies which completed lookups that missed are counted.
    """
    n = table.entries
    sel = Signal(range(n))
    stage = Signal(entry)
    layout = words(stage)
    m.submodules.hits = counts = HitCounters(n)
    take, hit = table.count_take, table.count_hit
    miss_count = Signal(32)
    m.d.comb += [counts.hit.eq(take & hit), counts.hit_index.eq(table.count_index),
                 counts.read_index.eq(sel), table.w_index.eq(sel), table.w_data.eq(stage),
                 table.r_index.eq(sel)]
    with m.If(csr.w_stb & (csr.addr == misses)):
        m.d.sync += miss_count.eq(0)
    with m.Elif(take & ~hit & count_miss):
        m.d.sync += miss_count.eq(miss_count + 1)
    with m.If(csr.w_stb):
        with m.Switch(csr.addr):
            with m.Case(index):
                m.d.sync += sel.eq(Mux(csr.w_data < n, csr.w_data, sel))
            with m.Case(cmd):
                with m.If(csr.w_data[:2] == CMD_STORE):
                    m.d.comb += table.w_en.eq(1)
                with m.Elif(csr.w_data[:2] == CMD_LOAD):
                    m.d.sync += stage.eq(table.r_data)
            with m.Case(hits):
                m.d.comb += [counts.clear.eq(1), counts.clear_index.eq(sel)]
            for offset, parts in layout.items():
                with m.Case(offset):
                    m.d.sync += [v.eq(csr.w_data[bit:bit + len(v)]) for bit, v in parts]
    # Reads: the word is chosen in the first clock (the hit RAM answers in the second).
    word = Signal(32)
    from_ram = Signal()
    m.d.sync += [word.eq(0), from_ram.eq(csr.addr == hits)]
    with m.Switch(csr.addr):
        with m.Case(index):
            m.d.sync += word.eq(sel)
        with m.Case(misses):
            m.d.sync += word.eq(miss_count)
        for offset, parts in layout.items():
            with m.Case(offset):
                m.d.sync += [word[bit:bit + len(v)].eq(v) for bit, v in parts]
    m.d.sync += csr.r_data.eq(Mux(from_ram, counts.read_data, word))

# Ref: ../shared/DESIGN.md "TxDmaEngine ... TX scheduler (priority, maxbw token buckets)";
#      illumos dladm(8) link properties ``priority`` (high/medium/low) and ``maxbw``
"""TxScheduler: which transmit ring the DMA engine serves next.

Decision rules (all rings at once, one decision at a time):

* A ring is a *candidate* when its ``work`` bit is set (the engine: descriptors posted and the
  ring enabled) and it is not held back by its rate limit (below).
* **Strict priority between levels**: a candidate of a higher :class:`Priority` level always
  wins over every lower level (priority 3 counts as ``HIGH``).
* **Round robin within a level**: each level remembers the ring taken last; the next offer of
  that level goes to the first candidate after it (wrapping), so backlogged rings of one level
  take turns one frame each, whatever their rate limits.
* The decision is an *offer* (``offer_valid``, ``offer``: ring number and whether the ring is
  rate-limited), recomputed every clock from the current state until the engine takes it
  (``take``, in a clock where ``offer_valid`` is high). It is deliberately not a stream whose
  payload must hold: an offer made while the engine was busy would otherwise go out stale, and
  a rate-limited ring that became eligible meanwhile would lose that time.
* ``only_limited``: while the engine has only its reserved slot left it asks for rate-limited
  rings only, so a ring waiting on its rate is taken as soon as its tokens allow.
* Every offer taken must be answered by exactly one ``debit`` (the frame's length in bytes, or
  0 when the engine found nothing to send, and the offer's ``limited`` bit), which is what the
  rate limit charges. Debits wait one per ring for the walker: a second one arriving before
  the walker read the first replaces its length (possible only with several frames of a ring
  outstanding, i.e. frames taken while it was unlimited); releases are never lost.

Rate limit (``maxbw``): a token bucket per ring, refilled by a walker that visits one ring per
clock, so every ring is refilled once every ``rings`` clocks (a visit samples the ring in one
clock and writes its bucket back three clocks later).

* Token unit: 2**-16 byte. The rate register (24 bits) is the number of tokens added per visit;
  0 means unlimited. Rate = ``reg * 8 * f_clk / (rings * 2**16)`` bit/s: at 125 MHz with 64
  rings one step is exactly 238.4185791015625 bit/s and the largest value is
  3.99999976 Gb/s (the 32-bit core datapath's 4 Gb/s). :func:`rate_register` converts.
* A limited ring is a candidate only when its tokens are >= 0 and it has no frame *held*: it is
  held from its take until the walker has charged the frame's debit (one frame at a time).
  Only a debit of a limited take ends a hold: when a ring becomes limited with frames taken
  before still on their way, their debits are charged but do not let a second frame out.
* Bucket depth is one refill step: after a visit of a ring that is not held its tokens are
  capped at its rate value (so a ring that crossed 0 keeps the remainder of that step, and an
  idle eligible ring saves nothing up). While held they are not capped (they keep what accrues
  between the take and the charge); the charge is capped again. So a ring holds at most one
  step when taken, and between two of its takes at least the first one's length minus one
  step has been refilled: over any window the bytes taken from a ring exceed
  ``rate * window`` by at most one frame plus two refill steps (one of them is the refill
  granularity itself; a step is 6.4 bytes at 100 Mb/s and 64 bytes at 1 Gb/s with 64 rings).
  The price is that time a ring spends eligible but not yet taken (waiting for the engine or
  for other rings) beyond one step is not made up later (hence ``only_limited``).
* Measured (``tests/gateware/test_tx_scheduler.py``, engine taking offers at once): rings at
  100 and 300 Mb/s with 1000-byte frames beside backlogged unlimited rings run within 0.05% of
  their rate over 0.96 ms, and the window bound holds over every pair of their takes.
* A ring that is limited never blocks others: while it waits for tokens it is simply not a
  candidate. Unlimited rings never touch the tokens.
* A new rate applies from the ring's next visit; the bucket keeps its tokens (so a ring still
  paying for its last frame pays the rest at the new rate). An unlimited ring's tokens are 0.

Pipeline: candidates are registered, a level is chosen, the round-robin mask applied and the
lowest ring number encoded, one register each (no path longer than a 64-bit reduction or a
six-level encoder tree), so an offer reflects the state of 4 clocks before. After a take the
pipeline restarts from the state after it: one take every 5 clocks at most.

State: rates, tokens and pending debits are block memories indexed by ring (one writer each:
the configuration port, the walker, the debit port); per ring only a few flag bits are
flip-flops (level one-hot, limited, held, tokens >= 0, debit due, debit ends a hold).
"""

from amaranth import *
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .layouts import Priority
from .match import lowest_match

__all__ = ["TxScheduler", "SchedulerConfigSignature", "debit_layout", "offer_layout",
           "rate_register",
           "register_rate", "rate_step", "TOKEN_FRAC_BITS", "RATE_BITS"]

#: Tokens are counted in 2**-TOKEN_FRAC_BITS byte.
TOKEN_FRAC_BITS = 16
#: Width of the rate register (tokens per refill visit).
RATE_BITS = 24
_TOKEN_BITS = 35                      # signed; a debit is at most 65535 bytes
_TOKEN_CLAMP = 1 << 32                # 65536 bytes: tokens never need to go above this


def rate_step(*, rings: int = 64, clk_hz: float = 125e6) -> float:
    """Bits per second of one step of the rate register."""
    return 8 * clk_hz / (rings << TOKEN_FRAC_BITS)


def rate_register(bits_per_s: float, *, rings: int = 64, clk_hz: float = 125e6) -> int:
    """The rate register value for ``bits_per_s`` (0: unlimited), rounded to the nearest step
    (at least one step for any positive rate)."""
    if bits_per_s < 0:
        raise ValueError(f"a rate cannot be negative: {bits_per_s}")
    if bits_per_s == 0:
        return 0
    value = max(1, round(bits_per_s / rate_step(rings=rings, clk_hz=clk_hz)))
    if value >= 1 << RATE_BITS:
        raise ValueError(f"{bits_per_s} bit/s is above the largest rate "
                         f"{((1 << RATE_BITS) - 1) * rate_step(rings=rings, clk_hz=clk_hz):.0f}")
    return value


def register_rate(value: int, *, rings: int = 64, clk_hz: float = 125e6) -> float:
    """Bits per second of a rate register value (0: unlimited)."""
    return value * rate_step(rings=rings, clk_hz=clk_hz)


def offer_layout(rings: int) -> data.StructLayout:
    """The ring offered and whether it is rate-limited."""
    return data.StructLayout({"ring": range(rings), "limited": 1})


def debit_layout(rings: int) -> data.StructLayout:
    """What the engine reports for each grant: the ring, the bytes it sent (0: nothing) and
    the ``limited`` bit of the offer it took (only such a debit ends a hold)."""
    return data.StructLayout({"ring": range(rings), "length": 16, "limited": 1})


class SchedulerConfigSignature(wiring.Signature):
    """Programming port, seen from the engine that owns the registers.

    ``priority_we`` / ``rate_we`` write ring ``ring``'s level (a :class:`Priority` value; 3
    counts as ``HIGH``) / rate in that clock;
    ``rate_rdata`` shows ring ``ring``'s rate one clock after ``ring`` is presented (register
    read-back).
    """

    def __init__(self, rings: int):
        super().__init__({
            "ring": Out(range(rings)),
            "priority_we": Out(1), "priority": Out(2),
            "rate_we": Out(1), "rate": Out(RATE_BITS),
            "rate_rdata": In(RATE_BITS),
        })


class TxScheduler(wiring.Component):
    """Strict priority + round robin + per-ring token buckets (``sync`` domain).

    Parameters
    ----------
    rings : int
        Number of rings, a power of two 4..256 (the refill period is ``rings`` clocks).

    Attributes
    ----------
    work : In(rings)
        Ring *n* has something to send.
    offer_valid : Out(1); offer : Out(:func:`offer_layout`)
        The ring to serve next; may change every clock until taken.
    take : In(1)
        Take the offer shown in this clock (only while ``offer_valid``).
    only_limited : In(1)
        Offer rate-limited rings only.
    debit : In(stream of :func:`debit_layout`, always ready)
        One per offer taken, in any order, at any later time.
    cfg : In(SchedulerConfigSignature)
        After reset every ring is ``LOW`` and unlimited.
    """

    def __init__(self, rings: int = 64):
        if not 4 <= rings <= 256 or rings & (rings - 1):
            raise ValueError(f"rings must be a power of two 4..256, not {rings}")
        self._rings = rings
        super().__init__({
            "work": In(rings),
            "offer_valid": Out(1),
            "offer": Out(offer_layout(rings)),
            "take": In(1),
            "only_limited": In(1),
            "debit": In(stream.Signature(debit_layout(rings), always_ready=True)),
            "cfg": In(SchedulerConfigSignature(rings)),
        })

    @property
    def rings(self) -> int:
        return self._rings

    def elaborate(self, platform):
        m = Module()
        n = self._rings
        ones = (1 << n) - 1
        cfg, debit, offer = self.cfg, self.debit, self.offer

        # --- per-ring flags (flip-flops) -----------------------------------------------------
        level = [Signal(n, name=f"level_{p.name.lower()}", init=ones if p == Priority.LOW else 0)
                 for p in Priority]           # one-hot level per ring, by Priority value
        limited = Signal(n)                   # rate != 0
        held = Signal(n)                      # granted, debit not charged yet
        ok = Signal(n, init=ones)             # tokens >= 0
        due = Signal(n)                       # a debit waits in `debts`
        due_limited = Signal(n)               # ... and one of those ends a hold

        # --- memories ------------------------------------------------------------------------
        m.submodules.rates = rates = Memory(shape=RATE_BITS, depth=n, init=[])
        m.submodules.tokens = tokens = Memory(shape=signed(_TOKEN_BITS), depth=n, init=[])
        m.submodules.debts = debts = Memory(shape=16, depth=n, init=[])
        rate_w, rate_r, rate_cfg_r = rates.write_port(), rates.read_port(), rates.read_port()
        tok_w, tok_r = tokens.write_port(), tokens.read_port()
        debt_w, debt_r = debts.write_port(), debts.read_port()

        # After reset the rate memory is swept to 0 (unlimited), one ring per clock.
        sweeping = Signal(init=1)
        sweep = Signal(range(n))
        with m.If(sweeping):
            m.d.sync += sweep.eq(sweep + 1)
            with m.If(sweep == n - 1):
                m.d.sync += sweeping.eq(0)

        # --- walker: refill one ring per clock, charge its debit ------------------------------
        w = Signal(range(n))
        m.d.sync += w.eq(w + 1)               # n is a power of two: wraps by itself
        m.d.comb += [tok_r.addr.eq(w), rate_r.addr.eq(w), debt_r.addr.eq(w)]
        # stage 1: memories answer for ring s1_w; flags sampled in the same clock as the read.
        # Their outputs are registered before any arithmetic (block-RAM clock-to-out and the
        # route out of it take most of a 125 MHz clock by themselves).
        s1_w = Signal(range(n))
        s1_due, s1_release, s1_held = Signal(), Signal(), Signal()
        m.d.sync += [s1_w.eq(w), s1_due.eq(due.bit_select(w, 1)),
                     s1_release.eq(due_limited.bit_select(w, 1)),
                     s1_held.eq(held.bit_select(w, 1))]
        # the visit owns the debit it read from here on (a debit arriving now waits for the
        # next visit), so no debit and no release is lost between the read and the update
        sampled = due.bit_select(w, 1)
        with m.If(sampled):
            m.d.sync += [due.bit_select(w, 1).eq(0), due_limited.bit_select(w, 1).eq(0)]
        r_w = Signal(range(n))
        r_due, r_release, r_held = Signal(), Signal(), Signal()
        r_tokens = Signal(signed(_TOKEN_BITS))
        r_rate = Signal(RATE_BITS)
        r_debt = Signal(16)
        m.d.sync += [r_w.eq(s1_w), r_due.eq(s1_due), r_release.eq(s1_release),
                     r_held.eq(s1_held),
                     r_tokens.eq(tok_r.data), r_rate.eq(rate_r.data), r_debt.eq(debt_r.data)]
        # stage 2: refill (clamped), debit to charge
        s2_w = Signal(range(n))
        s2_release, s2_hold, s2_unlimited = Signal(), Signal(), Signal()
        s2_rate = Signal(RATE_BITS)
        s2_sum = Signal(signed(_TOKEN_BITS))
        s2_debt = Signal(_TOKEN_BITS - 1)
        refill = Signal(signed(_TOKEN_BITS + 1))
        m.d.comb += refill.eq(r_tokens + r_rate)
        m.d.sync += [
            s2_w.eq(r_w), s2_release.eq(r_release),
            s2_hold.eq(r_held & ~r_release),
            s2_unlimited.eq(r_rate == 0), s2_rate.eq(r_rate),
            s2_sum.eq(Mux(refill > _TOKEN_CLAMP, _TOKEN_CLAMP, refill)),
            s2_debt.eq(Mux(r_due, r_debt, 0) << TOKEN_FRAC_BITS),
        ]
        # stage 3: charge, cap at one step unless still held, write back
        charged = Signal(signed(_TOKEN_BITS))
        new = Signal(signed(_TOKEN_BITS))
        m.d.comb += charged.eq(s2_sum - s2_debt)
        with m.If(s2_unlimited):
            m.d.comb += new.eq(0)
        with m.Elif(~s2_hold & (charged > s2_rate)):
            m.d.comb += new.eq(s2_rate)
        with m.Else():
            m.d.comb += new.eq(charged)
        m.d.comb += [tok_w.addr.eq(s2_w), tok_w.data.eq(new), tok_w.en.eq(1)]
        m.d.sync += ok.bit_select(s2_w, 1).eq(new >= 0)
        with m.If(s2_release):
            m.d.sync += held.bit_select(s2_w, 1).eq(0)

        # --- configuration (after the walker: its updates win) -------------------------------
        m.d.comb += [rate_cfg_r.addr.eq(cfg.ring), cfg.rate_rdata.eq(rate_cfg_r.data)]
        with m.If(sweeping):
            m.d.comb += [rate_w.addr.eq(sweep), rate_w.data.eq(0), rate_w.en.eq(1)]
        with m.Else():
            m.d.comb += [rate_w.addr.eq(cfg.ring), rate_w.data.eq(cfg.rate),
                         rate_w.en.eq(cfg.rate_we)]
            with m.If(cfg.rate_we):
                m.d.sync += limited.bit_select(cfg.ring, 1).eq(cfg.rate != 0)
        prio = cfg.priority
        with m.If(cfg.priority_we):
            for p in Priority:
                want = (prio == p.value) | ((prio == 3) & (p == Priority.HIGH))
                m.d.sync += level[p.value].bit_select(cfg.ring, 1).eq(want)

        # --- debits: remember the length, the walker charges it -------------------------------
        m.d.comb += [debt_w.addr.eq(debit.payload.ring), debt_w.data.eq(debit.payload.length),
                     debt_w.en.eq(debit.valid)]
        with m.If(debit.valid):
            ring = debit.payload.ring
            # a debit still pending keeps its release; one the walker takes now has had it
            keep = due_limited.bit_select(ring, 1) & ~(sampled & (ring == w))
            m.d.sync += [due.bit_select(ring, 1).eq(1),
                         due_limited.bit_select(ring, 1).eq(keep | debit.payload.limited)]

        # --- arbitration pipeline ------------------------------------------------------------
        candidates = (self.work & ~(limited & (held | ~ok)) &
                      Mux(self.only_limited, limited, ones))
        levels = len(level)
        req = [Signal(n, name=f"req{p}") for p in range(levels)]          # E
        above = [Signal(n, name=f"above{p}") for p in range(levels)]      # RR masks
        sel, sel_above = Signal(n), Signal(n)                             # P1
        sel_level = Signal(range(levels))
        vec = Signal(n)                                                   # P2
        vec_level = Signal(range(levels))
        offer_level = Signal(range(levels))
        v_e, v_p1, v_p2 = Signal(), Signal(), Signal()

        m.d.sync += [r.eq(candidates & lv) for r, lv in zip(req, level, strict=True)]
        # P1: the highest level with a candidate, its request vector and round-robin mask
        m.d.sync += [sel.eq(0), sel_above.eq(0), sel_level.eq(0)]
        for p in range(levels):             # later (higher) levels override
            with m.If(req[p].any()):
                m.d.sync += [sel.eq(req[p]), sel_above.eq(above[p]), sel_level.eq(p)]
        # P2: rings after the last granted one if any, else from the start
        after = sel & sel_above
        m.d.sync += [vec.eq(Mux(after.any(), after, sel)), vec_level.eq(sel_level)]
        # P3: the lowest ring of vec, offered
        found, index, is_limited = lowest_match([(vec[k], C(k, range(n)), limited[k])
                                                 for k in range(n)])

        after_offer = Cat(offer.ring < k for k in range(n))     # rings after the one offered
        with m.If(self.take & self.offer_valid):
            m.d.sync += [v_e.eq(0), v_p1.eq(0), v_p2.eq(0), self.offer_valid.eq(0)]
            for p in range(levels):
                with m.If(offer_level == p):
                    m.d.sync += above[p].eq(after_offer)
            m.d.sync += held.bit_select(offer.ring, 1).eq(offer.limited)
        with m.Else():
            m.d.sync += [v_e.eq(~sweeping), v_p1.eq(v_e), v_p2.eq(v_p1),
                         self.offer_valid.eq(v_p2 & found), offer.ring.eq(index),
                         offer.limited.eq(is_limited), offer_level.eq(vec_level)]
        return m

# Ref: crossnic.gateware.tx_scheduler module doc (the rules); illumos dladm(8) ``priority`` and
#      ``maxbw`` link properties
"""Reference model of the transmit scheduler: per-clock inputs in, the offer of each clock out.

Written from the rules in :mod:`crossnic.gateware.tx_scheduler`'s documentation with plain
Python (integer bit masks, one record per ring), independently of the gateware's logic: it
shares only :class:`~crossnic.gateware.layouts.Priority` and the constants that give the rate
register its meaning (``TOKEN_FRAC_BITS``, ``RATE_BITS``). The TX scheduler's tests drive it
with the same inputs as the gateware and compare every clock's offer.

Granularity: **cycle-accurate**. Token refill is exact and cheap to model (one ring visited per
clock), so the model predicts the offer of every clock, not only the order of grants; the
scoreboard then checks eligibility (rate limit, ``held``, ``only_limited``) and the pipeline's
timing along with the choice itself, and no separate decision-level mode is needed. Timing (the
4-clock offer latency and 5-clock take rate are documented; which clock each input is sampled
in, and the walker's 3-clock update, are the gateware's register boundaries, part of the
contract the model pins down):

* **Offer**: the offer visible in clock *c* is the decision on the state of clock *c* - 4
  (``work``, ``only_limited``, levels, rate limits, holds, round-robin pointers); its
  ``limited`` bit is the ring's limit in clock *c* - 1. A take in clock *t* voids the offers
  of clocks *t* + 1 .. *t* + 4 (the first new one is made from the state after the take: one
  take every 5 clocks at most). No offer is made from the first ``rings`` clocks after reset
  (the rate memory is swept) and rate writes there are ignored.
* **Walker**: ring *c* mod ``rings`` is sampled in clock *c* (tokens, rate, hold, pending
  debit); the pending debit is taken off at the end of clock *c* (a debit arriving in clock *c*
  stays pending for the next visit), the bucket and the hold are updated at the end of clock
  *c* + 3.
* Register writes (level, rate, held by a take, debit) take effect at the end of their clock.
  Where two updates of one ring meet at one clock edge, the take and the debit win over the
  walker (a hold set by a take stays; a debit arriving is kept).

Decisions (from the documented rules): a candidate has work and, when rate-limited, tokens >= 0
and no frame held; with ``only_limited`` only limited rings are candidates. The highest level
with a candidate wins; in it, the first candidate after the ring that level gave last (wrapping).
Buckets: tokens in 2**-16 byte; a visit adds the rate (capped at 2**32), charges a pending
debit, and caps the result at one rate step unless the ring stays held; an unlimited ring's
tokens are 0. A take holds the ring if the offer said it is limited (and releases it
otherwise); charging a debit whose take was limited releases it.

Two behaviours the documentation does not promise but the gateware has, kept so the model stays
exact, and counted in :attr:`TxSchedulerModel.stats` so a test can see whether they happened:
a ring keeps one pending debit (``debits_lost``: a second debit before the walker read the
first replaces its length, though not its release; only possible with several frames of one
ring outstanding, i.e. frames taken while it was unlimited), and a take of a ring that became
unlimited releases a hold its earlier limited frame still had.

:func:`max_window_excess` checks the documented rate bound on a ring's grants independently of
both.
"""

from collections import deque
from dataclasses import dataclass

from crossnic.gateware.layouts import Priority
from crossnic.gateware.tx_scheduler import RATE_BITS, TOKEN_FRAC_BITS

__all__ = ["Offer", "Config", "TxSchedulerModel", "pick", "refill", "max_window_excess",
           "OFFER_LATENCY", "TAKE_GAP", "WALKER_LATENCY"]

#: Clocks from the state an offer is decided on to the clock it is shown in.
OFFER_LATENCY = 4
#: At most one take every TAKE_GAP clocks.
TAKE_GAP = OFFER_LATENCY + 1
#: Clocks from the walker's sample of a ring to its update (at the end of that clock).
WALKER_LATENCY = 3
#: Tokens saturate here (65536 bytes: no frame needs more).
TOKEN_CEILING = 1 << 32

_HIGH_FIRST = sorted(Priority, key=lambda p: p.value, reverse=True)


@dataclass(frozen=True)
class Offer:
    """What the scheduler shows in a clock: the ring, whether it is rate-limited, its level."""
    ring: int
    limited: bool
    level: Priority


@dataclass(frozen=True)
class Config:
    """One write of the programming port: a ring's level and/or rate (register units)."""
    ring: int
    priority: int | Priority | None = None
    rate: int | None = None


def pick(candidates: int, levels: dict[Priority, int], last: dict[Priority, int | None],
         ) -> tuple[Priority, int] | None:
    """Strict priority, then round robin: the level and ring a candidate mask is given to.

    ``levels[p]`` is the mask of rings at level ``p``, ``last[p]`` the ring level ``p`` gave
    last (``None``: none yet); ``None`` when there is no candidate.
    """
    for p in _HIGH_FIRST:
        here = candidates & levels[p]
        if not here:
            continue
        prev = last[p]
        after = here >> (prev + 1) << (prev + 1) if prev is not None else here
        chosen = after or here                  # nothing after the last one: wrap around
        return p, (chosen & -chosen).bit_length() - 1
    return None


def refill(tokens: int, rate: int, debt: int | None, held: bool) -> int:
    """A ring's tokens after one walker visit.

    ``debt``: the bytes charged (``None``: nothing due); ``held``: a frame of the ring is taken
    and stays held after this visit (its debit is not charged yet), so the tokens accruing
    meanwhile are kept for its charge.
    """
    if rate == 0:
        return 0
    new = min(tokens + rate, TOKEN_CEILING) - ((debt or 0) << TOKEN_FRAC_BITS)
    if not held and new > rate:
        new = rate                   # the bucket is one step deep: idle time is not saved up
    return new


def max_window_excess(takes: list[tuple[int, int]], rate: int, *, rings: int = 64) -> float:
    """The documented rate bound, checked on one ring's takes at a constant rate.

    ``takes``: ``(clock, bytes)`` in order; ``rate``: the register value. Returns the largest,
    over every window ``[t_i, t_j]``, of the bytes taken in it minus ``rate * window``, the
    last frame and two refill steps, in bytes: the guarantee is that it is <= 0.
    """
    if not takes:
        return float("-inf")
    # in units of 2**-16 byte / rings, so that the rate per clock is an integer
    unit = rings << TOKEN_FRAC_BITS
    best_start = None          # max over i <= j of (rate * t_i - bytes before i)
    before = 0                 # bytes of takes before j
    worst = None
    for t, length in takes:
        start = rate * t - before * unit
        best_start = start if best_start is None else max(best_start, start)
        # bytes in [t_i, t] minus the last frame: the bytes before this take since t_i
        excess = before * unit - rate * t + best_start - 2 * rate * rings
        worst = excess if worst is None else max(worst, excess)
        before += length
    return worst / unit


class TxSchedulerModel:
    """Cycle-accurate model of :class:`~crossnic.gateware.tx_scheduler.TxScheduler`.

    Call :meth:`step` once per clock from the first clock after reset, with that clock's inputs;
    it returns the offer shown in that clock (``None``: ``offer_valid`` low) and moves on to the
    next clock. Per ring the state is a few flags (kept as bit masks over the rings) and the
    bucket; :attr:`stats` counts what a coverage summary wants to know.
    """

    def __init__(self, rings: int = 64):
        if rings < 4 or rings & (rings - 1):
            raise ValueError(f"rings must be a power of two >= 4, not {rings}")
        self.rings = rings
        self.cycle = 0
        self.level = [Priority.LOW] * rings
        self.levels = {p: 0 for p in Priority}
        self.levels[Priority.LOW] = (1 << rings) - 1
        self.rate = [0] * rings
        self.tokens = [0] * rings
        self.debt: list[int | None] = [None] * rings     # pending debit (bytes)
        self.release = 0           # the pending debit ends a hold (one of its takes was limited)
        self.limited = 0           # rate != 0
        self.held = 0              # taken while limited, debit not charged yet
        self.negative = 0          # tokens < 0
        self.last: dict[Priority, int | None] = dict.fromkeys(Priority)
        self._pipe = deque([None] * (OFFER_LATENCY - 1))  # decisions on their way; None: void
        self._offer: Offer | None = None
        self._visits: deque[tuple] = deque()             # walker samples waiting for update
        self.stats = dict.fromkeys(
            ["takes", "limited_takes", "debits", "debits_lost", "debits_lost_limited",
             "throttled_tokens", "throttled_held", "rate_writes_ignored"], 0)
        self.grants = dict.fromkeys(Priority, 0)         # takes per level
        self.wraps = dict.fromkeys(Priority, 0)          # takes below the level's last ring
        self.throttled_rings = 0                         # rings ever kept out by tokens < 0

    @property
    def sweeping(self) -> bool:
        """The first ``rings`` clocks after reset: no offers, rate writes ignored."""
        return self.cycle < self.rings

    def throttled(self, work: int) -> tuple[int, int]:
        """Rings with work that their rate limit keeps out now: (by tokens < 0, by a hold)."""
        limited = work & self.limited
        return limited & self.negative & ~self.held, limited & self.held

    def candidates(self, work: int, only_limited: bool = False) -> int:
        """The rings eligible now: work, and when limited, tokens >= 0 and nothing held."""
        blocked = self.limited & (self.held | self.negative)
        return work & ~blocked & (self.limited if only_limited else ~0)

    def step(self, work: int, *, take: bool = False, only_limited: bool = False,
             debit: tuple[int, int, bool] | None = None, config: Config | None = None,
             ) -> Offer | None:
        """One clock: its inputs (``work`` mask, ``take``, ``only_limited``, ``debit`` as
        ``(ring, bytes, limited)`` with the ``limited`` bit of the offer it answers, a
        ``config`` write) in, the offer shown in it out."""
        offer = self._offer
        # --- during the clock: the decision and the walker's sample use this state ----------
        by_tokens, by_hold = self.throttled(work)
        self.stats["throttled_tokens"] += by_tokens != 0
        self.stats["throttled_held"] += by_hold != 0
        self.throttled_rings |= by_tokens
        choice = pick(self.candidates(work, only_limited), self.levels, self.last)
        w = self.cycle % self.rings
        release = bool(self.release >> w & 1)
        self._visits.append((self.cycle + WALKER_LATENCY, w, self.tokens[w], self.rate[w],
                             bool(self.held >> w & 1), self.debt[w], release))

        # --- at the clock edge: the walker's update first, the take and the debit win --------
        self.debt[w] = None                  # the visit owns the debit it read
        self.release &= ~(1 << w)
        if self._visits[0][0] == self.cycle:
            _, v, tokens, rate, held, debt, release = self._visits.popleft()
            self._set_tokens(v, refill(tokens, rate, debt, held and not release))
            if release:
                self.held &= ~(1 << v)
        if take and offer is not None:
            self._take(offer)
        else:
            head = self._pipe.popleft()
            self._offer = None
            if head is not None:
                level, k = head
                self._offer = Offer(k, bool(self.limited >> k & 1), level)
            self._pipe.append(None if self.sweeping else choice)
        if debit is not None:
            self._debit(*debit)
        if config is not None:
            self._configure(config)
        self.cycle += 1
        return offer

    def _take(self, offer: Offer) -> None:
        k = offer.ring
        prev = self.last[offer.level]
        self.wraps[offer.level] += prev is not None and k < prev
        self.grants[offer.level] += 1
        self.last[offer.level] = k
        self.held = self.held & ~(1 << k) | offer.limited << k
        self.stats["takes"] += 1
        self.stats["limited_takes"] += offer.limited
        self._pipe = deque([None] * (OFFER_LATENCY - 1))
        self._offer = None

    def _debit(self, k: int, length: int, limited: bool) -> None:
        if not 0 <= length < 1 << 16:
            raise ValueError(f"a debit is 0..65535 bytes, not {length}")
        if self.debt[k] is not None:
            self._lost(k)                # replaced before the walker came by
        self.debt[k] = length
        self.release |= bool(limited) << k
        self.stats["debits"] += 1

    def _lost(self, k: int) -> None:
        self.stats["debits_lost"] += 1
        self.stats["debits_lost_limited"] += self.limited >> k & 1

    def _configure(self, c: Config) -> None:
        k = c.ring
        if c.priority is not None:
            p = int(getattr(c.priority, "value", c.priority))
            if not 0 <= p <= 3:
                raise ValueError(f"priority is 0..3, not {p}")
            self.levels[self.level[k]] &= ~(1 << k)
            self.level[k] = Priority.HIGH if p == 3 else Priority(p)
            self.levels[self.level[k]] |= 1 << k
        if c.rate is not None:
            if not 0 <= c.rate < 1 << RATE_BITS:
                raise ValueError(f"a rate is {RATE_BITS} bits, not {c.rate}")
            if self.sweeping:
                self.stats["rate_writes_ignored"] += 1
            else:
                self.rate[k] = c.rate
                self.limited = self.limited & ~(1 << k) | bool(c.rate) << k

    def _set_tokens(self, k: int, value: int) -> None:
        self.tokens[k] = value
        self.negative = self.negative & ~(1 << k) | (value < 0) << k

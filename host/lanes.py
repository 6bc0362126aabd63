"""Lanes: a VNIC's rings, interrupt vectors and service thread (Crossbow's hardware lanes).

Each VNIC gets a thread of its own that moves its frames: from its TAP into its transmit ring,
and from its receive rings (the local ring, and the forwarding ring of a router VNIC) to its
TAP or the forwarding fast path. The card's interrupt for those rings wakes the lane's thread
alone, so a busy VNIC never waits behind another, and the driver's lock is taken one budget
of frames at a time, so a flooded lane holds another up for one batch at most.

Dynamic polling (Crossbow's, and Linux's NAPI): under light load a lane is interrupt driven,
each interrupt acknowledged at the ring and followed by one poll. When a poll comes back with
a full budget of frames, the ring is backing up: the lane masks the ring's interrupt
(``irq_mask``) and polls, budget after budget, with no interrupt, acknowledgement or sleep
between them, until a poll comes back short (the ring drained). Then it clears the pending
status, unmasks, polls once more (frames that came in meanwhile) and is interrupt driven
again. :attr:`Lane.stats` counts interrupts, polls and the switches between the two modes,
and ``missed``: the times a lane's watchdog found a frame waiting, with no interrupt for it,
for longer than :data:`IDLE_WAIT` (0 unless the card or the driver loses an interrupt).
"""

import logging
import os
import select
import threading
import time

from .device import DeviceError

__all__ = ["Lane", "BUDGET", "STATS"]

log = logging.getLogger(__name__)

#: Frames one poll of one ring takes at most (NAPI's weight is 64; a simulated card's rings
#: fill slowly, so a smaller budget shows the switch to polling at lower loads).
BUDGET = 16

#: A lane's counters (``show-vnic`` shows each as ``lane_<name>``).
STATS = ("interrupts", "polls", "to_poll", "to_interrupt", "frames", "missed", "errors")

#: How long an interrupt-driven lane sleeps when nothing wakes it (a safety net only: every
#: frame it is due raises its vector or makes its TAP readable).
IDLE_WAIT = 0.1


class Lane:
    """The lane of VNIC ``vnic`` of ``driver``: :meth:`start` its thread, :meth:`interrupt`
    from the driver's interrupt dispatch, :meth:`stop` before the VNIC goes."""

    def __init__(self, driver, vnic, budget: int = BUDGET):
        self.driver, self.vnic, self.budget = driver, vnic, budget
        self.mode = "interrupt"
        self.stats = dict.fromkeys(STATS, 0)
        self.error: str | None = None
        self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._fired = True              # an initial poll: frames may wait in the ring already
        self._suspect = False           # the watchdog saw a frame waiting at its last look
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lane-{vnic.name}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def interrupt(self) -> None:
        """One of the lane's receive vectors fired."""
        self._fired = True
        self.kick()

    def kick(self) -> None:
        """Frames were queued for the lane's transmit rings (the forwarding fast path)."""
        os.eventfd_write(self._wake, 1)

    def stop(self) -> None:
        """End the thread and wait for it (not holding the driver's lock: it may need it)."""
        self._stop.set()
        self.kick()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(30)
        os.close(self._wake)

    def view(self) -> dict:
        return {"lane": self.mode, **{f"lane_{k}": n for k, n in self.stats.items()}}

    # --- the lane's thread ----------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._turn()
            except DeviceError as e:        # the card went away: the daemon says so
                self.error = str(e)
                self._stop.wait(1.0)
            except Exception as e:          # a bug: say so, keep the VNIC's traffic moving
                log.exception("lane %s", self.vnic.name)
                self.error = f"{type(e).__name__}: {e}"
                self.stats["errors"] += 1
                self._stop.wait(0.1)

    def _wait(self) -> bool:
        v = self.vnic
        fds = [self._wake]
        if getattr(v.tap, "fd", -1) >= 0 and not v.tx_full:
            fds.append(v.tap.fd)
        # (a full transmit ring frees up without an interrupt: look again soon)
        timeout = 0.0 if self.mode == "poll" else 0.005 if v.tx_full or v.backlog else IDLE_WAIT
        ready, _, _ = select.select(fds, [], [], timeout)
        try:
            os.eventfd_read(self._wake)
        except BlockingIOError:
            pass
        return bool(ready)

    def _turn(self) -> None:
        woken = self._wait()
        if self._stop.is_set():
            return
        d, v = self.driver, self.vnic
        with d.lock:
            d._transmit(v)
            if self.mode == "poll":
                if self._poll() < self.budget:              # drained: interrupts again
                    d._write([*self._irq("irq_status", 1), *self._irq("irq_mask", 0)])
                    self.mode = "interrupt"
                    self.stats["to_interrupt"] += 1
                    self._fired = False
                    self._poll()                            # (what came in meanwhile)
            elif self._fired:
                self._fired = self._suspect = False
                self.stats["interrupts"] += 1
                self._serve()
            elif not woken:
                self._watchdog()
        if self.mode == "poll":
            time.sleep(0)                # the lock and the interpreter to the other lanes

    def _serve(self) -> None:
        """Acknowledge, then poll; a full budget switches to polling."""
        self.driver._write(self._irq("irq_status", 1))
        if self._poll() >= self.budget:
            self.driver._write(self._irq("irq_mask", 1))
            self.mode = "poll"
            self.stats["to_poll"] += 1

    def _watchdog(self) -> None:
        """Idle for :data:`IDLE_WAIT`: a frame that was already waiting at the last look and
        still has had no interrupt was missed (an interrupt the card or the driver lost, not
        one still on its way): count it and serve the ring as if it had fired."""
        waiting = any(self.driver._rx_pending(ring) for ring in self._rings())
        if waiting and self._suspect:
            self.stats["missed"] += 1
            self._serve()
            waiting = False
        self._suspect = waiting

    def _rings(self) -> list:
        v = self.vnic
        return [v.rx] if v.fwd is None else [v.rx, v.fwd]

    def _irq(self, reg: str, value: int) -> list[tuple[str, int]]:
        return [(ring.reg(reg), value) for ring in self._rings()]

    def _poll(self) -> int:
        """One budget from each receive ring; the most any one of them had."""
        self.stats["polls"] += 1
        most = 0
        for ring in self._rings():
            got = self.driver._receive(ring, forward=ring is self.vnic.fwd,
                                       budget=self.budget)
            self.stats["frames"] += got
            most = max(most, got)
        return most

"""Scoreboard of the receive path: what the model says each frame becomes, against the rings.

Frames are told to the scoreboard as they are sent (port, bytes). The classifier model gives
each its :class:`~crossnic.gateware.layouts.ClassResult`; a frame the model drops is counted
under its reason, a frame for a ring that is not enabled under ``RING_DISABLED``, and every
other frame is expected in its ring. The card merges the ports in an order the model cannot
know, so a ring's completions are checked per source port: the frames of one port that go to
one ring must arrive in that ring in the order they were sent, byte for byte, with every
completion field as the model predicts.
"""

from collections import Counter, deque
from dataclasses import dataclass, field

from crossnic.gateware.layouts import DropReason
from crossnic.sim.model.classifier import ClassifierModel
from crossnic.sim.model.parser import parse

__all__ = ["RxScoreboard", "COMPLETION_FIELDS"]

#: Completion fields the model predicts (``phase`` is the ring's business).
COMPLETION_FIELDS = ("length", "vlan_tci", "ring", "vnic", "vns_id", "flow_id", "flow_hash",
                     "cls", "cast", "ip_csum", "l4_csum", "flow_hit", "vlan_tagged", "priority",
                     "port")


@dataclass
class RxScoreboard:
    model: ClassifierModel
    enabled_rings: set[int]
    expected: dict[tuple[int, int], deque] = field(default_factory=dict)
    drops: Counter = field(default_factory=Counter)
    delivered: int = 0
    mismatches: list[str] = field(default_factory=list)
    coverage: Counter = field(default_factory=Counter)

    def sent(self, port: int, frame: bytes) -> dict:
        """Record a frame sent on ``port``; returns the model's result."""
        r = self.model.classify(parse(frame), port)
        self.coverage[f"cast {r['cast'].name.lower()}"] += 1
        self.coverage[f"class {r['cls'].name.lower()}"] += 1
        self.coverage["flow hit" if r["flow_hit"] else "flow miss"] += 1
        if r["drop"] is not DropReason.NONE:
            self.drops[r["drop"]] += 1
        elif r["ring"] not in self.enabled_rings:
            self.drops[DropReason.RING_DISABLED] += 1
        else:
            self.expected.setdefault((port, r["ring"]), deque()).append((frame, r))
        return r

    def received(self, ring: int, completion: dict, data: bytes) -> None:
        """Check one completion (unpacked) and its buffer against the next expected frame."""
        port = completion["port"]
        queue = self.expected.get((port, ring))
        if not queue:
            self.mismatches.append(f"ring {ring}: unexpected frame from port {port}: "
                                   f"{data[:32].hex()}")
            return
        frame, r = queue.popleft()
        self.delivered += 1
        self.coverage[f"ring {ring}"] += 1
        if data != frame:
            self.mismatches.append(f"ring {ring} port {port}: data differ\n  want "
                                   f"{frame.hex()}\n  got  {data.hex()}")
        want = {k: int(getattr(r[k], "value", r[k])) for k in COMPLETION_FIELDS}
        got = {k: completion[k] for k in COMPLETION_FIELDS}
        if want != got:
            diff = {k: (want[k], got[k]) for k in COMPLETION_FIELDS if want[k] != got[k]}
            self.mismatches.append(f"ring {ring} port {port}: completion (want, got) {diff}")

    def missing(self) -> int:
        """Frames expected in a ring that never arrived."""
        return sum(len(q) for q in self.expected.values())

    def report(self) -> str:
        lines = [(f"delivered {self.delivered}, missing {self.missing()}, "
                  f"mismatches {len(self.mismatches)}"),
                 "drops: " + ", ".join(f"{r.name.lower()} {n}" for r, n in
                                       sorted(self.drops.items(), key=lambda x: x[0].value))]
        lines.append("coverage: " + ", ".join(f"{k} {v}" for k, v in sorted(
            self.coverage.items())))
        return "\n".join(lines)

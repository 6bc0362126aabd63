# Ref: ../shared/DESIGN.md (seed claim 3: subscription priority)
"""Subscription priority: levels (gold, silver, bronze, ...) give a client's connections a
priority and a rate on the card.

A **level** is a name with a priority (low, medium, high) and a transmit rate (maxbw, 0: no
limit). A **subscriber** is a client identity (a name: the subject of a TLS client certificate,
or any name the operator uses) with a level. A connection becomes **associated** with a level
by a request (``crossnic associate``, naming the level or the client's identity) or, on a
server whose TLS handshakes identify clients, when the handshake has: the daemon then puts a
5-tuple flow on the card for it (:meth:`~crossnic.host.daemon.Daemon.add_flow`): receive and
transmit rings of its own, the transmit ring scheduled at the level's priority and maxbw, so the
connection no longer queues behind the VNIC's other traffic or its VNIC's rate. The association
ends on request (``dissociate``) or when no frame of the connection has crossed the card for its
idle time; the flow goes, and the connection falls back to its VNIC's share. Every association
and its end is logged in the configuration database.
"""

import itertools
import logging
import threading
import time

from crossnic.gateware.layouts import Priority

__all__ = ["Subscriptions", "DEFAULT_IDLE"]

#: Seconds without a frame of the connection after which its association ends.
DEFAULT_IDLE = 30.0
PRIORITIES = {p.name.lower(): p for p in Priority}
log = logging.getLogger("crossnic.subscriptions")


class Subscriptions:
    """Levels, subscribers and associations of one daemon (``daemon`` adds and removes the
    flows; ``error`` is the exception a refused request raises)."""

    def __init__(self, daemon, db, error, parse_rate):
        self.daemon, self.db, self.error, self.parse_rate = daemon, db, error, parse_rate
        self.lock = threading.RLock()
        self.associations: dict[str, dict] = {}
        self._names = (f"sub{k}" for k in itertools.count(1))

    # --- levels -----------------------------------------------------------------------------
    def create_level(self, name: str, *, priority: str = "high", maxbw=0) -> dict:
        if not name or len(name) > 31 or not name.replace("-", "").replace("_", "").isalnum():
            raise self.error(f"a level name is 1..31 letters, digits, '-' or '_', not {name!r}")
        if priority not in PRIORITIES:
            raise self.error(f"priority is low, medium or high, not {priority!r}")
        rate = self.parse_rate(maxbw)
        with self.lock:
            if name in self._levels():
                raise self.error(f"level {name} exists")
            self.db.put_level(name, priority, rate)
            return self._levels()[name]

    def delete_level(self, name: str) -> None:
        with self.lock:
            self._level(name)
            users = [s["identity"] for s in self.db.subscribers() if s["level"] == name]
            users += [a["name"] for a in self.associations.values() if a["level"] == name]
            if users:
                raise self.error(f"level {name} is in use ({', '.join(users)})")
            self.db.delete_level(name)

    def show_level(self, name: str | None = None) -> list[dict]:
        levels = self._levels()
        if name is not None:
            return [self._level(name)]
        return list(levels.values())

    def _levels(self) -> dict[str, dict]:
        return {lv["level"]: lv for lv in self.db.levels()}

    def _level(self, name: str) -> dict:
        level = self._levels().get(name)
        if level is None:
            raise self.error(f"no level {name}")
        return level

    # --- subscribers ------------------------------------------------------------------------
    def add_subscriber(self, identity: str, *, level: str) -> dict:
        if not identity or len(identity) > 255:
            raise self.error("an identity is 1..255 characters")
        with self.lock:
            self._level(level)
            self.db.put_subscriber(identity, level)
            return {"identity": identity, "level": level}

    def remove_subscriber(self, identity: str) -> None:
        with self.lock:
            if identity not in {s["identity"] for s in self.db.subscribers()}:
                raise self.error(f"no subscriber {identity}")
            self.db.delete_subscriber(identity)

    def show_subscriber(self, identity: str | None = None) -> list[dict]:
        rows = self.db.subscribers()
        if identity is not None:
            rows = [s for s in rows if s["identity"] == identity]
            if not rows:
                raise self.error(f"no subscriber {identity}")
        return rows

    def level_of(self, identity: str) -> str | None:
        for s in self.db.subscribers():
            if s["identity"] == identity:
                return s["level"]
        return None

    # --- associations -----------------------------------------------------------------------
    def associate(self, *, link: str, attrs: dict, level: str | None = None,
                  identity: str | None = None, idle: float = DEFAULT_IDLE,
                  source: str = "request") -> dict:
        """Raise the connection ``attrs`` (flowadm attributes: its 5-tuple as the VNIC sees
        it) on VNIC ``link`` to ``level`` (or the level of subscriber ``identity``)."""
        if (level is None) == (identity is None):
            raise self.error("associate needs a level or a subscriber's identity")
        if not 1 <= float(idle) <= 86400:
            raise self.error(f"idle is 1..86400 seconds, not {idle}")
        with self.lock:
            if identity is not None:
                level = self.level_of(identity)
                if level is None:
                    raise self.error(f"no subscriber {identity}")
            lv = self._level(level)
            for a in self.associations.values():
                if a["link"] == link and a["attrs"] == attrs:
                    raise self.error(f"the connection is already associated ({a['name']})")
            name = next(n for n in self._names if n not in self.daemon.flows)
            self.daemon.add_flow(name, link=link, attrs=attrs, priority=lv["priority"],
                                 maxbw=lv["maxbw"], temporary=True)
            now = time.monotonic()
            self.associations[name] = {
                "name": name, "link": link, "attrs": dict(attrs), "level": level,
                "identity": identity, "idle": float(idle), "source": source,
                "since": time.time(), "seen": self._frames(name), "active": now}
            self.db.log_association(time.time(), name, identity or "", level, link, attrs,
                                     "associated", source)
            return self._view(name)

    def dissociate(self, name: str, *, why: str = "request") -> None:
        with self.lock:
            a = self.associations.pop(name, None)
            if a is None:
                raise self.error(f"no association {name}")
            try:
                self.daemon.remove_flow(name, temporary=True)
            finally:
                self.db.log_association(time.time(), name, a["identity"] or "", a["level"],
                                        a["link"], a["attrs"], "ended", why)

    def show_association(self, name: str | None = None) -> list[dict]:
        with self.lock:
            if name is not None and name not in self.associations:
                raise self.error(f"no association {name}")
            return [self._view(n) for n in ([name] if name else self.associations)]

    def association_log(self, limit: int = 100) -> list[dict]:
        return self.db.association_log(int(limit))

    def _frames(self, name: str) -> int:
        """Frames of the connection the card has seen: its flow's hits (receive) and its
        transmit ring's frames."""
        f = self.daemon.show_flow(name)[0]
        return f["hits"] + (f["tx_ring_frames"] or 0)

    def _view(self, name: str) -> dict:
        a = self.associations[name]
        f = self.daemon.show_flow(name)[0]
        return {"association": name, "link": a["link"], "level": a["level"],
                "identity": a["identity"], "source": a["source"],
                **{k: str(v) for k, v in a["attrs"].items()},
                "priority": f["priority"], "maxbw": f["maxbw"], "ring": f["ring"],
                "idle": a["idle"],
                "rx_frames": f["hits"], "tx_frames": f["tx_ring_frames"] or 0,
                "since": a["since"]}

    def expire(self, now: float | None = None) -> list[str]:
        """End the associations whose connection has been quiet for their idle time."""
        now = time.monotonic() if now is None else now
        ended = []
        with self.lock:
            for name, a in list(self.associations.items()):
                try:
                    seen = self._frames(name)
                except self.error:                  # its flow was removed under it
                    self.associations.pop(name)
                    self.db.log_association(time.time(), name, a["identity"] or "",
                                            a["level"], a["link"], a["attrs"], "ended",
                                            "flow removed")
                    ended.append(name)
                    continue
                if seen != a["seen"]:
                    a["seen"], a["active"] = seen, now
                elif now - a["active"] >= a["idle"]:
                    self.dissociate(name, why="idle")
                    ended.append(name)
        return ended

    def serve(self, stop: threading.Event, every: float = 1.0) -> None:
        while not stop.wait(every):
            try:
                self.expire()
            except Exception as e:          # a card gone or a bug: said, and tried again
                log.warning("expiry: %s", e)

"""Persistent configuration (SQLite), like dladm's: what ``crossnicd`` restores after a restart.

Changes made with ``-t`` (temporary) are applied to the card and the system but not stored
here. Every write is one SQLite transaction.
"""

import json
import sqlite3
from pathlib import Path

__all__ = ["ConfigDb"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vns (
    name TEXT PRIMARY KEY,
    vns_id INTEGER UNIQUE NOT NULL,
    ips TEXT NOT NULL,          -- JSON list of "addr/len"
    routes TEXT NOT NULL,       -- JSON list of [dest, gateway]
    mtu INTEGER,
    sysctls TEXT NOT NULL       -- JSON object
);
CREATE TABLE IF NOT EXISTS vnic (
    name TEXT PRIMARY KEY,
    port INTEGER NOT NULL,
    mac INTEGER NOT NULL,
    vlan INTEGER NOT NULL,
    vns TEXT REFERENCES vns(name),
    priority TEXT NOT NULL,
    maxbw INTEGER NOT NULL,
    ips TEXT NOT NULL DEFAULT '[]',         -- JSON list of the VNIC's own "addr/len"
    forwarding INTEGER NOT NULL DEFAULT 0,  -- a forwarding ring of its own
    link TEXT                               -- the etherstub it is over (NULL: port)
);
CREATE TABLE IF NOT EXISTS etherstub (
    name TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS vwire (
    name TEXT PRIMARY KEY,
    vlan INTEGER NOT NULL,
    links TEXT NOT NULL         -- JSON list of etherstubs and ports
);
CREATE TABLE IF NOT EXISTS flow (
    name TEXT PRIMARY KEY,
    link TEXT NOT NULL REFERENCES vnic(name),
    attrs TEXT NOT NULL,        -- JSON object of flowadm attributes
    priority TEXT NOT NULL,
    maxbw INTEGER NOT NULL DEFAULT 0
);
-- A virtual function as the PF configured it, and what its guest may ask for.
CREATE TABLE IF NOT EXISTS vf (
    vf INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,         -- who the guest is (a VM or tenant name)
    port INTEGER NOT NULL,
    mac INTEGER NOT NULL,
    vlan INTEGER NOT NULL,
    memory INTEGER NOT NULL,     -- bytes of host memory granted
    attrs TEXT NOT NULL          -- JSON: trust, max_tx_rate, max_mtu, state,
                                 -- allow: {macs, vlans, ips, ops}
);
-- Every request a guest made through its mailbox, and what became of it.
CREATE TABLE IF NOT EXISTS vf_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    vf INTEGER NOT NULL,
    owner TEXT NOT NULL,
    op TEXT NOT NULL,
    args TEXT NOT NULL,
    verdict TEXT NOT NULL,       -- applied | denied | malformed | failed | rate-limited
    reason TEXT NOT NULL
);
-- Subscription levels, the clients that have them, and connections raised to them.
CREATE TABLE IF NOT EXISTS sub_level (
    level TEXT PRIMARY KEY,
    priority TEXT NOT NULL,      -- low | medium | high
    maxbw INTEGER NOT NULL       -- bits/s on transmit, 0: no limit
);
CREATE TABLE IF NOT EXISTS subscriber (
    identity TEXT PRIMARY KEY,   -- a client's name (TLS client certificate subject CN, ...)
    level TEXT NOT NULL REFERENCES sub_level(level)
);
CREATE TABLE IF NOT EXISTS association_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    association TEXT NOT NULL,
    identity TEXT NOT NULL,
    level TEXT NOT NULL,
    link TEXT NOT NULL,
    attrs TEXT NOT NULL,         -- JSON: the connection's flowadm attributes
    event TEXT NOT NULL,         -- associated | ended
    why TEXT NOT NULL            -- request | tls | idle | ...
);
"""


class ConfigDb:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), check_same_thread=False)
        self.db.execute("PRAGMA foreign_keys = ON")
        with self.db:
            self.db.executescript(_SCHEMA)
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(flow)")}
            if "maxbw" not in columns:          # a database from before flows had maxbw
                self.db.execute("ALTER TABLE flow ADD COLUMN maxbw INTEGER NOT NULL DEFAULT 0")
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(vnic)")}
            if "ips" not in columns:            # from before VNICs had addresses of their own
                self.db.execute("ALTER TABLE vnic ADD COLUMN ips TEXT NOT NULL DEFAULT '[]'")
                self.db.execute("ALTER TABLE vnic ADD COLUMN forwarding INTEGER NOT NULL "
                                "DEFAULT 0")
            if "link" not in columns:           # from before etherstubs
                self.db.execute("ALTER TABLE vnic ADD COLUMN link TEXT")

    # --- VNS ------------------------------------------------------------------------------
    def put_vns(self, name: str, vns_id: int, ips: list[str], routes: list[list[str]],
                mtu: int | None, sysctls: dict[str, str]) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO vns VALUES (?, ?, ?, ?, ?, ?)",
                            (name, vns_id, json.dumps(ips), json.dumps(routes), mtu,
                             json.dumps(sysctls)))

    def delete_vns(self, name: str) -> None:
        with self.db:
            self.db.execute("DELETE FROM vns WHERE name = ?", (name,))

    def vns(self) -> list[dict]:
        rows = self.db.execute("SELECT name, vns_id, ips, routes, mtu, sysctls FROM vns "
                               "ORDER BY vns_id").fetchall()
        return [{"name": n, "vns_id": i, "ips": json.loads(a), "routes": json.loads(r),
                 "mtu": m, "sysctls": json.loads(s)} for n, i, a, r, m, s in rows]

    # --- VNICs ----------------------------------------------------------------------------
    def put_vnic(self, name: str, port: int, mac: int, vlan: int, vns: str | None,
                 priority: str, maxbw: int, *, ips: list[str] | None = None,
                 forwarding: bool = False, link: str | None = None) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO vnic (name, port, mac, vlan, vns, priority, "
                            "maxbw, ips, forwarding, link) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (name, port, mac, vlan, vns, priority, maxbw,
                             json.dumps(ips or []), int(forwarding), link))

    def delete_vnic(self, name: str) -> None:
        with self.db:
            self.db.execute("DELETE FROM flow WHERE link = ?", (name,))
            self.db.execute("DELETE FROM vnic WHERE name = ?", (name,))

    def vnics(self) -> list[dict]:
        rows = self.db.execute("SELECT name, port, mac, vlan, vns, priority, maxbw, ips, "
                               "forwarding, link FROM vnic ORDER BY rowid").fetchall()
        keys = ("name", "port", "mac", "vlan", "vns", "priority", "maxbw", "ips", "forwarding",
                "link")
        return [dict(zip(keys, (*r[:7], json.loads(r[7]), bool(r[8]), r[9]), strict=True))
                for r in rows]

    # --- etherstubs and virtual wires -------------------------------------------------------
    def put_etherstub(self, name: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO etherstub VALUES (?)", (name,))

    def delete_etherstub(self, name: str) -> None:
        with self.db:
            self.db.execute("DELETE FROM etherstub WHERE name = ?", (name,))

    def etherstubs(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM etherstub ORDER BY rowid")]

    def put_vwire(self, name: str, vlan: int, links: list[str]) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO vwire VALUES (?, ?, ?)",
                            (name, vlan, json.dumps(links)))

    def delete_vwire(self, name: str) -> None:
        with self.db:
            self.db.execute("DELETE FROM vwire WHERE name = ?", (name,))

    def vwires(self) -> list[dict]:
        rows = self.db.execute("SELECT name, vlan, links FROM vwire ORDER BY rowid")
        return [{"name": n, "vlan": v, "links": json.loads(k)} for n, v, k in rows]

    # --- flows ----------------------------------------------------------------------------
    def put_flow(self, name: str, link: str, attrs: dict, priority: str,
                 maxbw: int = 0) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO flow (name, link, attrs, priority, maxbw) "
                            "VALUES (?, ?, ?, ?, ?)",
                            (name, link, json.dumps(attrs), priority, maxbw))

    def delete_flow(self, name: str) -> None:
        with self.db:
            self.db.execute("DELETE FROM flow WHERE name = ?", (name,))

    def flows(self) -> list[dict]:
        rows = self.db.execute("SELECT name, link, attrs, priority, maxbw FROM flow "
                               "ORDER BY rowid").fetchall()
        return [{"name": n, "link": k, "attrs": json.loads(a), "priority": p, "maxbw": b}
                for n, k, a, p, b in rows]

    # --- virtual functions ------------------------------------------------------------------
    def put_vf(self, vf: int, owner: str, port: int, mac: int, vlan: int, memory: int,
               attrs: dict) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO vf VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (vf, owner, port, mac, vlan, memory, json.dumps(attrs)))

    def delete_vf(self, vf: int) -> None:
        with self.db:
            self.db.execute("DELETE FROM vf WHERE vf = ?", (vf,))

    def vfs(self) -> list[dict]:
        rows = self.db.execute("SELECT vf, owner, port, mac, vlan, memory, attrs FROM vf "
                               "ORDER BY vf").fetchall()
        return [{"vf": v, "owner": o, "port": p, "mac": m, "vlan": n, "memory": b,
                 "attrs": json.loads(a)} for v, o, p, m, n, b, a in rows]

    def audit(self, time: float, vf: int, owner: str, op: str, args: str, verdict: str,
              reason: str) -> None:
        with self.db:
            self.db.execute("INSERT INTO vf_audit (time, vf, owner, op, args, verdict, reason) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (time, vf, owner, op, args, verdict, reason))

    def audit_log(self, vf: int | None = None, limit: int = 100) -> list[dict]:
        where, args = ("WHERE vf = ?", (vf,)) if vf is not None else ("", ())
        rows = self.db.execute(f"SELECT time, vf, owner, op, args, verdict, reason "
                               f"FROM vf_audit {where} ORDER BY id DESC LIMIT ?",
                               (*args, limit)).fetchall()
        return [dict(zip(("time", "vf", "owner", "op", "args", "verdict", "reason"), r,
                         strict=True)) for r in reversed(rows)]

    # --- subscriptions ------------------------------------------------------------------------
    def put_level(self, level: str, priority: str, maxbw: int) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO sub_level VALUES (?, ?, ?)",
                            (level, priority, maxbw))

    def delete_level(self, level: str) -> None:
        with self.db:
            self.db.execute("DELETE FROM sub_level WHERE level = ?", (level,))

    def levels(self) -> list[dict]:
        rows = self.db.execute("SELECT level, priority, maxbw FROM sub_level "
                               "ORDER BY rowid").fetchall()
        return [{"level": n, "priority": p, "maxbw": b} for n, p, b in rows]

    def put_subscriber(self, identity: str, level: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO subscriber VALUES (?, ?)", (identity, level))

    def delete_subscriber(self, identity: str) -> None:
        with self.db:
            self.db.execute("DELETE FROM subscriber WHERE identity = ?", (identity,))

    def subscribers(self) -> list[dict]:
        rows = self.db.execute("SELECT identity, level FROM subscriber ORDER BY rowid").fetchall()
        return [{"identity": i, "level": n} for i, n in rows]

    def log_association(self, time: float, name: str, identity: str, level: str, link: str,
                        attrs: dict, event: str, why: str) -> None:
        with self.db:
            self.db.execute("INSERT INTO association_log (time, association, identity, level, "
                            "link, attrs, event, why) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            (time, name, identity, level, link, json.dumps(attrs), event, why))

    def association_log(self, limit: int = 100) -> list[dict]:
        rows = self.db.execute("SELECT time, association, identity, level, link, attrs, event, "
                               "why FROM association_log ORDER BY id DESC LIMIT ?",
                               (limit,)).fetchall()
        keys = ("time", "association", "identity", "level", "link", "attrs", "event", "why")
        return [dict(zip(keys, r, strict=True)) for r in reversed(rows)]

    def close(self) -> None:
        self.db.close()

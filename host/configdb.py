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
    maxbw INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS flow (
    name TEXT PRIMARY KEY,
    link TEXT NOT NULL REFERENCES vnic(name),
    attrs TEXT NOT NULL,        -- JSON object of flowadm attributes
    priority TEXT NOT NULL,
    maxbw INTEGER NOT NULL DEFAULT 0
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
                 priority: str, maxbw: int) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO vnic VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (name, port, mac, vlan, vns, priority, maxbw))

    def delete_vnic(self, name: str) -> None:
        with self.db:
            self.db.execute("DELETE FROM flow WHERE link = ?", (name,))
            self.db.execute("DELETE FROM vnic WHERE name = ?", (name,))

    def vnics(self) -> list[dict]:
        rows = self.db.execute("SELECT name, port, mac, vlan, vns, priority, maxbw FROM vnic "
                               "ORDER BY rowid").fetchall()
        return [dict(zip(("name", "port", "mac", "vlan", "vns", "priority", "maxbw"), r,
                         strict=True)) for r in rows]

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

    def close(self) -> None:
        self.db.close()

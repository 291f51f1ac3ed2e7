"""The embedded default backend: one SQLite file (WAL, ``synchronous=FULL``) for decisions, the
allowlist, API key hashes and bouncer cursors.

Every store write is one transaction committed before the store answers, so a ``kill -9`` loses
nothing that was acknowledged. Reads never come here: the store answers from memory. Another process
(``detector decisions add --store ...`` next to a running service) may write the same file; SQLite's
``data_version`` tells the service to reload.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Iterable

from detector.store.backend import Snapshot
from detector.store.core import Store
from detector.store.decisions import AllowEntry, Decision
from detector.store.keys import ApiKey

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, origin TEXT NOT NULL, type TEXT NOT NULL, scope TEXT NOT NULL,
    value TEXT NOT NULL, created_at REAL NOT NULL, until REAL NOT NULL, scenario TEXT NOT NULL,
    simulated INTEGER NOT NULL, reasons TEXT NOT NULL, score REAL, model_version TEXT NOT NULL,
    lifted_at REAL);
CREATE TABLE IF NOT EXISTS allowlist (
    id INTEGER PRIMARY KEY AUTOINCREMENT, value TEXT NOT NULL UNIQUE, scope TEXT NOT NULL,
    reason TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, role TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS cursors (
    key_id INTEGER NOT NULL, decision_id INTEGER NOT NULL, PRIMARY KEY (key_id, decision_id)) WITHOUT ROWID;
"""
_DECISION_COLUMNS = ("id, origin, type, scope, value, created_at, until, scenario, simulated, reasons, score, "
                     "model_version, lifted_at")


class StoreError(RuntimeError):
    """The store file cannot be opened or is not a detector store."""


class SqliteBackend:
    """A SQLite file; one connection, used under the store's lock."""

    persistent = True

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            if self.path.parent and not self.path.parent.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path}: store schema {version} is newer than this detector's ({SCHEMA_VERSION})")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._db.commit()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from None
        self._seen = self._data_version()

    def _data_version(self) -> int:
        return self._db.execute("PRAGMA data_version").fetchone()[0]

    def load(self) -> Snapshot:
        db = self._db
        db.execute("BEGIN")  # one read transaction: data_version and the rows agree
        self._seen = self._data_version()
        decisions = [Decision(id=r[0], origin=r[1], type=r[2], scope=r[3], value=r[4], created_at=r[5], until=r[6],
                              scenario=r[7], simulated=bool(r[8]), reasons=tuple(json.loads(r[9])), score=r[10],
                              model_version=r[11], lifted_at=r[12])
                     for r in db.execute(f"SELECT {_DECISION_COLUMNS} FROM decisions ORDER BY id")]
        allowlist = [AllowEntry(*r) for r in db.execute(
            "SELECT id, value, scope, reason, created_at FROM allowlist ORDER BY id")]
        keys = [ApiKey(*r) for r in db.execute("SELECT id, name, role, hash, created_at FROM api_keys ORDER BY id")]
        cursors: dict[int, set[int]] = {}
        for key_id, decision_id in db.execute("SELECT key_id, decision_id FROM cursors"):
            cursors.setdefault(key_id, set()).add(decision_id)
        db.commit()
        return Snapshot(decisions, allowlist, keys, cursors)

    def insert_decision(self, d: Decision) -> int:
        cur = self._db.execute(
            "INSERT INTO decisions (origin, type, scope, value, created_at, until, scenario, simulated, reasons, "
            "score, model_version, lifted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (d.origin, d.type, d.scope, d.value, d.created_at, d.until, d.scenario, int(d.simulated),
             json.dumps(list(d.reasons)), d.score, d.model_version, d.lifted_at))
        return int(cur.lastrowid)

    def lift_decision(self, decision_id: int, lifted_at: float) -> None:
        self._db.execute("UPDATE decisions SET lifted_at = ? WHERE id = ?", (lifted_at, decision_id))

    def delete_decisions(self, ids: Iterable[int]) -> None:
        rows = [(i,) for i in ids]
        self._db.executemany("DELETE FROM decisions WHERE id = ?", rows)
        self._db.executemany("DELETE FROM cursors WHERE decision_id = ?", rows)

    def insert_allow(self, entry: AllowEntry) -> int:
        cur = self._db.execute("INSERT INTO allowlist (value, scope, reason, created_at) VALUES (?, ?, ?, ?)",
                               (entry.value, entry.scope, entry.reason, entry.created_at))
        return int(cur.lastrowid)

    def delete_allow(self, entry_id: int) -> None:
        self._db.execute("DELETE FROM allowlist WHERE id = ?", (entry_id,))

    def insert_key(self, key: ApiKey) -> int:
        cur = self._db.execute("INSERT INTO api_keys (name, role, hash, created_at) VALUES (?, ?, ?, ?)",
                               (key.name, key.role, key.hash, key.created_at))
        return int(cur.lastrowid)

    def delete_key(self, key_id: int) -> None:
        self._db.execute("DELETE FROM api_keys WHERE id = ?", (key_id,))
        self.cursor_drop(key_id)

    def cursor_update(self, key_id: int, add: Iterable[int], remove: Iterable[int]) -> None:
        self._db.executemany("INSERT OR IGNORE INTO cursors (key_id, decision_id) VALUES (?, ?)",
                             [(key_id, i) for i in add])
        self._db.executemany("DELETE FROM cursors WHERE key_id = ? AND decision_id = ?", [(key_id, i) for i in remove])

    def cursor_drop(self, key_id: int) -> None:
        self._db.execute("DELETE FROM cursors WHERE key_id = ?", (key_id,))

    def commit(self) -> None:
        self._db.commit()  # this connection's own commits do not move its data_version

    def rollback(self) -> None:
        self._db.rollback()

    def changed(self) -> bool:
        return self._data_version() != self._seen

    def ping(self) -> bool:
        try:
            self._db.execute("SELECT 1").fetchone()
            return True
        except sqlite3.Error:
            return False

    def close(self) -> None:
        self._db.close()


class SqliteStore(Store):
    """A ``Store`` kept in the SQLite file at ``path`` (created if missing)."""

    def __init__(self, path: str | Path, **options) -> None:
        super().__init__(SqliteBackend(path), **options)

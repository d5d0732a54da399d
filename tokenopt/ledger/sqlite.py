"""The default ledger: one SQLite file, durable on one machine, no server.

SQLite rather than an append-only file: reports filter by time and group by
fields, retention deletes old rows in place, and concurrent writers (several
worker processes of one sidecar) are safe with WAL. Writes run in a thread so
the event loop never waits on the disk.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import anyio.to_thread

from tokenopt.exceptions import ConfigError
from tokenopt.ledger.entry import LedgerEntry

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (ts REAL NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS entries_ts ON entries (ts);
"""
PRUNE_EVERY = 1000


class SqliteLedger:
    def __init__(self, path: str | Path, *, retention_days: int = 90) -> None:
        self.path = Path(path)
        self.retention = retention_days * 86_400.0
        self._lock = threading.Lock()
        self._writes = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the ledger at '{path}': {exc}") from exc
        self._prune()

    async def append(self, entries: Iterable[LedgerEntry]) -> None:
        rows = [(e.ts, json.dumps(e.as_json(), separators=(",", ":"))) for e in entries]
        await anyio.to_thread.run_sync(self._insert, rows)

    def _insert(self, rows: list[tuple[float, str]]) -> None:
        with self._lock:
            self._db.executemany("INSERT INTO entries (ts, data) VALUES (?, ?)", rows)
            self._writes += len(rows)
            if self._writes >= PRUNE_EVERY:
                self._writes = 0
                self._prune()

    def _prune(self) -> None:
        self._db.execute("DELETE FROM entries WHERE ts < ?", (time.time() - self.retention,))

    async def query(self, since: float | None = None, until: float | None = None) -> list[LedgerEntry]:
        return await anyio.to_thread.run_sync(self._select, since, until)

    def _select(self, since: float | None, until: float | None) -> list[LedgerEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT data FROM entries WHERE ts >= ? AND ts < ? ORDER BY ts",
                (since if since is not None else 0.0, until if until is not None else 1e12),
            ).fetchall()
        return [LedgerEntry.from_json(json.loads(data)) for (data,) in rows]

    async def aclose(self) -> None:
        with self._lock:
            self._db.close()

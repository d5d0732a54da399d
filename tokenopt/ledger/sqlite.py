"""The default ledger: one SQLite file, durable on one machine, no server.

SQLite rather than an append-only file: reports filter by time and group by
fields, retention deletes old rows in place, and concurrent writers (several
worker processes of one sidecar) are safe with WAL. Writes run in a thread so
the event loop never waits on the disk.

Entries are unique by id (`INSERT OR IGNORE`), so writing one twice stores it
once. A write the disk refuses (full, I/O error, read-only) never fails the
caller: the entries are held in memory, up to `max_held`, and written with the
next batch; beyond that the oldest are dropped. Both are counted.

With a Redis ledger this file is the spool: `take` and `remove` hand its
entries on once Redis is back.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import anyio.to_thread

from tokenopt import jsonio
from tokenopt.exceptions import ConfigError
from tokenopt.ledger.entry import LedgerEntry

logger = logging.getLogger("tokenopt.ledger")

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS entries (ts REAL NOT NULL, data TEXT NOT NULL, id TEXT);
CREATE INDEX IF NOT EXISTS entries_ts ON entries (ts);
"""
# Files written before entries had ids get one per row, then the unique index.
MIGRATE_IDS: Final = """
UPDATE entries SET id = lower(hex(randomblob(16))) WHERE id IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS entries_id ON entries (id);
"""
PRUNE_EVERY: Final = 1000
MAX_HELD: Final = 10_000  # ~1-2 KB each: a bounded few MB while the disk is full

Row = tuple[str, float, str]


class SqliteLedger:
    """Ledger entries in one SQLite file.

    Attributes:
        dropped: Entries lost because the disk refused them and `max_held` was reached.
        failures: Writes the disk refused.
    """

    def __init__(self, path: str | Path, *, retention_days: int = 90,
                 max_held: int = MAX_HELD, max_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.retention = retention_days * 86_400.0
        self.max_held = max_held
        self.dropped = 0
        self.failures = 0
        self._held: OrderedDict[str, Row] = OrderedDict()
        self._lock = threading.Lock()
        self._writes = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(entries)")}
            if "id" not in columns:
                self._db.execute("ALTER TABLE entries ADD COLUMN id TEXT")
            self._db.executescript(MIGRATE_IDS)
            self.max_bytes = max_bytes
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the ledger at '{path}': {exc}") from exc
        self._prune()

    @property
    def max_bytes(self) -> int | None:
        """A cap on the file's size; past it a write fails as on a full disk (None: no cap)."""
        return self._max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int | None) -> None:
        (page,) = self._db.execute("PRAGMA page_size").fetchone()
        pages = 2**31 - 2 if value is None else max(1, value // int(page))  # SQLite's default
        with self._lock:
            self._db.execute(f"PRAGMA max_page_count = {int(pages)}")
        self._max_bytes = value

    @property
    def held(self) -> int:
        """Entries waiting in memory for the disk to take them."""
        return len(self._held)

    async def append(self, entries: Iterable[LedgerEntry]) -> None:
        rows = [(e.id, e.ts, jsonio.dumps(e.as_json()).decode()) for e in entries]
        await anyio.to_thread.run_sync(self._insert, rows)

    def _insert(self, rows: list[Row]) -> None:
        with self._lock:
            batch = [*self._held.values(), *rows]
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT OR IGNORE INTO entries (id, ts, data) VALUES (?, ?, ?)", batch)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                self._hold(rows, exc)
                return
            if self._held:
                logger.info("ledger disk writable again: %d held entries written", len(self._held))
                self._held.clear()
            self._writes += len(rows)
            if self._writes >= PRUNE_EVERY:
                self._writes = 0
                self._prune()

    def _rollback(self) -> None:
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                logger.debug("ledger rollback failed", exc_info=True)

    def _hold(self, rows: list[Row], exc: sqlite3.Error) -> None:
        self.failures += 1
        if not self._held:
            logger.warning("ledger at '%s' refused a write (%s): holding entries in memory, "
                           "up to %d", self.path, exc, self.max_held)
        for row in rows:
            self._held[row[0]] = row
        while len(self._held) > self.max_held:
            self._held.popitem(last=False)
            self.dropped += 1

    def _prune(self) -> None:
        try:
            self._db.execute("DELETE FROM entries WHERE ts < ?", (time.time() - self.retention,))
        except sqlite3.Error as exc:  # a full disk can refuse even a delete's journal
            logger.warning("ledger retention pass failed: %s", exc)

    async def query(self, since: float | None = None, until: float | None = None
                    ) -> list[LedgerEntry]:
        return await anyio.to_thread.run_sync(self._select, since, until)

    def _select(self, since: float | None, until: float | None) -> list[LedgerEntry]:
        low, high = since if since is not None else 0.0, until if until is not None else 1e12
        with self._lock:
            rows = self._db.execute(
                "SELECT id, data FROM entries WHERE ts >= ? AND ts < ? ORDER BY ts", (low, high)
            ).fetchall()
            rows += [(i, data) for i, ts, data in self._held.values() if low <= ts < high]
        return sorted((_entry(i, data) for i, data in rows), key=lambda e: e.ts)

    async def take(self, limit: int) -> list[LedgerEntry]:
        """Up to `limit` of the oldest entries (held ones first), left in place."""
        return await anyio.to_thread.run_sync(self._take, limit)

    def _take(self, limit: int) -> list[LedgerEntry]:
        with self._lock:
            rows = [(i, data) for i, _, data in list(self._held.values())[:limit]]
            if len(rows) < limit:
                rows += self._db.execute("SELECT id, data FROM entries ORDER BY ts LIMIT ?",
                                         (limit - len(rows),)).fetchall()
        return [_entry(i, data) for i, data in rows]

    async def remove(self, ids: list[str]) -> None:
        """Forget the entries with these ids (delivered elsewhere)."""
        await anyio.to_thread.run_sync(self._remove, ids)

    def _remove(self, ids: list[str]) -> None:
        with self._lock:
            for i in ids:
                self._held.pop(i, None)
            try:
                self._db.executemany("DELETE FROM entries WHERE id = ?", [(i,) for i in ids])
            except sqlite3.Error as exc:  # left in place: re-delivered, stored once by id
                logger.warning("ledger spool cleanup failed: %s", exc)

    async def erase_tenant(self, tenant: str) -> int:
        """Delete every entry of `tenant` (stored or held); return how many.

        `secure_delete` zeroes the freed pages and the checkpoint empties the WAL,
        so the rows are gone from the files, not only from queries.
        """
        return await anyio.to_thread.run_sync(self._erase, tenant)

    def _erase(self, tenant: str) -> int:
        with self._lock:
            held = [i for i, (_, _, data) in self._held.items()
                    if jsonio.loads(data.encode()).get("tenant") == tenant]
            for i in held:
                del self._held[i]
            self._db.execute("PRAGMA secure_delete = ON")
            cursor = self._db.execute(
                "DELETE FROM entries WHERE json_extract(data, '$.tenant') = ?", (tenant,))
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return cursor.rowcount + len(held)

    async def count(self) -> int:
        """Entries stored or held."""
        return await anyio.to_thread.run_sync(self._count)

    def _count(self) -> int:
        with self._lock:
            (stored,) = self._db.execute("SELECT count(*) FROM entries").fetchone()
            return int(stored) + len(self._held)

    async def aclose(self) -> None:
        with self._lock:
            self._db.close()


def _entry(entry_id: str, data: str) -> LedgerEntry:
    return LedgerEntry.from_json({**jsonio.loads(data.encode()), "id": entry_id})

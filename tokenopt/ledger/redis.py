"""The shared ledger: entries in Redis, one list per UTC day, so replicas report as one.

Day lists keep reads of a time range cheap and make retention a TTL. If Redis
is unreachable an entry goes to the local SQLite ledger instead: nothing is
lost, and the local report still shows it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from tokenopt.ledger.entry import LedgerEntry
from tokenopt.ledger.sqlite import SqliteLedger

logger = logging.getLogger("tokenopt.ledger")


class RedisLedger:
    def __init__(self, client: Any, *, key_prefix: str, retention_days: int,
                 local: SqliteLedger) -> None:
        self.client = client
        self.prefix = key_prefix + "ledger:"
        self.retention = retention_days * 86_400
        self.local = local

    async def append(self, entries: Iterable[LedgerEntry]) -> None:
        entries = list(entries)
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for entry in entries:
                    key = self.prefix + _day(entry.ts)
                    pipe.rpush(key, json.dumps(entry.as_json(), separators=(",", ":")))
                    pipe.expire(key, self.retention)
                await pipe.execute()
        except (OSError, ConnectionError, TimeoutError) as exc:
            await self._spill(entries, exc)
        except Exception as exc:  # redis.exceptions.RedisError and friends
            if type(exc).__module__.startswith("redis"):
                await self._spill(entries, exc)
            else:
                raise

    async def _spill(self, entries: list[LedgerEntry], exc: BaseException) -> None:
        logger.warning("shared ledger unavailable, keeping %d entries locally: %s",
                       len(entries), type(exc).__name__)
        await self.local.append(entries)

    async def query(self, since: float | None = None, until: float | None = None) -> list[LedgerEntry]:
        start = since if since is not None else time.time() - self.retention
        end = until if until is not None else time.time() + 86_400
        day = datetime.fromtimestamp(start, UTC).date()
        last = datetime.fromtimestamp(end, UTC).date()
        found: list[LedgerEntry] = []
        while day <= last:
            for raw in await self.client.lrange(self.prefix + day.isoformat(), 0, -1):
                entry = LedgerEntry.from_json(json.loads(raw))
                if start <= entry.ts < end:
                    found.append(entry)
            day += timedelta(days=1)
        found += [e for e in await self.local.query(since, until)]
        return sorted(found, key=lambda e: e.ts)

    async def aclose(self) -> None:
        await self.local.aclose()


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).date().isoformat()

"""The shared ledger: entries in Redis, so replicas report as one, and a spool for outages.

Entries live in hashes keyed by UTC day and shard, field = entry id: writing an
entry twice stores it once, which makes re-delivery after an outage safe, and
a day is read (and expired) as a handful of keys. The `{day/shard}` hash tag
spreads one day over several slots of a Redis Cluster.

While Redis cannot be written, entries go to the local SQLite file (the spool,
bounded by `max_spool`; the oldest go first, counted in `dropped`) and, after a
back-off, one write probes Redis again. Once a write succeeds the spool is
delivered in batches and each batch is removed only after Redis took it, so a
crash in between re-sends it and the ids keep it single.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from tokenopt import jsonio
from tokenopt.ledger.entry import LedgerEntry
from tokenopt.ledger.sqlite import SqliteLedger
from tokenopt.store.base import StoreUnavailable
from tokenopt.store.redis import glob_escape, ready, unavailable_errors

logger = logging.getLogger("tokenopt.ledger")

SHARDS: Final = 8
BATCH: Final = 500
WRITE_TIMEOUT: Final = 3.0  # off the request path: generous, but an outage must not pile up
MAX_SPOOL: Final = 500_000
MAX_RETRY_AFTER: Final = 60.0
WRITERS: Final = 16  # concurrent writes; a cluster client fails past its connections


class RedisLedger:
    """A `Ledger` in Redis with a local spool.

    Args:
        client: The store's `redis.asyncio.Redis` or `RedisCluster` client.
        key_prefix: Prefix of every key (`<prefix>ledger:{YYYY-MM-DD/shard}`).
        retention_days: Days a day's entries are kept after its last write.
        local: The spool.
        clock: Seconds source for the back-off.
        retry_after: Seconds before the first probe of a down Redis; doubles up to 60.

    Attributes:
        spooled: Entries written to the spool instead of Redis.
        delivered: Spooled entries since handed to Redis.
        dropped: Spooled entries discarded because the spool was full.
        outages: Times Redis stopped taking writes.
    """

    def __init__(self, client: Any, *, key_prefix: str, retention_days: int,
                 local: SqliteLedger, clock: Callable[[], float] = time.monotonic,
                 retry_after: float = 5.0, max_spool: int = MAX_SPOOL) -> None:
        self.client = client
        self.prefix = key_prefix + "ledger:"
        self.retention = retention_days * 86_400
        self.local = local
        self.clock = clock
        self.retry_after = retry_after
        self.max_spool = max_spool
        self.spooled = self.delivered = self.dropped = self.outages = 0
        self.down = False
        self._backoff = retry_after
        self._next_try = 0.0
        self._probing = False
        self._pending: int | None = None  # spool size, read from disk on first use
        self._flushing: asyncio.Lock | None = None
        self._writers: asyncio.Semaphore | None = None
        self._errors: tuple[type[BaseException], ...] = (*unavailable_errors(), TimeoutError)

    async def append(self, entries: Iterable[LedgerEntry]) -> None:
        entries = list(entries)
        if self._pending is None:  # a spool left by an earlier run is delivered too
            self._pending = await self.local.count()
        waiting = self.down and (self._probing or self.clock() < self._next_try)
        if waiting or not await self._deliver(entries):
            await self._spool(entries)
        elif self._pending:
            await self.flush()

    async def flush(self) -> bool:
        """Hand the spool to Redis; True once it is empty."""
        self._flushing = self._flushing or asyncio.Lock()
        async with self._flushing:
            while batch := await self.local.take(BATCH):
                if not await self._deliver(batch):
                    return False
                await self.local.remove([e.id for e in batch])
                self.delivered += len(batch)
            self._pending = 0
        return True

    async def _deliver(self, entries: list[LedgerEntry]) -> bool:
        probe = self.down
        self._probing = self._probing or probe
        self._writers = self._writers or asyncio.Semaphore(WRITERS)
        try:  # the timeout starts once it is this write's turn: queueing is no outage
            async with self._writers, asyncio.timeout(WRITE_TIMEOUT):
                await self._write(entries)
        except self._errors as exc:
            self._failed(exc, probe=probe)
            return False
        finally:
            if probe:
                self._probing = False
        if self.down:
            self.down = False
            self._backoff = self.retry_after
            logger.info("shared ledger reachable again after outage %d", self.outages)
        return True

    async def _write(self, entries: list[LedgerEntry]) -> None:
        await ready(self.client)
        async with self.client.pipeline(transaction=False) as pipe:
            keys = set()
            for entry in entries:
                key = self._key(entry)
                keys.add(key)
                pipe.hset(key, entry.id, jsonio.dumps(entry.as_json()))
            for key in keys:
                pipe.expire(key, self.retention)
            await pipe.execute()

    def _failed(self, exc: BaseException, *, probe: bool) -> None:
        if not self.down:
            self.down = True
            self.outages += 1
            self._backoff = self.retry_after
            logger.warning("shared ledger unavailable, spooling entries to '%s': %s",
                           self.local.path, type(exc).__name__)
        elif probe:
            self._backoff = min(self._backoff * 2, MAX_RETRY_AFTER)
        else:
            return  # a write that started before the outage was noticed
        self._next_try = self.clock() + self._backoff

    async def _spool(self, entries: list[LedgerEntry]) -> None:
        await self.local.append(entries)
        self.spooled += len(entries)
        self._pending = (self._pending or 0) + len(entries)
        excess = self._pending - self.max_spool
        if excess > 0:
            oldest = await self.local.take(excess)
            await self.local.remove([e.id for e in oldest])
            self.dropped += len(oldest)
            self._pending -= len(oldest)
            logger.warning("ledger spool full (%d entries): dropped the %d oldest",
                           self.max_spool, len(oldest))

    def _key(self, entry: LedgerEntry) -> str:
        shard = zlib.crc32(entry.id.encode()) % SHARDS
        return f"{self.prefix}{{{_day(entry.ts)}/{shard}}}"

    async def query(self, since: float | None = None, until: float | None = None
                    ) -> list[LedgerEntry]:
        """Entries in [since, until): Redis's plus those still in the spool, each once.

        Raises:
            StoreUnavailable: Redis cannot be read.
        """
        start = since if since is not None else time.time() - self.retention
        end = until if until is not None else time.time() + 86_400
        try:
            raws = await self._read_days(start, end)
        except self._errors as exc:
            raise StoreUnavailable(f"shared ledger unavailable: {type(exc).__name__}") from exc
        found: dict[str, LedgerEntry] = {}
        for raw in raws:
            entry = LedgerEntry.from_json(jsonio.loads(raw))
            if start <= entry.ts < end:
                found.setdefault(entry.id, entry)
        for entry in await self.local.query(since, until):
            found.setdefault(entry.id, entry)
        return sorted(found.values(), key=lambda e: e.ts)

    async def _read_days(self, start: float, end: float) -> list[bytes]:
        day = datetime.fromtimestamp(start, UTC).date()
        last = datetime.fromtimestamp(end, UTC).date()
        await ready(self.client)
        async with self.client.pipeline(transaction=False) as pipe:
            while day <= last:
                pipe.lrange(self.prefix + day.isoformat(), 0, -1)  # the list of earlier versions
                for shard in range(SHARDS):
                    pipe.hvals(f"{self.prefix}{{{day.isoformat()}/{shard}}}")
                day += timedelta(days=1)
            replies: list[list[bytes]] = await pipe.execute()
        return [raw for reply in replies for raw in reply]

    async def erase_tenant(self, tenant: str) -> int:
        """Delete every entry of `tenant` from Redis and from the spool; return how many.

        Raises:
            StoreUnavailable: Redis cannot be read or written; nothing is reported erased.
        """
        try:
            erased = await self._erase_shared(tenant)
        except self._errors as exc:
            raise StoreUnavailable(f"shared ledger unavailable: {type(exc).__name__}") from exc
        spooled = await self.local.erase_tenant(tenant)
        self._pending = None  # recounted from disk on the next append
        return erased + spooled

    async def _erase_shared(self, tenant: str) -> int:
        await ready(self.client)
        erased = 0
        async for key in self.client.scan_iter(match=glob_escape(self.prefix) + "*", count=1000):
            kind = await self.client.type(key)
            if kind in (b"hash", "hash"):  # a day shard: field = entry id
                doomed = [field async for field, raw in self.client.hscan_iter(key, count=1000)
                          if _tenant_of(raw) == tenant]
                if doomed:
                    erased += int(await self.client.hdel(key, *doomed))
            elif kind in (b"list", "list"):  # a day list written by earlier versions
                for raw in await self.client.lrange(key, 0, -1):
                    if _tenant_of(raw) == tenant:
                        erased += int(await self.client.lrem(key, 0, raw))
        return erased

    async def aclose(self) -> None:
        """Deliver what the spool holds if Redis takes it now; keep the rest on disk."""
        try:
            if self._pending is None:
                self._pending = await self.local.count()
            if self._pending and not self.down:
                await self.flush()
        finally:
            await self.local.aclose()


def _tenant_of(raw: bytes) -> object:
    try:
        entry = jsonio.loads(raw)
    except ValueError:
        return None
    return entry.get("tenant") if isinstance(entry, dict) else None


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).date().isoformat()

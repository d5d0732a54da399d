"""The Redis ledger's spool: bounded, durable across restarts, delivered once per entry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.clock import FakeClock
from tests.redis_server import RedisServer
from tokenopt.dialects.base import Usage
from tokenopt.ledger import LedgerEntry, SqliteLedger, entry_from
from tokenopt.ledger.redis import RedisLedger
from tokenopt.pricing import PriceBook
from tokenopt.records import ExchangeRecord
from tokenopt.store import RedisStore

PREFIX = "spool:"


def entries(n: int) -> list[LedgerEntry]:
    made = []
    for i in range(n):
        record = ExchangeRecord(ts=time.time() + i / 1000, tenant="t_x", route="/v1/chat/completions",
                                dialect="d", model="gpt-4.1", conversation=f"c{i}", stream=False,
                                status=200, usage=Usage(input_tokens=10 + i, output_tokens=1))
        made.append(entry_from(record, PriceBook()))
    return made


def stored(server: RedisServer) -> list[str]:
    """Every entry id in the shared ledger, read straight from Redis."""
    with redis.Redis(port=server.port) as client:
        return [field.decode() for key in client.scan_iter(match=PREFIX + "ledger:{*")
                for field in client.hkeys(key)]


def ledger_on(server: RedisServer, path: Path, clock: FakeClock | None = None,
              **kwargs: Any) -> tuple[RedisLedger, RedisStore]:
    store = RedisStore(server.url, key_prefix=PREFIX)
    ledger = RedisLedger(store.client, key_prefix=PREFIX, retention_days=1,
                         local=SqliteLedger(path), clock=clock or FakeClock(), **kwargs)
    return ledger, store


def test_an_outage_spools_entries_and_the_first_write_after_it_delivers_them_once(
    make_redis_server: Callable[..., RedisServer], tmp_path: Path
) -> None:
    server = make_redis_server()
    made, clock = entries(30), FakeClock()

    async def run() -> RedisLedger:
        ledger, store = ledger_on(server, tmp_path / "spool.sqlite", clock)
        await ledger.append(made[:5])
        server.stop()
        for entry in made[5:25]:
            await ledger.append([entry])
        assert (ledger.down, ledger.outages, ledger.spooled) == (True, 1, 20)
        assert await ledger.local.count() == 20
        server.start()
        await ledger.append(made[25:26])  # inside the back-off: still spooled, no probe
        assert ledger.spooled == 21 and ledger.down
        clock.advance(5.0)
        for entry in made[26:]:
            await ledger.append([entry])
        assert not ledger.down and ledger.delivered == 21
        assert await ledger.local.count() == 0
        # The restarted server kept nothing (no persistence here): the first 5 are gone.
        assert sorted(e.id for e in await ledger.query()) == sorted(e.id for e in made[5:])
        await ledger.aclose()
        await store.aclose()
        return ledger

    asyncio.run(run())
    assert sorted(stored(server)) == sorted(e.id for e in made[5:])


def test_a_batch_redis_took_but_the_spool_still_holds_is_not_stored_twice(
    make_redis_server: Callable[..., RedisServer], tmp_path: Path
) -> None:
    server = make_redis_server()
    made, clock = entries(12), FakeClock()

    async def run() -> None:
        ledger, store = ledger_on(server, tmp_path / "spool.sqlite", clock)
        server.stop()
        await ledger.append(made)
        server.start()
        # Redis took the batch, then the process died before removing it from the spool.
        await ledger._write(await ledger.local.take(100))
        clock.advance(5.0)
        assert await ledger.flush()
        assert len(await ledger.query()) == 12
        await ledger.aclose()
        await store.aclose()

    asyncio.run(run())
    assert sorted(stored(server)) == sorted(e.id for e in made)


def test_a_spool_left_by_an_earlier_process_is_delivered_by_the_next(
    make_redis_server: Callable[..., RedisServer], tmp_path: Path
) -> None:
    server = make_redis_server()
    made, path = entries(8), tmp_path / "spool.sqlite"

    async def first_process() -> None:
        ledger, store = ledger_on(server, path)
        server.stop()
        await ledger.append(made[:7])
        await ledger.aclose()  # Redis still down: the spool stays on disk
        await store.aclose()

    async def second_process() -> None:
        ledger, store = ledger_on(server, path)
        await ledger.append(made[7:])
        assert ledger.delivered == 7
        await ledger.aclose()
        await store.aclose()

    asyncio.run(first_process())
    assert len(asyncio.run(SqliteLedger(path).query())) == 7
    server.start()
    asyncio.run(second_process())
    assert sorted(stored(server)) == sorted(e.id for e in made)
    assert asyncio.run(SqliteLedger(path).count()) == 0


def test_the_spool_is_bounded_and_counts_what_it_drops(
    make_redis_server: Callable[..., RedisServer], tmp_path: Path
) -> None:
    server = make_redis_server()
    made, clock = entries(25), FakeClock()

    async def run() -> None:
        ledger, store = ledger_on(server, tmp_path / "spool.sqlite", clock, max_spool=10)
        server.stop()
        for entry in made:
            await ledger.append([entry])
        assert (ledger.spooled, ledger.dropped) == (25, 15)
        assert await ledger.local.count() == 10
        server.start()
        clock.advance(5.0)
        assert await ledger.flush()
        assert ledger.delivered == 10
        await ledger.aclose()
        await store.aclose()

    asyncio.run(run())
    assert sorted(stored(server)) == sorted(e.id for e in made[15:])  # the newest kept


def test_a_full_spool_disk_holds_entries_in_memory_and_still_delivers_them(
    make_redis_server: Callable[..., RedisServer], tmp_path: Path
) -> None:
    server = make_redis_server()
    made, clock = entries(40), FakeClock()

    async def run() -> None:
        ledger, store = ledger_on(server, tmp_path / "spool.sqlite", clock)
        ledger.local.max_bytes = 1  # the file may not grow: as if the disk were full
        server.stop()
        for entry in made:
            await ledger.append([entry])
        written = await ledger.local.count() - ledger.local.held
        assert ledger.local.failures > 0 and ledger.local.held > 30
        assert written + ledger.local.held == 40 and ledger.local.dropped == 0
        server.start()
        clock.advance(5.0)
        assert await ledger.flush()
        assert ledger.delivered == 40 and ledger.local.held == 0
        await ledger.aclose()
        await store.aclose()

    asyncio.run(run())
    assert sorted(stored(server)) == sorted(e.id for e in made)


def test_sqlite_stores_an_entry_once_and_a_full_disk_holds_then_drops_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    made = entries(30)

    async def run() -> None:
        ledger = SqliteLedger(tmp_path / "l.sqlite", max_held=10)
        await ledger.append(made[:5])
        await ledger.append(made[:5])  # the same exchanges again
        assert await ledger.count() == 5
        ledger.max_bytes = 1  # the file may not grow (its free pages still fill)
        for entry in made[5:]:
            await ledger.append([entry])
        on_disk = await ledger.count() - ledger.held
        assert ledger.held == 10 and ledger.failures > 10
        assert on_disk + ledger.held + ledger.dropped == 30  # every entry accounted for
        assert len(await ledger.query()) == on_disk + 10  # the report still shows held ones
        ledger.max_bytes = None  # space freed
        await ledger.append([])
        assert ledger.held == 0 and await ledger.count() == on_disk + 10
        await ledger.aclose()

    asyncio.run(run())
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "refused a write" in warnings[0].getMessage()


def test_entries_written_before_ids_existed_get_one(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE entries (ts REAL NOT NULL, data TEXT NOT NULL)")
        db.execute("INSERT INTO entries VALUES (?, ?)",
                   (time.time(), ('{"ts": 1.0, "tenant": "t", "route": "/r", "model": null, '
                                  '"conversation": null, "stream": false, "status": 200, '
                                  '"complete": true}')))
    ledger = SqliteLedger(path)
    first = asyncio.run(ledger.take(10))
    again = asyncio.run(ledger.take(10))
    assert len(first) == 1 and first[0].id and first[0].id == again[0].id

"""The store layer under faults, with the sidecar under load: serving never stops, nothing is lost.

A real `redis-server` is stopped and restarted mid-run, paused, or blocked; the
SQLite ledger's file is capped as if the disk were full. Every request sent is
answered, and every exchange reaches the ledger once (or is counted as dropped).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from benchmarks.soak import lines, send
from tests.integration.support import QueueSink, Sidecar, Sim, settings_for
from tests.redis_server import RedisServer
from tokenopt.engine import Engine
from tokenopt.ledger import LedgerSink, SqliteLedger
from tokenopt.ledger.redis import RedisLedger
from tokenopt.pricing import PriceBook
from tokenopt.proxy import create_app
from tokenopt.serving import ServerThread
from tokenopt.store import FallbackStore

MIX = lines(2)


@contextlib.contextmanager
def sidecar(sim: Sim, *, sinks: tuple[Any, ...] = (), **overrides: Any) -> Iterator[Sidecar]:
    """A sidecar with every default plugin, in a thread, in front of the simulator."""
    settings = settings_for(sim.url, **overrides)
    sink = QueueSink()
    engine = Engine.from_settings(settings, sinks=[*sinks, sink])
    with ServerThread(create_app(settings, engine=engine)) as url:
        yield Sidecar(url, engine, sink)


@dataclass
class Load:
    """Clients sending the soak mix until stopped; what they saw."""

    url: str
    clients: int = 12
    sent: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    slowest: float = 0.0
    stopped: bool = False

    async def run(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=60) as client:
            await asyncio.gather(*(self._client(client) for _ in range(self.clients)))

    async def _client(self, client: httpx.AsyncClient) -> None:
        while not self.stopped:
            started = time.perf_counter()
            error = await send(client, MIX[self.sent % len(MIX)])
            self.sent += 1
            self.slowest = max(self.slowest, time.perf_counter() - started)
            if error:
                self.errors[error] += 1


async def until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Wait for a condition other tasks and threads make true; fail if they never do."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def shared_ids(server: RedisServer, prefix: str) -> list[str]:
    with redis.Redis(port=server.port) as client:
        return [f.decode() for key in client.scan_iter(match=prefix + "ledger:{*")
                for f in client.hkeys(key)]


def drain(sink: QueueSink, n: int) -> None:
    for _ in range(n):
        sink.next(timeout=30)


@pytest.fixture
def persistent_redis() -> Iterator[RedisServer]:
    """A redis-server with an fsynced append-only file: a restart keeps what it took."""
    server = RedisServer(persist=True, extra=("--enable-debug-command", "yes"))
    try:
        server.start()
        yield server
    finally:
        server.close()


def test_redis_stopped_and_restarted_under_load_loses_and_doubles_no_ledger_entry(
    sim: Sim, persistent_redis: RedisServer, tmp_path: Path
) -> None:
    prefix = f"faults{uuid.uuid4().hex[:8]}:"
    with sidecar(sim, store={"redis_url": persistent_redis.url, "key_prefix": prefix},
                 ledger={"path": str(tmp_path / "spool.sqlite")}) as car:
        ledger, store = car.engine.ledger, car.engine.store
        assert isinstance(ledger, RedisLedger) and isinstance(store, FallbackStore)
        load = Load(car.url)

        async def scenario() -> None:
            running = asyncio.create_task(load.run())
            await until(lambda: load.sent >= 40)
            await asyncio.to_thread(persistent_redis.stop)
            await until(lambda: ledger.spooled >= 40 and store.degraded)
            await asyncio.to_thread(persistent_redis.start)
            await until(lambda: not ledger.down and not store.degraded
                        and ledger.delivered == ledger.spooled)
            load.stopped = True
            await running

        asyncio.run(scenario())
        drain(car.sink, load.sent)  # every exchange recorded (the ledger sink runs first)
        assert load.errors == Counter() and load.sent > 80
        assert ledger.outages == 1 and store.outages >= 1 and ledger.dropped == 0
        assert ledger.spooled >= 40 and ledger.delivered == ledger.spooled
    ids = shared_ids(persistent_redis, prefix)
    assert len(ids) == len(set(ids)) == load.sent  # none lost, none doubled
    with sqlite3.connect(tmp_path / "spool.sqlite") as db:
        assert db.execute("SELECT count(*) FROM entries").fetchone() == (0,)


def pause(server: RedisServer, seconds: float) -> None:
    with redis.Redis(port=server.port) as client:
        client.execute_command("CLIENT", "PAUSE", int(seconds * 1000), "ALL")


def block(server: RedisServer, seconds: float) -> None:
    """`DEBUG SLEEP` in a thread; return once the server has stopped answering."""
    def sleep() -> None:
        with redis.Redis(port=server.port) as client:
            client.execute_command("DEBUG", "SLEEP", seconds)

    threading.Thread(target=sleep, daemon=True).start()
    # No retries: redis-py's default would wait the sleep out and report a healthy server.
    with redis.Redis(port=server.port, socket_timeout=0.05, retry=Retry(NoBackoff(), 0)) as probe:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                probe.ping()
            except redis.TimeoutError:
                return
        raise AssertionError("redis-server never started its DEBUG SLEEP")


@pytest.mark.parametrize("slow", [pause, block], ids=["client_pause", "debug_sleep"])
def test_a_redis_that_answers_slowly_holds_no_request_beyond_a_short_bound(
    sim: Sim, persistent_redis: RedisServer, tmp_path: Path,
    slow: Callable[[RedisServer, float], None],
) -> None:
    prefix = f"slow{uuid.uuid4().hex[:8]}:"
    stall = 5.0
    with sidecar(sim, store={"redis_url": persistent_redis.url, "key_prefix": prefix},
                 ledger={"path": str(tmp_path / "spool.sqlite")}) as car:
        ledger, store = car.engine.ledger, car.engine.store
        assert isinstance(ledger, RedisLedger) and isinstance(store, FallbackStore)

        async def scenario() -> Load:
            warm = Load(car.url, clients=4)
            warming = asyncio.create_task(warm.run())
            await until(lambda: warm.sent >= 12)
            warm.stopped = True
            await warming
            slow(persistent_redis, stall)
            stalled = Load(car.url, clients=8)
            started = time.monotonic()
            running = asyncio.create_task(stalled.run())
            await until(lambda: stalled.sent >= 16)
            stalled.stopped = True
            await running
            assert time.monotonic() - started < stall  # all of it happened while Redis stalled
            after = Load(car.url, clients=4)
            running = asyncio.create_task(after.run())
            await until(lambda: not store.degraded and not ledger.down
                        and ledger.delivered == ledger.spooled)
            after.stopped = True
            await running
            return Load(car.url, sent=warm.sent + stalled.sent + after.sent,
                        errors=warm.errors + stalled.errors + after.errors,
                        slowest=stalled.slowest)

        total = asyncio.run(scenario())
        drain(car.sink, total.sent)
        assert total.errors == Counter()
        assert store.outages >= 1  # the stall was noticed, and served from local state
        # Each request waited on Redis at most once, for CALL_TIMEOUT (0.5 s), plus its own
        # work on a busy machine; without the bound it would have waited out the stall (or
        # the 2 s socket timeout and a retry).
        assert total.slowest < 2.5, total.slowest
    ids = shared_ids(persistent_redis, prefix)
    assert len(ids) == len(set(ids)) == total.sent


def test_a_full_disk_under_the_sqlite_ledger_keeps_serving_and_counts_every_entry(
    sim: Sim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ledger.sqlite"
    ledger = SqliteLedger(path, max_held=20, max_bytes=96 * 1024)
    with sidecar(sim, sinks=(LedgerSink(ledger, PriceBook()),), ledger={"enabled": False}) as car:
        load = Load(car.url, clients=6)

        async def fill() -> None:
            running = asyncio.create_task(load.run())
            await until(lambda: ledger.dropped > 0)
            load.stopped = True
            await running

        asyncio.run(fill())
        drain(car.sink, load.sent)
        with sqlite3.connect(path) as db:
            (on_disk,) = db.execute("SELECT count(*) FROM entries").fetchone()
        assert load.errors == Counter() and ledger.failures > 0
        assert ledger.held == 20 and on_disk + ledger.held + ledger.dropped == load.sent

        ledger.max_bytes = None  # space freed: the held entries go to disk with the next one
        assert httpx.post(car.url + MIX[0]["path"], json={**MIX[0]["body"], "stream": False},
                          headers={"x-api-key": "sk-soak"}, timeout=30).status_code == 200
        drain(car.sink, 1)
        with sqlite3.connect(path) as db:
            (after,) = db.execute("SELECT count(*) FROM entries").fetchone()
        assert ledger.held == 0 and after == on_disk + 20 + 1
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert failures == []  # a defined outcome, not a crashed background task

"""Redis outages: served from local state, logged once without the password, recovered."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

import anyio
import anyio.lowlevel
import pytest

from tests.clock import FakeClock
from tests.redis_server import RedisServer, free_port
from tokenopt.exceptions import TokenOptError
from tokenopt.store import FallbackStore, MemoryStore, RedisStore, StoreUnavailable
from tokenopt.store.base import redact_url
from tokenopt.store.redis import CONNECT_TIMEOUT, OPERATION_TIMEOUT

pytestmark = pytest.mark.anyio

PASSWORD = "s3cret"


class FlakyStore(MemoryStore):
    """A primary whose `get` can be held at a gate and then fail, to script races."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.gate: anyio.Event | None = None
        self.waiting = 0

    async def get(self, key: str) -> bytes | None:
        if self.gate is not None:
            self.waiting += 1
            await self.gate.wait()
        if self.down:
            raise StoreUnavailable("primary is down")
        return await super().get(key)


def store_warnings(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "tokenopt.store" and r.levelno == level
    ]


async def test_a_killed_redis_is_served_locally_logged_once_and_rejoined_after_retry_after(
    make_redis_server: Callable[..., RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tokenopt.store")
    server = make_redis_server(password=PASSWORD)
    assert PASSWORD in server.url
    clock = FakeClock()
    primary, local = RedisStore(server.url, key_prefix="t:"), MemoryStore()
    store = FallbackStore(primary, local, clock=clock, retry_after=5.0)
    tenant = store.namespace("acme")
    try:
        await tenant.set("before", b"1")
        assert await primary.namespace("acme").get("before") == b"1"
        assert await local.namespace("acme").get("before") is None
        assert not store.degraded

        server.stop()
        with anyio.fail_after(10):
            await tenant.set("during", b"2")
            assert await tenant.get("during") == b"2"
            assert await tenant.incr("n", ttl=60) == 1
            assert await store.namespace("other").sadd("s", "a") == 1
            assert await store.smembers("s") == set()
        assert (store.degraded, tenant.degraded, store.outages) == (True, True, 1)
        assert await local.namespace("acme").get("during") == b"2"
        [warning] = store_warnings(caplog)
        assert "unavailable" in warning and "***" in warning
        assert PASSWORD not in caplog.text

        server.start()  # on the same port, empty: nothing was persisted
        await primary.namespace("acme").set("after", b"3")
        clock.advance(4.9)
        assert await tenant.get("after") is None  # still local: no probe before retry_after
        assert store.degraded
        clock.advance(0.2)
        assert await tenant.get("after") == b"3"  # back on Redis
        assert not store.degraded
        assert store_warnings(caplog, logging.INFO) == ["shared store recovered after outage 1"]
        assert len(store_warnings(caplog)) == 1
    finally:
        await store.aclose()


async def test_failed_retries_double_the_back_off_up_to_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="tokenopt.store")
    clock, primary = FakeClock(), FlakyStore()
    primary.down = True
    store = FallbackStore(primary, MemoryStore(), clock=clock, retry_after=5.0)
    await store.get("k")
    waits: list[float] = []
    for _ in range(6):
        clock.advance(waits[-1] if waits else 5.0)
        await store.get("k")
        waits.append(float(store_warnings(caplog, logging.DEBUG)[-1].split()[-1].rstrip("s")))
    assert waits == [10.0, 20.0, 40.0, 60.0, 60.0, 60.0]
    clock.advance(59.0)
    await store.get("k")  # inside the back-off: no probe, no new record
    assert len(store_warnings(caplog, logging.DEBUG)) == 6
    assert len(store_warnings(caplog)) == 1 and store.outages == 1


async def test_while_one_call_probes_the_primary_the_others_stay_local() -> None:
    clock, primary, local = FakeClock(), FlakyStore(), MemoryStore()
    await primary.set("k", b"primary")
    await local.set("k", b"local")
    store = FallbackStore(primary, local, clock=clock, retry_after=5.0)
    primary.down = True
    assert await store.get("k") == b"local"
    primary.down, primary.gate = False, anyio.Event()
    clock.advance(5.0)
    results: list[bytes | None] = []

    async def probe() -> None:
        results.append(await store.get("k"))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(probe)
            while primary.waiting == 0:
                await anyio.lowlevel.checkpoint()
            assert await store.get("k") == b"local"  # does not queue behind the probe
            primary.gate.set()
    assert results == [b"primary"] and not store.degraded


async def test_calls_in_flight_when_the_outage_starts_count_as_one_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, primary, local = FakeClock(), FlakyStore(), MemoryStore()
    store = FallbackStore(primary, local, clock=clock, retry_after=5.0)
    primary.down, primary.gate = True, anyio.Event()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(store.get, "k")
            while primary.waiting < 3:
                await anyio.lowlevel.checkpoint()
            primary.gate.set()
    primary.gate = None
    assert store.outages == 1 and len(store_warnings(caplog)) == 1
    primary.down = False
    clock.advance(5.0)  # the late failures did not push the retry back
    await store.get("k")
    assert not store.degraded


async def test_ping_probes_the_primary_and_reports_an_outage() -> None:
    primary = FlakyStore()
    store = FallbackStore(primary, MemoryStore(), clock=FakeClock())
    await store.ping()
    primary.ping = _down  # type: ignore[method-assign]
    with pytest.raises(StoreUnavailable):
        await store.ping()
    assert store.degraded
    del primary.ping
    await store.ping()
    assert not store.degraded


async def test_an_unreachable_redis_from_the_start_costs_one_bounded_failure() -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    store = FallbackStore(RedisStore(url), MemoryStore())
    with anyio.fail_after(CONNECT_TIMEOUT * 2 + 1):
        await store.set("k", b"v")
        assert await store.get("k") == b"v"
    assert store.degraded
    with pytest.raises(StoreUnavailable) as caught:
        await store.ping()
    assert PASSWORD not in str(caught.value)
    await store.aclose()


async def test_a_redis_that_accepts_but_never_answers_fails_within_the_timeouts() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes handshakes; nothing ever replies
        store = RedisStore(f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        started = time.monotonic()
        with anyio.fail_after(2 * (CONNECT_TIMEOUT + OPERATION_TIMEOUT) + 2):
            with pytest.raises(StoreUnavailable, match="unavailable"):
                await store.get("k")
        assert time.monotonic() - started >= OPERATION_TIMEOUT * 0.9
        await store.aclose()


def test_store_unavailable_is_a_tokenopt_error_and_urls_lose_their_password() -> None:
    assert issubclass(StoreUnavailable, TokenOptError)
    assert redact_url("redis://:s3cret@h:1/0") == "redis://:***@h:1/0"
    assert redact_url("redis://user:s3cret@h:1/0") == "redis://user:***@h:1/0"
    assert redact_url("redis://h:1/0") == "redis://h:1/0"
    with pytest.raises(ValueError, match="retry_after"):
        FallbackStore(MemoryStore(), MemoryStore(), retry_after=0)


async def _down() -> None:
    raise StoreUnavailable("primary is down")

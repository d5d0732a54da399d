"""One contract every `Store` backend meets, run against memory and a real Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import anyio
import pytest

from tests.clock import FakeClock
from tokenopt.store import FallbackStore, MemoryStore, RedisStore, Store, open_store

pytestmark = pytest.mark.anyio

TTL = 0.3  # short enough to wait out on Redis, long enough to read back first


@dataclass
class Backend:
    """A store plus the one thing that differs per backend: how time passes."""

    store: Store
    clock: FakeClock | None = None  # memory: advanced by hand; Redis: real time

    async def after_ttl(self, check: Callable[[], Awaitable[bool]]) -> None:
        """Let `TTL` seconds pass, then require `check()` (polled on Redis, with a deadline)."""
        if self.clock is not None:
            self.clock.advance(TTL)
            assert await check()
            return
        deadline = time.monotonic() + TTL + 5
        while not await check():
            assert time.monotonic() < deadline, "key did not expire"
            await anyio.sleep(0.01)

    async def has_no_ttl(self, key: str) -> bool:
        if isinstance(self.store, RedisStore):
            return await self.store.client.pttl(self.store.full_key(key)) == -1
        assert self.clock is not None
        self.clock.advance(1e9)
        return await self.store.get(key) is not None


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest, anyio_backend: str) -> AsyncIterator[Backend]:
    if request.param == "memory":
        clock = FakeClock()
        yield Backend(MemoryStore(clock=clock), clock)
        return
    url: str = request.getfixturevalue("redis_url")
    prefix = f"tokenopt-test:{uuid.uuid4().hex}:"
    store = RedisStore(url, key_prefix=prefix)
    try:
        yield Backend(store)
    finally:
        keys = [key async for key in store.client.scan_iter(match=prefix + "*")]
        if keys:
            await store.client.delete(*keys)
        await store.aclose()


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.store


async def test_a_stored_value_reads_back_and_a_missing_key_is_none(store: Store) -> None:
    assert await store.get("k") is None
    await store.set("k", b"v1")
    await store.set("k", b"v2")
    assert await store.get("k") == b"v2"


async def test_delete_removes_a_key_and_ignores_a_missing_one(store: Store) -> None:
    await store.set("k", b"v")
    await store.delete("k")
    await store.delete("never-set")
    assert await store.get("k") is None


async def test_binary_values_round_trip_byte_for_byte(store: Store) -> None:
    value = bytes(range(256)) + b"\x00\r\n\xff"
    await store.set("bin", value)
    assert await store.get("bin") == value


async def test_a_value_with_a_ttl_expires(backend: Backend) -> None:
    store = backend.store
    await store.set("k", b"v", ttl=TTL)
    assert await store.get("k") == b"v"
    await backend.after_ttl(lambda: _is_missing(store, "k"))


async def test_setting_without_ttl_clears_an_earlier_ttl(backend: Backend) -> None:
    await backend.store.set("k", b"v", ttl=TTL)
    await backend.store.set("k", b"w")
    assert await backend.has_no_ttl("k")


async def test_incr_counts_from_zero_by_any_amount(store: Store) -> None:
    assert await store.incr("n") == 1
    assert await store.incr("n", 10) == 11
    assert await store.incr("n", -12) == -1
    assert await store.get("n") == b"-1"


async def test_concurrent_incrs_are_all_counted(store: Store) -> None:
    with anyio.fail_after(30):
        results = [0] * 200

        async def bump(i: int) -> None:
            results[i] = await store.incr("hits", ttl=60)

        async with anyio.create_task_group() as tg:
            for i in range(200):
                tg.start_soon(bump, i)
    assert sorted(results) == list(range(1, 201))
    assert await store.get("hits") == b"200"


async def test_incr_applies_its_ttl_only_when_it_creates_the_key(backend: Backend) -> None:
    store = backend.store
    await store.incr("plain")
    await store.incr("plain", ttl=TTL)
    assert await backend.has_no_ttl("plain")

    await store.incr("timed", ttl=TTL)
    assert await store.incr("timed", ttl=3600) == 2
    await backend.after_ttl(lambda: _is_missing(store, "timed"))
    assert await store.incr("timed", ttl=3600) == 1


async def test_sadd_counts_new_members_and_smembers_returns_them(store: Store) -> None:
    assert await store.smembers("tools") == set()
    assert await store.sadd("tools") == 0
    assert await store.sadd("tools", "a", "b") == 2
    assert await store.sadd("tools", "b", "c", "c") == 1
    assert await store.smembers("tools") == {"a", "b", "c"}


async def test_sadd_applies_its_ttl_only_when_it_creates_the_set(backend: Backend) -> None:
    store = backend.store
    assert await store.sadd("s", "a", ttl=TTL) == 1
    assert await store.sadd("s", "b", ttl=3600) == 1
    assert await store.smembers("s") == {"a", "b"}
    await backend.after_ttl(lambda: _is_empty(store, "s"))


async def test_expire_sets_a_ttl_on_an_existing_key_only(backend: Backend) -> None:
    store = backend.store
    assert await store.expire("missing", 10) is False
    await store.set("k", b"v")
    assert await store.expire("k", TTL) is True
    await backend.after_ttl(lambda: _is_missing(store, "k"))


async def test_a_ttl_must_be_positive(store: Store) -> None:
    with pytest.raises(ValueError, match="ttl must be positive"):
        await store.set("k", b"v", ttl=0)
    with pytest.raises(ValueError, match="ttl must be positive"):
        await store.incr("n", ttl=-1)


async def test_tenants_with_the_same_key_never_see_each_others_values(store: Store) -> None:
    a, b = store.namespace("tenant-a"), store.namespace("tenant-b")
    assert isinstance(a, Store)
    await a.set("conv", b"a")
    await b.set("conv", b"b")
    await a.incr("n", 5)
    await b.sadd("tools", "x")
    assert (await a.get("conv"), await b.get("conv"), await store.get("conv")) == (b"a", b"b", None)
    assert (await b.incr("n"), await store.smembers("tools"), await a.smembers("tools")) == (
        1,
        set(),
        set(),
    )
    await a.delete("conv")
    assert await b.get("conv") == b"b"


async def test_namespace_paths_and_keys_that_look_alike_never_collide(store: Store) -> None:
    def at(*path: str) -> Store:
        view = store
        for name in path:
            view = view.namespace(name)
        return view

    places = [
        (at("a", "b"), "k"),
        (at("a:b"), "k"),
        (at("a/b"), "k"),
        (at("a%3Ab"), "k"),
        (at("a"), "b:k"),
        (at("a"), "b%3Ak"),
        (at(), "a:b:k"),
        (at("a", "b", ""), "k"),
        (at("a", "b:"), "k"),
    ]
    for i, (view, key) in enumerate(places):
        await view.set(key, str(i).encode())
    assert [await view.get(key) for view, key in places] == [
        str(i).encode() for i in range(len(places))
    ]


async def test_ping_succeeds_on_a_reachable_store(store: Store) -> None:
    await store.ping()
    await store.namespace("t").ping()


async def test_memory_store_evicts_least_recently_used_keys_beyond_max_keys() -> None:
    store = MemoryStore(max_keys=3)
    for key in "abc":
        await store.set(key, b"v")
    assert await store.get("a") == b"v"  # "b" is now the least recently used
    await store.namespace("t").set("d", b"v")
    assert [await store.get(key) for key in "abc"] == [b"v", None, b"v"]


async def test_memory_store_reports_a_key_of_the_wrong_kind() -> None:
    store = MemoryStore()
    await store.set("bytes", b"v")
    await store.sadd("set", "m")
    with pytest.raises(TypeError):
        await store.get("set")
    with pytest.raises(TypeError):
        await store.incr("set")
    with pytest.raises(TypeError):
        await store.smembers("bytes")
    with pytest.raises(TypeError):
        await store.sadd("bytes", "m")
    with pytest.raises(ValueError, match="max_keys"):
        MemoryStore(max_keys=0)


async def test_open_store_picks_memory_without_a_url_and_redis_with_fallback_with_one() -> None:
    assert isinstance(open_store(None), MemoryStore)
    assert isinstance(open_store(""), MemoryStore)
    store = open_store("redis://127.0.0.1:1/0", key_prefix="p:")
    assert isinstance(store, FallbackStore)
    assert isinstance(store.primary, RedisStore) and isinstance(store.local, MemoryStore)
    assert store.primary.full_key("k") == "p:k"
    await store.aclose()


async def _is_missing(store: Store, key: str) -> bool:
    return await store.get(key) is None


async def _is_empty(store: Store, key: str) -> bool:
    return await store.smembers(key) == set()

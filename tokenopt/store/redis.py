"""Redis store: shared state for several replicas, namespaced per tenant, with TTLs.

`redis` is imported only when a `RedisStore` is built, so tokenopt imports
without it. Timeouts are short and retries few, so an outage costs a request
seconds, not minutes; every connection failure surfaces as `StoreUnavailable`
with the URL's password redacted.
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Final, TypeVar, cast
from urllib.parse import urlsplit

from tokenopt.store.base import StoreUnavailable, flat_key, redact_url, ttl_ms

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

T = TypeVar("T")

CONNECT_TIMEOUT: Final = 1.0
OPERATION_TIMEOUT: Final = 2.0
MAX_CONNECTIONS: Final = 50

# EXISTS before the write tells "created by this call" apart from "had no TTL";
# `EXPIRE NX` cannot. A script keeps both steps atomic.
_INCR: Final = """
local created = redis.call('EXISTS', KEYS[1]) == 0
local total = redis.call('INCRBY', KEYS[1], ARGV[1])
if created then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return total
"""
_SADD: Final = """
local created = redis.call('EXISTS', KEYS[1]) == 0
local added = redis.call('SADD', KEYS[1], unpack(ARGV, 2))
if created then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return added
"""


def _connect(url: str) -> Redis:
    from redis.asyncio import BlockingConnectionPool, Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    # A blocking pool makes a burst of requests queue for a connection instead of
    # failing at once ("Too many connections") and tripping the fallback.
    # One immediate retry absorbs a pooled connection that went stale across a
    # Redis restart; more would multiply the time an outage holds a request.
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=OPERATION_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=OPERATION_TIMEOUT,
        retry=Retry(NoBackoff(), 1),
    )
    return Redis.from_pool(pool)


class _Connection:
    """What every namespaced view of one `RedisStore` shares."""

    def __init__(self, url: str, key_prefix: str, client: Redis | None) -> None:
        self.url = url
        self.key_prefix = key_prefix
        self.owns_client = client is None
        self.client = _connect(url) if client is None else client
        self.incr: AsyncScript = self.client.register_script(_INCR)
        self.sadd: AsyncScript = self.client.register_script(_SADD)
        self.password = urlsplit(url).password

    def unavailable(self, exc: BaseException) -> StoreUnavailable:
        detail = str(exc) or type(exc).__name__
        if self.password:
            detail = detail.replace(self.password, "***")
        return StoreUnavailable(f"redis at {redact_url(self.url)} is unavailable: {detail}")


class RedisStore:
    """A `Store` on Redis; keys are `key_prefix` + escaped namespace path + key.

    Args:
        url: `redis://[[user]:password@]host:port/db`; the password never reaches logs.
        key_prefix: Prepended to every key, so several deployments can share a server.
        client: A ready client to use instead of one built from `url`; the caller closes it.
    """

    def __init__(
        self, url: str, *, key_prefix: str = "tokenopt:", client: Redis | None = None
    ) -> None:
        self._conn = _Connection(url, key_prefix, client)
        self._path: tuple[str, ...] = ()

    @property
    def client(self) -> Redis:
        """The underlying `redis.asyncio.Redis` client."""
        return self._conn.client

    def full_key(self, key: str) -> str:
        """The Redis key that `key` maps to in this namespace."""
        return self._conn.key_prefix + flat_key(self._path, key)

    def namespace(self, name: str) -> RedisStore:
        view = RedisStore.__new__(RedisStore)
        view._conn = self._conn
        view._path = (*self._path, name)
        return view

    async def _run(self, operation: Awaitable[T]) -> T:
        from redis.exceptions import ConnectionError, TimeoutError

        try:
            return await operation
        except (ConnectionError, TimeoutError, OSError) as exc:
            raise self._conn.unavailable(exc) from exc

    async def get(self, key: str) -> bytes | None:
        return cast("bytes | None", await self._run(self.client.get(self.full_key(key))))

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        px = None if ttl is None else ttl_ms(ttl)
        await self._run(self.client.set(self.full_key(key), value, px=px))

    async def delete(self, key: str) -> None:
        await self._run(self.client.delete(self.full_key(key)))

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        full = self.full_key(key)
        if ttl is None:
            return int(await self._run(self.client.incrby(full, amount)))
        return int(await self._run(self._conn.incr(keys=[full], args=[amount, ttl_ms(ttl)])))

    async def sadd(self, key: str, *members: str, ttl: float | None = None) -> int:
        if not members:
            return 0
        full = self.full_key(key)
        if ttl is None:
            return int(await self._run(self.client.sadd(full, *members)))
        script = self._conn.sadd(keys=[full], args=[ttl_ms(ttl), *members])
        return int(await self._run(script))

    async def smembers(self, key: str) -> builtins.set[str]:
        raw = cast("builtins.set[bytes]", await self._run(self.client.smembers(self.full_key(key))))
        return {member.decode() for member in raw}

    async def expire(self, key: str, ttl: float) -> bool:
        return bool(await self._run(self.client.pexpire(self.full_key(key), ttl_ms(ttl))))

    async def ping(self) -> None:
        await self._run(self.client.ping())

    async def aclose(self) -> None:
        """Close the client if this store built it; a namespaced view leaves it open."""
        if self._conn.owns_client and not self._path:
            await self._conn.client.aclose()

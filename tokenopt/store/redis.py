"""Redis store: shared state for several replicas, namespaced per tenant, with TTLs.

`redis` is imported only when a `RedisStore` is built, so tokenopt imports
without it. Timeouts are short and retries few, so an outage costs a request
seconds, not minutes; every connection failure surfaces as `StoreUnavailable`
with the URL's password redacted.

A `redis+cluster://` (or `rediss+cluster://`) URL selects Redis Cluster
(`redis.asyncio.RedisCluster`), e.g. `redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7000`:
any reachable node discovers the rest. Keys then carry a `{tenant:subject}` hash
tag (see `hash_tag`), so one conversation's keys share a slot.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final, TypeVar, cast
from urllib.parse import unquote, urlsplit

from tokenopt.exceptions import ConfigError
from tokenopt.store.base import (
    SEPARATOR,
    StoreUnavailable,
    flat_key,
    hash_tag,
    hash_tag_start,
    namespace_prefix,
    redact_url,
    ttl_ms,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis, RedisCluster
    from redis.commands.core import AsyncScript

    Client = Redis | RedisCluster

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


CLUSTER_SCHEMES: Final = {"redis+cluster": False, "rediss+cluster": True}  # -> TLS


def is_cluster_url(url: str) -> bool:
    """True when `url` names a Redis Cluster (`redis+cluster://` or `rediss+cluster://`)."""
    return url.partition("://")[0].lower() in CLUSTER_SCHEMES


def unavailable_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "Redis cannot serve now", as opposed to a bug or bad data."""
    from redis import exceptions as e

    return (e.ConnectionError, e.TimeoutError, e.ClusterError, e.RedisClusterException,
            e.TryAgainError, OSError)


async def ready(client: Client) -> None:
    """Load a cluster client's slot map before concurrent use.

    redis-py 8.1 lets commands race its lazy first `initialize()`: some go to the
    wrong node, and the MOVED retries that follow can run an INCR twice.
    `initialize()` is a flag check once done.
    """
    from redis.asyncio import RedisCluster

    if isinstance(client, RedisCluster):
        await client.initialize()


def _connect_cluster(url: str) -> RedisCluster:
    from redis.asyncio import RedisCluster
    from redis.asyncio.cluster import ClusterNode
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    scheme, _, rest = url.partition("://")
    userinfo, _, hosts = rest.rpartition("@")
    hosts, _, db = hosts.partition("/")
    if db not in ("", "0"):
        raise ConfigError(f"Redis Cluster has only database 0, got '{redact_url(url)}'")
    nodes = []
    for address in filter(None, hosts.split(",")):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"cluster node '{address}' is not host:port in '{redact_url(url)}'")
        nodes.append(ClusterNode(host.strip("[]"), int(port)))
    if not nodes:
        raise ConfigError(f"no cluster node in '{redact_url(url)}'")
    username, _, password = userinfo.partition(":")
    # Same bounds as one server: a down node costs a request one short timeout
    # and one retry, not redis-py's default of several seconds of back-off.
    return RedisCluster(
        startup_nodes=nodes,
        username=unquote(username) or None,
        password=unquote(password) or None,
        ssl=CLUSTER_SCHEMES[scheme.lower()],
        # Per node, and not a blocking pool: past it a command fails at once, so the
        # store's own gate (MAX_CONNECTIONS) and the ledger's keep well below it.
        max_connections=MAX_CONNECTIONS * 4,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=OPERATION_TIMEOUT,
        retry=Retry(NoBackoff(), 1),
    )


def _connect(url: str) -> Client:
    if is_cluster_url(url):
        return _connect_cluster(url)
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

    def __init__(self, url: str, key_prefix: str, client: Client | None) -> None:
        self.url = url
        self.cluster = is_cluster_url(url)
        if self.cluster and ("{" in key_prefix or "}" in key_prefix):
            raise ConfigError(f"key_prefix '{key_prefix}' may not contain braces on Redis Cluster:"
                              " they would move the hash tag")
        self.key_prefix = key_prefix
        self.owns_client = client is None
        self.client = _connect(url) if client is None else client
        self.incr: AsyncScript = self.client.register_script(_INCR)
        self.sadd: AsyncScript = self.client.register_script(_SADD)
        self.password = _password(url)
        self.errors = unavailable_errors()
        # A burst queues here, as at the standalone client's blocking pool.
        self.gate = asyncio.Semaphore(MAX_CONNECTIONS) if self.cluster else None

    def unavailable(self, exc: BaseException) -> StoreUnavailable:
        detail = str(exc) or type(exc).__name__
        if self.password:  # redis-py may echo the URL (and so the password) in its messages
            detail = detail.replace(self.password, "***")
        return StoreUnavailable(f"redis at {redact_url(self.url)} is unavailable: {detail}")


def glob_escape(text: str) -> str:
    """`text` as a literal in a Redis glob pattern (SCAN MATCH)."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


def _password(url: str) -> str | None:
    userinfo = url.partition("://")[2].rpartition("@")[0]
    if not userinfo:
        return None
    if is_cluster_url(url):  # several hosts: urlsplit cannot read the netloc
        return unquote(userinfo.partition(":")[2]) or None
    return urlsplit(url).password


class RedisStore:
    """A `Store` on Redis; keys are `key_prefix` + escaped namespace path + key.

    On Redis Cluster a `{tenant:subject}` hash tag follows `key_prefix`.

    Args:
        url: `redis://[[user]:password@]host:port/db`, or
            `redis+cluster://[[user]:password@]host:port[,host:port...]` for Redis Cluster;
            the password never reaches logs.
        key_prefix: Prepended to every key, so several deployments can share a server.
        client: A ready client to use instead of one built from `url`; the caller closes it.
    """

    def __init__(
        self, url: str, *, key_prefix: str = "tokenopt:", client: Client | None = None
    ) -> None:
        self._conn = _Connection(url, key_prefix, client)
        self._path: tuple[str, ...] = ()

    @property
    def client(self) -> Client:
        """The underlying `redis.asyncio.Redis` (or `RedisCluster`) client."""
        return self._conn.client

    @property
    def cluster(self) -> bool:
        """True when the URL named a Redis Cluster."""
        return self._conn.cluster

    def full_key(self, key: str) -> str:
        """The Redis key that `key` maps to in this namespace."""
        flat = flat_key(self._path, key)
        if self._conn.cluster:
            return f"{self._conn.key_prefix}{hash_tag(self._path, key)}:{flat}"
        return self._conn.key_prefix + flat

    def namespace(self, name: str) -> RedisStore:
        view = RedisStore.__new__(RedisStore)
        view._conn = self._conn
        view._path = (*self._path, name)
        return view

    async def _run(self, operation: Callable[[], Awaitable[T]]) -> T:
        conn = self._conn
        try:
            if conn.gate is None:
                return await operation()
            await ready(conn.client)
            async with conn.gate:
                return await operation()
        except conn.errors as exc:
            raise conn.unavailable(exc) from exc

    async def get(self, key: str) -> bytes | None:
        return cast("bytes | None", await self._run(lambda: self.client.get(self.full_key(key))))

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        px = None if ttl is None else ttl_ms(ttl)
        await self._run(lambda: self.client.set(self.full_key(key), value, px=px))

    async def delete(self, key: str) -> None:
        await self._run(lambda: self.client.delete(self.full_key(key)))

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        full = self.full_key(key)
        if ttl is None:
            return int(await self._run(lambda: self.client.incrby(full, amount)))
        args = [amount, ttl_ms(ttl)]
        return int(await self._run(lambda: self._conn.incr(keys=[full], args=args)))

    async def sadd(self, key: str, *members: str, ttl: float | None = None) -> int:
        if not members:
            return 0
        full = self.full_key(key)
        if ttl is None:
            return int(await self._run(lambda: self.client.sadd(full, *members)))
        args: list[str | int] = [ttl_ms(ttl), *members]
        return int(await self._run(lambda: self._conn.sadd(keys=[full], args=args)))

    async def smembers(self, key: str) -> builtins.set[str]:
        full = self.full_key(key)
        raw = cast("builtins.set[bytes]", await self._run(lambda: self.client.smembers(full)))
        return {member.decode() for member in raw}

    async def expire(self, key: str, ttl: float) -> bool:
        return bool(await self._run(lambda: self.client.pexpire(self.full_key(key), ttl_ms(ttl))))

    def namespace_pattern(self, name: str) -> str:
        """The SCAN pattern matching every key of namespace `name` below this view."""
        path = (*self._path, name)
        flat = glob_escape(self._conn.key_prefix + namespace_prefix(path))
        if not self._conn.cluster:
            return flat + "*"
        # `{tenant:subject}:flat`: the tag names the tenant, the flat key the whole path.
        return (glob_escape(self._conn.key_prefix + hash_tag_start(path[0])) + "*"
                + glob_escape("}" + SEPARATOR + namespace_prefix(path)) + "*")

    async def erase_namespace(self, name: str) -> int:
        """Delete every key of namespace `name` below this view; return how many.

        SCAN walks the keyspace in steps (on every primary of a cluster), so a
        large Redis is never blocked the way `KEYS` would block it.
        """
        pattern = self.namespace_pattern(name)

        async def erase() -> int:
            erased, batch = 0, []
            async for key in self.client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    erased += int(await self.client.delete(*batch))
                    batch = []
            if batch:
                erased += int(await self.client.delete(*batch))
            return erased

        return await self._run(erase)

    async def ping(self) -> None:
        await self._run(lambda: self.client.ping())

    async def aclose(self) -> None:
        """Close the client if this store built it; a namespaced view leaves it open."""
        if self._conn.owns_client and not self._path:
            await self._conn.client.aclose()

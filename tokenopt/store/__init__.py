"""Hot shared state behind one small async protocol.

`open_store` picks the backend: in-process by default, Redis (with a local
fallback that keeps serving through outages) when a URL is configured.
"""

from __future__ import annotations

from tokenopt.store.base import Store, StoreUnavailable
from tokenopt.store.fallback import CALL_TIMEOUT, FallbackStore
from tokenopt.store.memory import MemoryStore
from tokenopt.store.redis import RedisStore


def open_store(redis_url: str | None, *, key_prefix: str = "tokenopt:",
               timeout: float = CALL_TIMEOUT) -> Store:
    """Build the store the settings ask for.

    Args:
        redis_url: None or "" for the in-process store; otherwise a Redis URL, or a
            `redis+cluster://host:port[,host:port...]` URL for Redis Cluster.
        key_prefix: Prefix of every Redis key.
        timeout: Seconds a request may wait on Redis before local state serves it.

    Returns:
        A `MemoryStore`, or a `FallbackStore` over a `RedisStore` and a `MemoryStore`.
    """
    if not redis_url:
        return MemoryStore()
    return FallbackStore(RedisStore(redis_url, key_prefix=key_prefix), MemoryStore(),
                         timeout=timeout)


__all__ = [
    "FallbackStore",
    "MemoryStore",
    "RedisStore",
    "Store",
    "StoreUnavailable",
    "open_store",
]

"""The one small async protocol behind all hot shared state, and its key scheme.

Every backend maps a namespace path plus a key to one flat string with
`flat_key`, so a tenant's view can never read another's keys, whatever
characters the names contain.
"""

from __future__ import annotations

import builtins
import math
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from tokenopt.exceptions import TokenOptError

SEPARATOR = ":"


class StoreUnavailable(TokenOptError):
    """The store's backend cannot be reached; callers may fall back to local state."""


@runtime_checkable
class Store(Protocol):
    """Async key-value, counter and set storage with TTLs, split into namespaces.

    TTLs are seconds (floats allowed, must be positive). Backend failures raise
    `StoreUnavailable`; nothing else about the backend leaks through.
    """

    async def get(self, key: str) -> bytes | None:
        """Return the value stored at `key`, or None if missing or expired."""
        ...

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store `value` at `key`, replacing any previous value and TTL."""
        ...

    async def delete(self, key: str) -> None:
        """Remove `key` if present."""
        ...

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Atomically add `amount`; `ttl` applies only when this call creates the key."""
        ...

    async def sadd(self, key: str, *members: str, ttl: float | None = None) -> int:
        """Add members to the set at `key`; return how many were new.

        `ttl` applies only when this call creates the set.
        """
        ...

    async def smembers(self, key: str) -> builtins.set[str]:
        """Return the set at `key` (empty if missing)."""
        ...

    async def expire(self, key: str, ttl: float) -> bool:
        """Set a TTL on an existing key; False if the key does not exist."""
        ...

    def namespace(self, name: str) -> Store:
        """Return a view whose keys are isolated from every other namespace."""
        ...

    async def ping(self) -> None:
        """Raise `StoreUnavailable` if the backend cannot be reached."""
        ...

    async def aclose(self) -> None:
        """Release connections this store opened."""
        ...


@runtime_checkable
class ErasableStore(Store, Protocol):
    """A store that can delete a whole namespace (a tenant's data, on request)."""

    async def erase_namespace(self, name: str) -> int:
        """Delete every key of namespace `name` below this view; return how many."""
        ...


async def erase_namespace(store: Store, name: str) -> int:
    """Delete namespace `name` of `store`; a store that cannot is a `TypeError`, not a no-op."""
    if not isinstance(store, ErasableStore):
        raise TypeError(f"{type(store).__name__} cannot erase a namespace")
    return await store.erase_namespace(name)


def _escape(part: str) -> str:
    # "%" first, so an escaped separator can never be mistaken for a literal one.
    return part.replace("%", "%25").replace(SEPARATOR, "%3A")


def flat_key(path: tuple[str, ...], key: str) -> str:
    """Join a namespace path and a key into one unambiguous string.

    Every part, the key included, is escaped, so the mapping is injective:
    `ns("a").ns("b")` never meets `ns("a:b")`, nor root key `"a:b"` key `"b"` in `ns("a")`.
    """
    return SEPARATOR.join(_escape(part) for part in (*path, key))


def namespace_prefix(path: tuple[str, ...]) -> str:
    """The start every flat key of namespace `path` (and of the namespaces below it) has."""
    return "".join(_escape(part) + SEPARATOR for part in path)


def hash_tag(path: tuple[str, ...], key: str) -> str:
    """The Redis Cluster hash tag of a key: its tenant and its subject, `{tenant:subject}`.

    Keys name their kind, then their subject (`conv:<id>`, `fp:<id>`, `tools:<id>`),
    so every key of one conversation, whichever plugin wrote it, hashes to one
    slot and multi-key operations on it stay legal. The tenant is the first
    namespace. Braces are escaped: Redis hashes only up to the first `}`.
    """
    subject = key.partition(SEPARATOR)[2] or key
    return "{" + SEPARATOR.join(_tag_part(p) for p in (*path[:1], subject)) + "}"


def hash_tag_start(tenant: str) -> str:
    """How the hash tag of every key in namespace `tenant` (and below) begins: `{tenant:`."""
    return "{" + _tag_part(tenant) + SEPARATOR


def _tag_part(part: str) -> str:
    return _escape(part).replace("{", "%7B").replace("}", "%7D")


def ttl_ms(ttl: float) -> int:
    """Convert a TTL in seconds to whole milliseconds, rejecting non-positive values."""
    if not ttl > 0:
        raise ValueError(f"ttl must be positive, got {ttl!r}")
    return max(1, math.ceil(ttl * 1000))


def redact_url(url: str) -> str:
    """Return `url` with any password replaced by `***`, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo = f"{parts.username or ''}:***"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))

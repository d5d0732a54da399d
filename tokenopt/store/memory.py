"""In-process store: the default for one replica and the local fallback when Redis fails.

Single-threaded asyncio code never awaits inside an operation here, so each
operation is atomic without locks. Expiry is lazy and measured by an injected
clock (tests advance it instead of sleeping); LRU eviction caps the key count
so a long-running process cannot grow without bound.
"""

from __future__ import annotations

import builtins
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from tokenopt.store.base import flat_key, namespace_prefix, ttl_ms

Clock = Callable[[], float]


@dataclass(slots=True)
class _Entry:
    value: bytes | set[str]
    expires_at: float | None


class _Shared:
    """The dict every namespaced view of one `MemoryStore` works on."""

    def __init__(self, clock: Clock, max_keys: int) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys!r}")
        self.clock = clock
        self.max_keys = max_keys
        self.data: OrderedDict[str, _Entry] = OrderedDict()

    def deadline(self, ttl: float | None) -> float | None:
        return None if ttl is None else self.clock() + ttl_ms(ttl) / 1000

    def lookup(self, key: str) -> _Entry | None:
        entry = self.data.get(key)
        if entry is None:
            return None
        if entry.expires_at is not None and self.clock() >= entry.expires_at:
            del self.data[key]
            return None
        self.data.move_to_end(key)
        return entry

    def put(self, key: str, entry: _Entry) -> None:
        self.data[key] = entry
        self.data.move_to_end(key)
        while len(self.data) > self.max_keys:
            self.data.popitem(last=False)


class MemoryStore:
    """A `Store` in a dict, with lazy TTL expiry and LRU eviction beyond `max_keys`.

    Args:
        clock: Seconds source for TTLs; inject a fake one in tests.
        max_keys: Keys kept across all namespaces before the least recently used go.
    """

    def __init__(self, *, clock: Clock = time.monotonic, max_keys: int = 100_000) -> None:
        self._shared = _Shared(clock, max_keys)
        self._path: tuple[str, ...] = ()

    def namespace(self, name: str) -> MemoryStore:
        view = MemoryStore.__new__(MemoryStore)
        view._shared = self._shared
        view._path = (*self._path, name)
        return view

    def _key(self, key: str) -> str:
        return flat_key(self._path, key)

    async def get(self, key: str) -> bytes | None:
        entry = self._shared.lookup(self._key(key))
        if entry is None:
            return None
        if not isinstance(entry.value, bytes):
            raise TypeError(f"key {key!r} holds a set, not bytes")
        return entry.value

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._shared.put(self._key(key), _Entry(bytes(value), self._shared.deadline(ttl)))

    async def delete(self, key: str) -> None:
        self._shared.data.pop(self._key(key), None)

    async def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        full = self._key(key)
        entry = self._shared.lookup(full)
        if entry is None:
            entry = _Entry(b"0", self._shared.deadline(ttl))
        if not isinstance(entry.value, bytes):
            raise TypeError(f"key {key!r} holds a set, not a counter")
        total = int(entry.value) + amount
        entry.value = str(total).encode()
        self._shared.put(full, entry)
        return total

    async def sadd(self, key: str, *members: str, ttl: float | None = None) -> int:
        full = self._key(key)
        entry = self._shared.lookup(full)
        if entry is None:
            if not members:
                return 0
            entry = _Entry(set(), self._shared.deadline(ttl))
        if not isinstance(entry.value, set):
            raise TypeError(f"key {key!r} holds bytes, not a set")
        before = len(entry.value)
        entry.value.update(members)
        self._shared.put(full, entry)
        return len(entry.value) - before

    async def smembers(self, key: str) -> builtins.set[str]:
        entry = self._shared.lookup(self._key(key))
        if entry is None:
            return set()
        if not isinstance(entry.value, set):
            raise TypeError(f"key {key!r} holds bytes, not a set")
        return set(entry.value)

    async def expire(self, key: str, ttl: float) -> bool:
        entry = self._shared.lookup(self._key(key))
        if entry is None:
            return False
        entry.expires_at = self._shared.deadline(ttl)
        return True

    async def erase_namespace(self, name: str) -> int:
        """Delete every key of namespace `name` below this view; return how many."""
        start = namespace_prefix((*self._path, name))
        doomed = [key for key in self._shared.data if key.startswith(start)]
        for key in doomed:
            del self._shared.data[key]
        return len(doomed)

    async def ping(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

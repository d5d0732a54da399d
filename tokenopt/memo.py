"""Bounded memo tables for the hot path: by content digest, or by the identity of an object.

Agents resend the same tool set on every turn, so work done on it once (canonical forms,
dedupe, breakpoint marks) is looked up afterwards instead of redone.

Tables that hold request content are bounded by its bytes as well as by count: a client
sending large tools that never repeat must not grow the process (each put names the
bytes its value holds, the size of the JSON it was computed from).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Final, Generic, TypeVar

V = TypeVar("V")
R = TypeVar("R")


MiB: Final = 1 << 20
CONTENT_BUDGET: Final = 32 * MiB  # per table of request content
TABLES: Final[list[LRU[Any]]] = []  # every table made, for tests and accounting


class LRU(Generic[V]):
    """At most `kept` values and `max_bytes` of their sizes, least recently used dropped first.

    A value larger than the whole budget is returned but not kept (nor is an older one
    under its key).
    """

    def __init__(self, kept: int, max_bytes: int | None = None) -> None:
        self.kept = kept
        self.max_bytes = max_bytes
        self.size = 0
        self._table: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        TABLES.append(self)

    def __len__(self) -> int:
        return len(self._table)

    def get(self, key: Hashable) -> V | None:
        found = self._table.get(key)
        if found is None:
            return None
        self._table.move_to_end(key)
        return found[0]

    def put(self, key: Hashable, value: V, size: int = 0) -> V:
        budget = self.max_bytes
        old = self._table.pop(key, None)  # replaced, or dropped if the new value cannot stay
        if old is not None:
            self.size -= old[1]
        if budget is not None and size > budget:
            return value
        self._table[key] = (value, size)
        self.size += size
        while len(self._table) > self.kept or (budget is not None and self.size > budget):
            self.size -= self._table.popitem(last=False)[1][1]
        return value

    def clear(self) -> None:
        self._table.clear()
        self.size = 0


class ByIdentity(Generic[V]):
    """Values by the identity of the object they were computed from, plus extra key parts.

    The object is kept beside its value: an id is only trusted while that very object
    is alive and is the one stored.
    """

    def __init__(self, kept: int, max_bytes: int | None = None) -> None:
        self._table: LRU[tuple[Any, V]] = LRU(kept, max_bytes)

    def __len__(self) -> int:
        return len(self._table)

    @property
    def size(self) -> int:
        return self._table.size

    def get(self, obj: object, *extra: Hashable) -> V | None:
        hit = self._table.get((id(obj), *extra))
        return hit[1] if hit is not None and hit[0] is obj else None

    def put(self, obj: object, value: V, *extra: Hashable, size: int = 0) -> V:
        self._table.put((id(obj), *extra), (obj, value), size)
        return value

    def clear(self) -> None:
        self._table.clear()


class ShortKeyCache(Generic[R]):
    """`fn` memoised by an `lru_cache` of `kept` calls when its first argument is a string of
    at most `max_chars`; a longer one is computed each time and never kept.

    For text a client sends (words, names, labels, model names): real ones are short and
    repeat, and a long one must not grow the table by its length.
    """

    def __init__(self, fn: Callable[..., R], kept: int, max_chars: int) -> None:
        self._fn = fn
        self._cached = functools.lru_cache(maxsize=kept)(fn)
        self.max_chars = max_chars
        functools.update_wrapper(self, fn)

    def __call__(self, key: str, *rest: Hashable) -> R:
        if len(key) <= self.max_chars:
            return self._cached(key, *rest)
        return self._fn(key, *rest)

    def cache_info(self) -> Any:
        return self._cached.cache_info()

    def cache_clear(self) -> None:
        self._cached.cache_clear()


def short_key_cache(kept: int, max_chars: int = 64) -> Callable[[Callable[..., R]], ShortKeyCache[R]]:
    """Decorate a function as a `ShortKeyCache`."""
    def wrap(fn: Callable[..., R]) -> ShortKeyCache[R]:
        return ShortKeyCache(fn, kept, max_chars)
    return wrap

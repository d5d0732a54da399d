"""Bounded memo tables for the hot path: by content digest, or by the identity of an object.

Agents resend the same tool set on every turn, so work done on it once (canonical forms,
dedupe, breakpoint marks) is looked up afterwards instead of redone.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

V = TypeVar("V")


class LRU(Generic[V]):
    """At most `kept` values by key, the least recently used dropped first."""

    def __init__(self, kept: int) -> None:
        self.kept = kept
        self._table: OrderedDict[Hashable, V] = OrderedDict()

    def get(self, key: Hashable) -> V | None:
        found = self._table.get(key)
        if found is not None:
            self._table.move_to_end(key)
        return found

    def put(self, key: Hashable, value: V) -> V:
        self._table[key] = value
        if len(self._table) > self.kept:
            self._table.popitem(last=False)
        return value

    def clear(self) -> None:
        self._table.clear()


class ByIdentity(Generic[V]):
    """Values by the identity of the object they were computed from, plus extra key parts.

    The object is kept beside its value: an id is only trusted while that very object
    is alive and is the one stored.
    """

    def __init__(self, kept: int) -> None:
        self._table: LRU[tuple[Any, V]] = LRU(kept)

    def get(self, obj: object, *extra: Hashable) -> V | None:
        hit = self._table.get((id(obj), *extra))
        return hit[1] if hit is not None and hit[0] is obj else None

    def put(self, obj: object, value: V, *extra: Hashable) -> V:
        self._table.put((id(obj), *extra), (obj, value))
        return value

    def clear(self) -> None:
        self._table.clear()

"""Each message of a request serialised once, and its tokens counted once per content.

The cache-break detector digests every message and the breakpoint planner counts their
tokens; both read the same objects, so one request serialises each message once, and a
conversation's earlier turns, resent byte for byte, are counted once per process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import xxhash

from tokenopt import jsonio
from tokenopt.memo import LRU

_TOKENS: LRU[int] = LRU(16384)


class MessageBytes:
    """Messages' JSON bytes and digests by identity, for the life of one request."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[Any, bytes, str]] = {}

    def _entry(self, message: Any) -> tuple[Any, bytes, str]:
        found = self._seen.get(id(message))
        if found is None or found[0] is not message:
            data = jsonio.dumps(message)
            found = self._seen[id(message)] = (message, data, xxhash.xxh3_128_hexdigest(data))
        return found

    def digest(self, message: Any) -> str:
        return self._entry(message)[2]

    def tokens(self, message: Any, model: str | None,
               count: Callable[[str, str | None], int]) -> int:
        _, data, digest = self._entry(message)
        key = (digest, model)
        found = _TOKENS.get(key)
        return found if found is not None else _TOKENS.put(key, count(data.decode(), model))

"""Each message of a request serialised once, as the model reads it, and counted once.

The cache-break detector digests every message and the breakpoint planner counts their
tokens; both read the same objects, so one request serialises each message once, and a
conversation's earlier turns, resent alike, are counted once per process.

A message is taken as the model reads it: string content is the one text block it
stands for, and cache markers are placement, not content. Claude Code sends a system
message as a block on one turn and as a string on the next, and moves its own marker
each turn; neither is an edit, and the provider's cache reads through both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import xxhash

from tokenopt import jsonio
from tokenopt.memo import LRU

_TOKENS: LRU[int] = LRU(16384)
MARKER = "cache_control"


class MessageBytes:
    """Messages' JSON bytes and digests by identity, for the life of one request."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[Any, bytes, str]] = {}

    def _entry(self, message: Any) -> tuple[Any, bytes, str]:
        found = self._seen.get(id(message))
        if found is None or found[0] is not message:
            data = jsonio.dumps(as_read(message))
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


def as_read(message: Any) -> Any:
    """The message with string content as one text block and without cache markers."""
    if not isinstance(message, dict):
        return message
    content = message.get("content")
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    elif isinstance(content, list):
        content = [{k: v for k, v in block.items() if k != MARKER}
                   if isinstance(block, dict) and MARKER in block else block for block in content]
    else:
        return {k: v for k, v in message.items() if k != MARKER}
    return {**{k: v for k, v in message.items() if k != MARKER}, "content": content}

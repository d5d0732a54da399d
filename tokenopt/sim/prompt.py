"""The prompt as a provider sees it: ordered segments whose text is what gets tokenised.

Providers render tools first, then system text, then the conversation, and their
caches match on exact prefixes of that order. Each `Segment` keeps the text of one
tool, system part or message, as sent (keys in the client's order), so a
reordered tool list or an edited schema changes the bytes the cache model sees.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tokenopt.tokens import TokenCounter

SegmentKind = Literal["tool", "system", "message"]
_MARKERS = frozenset({"cache_control", "prompt_cache_breakpoint"})


@dataclass(frozen=True, slots=True)
class Segment:
    """One tool, system part or message: its text, its tokens, and any cache marker on it.

    `breakpoint` is the TTL of a cache marker the client put on this segment
    (Anthropic `cache_control`, OpenAI `prompt_cache_breakpoint`), else None.
    """

    kind: SegmentKind
    text: str
    tokens: int
    breakpoint: str | None = None


@dataclass(frozen=True, slots=True)
class Prompt:
    """What a provider tokenises for one request, in the order it caches it.

    `cache_key` is OpenAI's `prompt_cache_key`, which routes requests to a cache;
    `retention` its `prompt_cache_retention`. `salt` holds settings that change
    the cached conversation without changing its text (Anthropic `tool_choice`
    and thinking), so a change busts the messages part as the provider's does.
    """

    route: str
    model: str
    segments: tuple[Segment, ...]
    cache_key: str | None = None
    retention: str | None = None
    salt: str = ""

    @property
    def tokens(self) -> int:
        """Input tokens of the whole prompt."""
        return sum(segment.tokens for segment in self.segments)

    @classmethod
    def build(
        cls,
        route: str,
        model: str,
        counter: TokenCounter,
        *,
        tools: Iterable[Any] = (),
        system: Iterable[Any] = (),
        messages: Iterable[Any] = (),
        loaded_at: Mapping[int, Sequence[Any]] | None = None,
        loaded_last: Iterable[Any] = (),
        cache_key: str | None = None,
        retention: str | None = None,
        salt: str = "",
    ) -> Prompt:
        """Segments for tools, then system parts, then messages, counted for `model`.

        Tool definitions loaded by tool search are appended, never swapped into
        the tools: `loaded_at[i]` joins message `i`'s segment (Anthropic bills
        them where the `tool_reference` is), `loaded_last` follows the messages
        as tool segments (OpenAI appends them at the end of the context).
        """
        loads = loaded_at or {}
        parts: list[tuple[SegmentKind, Any, Sequence[Any]]] = [("tool", t, ()) for t in tools]
        parts += [("system", part, ()) for part in system]
        parts += [("message", m, loads.get(i, ())) for i, m in enumerate(messages)]
        parts += [("tool", tool, ()) for tool in loaded_last]
        segments = []
        for kind, raw, loaded in parts:
            text = segment_text(unmarked(raw)) if kind == "tool" else message_text(raw)
            text = "\n".join([text, *(segment_text(unmarked(tool)) for tool in loaded)])
            segments.append(Segment(kind, text, counter.count(text, model), marker(raw)))
        return cls(route, model, tuple(segments), cache_key, retention, salt)


def segment_text(value: Any) -> str:
    """Compact JSON in the client's key order: the bytes as sent, minus whitespace."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def message_text(message: Any) -> str:
    """A message (or system part) as role, text content, then its other fields as JSON."""
    if not isinstance(message, dict):
        return segment_text(message)
    if "role" not in message and message.get("type") == "text":
        return str(message.get("text", ""))
    role = message.get("role") or message.get("type") or ""
    content = message.get("content", message.get("text"))
    rest = {k: v for k, v in unmarked(message).items() if k not in {"role", "content", "text", "type"}}
    lines = [str(role), content_text(content)]
    if rest:
        lines.append(segment_text(rest))
    return "\n".join(line for line in lines if line)


def content_text(content: Any) -> str:
    """Text parts as their text; any other part (image, tool result...) as JSON."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_part_text(part) for part in content)
    return segment_text(content)


def _part_text(part: Any) -> str:
    if isinstance(part, dict) and isinstance(part.get("text"), str):
        return str(part["text"])
    if isinstance(part, dict):
        return segment_text(unmarked(part))
    return segment_text(part)


def unmarked(item: Any) -> Any:
    """An item without its cache markers: they steer the cache but are not tokenised."""
    if not isinstance(item, dict):
        return item
    return {k: v for k, v in item.items() if k not in _MARKERS}


def marker(raw: Any) -> str | None:
    """The TTL of the last cache marker on an item or on one of its content parts."""
    if not isinstance(raw, dict):
        return None
    found = _ttl(raw)
    content = raw.get("content")
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict):
                found = _ttl(part) or found
    return found


def _ttl(item: dict[str, Any]) -> str | None:
    control = item.get("cache_control")
    if isinstance(control, dict):
        return str(control.get("ttl", "5m"))
    breakpoint = item.get("prompt_cache_breakpoint")
    if isinstance(breakpoint, dict):
        return str(breakpoint.get("ttl", "30m"))
    return None


def str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None

"""The cache-break detector: what changed since this conversation's previous request.

A provider cache reads the longest unchanged prefix, so the first segment
whose bytes changed decides what the request pays for. Per conversation we
keep digests of the previous request's segments (in order: tools, system,
messages) and name the first difference: the tool order, one tool's schema
(or only its key order), the system text at character N, an edited message.
Appending messages is how a conversation grows, not a break.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import xxhash

from tokenopt import jsonio
from tokenopt.dialects.base import RequestView
from tokenopt.plugins.normalize.canonical import ToolForms
from tokenopt.plugins.normalize.messages import MessageBytes

# Bumped when digests are computed differently: an older fingerprint is not compared.
VERSION: Final = 3


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """Digests of one request's segments, small enough to keep per conversation."""

    tools: list[tuple[str, str, str]]  # (name, raw digest, canonical digest), as sent
    system: str
    system_digest: str
    messages: list[str]

    @classmethod
    def of(cls, view: RequestView, forms: list[ToolForms],
           encoded: MessageBytes | None = None) -> Fingerprint:
        tools = [(t.name, form.sent_digest, form.digest)
                 for t, form in zip(view.tools, forms, strict=True)]
        system = "\n".join(part.text for part in view.system)
        encoded = encoded if encoded is not None else MessageBytes()
        messages = [encoded.digest(m) for m in view.messages]
        return cls(tools, system[:20_000], _digest(system), messages)

    def dumps(self) -> bytes:
        return jsonio.dumps({"v": VERSION, "tools": self.tools, "system": self.system,
                             "system_digest": self.system_digest, "messages": self.messages})

    @classmethod
    def loads(cls, data: bytes) -> Fingerprint | None:
        """The stored fingerprint, or None when unreadable or digested another way."""
        try:
            raw = jsonio.loads(data)
            if raw.get("v") != VERSION:
                return None
            return cls([tuple(t) for t in raw["tools"]], raw["system"], raw["system_digest"],
                       raw["messages"])
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


@dataclass(frozen=True, slots=True)
class Break:
    """The first change, and where: `segment` is tools, system or messages."""

    segment: str
    cause: str
    at: int  # tool index, character of the system text, or message index

    def as_note(self) -> dict[str, Any]:
        return {"segment": self.segment, "cause": self.cause, "at": self.at}


def first_break(before: Fingerprint, now: Fingerprint) -> Break | None:
    """The first segment whose bytes changed between two requests (None: prefix intact)."""
    if before.tools != now.tools:
        return _tool_break(before.tools, now.tools)
    if before.system_digest != now.system_digest:
        at = next((i for i, (a, b) in enumerate(zip(before.system, now.system, strict=False))
                   if a != b), min(len(before.system), len(now.system)))
        return Break("system", f"system text changed at character {at}", at)
    for index, (old, new) in enumerate(zip(before.messages, now.messages, strict=False)):
        if old != new:
            return Break("messages", f"message {index} edited", index)
    if len(now.messages) < len(before.messages):
        return Break("messages", "history truncated", len(now.messages))
    return None


def _tool_break(old: list[tuple[str, str, str]], new: list[tuple[str, str, str]]) -> Break:
    if sorted(n for n, _, _ in old) != sorted(n for n, _, _ in new):
        added = sorted({n for n, _, _ in new} - {n for n, _, _ in old})
        removed = sorted({n for n, _, _ in old} - {n for n, _, _ in new})
        detail = ", ".join([*(f"+{n}" for n in added), *(f"-{n}" for n in removed)])
        return Break("tools", f"tool set changed ({detail})", 0)
    by_name = {n: (raw, canon) for n, raw, canon in old}
    for index, (name, _, canon) in enumerate(new):
        if by_name[name][1] != canon:
            return Break("tools", f"tool schema changed: {name}", index)
    if [n for n, _, _ in old] != [n for n, _, _ in new]:
        return Break("tools", "tool order changed", 0)
    found = next(((i, n) for i, (n, raw, _) in enumerate(new) if by_name[n][0] != raw), None)
    if found is None:  # tools sharing a name: `by_name` holds one of each, so it cannot say which
        return Break("tools", "tools sharing a name changed", 0)
    index, name = found
    return Break("tools", f"tool schema re-serialised (key order): {name}", index)


def _digest(text: str | bytes) -> str:
    return xxhash.xxh3_64_hexdigest(text.encode() if isinstance(text, str) else text)

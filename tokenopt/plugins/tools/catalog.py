"""A request's searchable tools: the function tools, their index, and how each is shown.

The index is built once per distinct tool set (keyed by an xxhash digest of
the tools as sent) and shared by every request and conversation that offers
the same set: agents resend the same hundreds of tools on every call. The
indexes kept are bounded by their bytes as well as their count: one index of
thousands of large tools that never come again can be tens of megabytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import xxhash

from tokenopt import jsonio
from tokenopt.dialects.base import Tool
from tokenopt.memo import CONTENT_BUDGET, LRU
from tokenopt.plugins.tools.namespaces import Member
from tokenopt.tools import ToolIndex
from tokenopt.tools.semantic import FusedIndex

INDEXES_KEPT = 64
# 2,000 real tools: 3.7 MB by `ToolIndex.size` (2.1 MB held), so 8 such sets fit the budget.
_indexes: LRU[ToolIndex] = LRU(INDEXES_KEPT, CONTENT_BUDGET)

ANTHROPIC = "anthropic-messages"


def is_function(tool: Tool, dialect: str) -> bool:
    """A tool the client runs itself, with a schema tokenopt may withhold and load later."""
    kind = tool.raw.get("type")
    if dialect == ANTHROPIC:
        return kind in (None, "custom") and isinstance(tool.raw.get("input_schema"), dict)
    return kind == "function" and bool(tool.name)


def sent_text(tool: Tool) -> str:
    """A tool's entry as JSON text (what is hashed and counted when no memo has it)."""
    return jsonio.dumps(tool.raw).decode()


def digest(tools: Iterable[Tool], text_of: Callable[[Tool], str] = sent_text) -> str:
    """An xxhash of the tools' texts: one tool set, one index."""
    hasher = xxhash.xxh3_128()
    for tool in tools:
        hasher.update(text_of(tool).encode())
        hasher.update(b"\x1e")
    return hasher.hexdigest()


def index_for(key: str, tools: list[Tool]) -> ToolIndex:
    """The index of a tool set, built on first sight and kept for the next requests."""
    found = _indexes.get(key)
    if found is None:
        found = ToolIndex([tool.raw for tool in tools])
        _indexes.put(key, found, found.size)
    return found


@dataclass(slots=True)
class Catalog:
    """Every function tool of a request by name, with its index.

    A function inside a Responses namespace is named by its key (`namespaces.key_of`),
    and `members` says where it lives.
    """

    tools: list[Tool]
    key: str
    index: ToolIndex | FusedIndex
    by_name: dict[str, Tool] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)

    @classmethod
    def of(cls, tools: list[Tool], text_of: Callable[[Tool], str] = sent_text,
           members: dict[str, Member] | None = None) -> Catalog:
        key = digest(tools, text_of)
        by_name: dict[str, Tool] = {}
        for tool in tools:
            by_name.setdefault(tool.name, tool)
        return cls(tools, key, index_for(key, tools), by_name, members or {})

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    def tools_named(self, names: Iterable[str]) -> list[Tool]:
        return [self.by_name[name] for name in names if name in self.by_name]

    def summary(self, name: str) -> str:
        """The first sentence of a tool's description: what the search answer says of it."""
        tool = self.by_name.get(name)
        text = " ".join((tool.description or "").split()) if tool is not None else ""
        head, dot, _ = text.partition(". ")
        return (head + dot.strip())[:200] or "(no description)"

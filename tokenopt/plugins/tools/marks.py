"""The tools breakpoint follows the tools actually sent.

`normalize` marks the last tool it saw (Anthropic `cache_control`). Once tools
are withheld, or found tools appended, that mark must end the tools forwarded,
or the tools prefix is not cached.
"""

from __future__ import annotations

from tokenopt.dialects.base import Tool
from tokenopt.plugins.tools.catalog import ANTHROPIC


def mark_last_like(before: list[Tool], after: list[Tool], dialect: str) -> list[Tool]:
    """`after` with the breakpoint `before` carried on its last tool only."""
    marks = [tool.raw["cache_control"] for tool in before if "cache_control" in tool.raw]
    if dialect != ANTHROPIC or not marks or not after:
        return after
    *head, last = after
    if "cache_control" in last.raw and not any("cache_control" in t.raw for t in head):
        return after  # already so: the same objects
    out = [_unmarked(tool) for tool in head]  # unmarked tools stay the same objects
    return [*out, Tool(last.name, last.description, last.parameters,
                       {**last.raw, "cache_control": marks[-1]})]


def _unmarked(tool: Tool) -> Tool:
    if "cache_control" not in tool.raw:
        return tool
    raw = {k: v for k, v in tool.raw.items() if k != "cache_control"}
    return Tool(tool.name, tool.description, tool.parameters, raw)

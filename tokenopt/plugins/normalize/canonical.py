"""Canonical tools: the same tool set gives the same bytes, whoever sent it and in what order.

JSON objects are unordered, so sorting keys never changes what a schema means;
the dialect then writes the tools compactly, without insignificant whitespace.
List order is kept inside schemas (`required`, `enum` and `anyOf` order may
matter to a reader), and the tools themselves are sorted by name.
"""

from __future__ import annotations

import json
from typing import Any

from tokenopt.dialects.base import Tool

# Cache markers are placement, not content: normalize decides where they go.
MARKERS = ("cache_control",)


def canonical(value: Any) -> Any:
    """`value` with every object's keys sorted, recursively; lists keep their order."""
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


def canonical_text(value: Any) -> str:
    """The canonical serialisation: sorted keys, no insignificant whitespace."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_tool(tool: Tool) -> Tool:
    raw = canonical({k: v for k, v in tool.raw.items() if k not in MARKERS})
    parameters = canonical(tool.parameters) if tool.parameters is not None else None
    return Tool(tool.name, tool.description, parameters, raw)


def canonical_tools(tools: list[Tool], *, sort: bool = True) -> list[Tool]:
    """Each tool canonical; sorted by name (then by content, for duplicate names)."""
    out = [canonical_tool(tool) for tool in tools]
    if sort:
        out.sort(key=lambda tool: (tool.name, canonical_text(tool.raw)))
    return out

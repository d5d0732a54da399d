"""Read the four wire forms of a tool definition into one shape.

Requests mix forms: MCP `tools/list` entries (`inputSchema`), Anthropic tools
(`input_schema`), OpenAI Chat (`{"type":"function","function":{...}}`) and OpenAI
Responses (flat `{"type":"function","name",...}`, plus `namespace` groups). Built-in
tools (`web_search`, `tool_search`, `mcp_toolset`, Anthropic `bash_20250124`, ...)
carry no description or schema to rank on, so they are skipped, never an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# `custom` is Anthropic's explicit type for a user-defined tool.
_FUNCTION_TYPES = frozenset({"function", "custom"})


@dataclass(frozen=True, slots=True)
class ToolDoc:
    """One function-like tool: the name returned by search and the text ranked on."""

    name: str
    description: str
    schema: Mapping[str, Any]
    server: str = ""


def read_tools(tools: Iterable[Any]) -> list[ToolDoc]:
    """Function-like tools in input order, each name once (the first definition wins)."""
    seen: set[str] = set()
    docs: list[ToolDoc] = []
    for doc in _walk(tools, server=""):
        if doc.name not in seen:
            seen.add(doc.name)
            docs.append(doc)
    return docs


def _walk(tools: Iterable[Any], server: str) -> Iterator[ToolDoc]:
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        kind = tool.get("type")
        if kind == "namespace":
            inner = tool.get("tools")
            if isinstance(inner, list):
                yield from _walk(inner, server=_text(tool.get("name")))
            continue
        # A non-string `type` (a list is unhashable) is no function type: skipped like a built-in.
        if kind is not None and not (isinstance(kind, str) and kind in _FUNCTION_TYPES):
            continue
        body = tool.get("function") if kind == "function" else None
        doc = _doc(body if isinstance(body, Mapping) else tool, server)
        if doc is not None:
            yield doc


def _doc(tool: Mapping[str, Any], server: str) -> ToolDoc | None:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        return None
    schema: Any = next(
        (tool[k] for k in ("inputSchema", "input_schema", "parameters") if k in tool), None
    )
    return ToolDoc(
        name=name,
        description=_text(tool.get("description")),
        schema=schema if isinstance(schema, Mapping) else {},
        server=server,
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""

"""Deferred tools (`defer_loading`) as providers bill them: absent until tool search loads them.

Anthropic leaves a deferred tool out of the prompt until a `tool_reference`
names it (in a `tool_search_tool_result`, or in the client's own
`tool_result`); from then on its definition is billed where that reference
sits. OpenAI Responses keeps a deferred function's name and description in
the tools (not its parameters), shows a namespace only by its own name and
description, and appends what a `tool_search_output` loaded at the end of
the context. Either way loading appends: the prefix before it keeps its
bytes, so it stays cached.

Requests the provider refuses raise `Invalid`, for the route to word.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from tokenopt.dialects.base import as_dict, dicts
from tokenopt.sim.prompt import segment_text, unmarked
from tokenopt.sim.wire import JSON, Invalid, tool_name

ANTHROPIC_SEARCH_TYPES: Final[dict[str, Literal["bm25", "regex"]]] = {
    "tool_search_tool_bm25_20251119": "bm25", "tool_search_tool_bm25": "bm25",
    "tool_search_tool_regex_20251119": "regex", "tool_search_tool_regex": "regex",
}
# Keys a deferred Responses function does not show until loaded: its input schema.
_HIDDEN_KEYS: Final = frozenset({"parameters", "format"})
# What of an `mcp_toolset` entry is billed: its tools come from the server, not the request.
_TOOLSET_KEYS: Final = ("type", "name", "mcp_server_name", "cache_control")


@dataclass(frozen=True, slots=True)
class SearchTool:
    """The provider's own tool search in a request: how the model calls it, who runs it."""

    name: str
    variant: Literal["bm25", "regex", "hosted"]
    execution: Literal["server", "client"]


@dataclass(frozen=True, slots=True)
class Catalog:
    """What a request's model can call now, and what a tool search could still load.

    `deferred` maps each deferred, not yet loaded tool to its definition in the
    route's own form; `namespaces` maps a Responses function inside a
    namespace to that namespace's entry.
    """

    callable: frozenset[str]
    deferred: Mapping[str, JSON]
    namespaces: Mapping[str, JSON]
    search: SearchTool | None


def catalog(route: str, body: JSON) -> Catalog:
    """The request's tools split into callable and still deferred, plus its native search."""
    tools = dicts(body.get("tools"))
    if route == "/v1/messages":
        loaded = {name for item in dicts(body.get("messages")) for name in references(item)}
        return _split(tools, loaded, {}, _anthropic_search(tools))
    if route == "/v1/responses":
        items = body.get("input")
        loaded = {name for tool in responses_loaded(items) for name in _function_names(tool)}
        namespaces = {name: tool for tool in tools if tool.get("type") == "namespace"
                      for name in _function_names(tool)}
        functions = [fn for tool in tools for fn in (
            dicts(tool.get("tools")) if tool.get("type") == "namespace" else [tool])]
        found = _split(functions, loaded, namespaces, _responses_search(tools))
        return Catalog(found.callable | loaded, found.deferred, namespaces, found.search)
    # Chat Completions has no tool search: `defer_loading` means nothing there.
    names = frozenset(name for tool in tools if (name := tool_name(tool)))
    return Catalog(names, {}, {}, None)


def _split(tools: list[JSON], loaded: set[str], namespaces: Mapping[str, JSON],
           search: SearchTool | None) -> Catalog:
    callable_now: set[str] = set()
    deferred: dict[str, JSON] = {}
    for tool in tools:
        name = tool_name(tool)
        if name is None:
            continue
        if tool.get("defer_loading") and name not in loaded:
            deferred[name] = tool
        else:
            callable_now.add(name)
    return Catalog(frozenset(callable_now), deferred, namespaces, search)


def prompt_tools(route: str, tools: list[Any]) -> list[Any]:
    """The tool entries as the provider renders them before anything is loaded."""
    if route == "/v1/messages":
        return [_toolset(tool) for tool in tools
                if not (isinstance(tool, dict) and tool.get("defer_loading"))]
    if route == "/v1/responses":
        return [_responses_shown(tool) for tool in tools]
    return tools


def _toolset(tool: Any) -> Any:
    if isinstance(tool, dict) and tool.get("type") == "mcp_toolset":
        return {key: tool[key] for key in _TOOLSET_KEYS if key in tool}
    return tool


def _responses_shown(tool: Any) -> Any:
    if not isinstance(tool, dict):
        return tool
    if tool.get("type") == "namespace":
        inner = [fn for fn in dicts(tool.get("tools")) if not fn.get("defer_loading")]
        shown = {key: value for key, value in tool.items() if key != "tools"}
        return {**shown, "tools": inner} if inner else shown
    if tool.get("defer_loading"):
        return {key: value for key, value in tool.items() if key not in _HIDDEN_KEYS}
    return tool


def references(item: Any) -> list[str]:
    """Tool names a message or content block loads with `tool_reference` blocks."""
    if not isinstance(item, dict):
        return []
    content = item.get("content")
    if "role" in item:
        return [name for block in dicts(content) for name in references(block)]
    if item.get("type") == "tool_search_tool_result":
        found = as_dict(content).get("tool_references")
    elif item.get("type") == "tool_result":
        found = content
    else:
        return []
    return [str(ref["tool_name"]) for ref in dicts(found)
            if ref.get("type") == "tool_reference" and isinstance(ref.get("tool_name"), str)]


def anthropic_loads(blocks: list[Any], tools: list[Any]) -> dict[int, list[JSON]]:
    """Deferred definitions each block loads (first reference only), by block position."""
    defined = {name: tool for tool in dicts(tools)
               if tool.get("defer_loading") and (name := tool_name(tool))}
    seen: set[str] = set()
    loads: dict[int, list[JSON]] = {}
    for index, block in enumerate(blocks):
        for name in references(block):
            if name in defined and name not in seen:
                seen.add(name)
                loads.setdefault(index, []).append(defined[name])
    return loads


def responses_input(items: list[Any]) -> list[Any]:
    """Input items as shown: a `tool_search_output` without its tools, which are billed last."""
    return [{key: value for key, value in item.items() if key != "tools"}
            if isinstance(item, dict) and item.get("type") == "tool_search_output" else item
            for item in items]


def responses_loaded(items: Any) -> list[JSON]:
    """Definitions `tool_search_output` items loaded, in the order loaded, each once."""
    seen: set[str] = set()
    loaded: list[JSON] = []
    for item in dicts(items):
        if item.get("type") != "tool_search_output":
            continue
        for tool in dicts(item.get("tools")):
            key = segment_text(unmarked(tool))
            if key not in seen:
                seen.add(key)
                loaded.append(tool)
    return loaded


def check_messages(body: JSON) -> None:
    """Refuse what Anthropic refuses: a deferred search tool, all tools deferred with no
    search, and a `tool_reference` to a tool not defined with `defer_loading: true`."""
    tools = dicts(body.get("tools"))
    searchable = False
    for index, tool in enumerate(tools):
        if tool.get("type") in ANTHROPIC_SEARCH_TYPES:
            if tool.get("defer_loading"):
                raise Invalid(f"tools.{index}.defer_loading", f"tools.{index}: the tool search "
                              "tool itself cannot have defer_loading set to true.")
            searchable = True
    listed = [tool for tool in tools if tool.get("type") != "mcp_toolset"]
    if listed and not searchable and all(tool.get("defer_loading") for tool in listed):
        raise Invalid("tools", "tools: every tool has defer_loading set to true, and no tool "
                      "search tool is provided to load them.")
    deferred = {name for tool in tools if tool.get("defer_loading") and (name := tool_name(tool))}
    for i, message in enumerate(dicts(body.get("messages"))):
        for j, block in enumerate(dicts(message.get("content"))):
            for name in references(block):
                if name not in deferred:
                    raise Invalid(f"messages.{i}.content.{j}", f"messages.{i}.content.{j}: "
                                  f"tool_reference '{name}' does not name a tool defined with "
                                  "defer_loading: true.")


def check_responses(body: JSON) -> None:
    """Refuse what OpenAI refuses: `defer_loading` on a namespace (it belongs on its functions)."""
    for index, tool in enumerate(dicts(body.get("tools"))):
        if tool.get("type") == "namespace" and "defer_loading" in tool:
            raise Invalid(f"tools[{index}].defer_loading", "unknown")


def _anthropic_search(tools: list[JSON]) -> SearchTool | None:
    for tool in tools:
        variant = ANTHROPIC_SEARCH_TYPES.get(str(tool.get("type")))
        if variant is not None:
            return SearchTool(str(tool.get("name") or f"tool_search_tool_{variant}"), variant,
                              "server")
    return None


def _responses_search(tools: list[JSON]) -> SearchTool | None:
    for tool in tools:
        if tool.get("type") == "tool_search":
            client = tool.get("execution") == "client"
            return SearchTool("tool_search", "hosted", "client" if client else "server")
    return None


def _function_names(tool: JSON) -> list[str]:
    if tool.get("type") == "namespace":
        return [name for fn in dicts(tool.get("tools")) if (name := tool_name(fn))]
    name = tool_name(tool)
    return [name] if name else []

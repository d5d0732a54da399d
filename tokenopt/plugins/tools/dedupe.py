"""Drop tool definitions the model would read twice, without taking away a tool it may need.

Two rules, both over function tools only (a tool with a schema whose type is
absent, `function` or `custom`); built-in and server tools pass untouched.

(a) Exact duplicate: same name and same definition (the entry as sent, modulo
    key order and cache markers). The first occurrence is kept. Same name with
    *different* definitions: all are kept, untouched (the upstream answers that
    as it would have), and the name is out of rule (b).

(b) Alias: another name, same tool. A tool is dropped in favour of an earlier
    one only when all of these hold, so the model calling the kept name runs
    the same code:
    - the names are equal after case-folding and removing every separator
      (`get_weather` / `getWeather` / `GET-WEATHER`): one client-side tool
      registered under two spellings;
    - description and schema are canonically equal and the description is not
      blank (a shared blank description says nothing about being the same tool);
    - every other field of the entry matches too (`type`, `defer_loading`, ...),
      except `strict` and `cache_control`, which change how, not what, is called;
    - neither name is in `keep` (pinned, named by `tool_choice`, or already
      called in the conversation: the model must still see that exact name).
    Names that differ by an MCP server prefix (`srvA__search` / `srvB__search`)
    are aliases only with `cross_server=True`: two instances of one MCP server
    often differ in what the definition cannot show (account, root directory,
    endpoint), so the same call on the other server is not the same action.

A tool carrying `cache_control` is never dropped: it marks a cache breakpoint,
and moving or losing one is the normalize plugin's decision, not this one's.
`keep` names are never dropped as aliases; an exact copy of a kept tool still
is, since the name stays offered with the same definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from tokenopt.dialects.base import Tool
from tokenopt.memo import CONTENT_BUDGET, ByIdentity
from tokenopt.plugins.normalize.canonical import (
    MARKERS,
    ToolForms,
    canonical_text,
    set_bytes,
    tool_forms,
)
from tokenopt.tools.text import fold

Reason = Literal["exact_duplicate", "alias"]

_NEUTRAL: Final = frozenset({"name", "description", "parameters", "input_schema"})
_HOW_NOT_WHAT: Final = frozenset({"strict", *MARKERS})


@dataclass(frozen=True, slots=True)
class Dropped:
    """One tool left out: its name, the name kept in its place, and why."""

    name: str
    kept: str
    reason: Reason


def dedupe(
    tools: list[Tool], *, keep: frozenset[str] = frozenset(), cross_server: bool = False,
    forms: list[ToolForms] | None = None,
) -> tuple[list[Tool], list[Dropped]]:
    """The tools minus duplicates and aliases (order kept), and what was dropped.

    `forms` are `tool_forms(tools)` when the caller already has them (serialising
    the entries is most of the cost); returns `tools` itself when nothing is dropped.
    Memoised by the identity of the list: `normalize` hands the same canonical list
    for the same tool set, turn after turn (a list is only trusted while it is alive).
    """
    found = _DEDUPED.get(tools, keep, cross_server)
    if found is None:
        forms = forms if forms is not None else tool_forms(tools)
        found = _DEDUPED.put(tools, _dedupe(tools, keep, cross_server, forms), keep, cross_server,
                             size=set_bytes(forms))  # the list it keeps alive
    gone, dropped = found
    if not gone:
        return tools, []
    return [tool for i, tool in enumerate(tools) if i not in gone], list(dropped)


# What dedupe dropped (indexes, and why) by list identity, keep set and cross_server.
_Result = tuple[frozenset[int], tuple[Dropped, ...]]
_DEDUPED: ByIdentity[_Result] = ByIdentity(256, CONTENT_BUDGET)


def _dedupe(tools: list[Tool], keep: frozenset[str], cross_server: bool,
            forms: list[ToolForms]) -> tuple[frozenset[int], tuple[Dropped, ...]]:
    functions = [i for i, tool in enumerate(tools) if _is_function(tool)]
    if len(functions) < 2:
        return frozenset(), ()
    texts = {i: forms[i].text for i in functions}
    keys = {i: _definition_key(tools[i], texts[i]) for i in functions}
    by_name: dict[str, set[str]] = {}
    for i in functions:
        by_name.setdefault(tools[i].name, set()).add(keys[i])
    conflicting = {name for name, defs in by_name.items() if len(defs) > 1}

    dropped: dict[int, Dropped] = {}
    seen: set[tuple[str, str]] = set()
    for i in functions:
        tool = tools[i]
        if (tool.name, keys[i]) in seen and not _marked(tool):
            dropped[i] = Dropped(tool.name, tool.name, "exact_duplicate")
        seen.add((tool.name, keys[i]))

    groups: dict[str, list[int]] = {}
    for i in functions:
        name = tools[i].name
        if i not in dropped and name not in keep and name not in conflicting:
            groups.setdefault(_alias_key(name, cross_server), []).append(i)
    for members in groups.values():
        if len({tools[i].name for i in members}) < 2:
            continue
        first: dict[str, str] = {}
        for i in members:
            tool = tools[i]
            if not (tool.description or "").strip():
                continue
            digest = _alias_digest(tool)
            kept = first.setdefault(digest, tool.name)
            if kept != tool.name and not _marked(tool):
                dropped[i] = Dropped(tool.name, kept, "alias")

    if not dropped:
        return frozenset(), ()
    # Copies of a name that went as an alias point at the name the model will call instead.
    renamed = {d.name: d.kept for d in dropped.values() if d.reason == "alias"}
    for i, d in dropped.items():
        if d.reason == "exact_duplicate" and d.name in renamed:
            dropped[i] = Dropped(d.name, renamed[d.name], "alias")
    return frozenset(dropped), tuple(dropped[i] for i in sorted(dropped))


def _is_function(tool: Tool) -> bool:
    return tool.parameters is not None and tool.raw.get("type") in (None, "function", "custom")


def _marked(tool: Tool) -> bool:
    return any(marker in tool.raw for marker in MARKERS)


def _spec(raw: dict[str, Any]) -> dict[str, Any]:
    """Where the neutral fields live: Chat Completions nests them under `function`."""
    function = raw.get("function")
    return function if isinstance(function, dict) else raw


def _schema_of(spec: dict[str, Any]) -> Any:
    return spec.get("parameters", spec.get("input_schema"))


def _definition_key(tool: Tool, raw_text: str) -> str:
    """The tool's canonical definition: its raw entry's, unless a plugin changed the neutral fields."""
    spec = _spec(tool.raw)
    if (spec.get("name") == tool.name and spec.get("description") == tool.description
            and _schema_of(spec) == tool.parameters):
        return raw_text
    return canonical_text([tool.name, tool.description, tool.parameters, _rest(tool.raw, set())])


def _rest(raw: dict[str, Any], ignored: frozenset[str] | set[str]) -> dict[str, Any]:
    """The entry minus its neutral fields (and `ignored` ones), at both levels."""
    drop = _NEUTRAL | ignored | set(MARKERS)
    rest = {k: v for k, v in raw.items() if k not in drop and k != "function"}
    function = raw.get("function")
    if isinstance(function, dict):
        rest["function"] = {k: v for k, v in function.items() if k not in drop}
    return rest


def _alias_digest(tool: Tool) -> str:
    # Computed only for tools whose names collide under `_alias_key`: rare, so not memoised.
    return canonical_text([tool.description, tool.parameters, _rest(tool.raw, _HOW_NOT_WHAT)])


def _alias_key(name: str, cross_server: bool) -> str:
    if cross_server and "__" in name:
        return "mcp:" + fold(name.rsplit("__", 1)[1])
    return "name:" + fold(name)

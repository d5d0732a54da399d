"""Functions inside Responses `namespace` tools, withheld and loaded one by one.

Codex CLI sends each MCP server's tools as one `namespace` entry (`mcp__github`
holding `list_issues`, ...), and a call comes back as a `function_call` naming
both (`namespace: "mcp__github"`, `name: "list_issues"`). The catalog keys such a
function `<namespace>__<name>` (`mcp__github__list_issues`, the name Claude Code
gives the same MCP tool, so the index ranks both alike), and the forwarded request
carries each namespace with only its loaded functions, in the order loaded.

A namespace left with nothing to call is not forwarded: its API type requires
`tools` and documents no empty form, the model could call nothing in it, and the
search tool still names its server. It comes back, with its name and description
as sent, when a function of it is loaded. Tools in it that are not functions
(`custom` tools) are never withheld, so their namespace is always forwarded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tokenopt.dialects.base import JSON, Tool, dicts

if TYPE_CHECKING:
    from tokenopt.plugins.tools.catalog import Catalog

RESPONSES = "openai-responses"


@dataclass(frozen=True, slots=True)
class Member:
    """Where a namespaced catalog function lives: its namespace as sent, itself as sent."""

    home: Tool
    raw: JSON


def key_of(namespace: str, name: str) -> str:
    """The catalog's (and the loaded set's) name for a function inside a namespace."""
    return f"{namespace}__{name}"


def is_namespace(tool: Tool, dialect: str) -> bool:
    """A Responses namespace whose functions tokenopt may withhold."""
    return (dialect == RESPONSES and tool.raw.get("type") == "namespace"
            and isinstance(tool.raw.get("name"), str) and isinstance(tool.raw.get("tools"), list))


def client_defers(tool: Tool) -> bool:
    """A namespace the client searches itself: it, or a function in it, is `defer_loading`."""
    return tool.raw.get("type") == "namespace" and (
        tool.raw.get("defer_loading") is True
        or any(fn.get("defer_loading") is True for fn in dicts(tool.raw.get("tools"))))


def members(spaces: Iterable[Tool], taken: set[str]) -> tuple[list[Tool], dict[str, Member]]:
    """The namespaces' functions as catalog tools named by key, and where each lives.

    A function whose key is already `taken` (a flat tool, or an earlier namespace, of the
    same name) stays in its namespace, never withheld: withheld, it could not be found.
    """
    tools: list[Tool] = []
    homes: dict[str, Member] = {}
    for space in spaces:
        for fn in dicts(space.raw.get("tools")):
            name = fn.get("name")
            if fn.get("type") != "function" or not isinstance(name, str) or not name:
                continue
            key = key_of(space.name, name)
            if key in taken:
                continue
            taken.add(key)
            description, parameters = fn.get("description"), fn.get("parameters")
            tools.append(Tool(key, description if isinstance(description, str) else None,
                              parameters if isinstance(parameters, dict) else None,
                              {**fn, "name": key}))
            homes[key] = Member(space, fn)
    return tools, homes


def kept_part(space: Tool, catalog: Catalog) -> Tool | None:
    """The namespace with only what is never withheld from it; None when that is nothing."""
    catalogued = {id(member.raw) for member in catalog.members.values()}
    kept = [fn for fn in space.raw["tools"] if id(fn) not in catalogued]
    return _with(space, kept) if kept else None


def size(tools: Iterable[Tool]) -> int:
    """How many tools the entries offer: a namespace counts each tool inside it."""
    return sum(len(tool.raw["tools"]) if _grouped(tool) else 1 for tool in tools)


def offered(tools: Iterable[Tool]) -> set[str]:
    """The catalog names the entries offer: flat names, and keys of namespaced functions."""
    names: set[str] = set()
    for tool in tools:
        if _grouped(tool):
            names.update(key_of(tool.name, str(fn.get("name"))) for fn in dicts(tool.raw["tools"]))
        else:
            names.add(tool.name)
    return names


def extended(tools: list[Tool], catalog: Catalog, keys: Iterable[str]) -> list[Tool]:
    """`tools` with the catalog's `keys` added: flat ones at the end, namespaced ones at the
    end of their namespace, a namespace not yet there at the end, in the order of `keys`.

    The plugin lays out a conversation's loaded set with this, and the detour adds what
    it found with it, so a turn after a detour sends the bytes the detour's last call sent.
    """
    out = list(tools)
    where = {tool.name: i for i, tool in enumerate(out) if _grouped(tool)}
    for key in keys:
        member = catalog.members.get(key)
        if member is None:
            out += catalog.tools_named([key])
            continue
        at = where.get(member.home.name)
        if at is None:
            where[member.home.name] = len(out)
            out.append(_with(member.home, [member.raw]))
        else:
            out[at] = _with(out[at], [*out[at].raw["tools"], member.raw])
    return out


def deferred_inside(space: Tool, catalog: Catalog, keep: set[str]) -> Tool:
    """Native mode: the namespace with its catalogued functions not in `keep` deferred
    (`defer_loading` goes on the functions, never on the namespace: OpenAI refuses it)."""
    homes = {id(member.raw): key for key, member in catalog.members.items()}
    inner = [{**fn, "defer_loading": True} if (key := homes.get(id(fn))) is not None
             and key not in keep else fn for fn in space.raw["tools"]]
    return _with(space, inner)


def shown_name(catalog: Catalog, key: str) -> str:
    """How the search answer names a tool: as the model calls it, inside its namespace."""
    member = catalog.members.get(key)
    if member is None:
        return key
    return f"{member.raw['name']} (in namespace {member.home.name})"


def _grouped(tool: Tool) -> bool:
    return tool.raw.get("type") == "namespace" and isinstance(tool.raw.get("tools"), list)


def _with(space: Tool, inner: list[Any]) -> Tool:
    return Tool(space.name, space.description, space.parameters, {**space.raw, "tools": inner})

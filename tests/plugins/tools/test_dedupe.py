"""Dedupe, as properties over real tools: duplicates go, aliases only under the rule, nothing else."""

from __future__ import annotations

import copy
import json
import random
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.workload import load_jsonl
from tokenopt.dialects.anthropic_messages import _tool as anthropic_tool
from tokenopt.dialects.base import Tool
from tokenopt.dialects.openai_chat import _tool as chat_tool
from tokenopt.dialects.openai_responses import _tool as responses_tool
from tokenopt.plugins.normalize.canonical import canonical_text, tool_forms
from tokenopt.plugins.tools.dedupe import Dropped, dedupe
from tokenopt.plugins.tools.slim import slim_tool

ROWS = [row for row in load_jsonl("tools.jsonl") if (row.get("description") or "").strip()]
ROWS = list({row["name"]: row for row in ROWS}.values())  # one row per name
DIALECTS = ("openai-chat", "openai-responses", "anthropic-messages")
BUILTINS: dict[str, list[dict[str, Any]]] = {
    "openai-chat": [{"type": "custom", "custom": {"name": "grammar", "format": {"type": "text"}}}],
    "openai-responses": [{"type": "web_search"}, {"type": "tool_search"},
                         {"type": "mcp", "server_label": "x", "server_url": "https://x"}],
    "anthropic-messages": [{"type": "web_search_20250305", "name": "web_search"},
                           {"type": "bash_20250124", "name": "bash"},
                           {"type": "tool_search_tool_bm25_20251119", "name": "tool_search"}],
}


def entry(dialect: str, name: str, description: str | None, schema: dict[str, Any],
          **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name}
    if description is not None:
        spec["description"] = description
    if dialect == "openai-chat":
        return {"type": "function", "function": {**spec, "parameters": schema, **extra}}
    if dialect == "openai-responses":
        return {"type": "function", **spec, "parameters": schema, **extra}
    return {**spec, "input_schema": schema, **extra}


def parse(dialect: str, raw: dict[str, Any]) -> Tool:
    return {"openai-chat": chat_tool, "openai-responses": responses_tool,
            "anthropic-messages": anthropic_tool}[dialect](raw)


def from_row(dialect: str, row: dict[str, Any], name: str | None = None, **extra: Any) -> Tool:
    schema = json.loads(json.dumps(row["input_schema"]))  # a fresh parse, as each request is
    return parse(dialect, entry(dialect, name or row["name"], row["description"], schema, **extra))


def reordered(tool: Tool, rng: random.Random) -> Tool:
    """The same definition with every object's keys in another order."""
    def shuffle(value: Any) -> Any:
        if isinstance(value, dict):
            items = list(value.items())
            rng.shuffle(items)
            return {k: shuffle(v) for k, v in items}
        if isinstance(value, list):
            return [shuffle(v) for v in value]
        return value
    return parse(dialect_of(tool), shuffle(tool.raw))


def dialect_of(tool: Tool) -> str:
    if "function" in tool.raw:
        return "openai-chat"
    return "openai-responses" if "parameters" in tool.raw else "anthropic-messages"


def fold(name: str) -> str:
    return "".join(ch for ch in name.casefold() if ch.isalnum())


def variant(name: str) -> str:
    """Another spelling of one name: camelCase, or upper case with dashes."""
    parts = name.split("_")
    camel = parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])
    return camel if camel != name else name.upper().replace("_", "-") + "-"


def definition(tool: Tool) -> str:
    return canonical_text({k: v for k, v in tool.raw.items() if k != "cache_control"})


def same_tool_name(a: str, b: str, cross_server: bool) -> bool:
    if cross_server and "__" in a and "__" in b:
        a, b = a.rsplit("__", 1)[1], b.rsplit("__", 1)[1]
    return fold(a) == fold(b) != ""


def check_invariants(tools: list[Tool], out: list[Tool], dropped: list[Dropped],
                     keep: frozenset[str], cross_server: bool = False) -> None:
    """What must hold for any input, whatever dedupe decided."""
    # Order kept: the output is the input minus some tools, by identity.
    ids = [id(t) for t in tools]
    positions = [ids.index(id(t)) for t in out]
    assert positions == sorted(positions) and len(set(positions)) == len(out)
    assert len(out) + len(dropped) == len(tools)
    gone = [t for t in tools if all(t is not o for o in out)]
    assert [d.name for d in dropped] == [t.name for t in gone]
    for tool, why in zip(gone, dropped, strict=True):
        assert tool.parameters is not None and tool.raw.get("type") in (None, "function")
        assert "cache_control" not in tool.raw
        at = ids.index(id(tool))
        earlier = [o for o, p in zip(out, positions, strict=True) if o.name == why.kept and p < at]
        assert earlier, f"{why}: the kept tool is not offered before it"
        if why.reason == "exact_duplicate":
            assert why.kept == tool.name
            assert any(definition(o) == definition(tool) for o in earlier)
        else:
            assert why.reason == "alias" and same_tool_name(why.kept, tool.name, cross_server)
            assert tool.name not in keep and why.kept not in keep
            assert (tool.description or "").strip()
            assert any(canonical_text([o.description, o.parameters]) ==
                       canonical_text([tool.description, tool.parameters]) for o in earlier)
    # Every name still offered unless dropped as an alias; every distinct definition of a
    # name that has several is still there.
    offered = {t.name for t in out}
    aliases = {d.name for d in dropped if d.reason == "alias"}
    assert {t.name for t in tools} - aliases <= offered
    assert keep & {t.name for t in tools} <= offered
    for name in {t.name for t in tools}:
        defs = {definition(t) for t in tools if t.name == name and t.parameters is not None}
        if len(defs) > 1:
            assert defs == {definition(t) for t in out if t.name == name}


@st.composite
def requests(draw: st.DrawFn) -> tuple[list[Tool], frozenset[str]]:
    dialect = draw(st.sampled_from(DIALECTS))
    rng = random.Random(draw(st.integers(0, 2**32)))
    base = [from_row(dialect, row) for row in rng.sample(ROWS, draw(st.integers(1, 25)))]
    tools = list(base)
    for _ in range(draw(st.integers(0, 15))):
        source = rng.choice(base)
        action = rng.randrange(7)
        if action == 0:  # an exact copy, maybe with keys in another order
            made = reordered(source, rng)
        elif action == 1:  # the same name, another definition
            made = parse(dialect, {**source.raw, **({"function": {**source.raw["function"],
                         "description": "changed"}} if "function" in source.raw
                         else {"description": "changed"})})
        elif action == 2:  # another spelling of the name
            made = rename(source, variant(source.name))
        elif action == 3:  # the same tool from another MCP server
            made = rename(source, f"srv{rng.randrange(3)}__{source.name}")
        elif action == 4:  # a copy carrying a cache breakpoint
            made = parse(dialect, {**source.raw, "cache_control": {"type": "ephemeral"}})
        elif action == 5:  # a copy loaded lazily
            made = parse(dialect, add_field(source.raw, "defer_loading", True))
        else:
            made = parse(dialect, rng.choice(BUILTINS[dialect]))
        tools.insert(rng.randrange(len(tools) + 1), made)
    names = sorted({t.name for t in tools})
    keep = frozenset(draw(st.lists(st.sampled_from(names), max_size=3)))
    return tools, keep


def rename(tool: Tool, name: str) -> Tool:
    if "function" in tool.raw:
        return parse("openai-chat", {**tool.raw, "function": {**tool.raw["function"], "name": name}})
    return parse(dialect_of(tool), {**tool.raw, "name": name})


def add_field(raw: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    if "function" in raw:
        return {**raw, "function": {**raw["function"], key: value}}
    return {**raw, key: value}


@given(requests(), st.booleans())
@settings(max_examples=120, deadline=None)
def test_invariants_hold_on_any_mix_of_real_tools(request: tuple[list[Tool], frozenset[str]],
                                                  cross_server: bool) -> None:
    tools, keep = request
    snapshot = [json.dumps(t.raw) for t in tools]
    out, dropped = dedupe(tools, keep=keep, cross_server=cross_server)
    check_invariants(tools, out, dropped, keep, cross_server)
    assert [json.dumps(t.raw) for t in tools] == snapshot  # nothing edited in place
    again, none = dedupe(out, keep=keep, cross_server=cross_server)
    assert again is out and none == []  # idempotent


@pytest.mark.parametrize("dialect", DIALECTS)
def test_exact_duplicates_dropped_with_counts_first_kept(dialect: str) -> None:
    rng = random.Random(7)
    base = [from_row(dialect, row) for row in rng.sample(ROWS, 300)]
    copies = [reordered(t, rng) for t in rng.sample(base, 60)] + [
        parse(dialect, copy.deepcopy(t.raw)) for t in rng.sample(base, 40)]
    tools = list(base)
    for made in copies:
        at = next(i for i, t in enumerate(tools) if t.name == made.name) + 1
        tools.insert(rng.randrange(at, len(tools) + 1), made)
    out, dropped = dedupe(tools)
    assert out == base and all(a is b for a, b in zip(out, base, strict=True))
    assert len(dropped) == len(copies)
    assert {d.reason for d in dropped} == {"exact_duplicate"}
    assert sorted(d.name for d in dropped) == sorted(c.name for c in copies)
    assert dedupe(tools, forms=tool_forms(tools)) == (out, dropped)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_same_name_different_definitions_all_kept(dialect: str) -> None:
    row = ROWS[0]
    a = from_row(dialect, row)
    b = parse(dialect, entry(dialect, row["name"], "Another tool entirely.", row["input_schema"]))
    alias = from_row(dialect, row, variant(row["name"]))
    tools = [a, b, from_row(dialect, row), alias]
    out, dropped = dedupe(tools)
    # the exact copy of `a` goes; `b` stays; the name is ambiguous, so no alias is dropped for it
    assert out == [a, b, alias] and [d.reason for d in dropped] == ["exact_duplicate"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_aliases_dropped_only_under_the_rule(dialect: str) -> None:
    row = next(r for r in ROWS if "_" in r["name"])
    name, other = row["name"], variant(row["name"])
    first = from_row(dialect, row)

    out, dropped = dedupe([first, from_row(dialect, row, other)])
    assert out == [first] and dropped == [Dropped(other, name, "alias")]
    # strict only changes how the call is decoded: still an alias
    strict = parse(dialect, add_field(from_row(dialect, row, other).raw, "strict", True))
    assert dedupe([first, strict])[0] == [first]

    kept_both: list[tuple[dict[str, frozenset[str]], Tool]] = [
        ({"keep": frozenset({name})}, from_row(dialect, row, other)),
        ({"keep": frozenset({other})}, from_row(dialect, row, other)),
        ({}, parse(dialect, add_field(from_row(dialect, row, other).raw, "defer_loading", True))),
        ({}, parse(dialect, {**from_row(dialect, row, other).raw,
                             "cache_control": {"type": "ephemeral"}})),
        ({}, parse(dialect, entry(dialect, other, row["description"] + " ", row["input_schema"]))),
        ({}, from_row(dialect, row, f"{name}_v2")),
        ({}, from_row(dialect, row, f"mcp__github__{name}")),
    ]
    for kwargs, second in kept_both:
        out, dropped = dedupe([first, second], keep=kwargs.get("keep", frozenset()))
        assert out == [first, second] and dropped == [], second.raw

    blank = {"type": "object", "properties": {}}
    quiet = [parse(dialect, entry(dialect, n, d, blank)) for n, d in
             (("ping_it", ""), ("pingIt", ""), ("PING_IT", None))]
    assert dedupe(quiet)[1] == []


@pytest.mark.parametrize("dialect", DIALECTS)
def test_cross_server_aliases_only_when_asked(dialect: str) -> None:
    row = ROWS[3]
    tools = [from_row(dialect, row, f"mcp__{srv}__{row['name']}") for srv in ("work", "home")]
    tools.append(from_row(dialect, row))  # unprefixed: never a cross-server alias
    assert dedupe(tools)[1] == []
    out, dropped = dedupe(tools, cross_server=True)
    assert out == [tools[0], tools[2]]
    assert dropped == [Dropped(tools[1].name, tools[0].name, "alias")]
    out, dropped = dedupe(tools, cross_server=True, keep=frozenset({tools[1].name}))
    assert out == tools and dropped == []


@pytest.mark.parametrize("dialect", DIALECTS)
def test_non_function_tools_untouched_even_when_repeated(dialect: str) -> None:
    builtins = [parse(dialect, raw) for raw in BUILTINS[dialect]]
    tools = builtins + [parse(dialect, copy.deepcopy(t.raw)) for t in builtins]
    out, dropped = dedupe(tools)
    assert out is tools and dropped == []
    fn = from_row(dialect, ROWS[5])
    mixed = [builtins[0], fn, builtins[0], from_row(dialect, ROWS[5])]
    out, dropped = dedupe(mixed)
    assert out == mixed[:3] and out[2] is builtins[0]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_kept_names_stay_offered_and_nothing_dropped_returns_the_same_list(dialect: str) -> None:
    tools = [from_row(dialect, row) for row in ROWS[:50]]
    assert dedupe(tools, keep=frozenset({tools[0].name}))[0] is tools
    doubled = tools + [from_row(dialect, ROWS[0])]
    out, dropped = dedupe(doubled, keep=frozenset({tools[0].name}))
    assert out == tools and dropped == [Dropped(tools[0].name, tools[0].name, "exact_duplicate")]


@pytest.mark.parametrize("dialect", ["openai-chat", "anthropic-messages"])
def test_tools_slimmed_alike_are_still_duplicates(dialect: str) -> None:
    row = next(r for r in ROWS if slim_tool(t := from_row(dialect, r), dialect) is not t)
    a, b = (slim_tool(from_row(dialect, row), dialect) for _ in range(2))
    assert a.parameters != row["input_schema"]  # neutral fields now differ from `raw`
    out, dropped = dedupe([a, b])
    assert out == [a] and dropped[0].reason == "exact_duplicate"
    # one slimmed, one not: the definitions as they will be sent differ, so both stay
    assert dedupe([a, from_row(dialect, row)])[1] == []


def test_fast_on_a_large_real_tool_list() -> None:
    rng = random.Random(11)
    tools = [from_row("openai-chat", row) for row in rng.sample(ROWS, 450)]
    tools += [parse("openai-chat", copy.deepcopy(t.raw)) for t in tools[:50]]
    dedupe(tools)  # warm the canonical-form memo, as the second request of a session is
    start = time.perf_counter()
    for _ in range(5):
        _, dropped = dedupe(tools)
    assert len(dropped) == 50 and (time.perf_counter() - start) / 5 < 0.05

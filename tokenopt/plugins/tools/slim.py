"""Lossless tool-schema slimming: drop bytes that tell neither the model nor a validator anything.

Removed, and only at places where JSON Schema reads a *schema* (never inside
`properties` names, `required`, `enum`, `const`, `default`, `examples` or any
keyword this module does not know, which are data):

- the root `$schema`, when the schema uses no keyword whose meaning differs
  between draft 7 and 2020-12 (`$ref`, `definitions`, array `items`, ...), so
  it validates the same under either; draft-4/6 URIs are kept;
- a property's `title` that only repeats its name (`file_path` / "File Path":
  compared case- and separator-insensitively);
- empty or whitespace-only `description`s;
- optionally, repeated identical sub-schemas, hoisted into `$defs` and `$ref`
  when that makes the JSON shorter (see `HOIST_DIALECTS` for where and why).

Results are memoised by a digest of the schema's text, within a byte budget:
MCP clients resend the same tools on every call, so a schema is slimmed once.
Results are shared between calls and must not be edited (plugins replace view
containers, never mutate them).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

import xxhash

from tokenopt.dialects.base import JSON, Tool
from tokenopt.memo import CONTENT_BUDGET, LRU
from tokenopt.tools.text import fold

# Hoisting rewrites a schema with `$ref`, which the provider must resolve.
# - openai-responses: OpenAI documents `$defs`/`$ref` as supported (the structured
#   outputs guide, "Definitions are supported"), and the Responses API parses
#   definition tables (openai/codex#23357). But Responses silently tries strict
#   mode when `strict` is omitted and falls back when it can't; a rewrite could
#   flip that outcome, so only tools with an explicit `strict: false` are hoisted.
# - anthropic-messages: input_schema is validated as draft 2020-12 and local refs
#   are resolved (a missing `definitions` block fails with `PointerToNowhere`,
#   BerriAI/litellm#26692); local `$ref`/`$defs` are in Anthropic's supported
#   subset. Strict tools are left alone (a grammar is compiled from them).
# - openai-chat is excluded: it is the lingua franca of OpenAI-compatible servers
#   (vLLM, Gemini's compat layer, Fireworks, ...), several of which reject or
#   mis-resolve `$ref` (googleapis/python-genai#1122, the Fireworks half of litellm#26692).
HOIST_DIALECTS: Final = frozenset({"openai-responses", "anthropic-messages"})

# A sub-schema shorter than this (compact JSON) is not worth a `$defs` entry, and a
# hoist must save at least MIN_HOIST_SAVING characters: every `$ref` is an indirection
# the model has to follow, so a few bytes are not worth one.
MIN_HOIST_CHARS: Final = 80
MIN_HOIST_SAVING: Final = 64

_SCHEMA_MAPS: Final = frozenset({"properties", "patternProperties", "$defs", "definitions",
                                 "dependentSchemas"})
_SCHEMA_ONE: Final = frozenset({"additionalProperties", "additionalItems", "contains",
                                "propertyNames", "not", "if", "then", "else", "unevaluatedItems",
                                "unevaluatedProperties", "contentSchema"})
_SCHEMA_LISTS: Final = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
# Keywords that mean something else (or nothing) in draft 7 vs 2020-12, or that
# give a schema an identity `$ref` could point at: their presence keeps `$schema`
# and rules out hoisting.
_DRAFT_SENSITIVE: Final = frozenset({
    "$ref", "$dynamicRef", "$dynamicAnchor", "$recursiveRef", "$recursiveAnchor", "$id", "id",
    "$anchor", "$vocabulary", "$defs", "definitions", "dependencies", "dependentSchemas",
    "dependentRequired", "additionalItems", "prefixItems", "unevaluatedItems",
    "unevaluatedProperties",
})
_MODERN_DRAFTS: Final = frozenset({
    "https://json-schema.org/draft/2020-12/schema", "https://json-schema.org/draft/2019-09/schema",
})
_DROPPABLE_DRAFTS: Final = _MODERN_DRAFTS | {"http://json-schema.org/draft-07/schema"}


def slim_tool(tool: Tool, dialect: str, *, hoist: bool = False) -> Tool:
    """`tool` with a slimmed schema, or `tool` itself when nothing would change.

    Only function tools are touched: built-in/server tools have no schema.
    `hoist=True` allows `$defs` hoisting where `dialect` is known to accept it; it
    is off by default because it seldom pays (about 0.1% of the tokens of a
    4,809-tool MCP/benchmark corpus) and adds a `$ref` indirection for the model.
    """
    if tool.parameters is None:
        return tool
    raw = tool.raw
    kind = raw.get("type")
    if kind not in (None, "function", "custom"):
        return tool
    function = raw.get("function")
    strict = (function if isinstance(function, dict) else raw).get("strict")
    # Omitted `strict` in Responses means "strict if the schema allows": keep the schema's
    # shape (and its `$schema`) exactly as the client sent it unless strict is off.
    loose = strict is False or (dialect != "openai-responses" and strict is not True)
    slimmed = slim_schema(
        tool.parameters,
        hoist=hoist and dialect in HOIST_DIALECTS and loose,
        drop_schema=dialect != "openai-responses" or strict is False,
    )
    if slimmed is tool.parameters:
        return tool
    return Tool(tool.name, tool.description, slimmed, raw)


def slim_schema(schema: JSON, *, hoist: bool, drop_schema: bool = True) -> JSON:
    """The slimmed schema, or `schema` itself when nothing would change."""
    result = _slim_text(json.dumps(schema, ensure_ascii=False), hoist, drop_schema)
    return schema if result is None else result


# Slimmed schemas ((None,): unchanged) by the digest of the schema's text and the two
# flags; keyed by digest so that a table of large schemas does not hold their texts too.
_SLIMMED: LRU[tuple[JSON | None]] = LRU(8192, CONTENT_BUDGET)


def _slim_text(text: str, hoist: bool, drop_schema: bool) -> JSON | None:
    key = (xxhash.xxh3_128_digest(text.encode("utf-8", "surrogatepass")), hoist, drop_schema)
    found = _SLIMMED.get(key)
    if found is None:
        result = _slimmed(text, hoist, drop_schema)
        # A slimmed copy is about the size of the text it came from; "unchanged" holds nothing.
        found = _SLIMMED.put(key, (result,), len(text) if result is not None else 0)
    return found[0]


def _slimmed(text: str, hoist: bool, drop_schema: bool) -> JSON | None:
    schema = json.loads(text)
    if not isinstance(schema, dict):
        return None
    keywords = _keywords(schema)
    drop_uri = (drop_schema and _draft_of(schema) in _DROPPABLE_DRAFTS
                and not keywords & _DRAFT_SENSITIVE and not _has_tuple_items(schema))
    cleaned = _clean(schema, None, drop_uri)
    if hoist and not keywords & _DRAFT_SENSITIVE and _draft_of(cleaned) in _MODERN_DRAFTS | {""}:
        cleaned = _hoisted(cleaned)
    return None if cleaned is schema else cleaned


def _draft_of(schema: JSON) -> str:
    uri = schema.get("$schema", "")
    return uri.rstrip("#") if isinstance(uri, str) else "?"


def _same_label(title: str, name: str) -> bool:
    a, b = fold(title), fold(name)
    return bool(a) and a == b


def _children(node: JSON, visit: Callable[[Any, str | None], Any]) -> JSON:
    """`node` with `visit(sub, property_name)` applied to each direct sub-schema.

    Copy-on-write: returns `node` itself when every visit returned its input.
    """
    out: JSON | None = None
    for key, value in node.items():
        new = _visit_keyword(key, value, visit)
        if new is not value:
            if out is None:
                out = dict(node)
            out[key] = new
    return node if out is None else out


def _visit_keyword(key: str, value: Any, visit: Callable[[Any, str | None], Any]) -> Any:
    if isinstance(value, dict):
        if key == "properties":
            return _map_values(value, visit)
        if key in _SCHEMA_MAPS or key == "dependencies":
            return _map_values(value, lambda sub, _: visit(sub, None))
        if key in _SCHEMA_ONE or key == "items":
            return visit(value, None)
    elif isinstance(value, list) and (key in _SCHEMA_LISTS or key == "items"):
        items = [visit(v, None) for v in value]
        if any(a is not b for a, b in zip(items, value, strict=True)):
            return items
    return value


def _map_values(mapping: JSON, visit: Callable[[Any, str], Any]) -> JSON:
    out: JSON | None = None
    for key, value in mapping.items():
        new = visit(value, key)
        if new is not value:
            if out is None:
                out = dict(mapping)
            out[key] = new
    return mapping if out is None else out


def _clean(node: Any, name: str | None, drop_uri: bool) -> Any:
    if not isinstance(node, dict):
        return node
    doomed = [
        key for key, value in node.items()
        if (key == "description" and isinstance(value, str) and not value.strip())
        or (key == "title" and name is not None and isinstance(value, str)
            and _same_label(value, name))
        or (key == "$schema" and drop_uri)
    ]
    kept = {k: v for k, v in node.items() if k not in doomed} if doomed else node
    out = _children(kept, lambda sub, prop: _clean(sub, prop, False))
    return node if out is kept and not doomed else out


def _keywords(node: Any, found: set[str] | None = None) -> set[str]:
    """Every keyword used at a schema position (not in data such as `enum` or `default`)."""
    found = set() if found is None else found
    if isinstance(node, dict):
        found.update(node)

        def visit(sub: Any, _: str | None) -> Any:
            _keywords(sub, found)
            return sub

        _children(node, visit)
    return found


def _has_tuple_items(node: Any) -> bool:
    hit = False

    def visit(sub: Any, _: str | None) -> Any:
        nonlocal hit
        if isinstance(sub, dict) and not hit:
            hit = isinstance(sub.get("items"), list)
            _children(sub, visit)
        return sub

    visit(node, None)
    return hit


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _canon(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _hoisted(schema: JSON) -> JSON:
    """`schema` with repeated sub-schemas moved to root `$defs`, if that is shorter."""
    root: JSON = schema
    defs: JSON = {}
    skip: set[str] = set()
    while True:
        counts: dict[str, int] = {}
        first: dict[str, Any] = {}
        _count(root, counts, first, top=True)
        for body in defs.values():
            _count(body, counts, first, top=True)
        best = max(
            (t for t, n in counts.items() if n >= 2 and len(t) >= MIN_HOIST_CHARS and t not in skip),
            key=lambda t: (len(t) * (counts[t] - 1), t), default=None,
        )
        if best is None:
            break
        body = first[best]
        name = _def_name(defs)
        ref = {"$ref": f"#/$defs/{name}"}
        saving = (counts[best] - 1) * len(best) - counts[best] * len(_compact(ref)) - len(name) - 4
        if saving < MIN_HOIST_SAVING:
            skip.add(best)
            continue
        root = _replace(root, best, ref)
        defs = {n: _replace(b, best, ref) for n, b in defs.items()}
        defs[name] = body
    if not defs:
        return schema
    out = {**root, "$defs": defs}
    return out if len(_compact(out)) < len(_compact(schema)) else schema


def _count(node: Any, counts: dict[str, int], first: dict[str, Any], *,
           top: bool = False) -> None:
    if not isinstance(node, dict):
        return
    if not top:
        text = _canon(node)
        counts[text] = counts.get(text, 0) + 1
        first.setdefault(text, node)

    def visit(sub: Any, _: str | None) -> Any:
        _count(sub, counts, first)
        return sub

    _children(node, visit)


def _replace(node: Any, text: str, ref: JSON) -> Any:
    """`node` with every sub-schema (not `node` itself) canonically equal to `text` replaced."""
    if not isinstance(node, dict):
        return node

    def visit(sub: Any, _: str | None) -> Any:
        if isinstance(sub, dict) and _canon(sub) == text:
            return ref
        return _replace(sub, text, ref)

    return _children(node, visit)


def _def_name(defs: JSON) -> str:
    # Neutral names: naming a shared shape after one property that uses it
    # (`"diseases": {"$ref": "#/$defs/genes"}`) would mislead the model.
    n = len(defs) + 1
    while f"d{n}" in defs:
        n += 1
    return f"d{n}"

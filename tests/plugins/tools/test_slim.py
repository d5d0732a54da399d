"""Lossless slimming, as properties over the real tool corpus: same meaning, never larger."""

from __future__ import annotations

import copy
import json
import random
import time
from typing import Any

import pytest
from jsonschema import Draft202012Validator, validators

from benchmarks.workload import load_jsonl
from tokenopt.dialects.anthropic_messages import AnthropicMessagesDialect
from tokenopt.dialects.base import Tool
from tokenopt.dialects.openai_chat import OpenAIChatDialect
from tokenopt.dialects.openai_responses import OpenAIResponsesDialect
from tokenopt.plugins.tools.slim import slim_schema, slim_tool

CORPUS = [row["input_schema"] for row in load_jsonl("tools.jsonl")]
SAMPLE = random.Random(20260).sample(CORPUS, 400)

MAPS = {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
ONE = {"additionalProperties", "additionalItems", "contains", "propertyNames", "not", "if",
       "then", "else", "unevaluatedItems", "unevaluatedProperties", "contentSchema"}
LISTS = {"allOf", "anyOf", "oneOf", "prefixItems"}


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def exact(value: Any) -> str:
    """Equality that tells 1 from 1.0 from True, and ignores key order."""
    return json.dumps(value, sort_keys=True)


def label(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def subschemas(node: dict[str, Any]) -> list[tuple[str, Any, str | None]]:
    """(keyword path, sub-schema, property name) for each direct sub-schema, written from the spec."""
    out: list[tuple[str, Any, str | None]] = []
    for key, value in node.items():
        if key in MAPS and isinstance(value, dict):
            out += [(f"{key}/{k}", v, k if key == "properties" else None) for k, v in value.items()]
        elif key == "dependencies" and isinstance(value, dict):
            out += [(f"{key}/{k}", v, None) for k, v in value.items() if isinstance(v, dict)]
        elif (key in ONE or key == "items") and isinstance(value, dict):
            out.append((key, value, None))
        elif (key in LISTS or key == "items") and isinstance(value, list):
            out += [(f"{key}/{i}", v, None) for i, v in enumerate(value)]
    return out


def resolve(node: Any, defs: dict[str, Any]) -> Any:
    """Inline every `#/$defs/...` reference the slimmer introduced."""
    if isinstance(node, dict):
        if set(node) == {"$ref"} and node["$ref"].startswith("#/$defs/"):
            return resolve(defs[node["$ref"][len("#/$defs/"):]], defs)
        return {k: resolve(v, defs) if k not in ("enum", "const", "default", "examples") else v
                for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, defs) for v in node]
    return node


def unhoist(original: dict[str, Any], slim: dict[str, Any]) -> dict[str, Any]:
    if "$defs" in slim and "$defs" not in original:
        defs = slim["$defs"]
        return resolve({k: v for k, v in slim.items() if k != "$defs"}, defs)
    return slim


def assert_only_annotations_removed(orig: Any, slim: Any, name: str | None = None,
                                    path: str = "#", *, ordered: bool = True) -> None:
    """Walk both: `slim` is `orig` minus removable annotation keys, keys in the same order.

    After hoisting, every use of a shared shape reads the first one's key order: `ordered=False`.
    """
    if not isinstance(orig, dict):
        assert exact(slim) == exact(orig), path
        return
    assert isinstance(slim, dict), path
    removed = [k for k in orig if k not in slim]
    assert not set(slim) - set(orig), f"{path}: added {set(slim) - set(orig)}"
    if ordered:
        assert list(slim) == [k for k in orig if k not in removed], f"{path}: key order changed"
    for key in removed:
        value = orig[key]
        assert (
            (key == "description" and isinstance(value, str) and not value.strip())
            or (key == "title" and name is not None and label(value) == label(name) != "")
            or (key == "$schema" and path == "#")
        ), f"{path}: removed {key}={value!r}"
    subs = {p: (s, n) for p, s, n in subschemas(orig)}
    slim_subs = {p: s for p, s, _ in subschemas(slim)}
    assert set(subs) == set(slim_subs), path
    for sub_path, (sub, prop) in subs.items():
        assert_only_annotations_removed(sub, slim_subs[sub_path], prop, f"{path}/{sub_path}",
                                        ordered=ordered)
    for key in slim:  # every non-schema member is data: byte-identical
        if not any(p == key or p.startswith(key + "/") for p in subs):
            assert exact(slim[key]) == exact(orig[key]), f"{path}/{key}"


# --- a deterministic instance generator: valid-ish instances, then broken ones ---


def generate(schema: Any, k: int, depth: int = 0) -> Any:
    if not isinstance(schema, dict) or depth > 8:
        return None
    if "const" in schema:
        return copy.deepcopy(schema["const"])
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return copy.deepcopy(schema["enum"][k % len(schema["enum"])])
    if k % 4 == 3 and "default" in schema:
        return copy.deepcopy(schema["default"])
    for comb in ("anyOf", "oneOf"):
        if isinstance(schema.get(comb), list) and schema[comb]:
            return generate(schema[comb][k % len(schema[comb])], k, depth + 1)
    if isinstance(schema.get("allOf"), list) and schema["allOf"]:
        return generate(schema["allOf"][0], k, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[k % len(kind)] if kind else None
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        required = schema.get("required") if isinstance(schema.get("required"), list) else []
        return {name: generate(sub, k + i, depth + 1) for i, (name, sub) in enumerate(props.items())
                if name in required or (k + i) % 2 == 0}
    if kind == "array":
        items = schema.get("items")
        count = max(int(schema.get("minItems", 0) or 0), k % 3)
        return [generate(items, k + i, depth + 1) for i in range(count)]
    if kind == "integer":
        low = schema.get("minimum", schema.get("exclusiveMinimum", -1))
        return int(low) + 1 + k if isinstance(low, (int, float)) else k
    if kind == "number":
        low = schema.get("minimum", 0)
        return (low if isinstance(low, (int, float)) else 0) + 0.5 * (k + 1)
    if kind == "boolean":
        return k % 2 == 0
    if kind == "null":
        return None
    return "x" * max(int(schema.get("minLength", 1) or 1), 1 + k % 3)


def broken(instance: Any, k: int) -> Any:
    """An instance nudged towards invalid: a key removed, a value of the wrong type, an extra key."""
    if isinstance(instance, dict) and instance:
        keys = list(instance)
        key = keys[k % len(keys)]
        out = dict(instance)
        if k % 3 == 0:
            del out[key]
        elif k % 3 == 1:
            out[key] = {"unexpected": [1]} if not isinstance(out[key], dict) else 7
        else:
            out["zz_extra"] = "?"
        return out
    return [None] if not isinstance(instance, list) else {"not": "an array"}


def instances(schema: dict[str, Any]) -> list[Any]:
    made = [generate(schema, k) for k in range(6)]
    return made + [broken(inst, k) for k, inst in enumerate(made)] + [{}, None, "text", 3]


def validator(schema: dict[str, Any]) -> Any:
    return validators.validator_for(schema, default=Draft202012Validator)(schema)


def schema_is_valid(schema: dict[str, Any]) -> bool:
    try:
        validators.validator_for(schema, default=Draft202012Validator).check_schema(schema)
    except Exception:  # noqa: BLE001 - any failure means "not a schema we can judge"
        return False
    return True


# --- synthetic schemas where hoisting applies: a real sub-schema used three times ---


def repeated(sub: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "first": sub,
            "many": {"type": "array", "items": copy.deepcopy(sub), "description": ""},
            "maybe": {"anyOf": [json.loads(json.dumps(sub, sort_keys=True)), {"type": "null"}]},
        },
        "required": ["first"],
    }


def object_subschemas(schema: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(schema, dict):
        for _, sub, _ in subschemas(schema):
            if isinstance(sub, dict):
                if sub.get("type") == "object" and len(compact(sub)) > 120:
                    found.append(sub)
                found += object_subschemas(sub)
    return found


SYNTHETIC = [repeated(sub) for schema in CORPUS for sub in object_subschemas(schema)
             if "$ref" not in compact(sub)][:120]


@pytest.mark.parametrize("hoist", [False, True])
def test_whole_corpus_never_larger_only_annotations_removed_and_idempotent(hoist: bool) -> None:
    changed = 0
    for schema in CORPUS + SYNTHETIC:
        before = compact(schema)
        slim = slim_schema(schema, hoist=hoist)
        assert compact(schema) == before, "the input must not be edited"
        assert len(compact(slim)) <= len(before)
        assert_only_annotations_removed(schema, unhoist(schema, slim),
                                        ordered="$defs" not in slim or "$defs" in schema)
        again = slim_schema(slim, hoist=hoist)
        assert again is slim and compact(again) == compact(slim)
        changed += slim is not schema
    assert changed > 1000  # the corpus has real slack: titles, blank descriptions, $schema


def test_hoisting_happens_and_pays_on_repeated_subschemas() -> None:
    hoisted = [s for s in SYNTHETIC if "$defs" in slim_schema(s, hoist=True)]
    assert len(hoisted) > len(SYNTHETIC) // 2
    for schema in hoisted:
        assert len(compact(slim_schema(schema, hoist=True))) < len(
            compact(slim_schema(schema, hoist=False)))


@pytest.mark.parametrize("hoist", [False, True])
def test_same_instances_valid_under_original_and_slimmed(hoist: bool) -> None:
    judged = valid = 0
    for schema in SAMPLE + SYNTHETIC[:60]:
        slim = slim_schema(schema, hoist=hoist)
        if not schema_is_valid(schema):
            continue
        assert schema_is_valid(slim), compact(slim)[:300]
        if slim is schema:
            continue
        original, slimmed = validator(schema), validator(slim)
        for instance in instances(schema):
            ok = original.is_valid(instance)
            assert slimmed.is_valid(instance) == ok, (compact(schema)[:300], instance)
            judged += 1
            valid += ok
    assert judged > 2000 and valid > judged // 5  # the generator does reach valid instances


def test_draft7_schema_uri_dropped_only_when_the_drafts_agree() -> None:
    draft7 = "http://json-schema.org/draft-07/schema#"
    plain = {"$schema": draft7, "type": "object", "properties": {"a": {"type": "string"}}}
    assert "$schema" not in slim_schema(plain, hoist=False)
    assert slim_schema(plain, hoist=False, drop_schema=False) is plain
    # Draft 7 ignores `$ref` siblings and reads array `items` as a tuple: keep the URI.
    for sensitive in ({"a": {"$ref": "#/definitions/x", "minLength": 2}},
                      {"a": {"type": "array", "items": [{"type": "string"}]}}):
        schema = {**plain, "properties": sensitive, "definitions": {"x": {"type": "string"}}}
        assert slim_schema(schema, hoist=True).get("$schema") == draft7
    draft4 = {**plain, "$schema": "http://json-schema.org/draft-04/schema#"}
    assert slim_schema(draft4, hoist=False) is draft4


def test_keyword_named_properties_and_data_are_never_touched() -> None:
    schema = {
        "type": "object",
        "title": "Root",
        "properties": {
            "title": {"type": "string", "title": "Title", "description": "  "},
            "$schema": {"type": "string", "description": ""},
            "description": {"type": "string", "title": "A different label"},
            "file_path": {"type": "string", "title": "File Path"},
            "mode": {"enum": ["", "title"], "default": {"title": "mode", "description": ""},
                     "examples": [{"$schema": "x"}], "const": {"description": " "}},
        },
        "required": ["title", "description"],
        "x-meta": {"title": "title", "description": ""},
    }
    slim = slim_schema(schema, hoist=True)
    assert list(slim["properties"]) == ["title", "$schema", "description", "file_path", "mode"]
    assert slim["properties"]["title"] == {"type": "string"}
    assert slim["properties"]["$schema"] == {"type": "string"}
    assert slim["properties"]["description"]["title"] == "A different label"
    assert slim["properties"]["file_path"] == {"type": "string"}
    assert slim["properties"]["mode"] == schema["properties"]["mode"]
    assert slim["title"] == "Root" and slim["x-meta"] == schema["x-meta"]
    assert slim["required"] == ["title", "description"]


def test_never_hoists_around_existing_references_or_identities() -> None:
    big = {"type": "object", "properties": {f"field_{i}": {"type": "string", "description": "d" * 20}
                                            for i in range(4)}}
    for extra in ({"$defs": {"x": {"type": "string"}}}, {"definitions": {}},
                  {"$id": "urn:x"}, {"properties": {"p": {"$anchor": "p"}}},
                  {"properties": {"q": {"$ref": "#/properties/a"}}}):
        schema: dict[str, Any] = {"type": "object", "properties": {"a": big, "b": copy.deepcopy(big)}}
        for key, value in extra.items():
            schema[key] = {**schema[key], **value} if key == "properties" else value
        assert slim_schema(schema, hoist=True) is schema
    plain = {"type": "object", "properties": {"a": big, "b": copy.deepcopy(big)}}
    assert slim_schema(plain, hoist=True)["properties"]["b"] == {"$ref": "#/$defs/d1"}


def test_memoised_by_text_and_cheap() -> None:
    changing = next(s for s in CORPUS if slim_schema(s, hoist=False) is not s)
    first = slim_schema(copy.deepcopy(changing), hoist=False)
    assert slim_schema(copy.deepcopy(changing), hoist=False) is first  # one slimming per text
    slim_all = [slim_schema(s, hoist=True) for s in CORPUS]  # warm
    start = time.perf_counter()
    slim_all = [slim_schema(s, hoist=True) for s in CORPUS]
    assert len(slim_all) == len(CORPUS) and time.perf_counter() - start < 1.0


# --- slim_tool: identity, built-ins, dialect and strict gating, written back by the dialect ---

REPEATED = repeated({"type": "object", "title": "Item", "properties": {
    name: {"type": "string", "description": f"The {name} of the thing being described here."}
    for name in ("name", "kind", "owner")}})
DRAFT7 = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
          "properties": {"path": {"type": "string", "title": "Path"}}}


def test_slim_tool_returns_the_same_object_when_nothing_changes() -> None:
    lean = {"type": "object", "properties": {"q": {"type": "string", "description": "query"}}}
    tool = Tool("search", "Search.", lean, {"name": "search", "input_schema": lean})
    assert slim_tool(tool, "anthropic-messages", hoist=True) is tool
    builtin = Tool("web_search", None, None, {"type": "web_search_20250305", "name": "web_search"})
    assert slim_tool(builtin, "anthropic-messages") is builtin
    typed = Tool("bash", None, DRAFT7, {"type": "bash_20250124", "name": "bash"})
    assert slim_tool(typed, "anthropic-messages") is typed


@pytest.mark.parametrize(("dialect", "raw", "hoisted", "uri_dropped"), [
    ("anthropic-messages", {"name": "t"}, True, True),
    ("anthropic-messages", {"name": "t", "strict": True}, False, True),
    ("openai-responses", {"type": "function", "name": "t", "strict": False}, True, True),
    ("openai-responses", {"type": "function", "name": "t"}, False, False),
    ("openai-responses", {"type": "function", "name": "t", "strict": True}, False, False),
    ("openai-chat", {"type": "function", "function": {"name": "t"}}, False, True),
    ("openai-chat", {"type": "function", "function": {"name": "t", "strict": True}}, False, True),
])
def test_hoisting_and_schema_uri_follow_dialect_and_strict(
    dialect: str, raw: dict[str, Any], hoisted: bool, uri_dropped: bool,
) -> None:
    tool = Tool("t", "A tool.", REPEATED, raw)
    assert ("$defs" in slim_tool(tool, dialect, hoist=True).parameters) is hoisted  # type: ignore[operator]
    assert "$defs" not in slim_tool(tool, dialect).parameters  # type: ignore[operator]
    with_uri = Tool("t", "A tool.", DRAFT7, raw)
    slimmed = slim_tool(with_uri, dialect).parameters
    assert slimmed is not None and ("$schema" not in slimmed) is uri_dropped
    assert "title" not in slimmed["properties"]["path"]


@pytest.mark.parametrize("dialect", [OpenAIChatDialect(), OpenAIResponsesDialect(),
                                     AnthropicMessagesDialect()])
def test_slimmed_tools_are_written_back_and_others_left_byte_for_byte(dialect: Any) -> None:
    schema = copy.deepcopy(DRAFT7)
    lean = {"type": "object", "properties": {"q": {"type": "string"}}}
    if dialect.name == "openai-chat":
        tools = [{"type": "function", "function": {"name": "a", "description": "A.", "parameters": schema}},
                 {"type": "function", "function": {"name": "b", "description": "B.", "parameters": lean}}]
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": tools}
    elif dialect.name == "openai-responses":
        tools = [{"type": "function", "name": "a", "description": "A.", "parameters": schema,
                  "strict": False},
                 {"type": "function", "name": "b", "description": "B.", "parameters": lean},
                 {"type": "web_search"}]
        body = {"model": "m", "input": "hi", "tools": tools}
    else:
        tools = [{"name": "a", "description": "A.", "input_schema": schema},
                 {"name": "b", "description": "B.", "input_schema": lean},
                 {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}]
        body = {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "hi"}],
                "tools": tools}
    sent = json.dumps(body)
    view = dialect.parse(body, tenant="t", headers={})
    view.tools = [slim_tool(t, dialect.name) for t in view.tools]
    out = dialect.render(view)
    assert json.dumps(body) == sent  # the client body is never edited
    assert out is not None
    first = out["tools"][0].get("function", out["tools"][0])
    written = first.get("parameters", first.get("input_schema"))
    assert written == {"type": "object", "properties": {"path": {"type": "string"}}}
    for new, old in zip(out["tools"][1:], tools[1:], strict=True):
        assert new is old


def test_long_titles_are_compared_but_never_cached_and_large_schemas_fit_the_budget(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tokenopt.plugins.tools import slim
    from tokenopt.tools.text import fold

    name = "p" * 200
    schema = {"type": "object", "properties": {name: {"type": "string", "title": name.upper()}}}
    before = fold.cache_info().currsize
    assert slim_schema(schema, hoist=False) == {
        "type": "object", "properties": {name: {"type": "string"}}}
    assert fold.cache_info().currsize == before  # 200 characters: not kept
    monkeypatch.setattr(slim._SLIMMED, "max_bytes", 1000)
    slim._SLIMMED.clear()
    big = {"type": "object", "properties": {"q": {"type": "string", "title": "Q",
                                                  "description": "d" * 2000}}}
    assert "title" not in slim_schema(big, hoist=False)["properties"]["q"]  # still slimmed
    assert len(slim._SLIMMED) == 0  # larger than the whole budget: returned, not kept
    assert "title" not in slim_schema(schema, hoist=False)["properties"][name]
    assert len(slim._SLIMMED) == 1 and slim._SLIMMED.size <= 1000

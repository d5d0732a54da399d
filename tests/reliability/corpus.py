"""Hostile request bodies: a fixed corpus of nasty cases and hypothesis strategies.

Each case is (name, route, raw bytes) and carries what tokenopt promises for it
(`Expect`): the request is forwarded as sent, or refused with a 4xx in the
client's dialect. SECURITY.md's table of bad input is this module in prose.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

from hypothesis import strategies as st

CHAT: dict[str, Any] = {
    "model": "gpt-4.1", "stream": False, "max_completion_tokens": 64, "reasoning_effort": "high",
    "tool_choice": "auto", "stream_options": {"include_usage": True},
    "messages": [
        {"role": "system", "content": "You are helpful. Today is 2026-12-03T08:00:00Z."},
        {"role": "user", "content": [{"type": "text", "text": "weather in Paris?"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ],
    "tools": [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
}
RESPONSES: dict[str, Any] = {
    "model": "gpt-4.1", "instructions": "Be brief. Session 3f2b8c1e-0d4a-4a8e-9c1f-2b7d6e5a4c3b.",
    "input": [{"role": "user", "content": [{"type": "input_text", "text": "weather in Paris?"}]}],
    "tools": [{"type": "function", "name": "get_weather", "description": "Weather",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}],
    "reasoning": {"effort": "high"}, "max_output_tokens": 64, "stream": False,
    "tool_choice": "auto", "prompt_cache_key": "k",
}
MESSAGES: dict[str, Any] = {
    "model": "claude-sonnet-4-6", "max_tokens": 4096, "stream": False,
    "system": [{"type": "text", "text": "You are helpful. Now: 2026-12-03 08:00.",
                "cache_control": {"type": "ephemeral"}}],
    "thinking": {"type": "enabled", "budget_tokens": 3000},
    "output_config": {"effort": "high"}, "tool_choice": {"type": "auto"},
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "weather in Paris?"}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "call it", "signature": "sig"},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "P"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
    ],
    "tools": [{"name": "get_weather", "description": "Weather for a city",
               "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
}
VALID: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": CHAT, "/v1/responses": RESPONSES, "/v1/messages": MESSAGES,
}

# The fields each dialect (and the plugins through the view) reads, as paths into VALID.
Path = tuple[str | int, ...]
FIELDS: dict[str, tuple[Path, ...]] = {
    "/v1/chat/completions": (
        ("model",), ("stream",), ("stream_options",), ("stream_options", "include_usage"),
        ("max_completion_tokens",), ("max_tokens",), ("reasoning_effort",), ("tool_choice",),
        ("messages",), ("messages", 0), ("messages", 0, "role"), ("messages", 0, "content"),
        ("messages", 1, "content"), ("messages", 1, "content", 0), ("messages", 1, "content", 0, "text"),
        ("messages", 2, "tool_calls"), ("messages", 2, "tool_calls", 0, "function"),
        ("messages", 2, "tool_calls", 0, "function", "name"), ("tools",), ("tools", 0),
        ("tools", 0, "type"), ("tools", 0, "function"), ("tools", 0, "function", "name"),
        ("tools", 0, "function", "description"), ("tools", 0, "function", "parameters"),
        ("tools", 0, "function", "parameters", "properties"), ("prompt_cache_key",),
    ),
    "/v1/responses": (
        ("model",), ("stream",), ("instructions",), ("input",), ("input", 0),
        ("input", 0, "role"), ("input", 0, "content"), ("input", 0, "content", 0),
        ("input", 0, "content", 0, "text"), ("tools",), ("tools", 0), ("tools", 0, "name"),
        ("tools", 0, "description"), ("tools", 0, "parameters"), ("reasoning",),
        ("reasoning", "effort"), ("max_output_tokens",), ("tool_choice",), ("prompt_cache_key",),
    ),
    "/v1/messages": (
        ("model",), ("max_tokens",), ("stream",), ("system",), ("system", 0),
        ("system", 0, "text"), ("system", 0, "cache_control"), ("thinking",),
        ("thinking", "type"), ("thinking", "budget_tokens"), ("output_config",),
        ("output_config", "effort"), ("tool_choice",), ("messages",), ("messages", 0),
        ("messages", 0, "role"), ("messages", 0, "content"), ("messages", 0, "content", 0),
        ("messages", 0, "content", 0, "type"), ("messages", 0, "content", 0, "text"),
        ("messages", 1, "content", 1, "input"), ("messages", 2, "content", 0, "content"),
        ("tools",), ("tools", 0), ("tools", 0, "name"), ("tools", 0, "description"),
        ("tools", 0, "input_schema"), ("tools", 0, "cache_control"), ("cache_control",),
    ),
}
WRONG_VALUES: tuple[Any, ...] = (
    None, True, False, 0, -1, 2**70, 1.5, "", "x", [], [None], [1, "a"], {}, {"a": None},
)


class Expect(Enum):
    FORWARDED = "forwarded unchanged; the upstream answers"
    PASSED = "optimised and forwarded (a body tokenopt reads)"
    REFUSED = "refused with a 4xx in the client's dialect"


@dataclass(frozen=True)
class Case:
    name: str
    route: str
    body: bytes
    expect: Expect


def encode(body: Any) -> bytes:
    # surrogatepass: a lone surrogate in a Python str becomes invalid UTF-8 on the wire.
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")


def replaced(body: dict[str, Any], path: Path, value: Any) -> dict[str, Any]:
    copied = copy.deepcopy(body)
    node: Any = copied
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return copied


def nested(depth: int, leaf: Any = None, *, kind: str = "array") -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if kind == "array" else {"a": value}
    return value


def nested_bytes(route: str, depth: int, *, kind: str = "array") -> bytes:
    """The route's body with its messages replaced by `depth` nested arrays (or objects).

    Built as text: the json module itself cannot serialise that many levels.
    """
    body = encode(replaced(VALID[route], (_messages_key(route),), "__DEEP__"))
    deep = b"[" * depth + b"]" * depth if kind == "array" else b'{"a":' * depth + b"1" + b"}" * depth
    return body.replace(b'"__DEEP__"', deep)


def tools_for(route: str, count: int, *, same_name: bool = False) -> list[dict[str, Any]]:
    def one(i: int) -> dict[str, Any]:
        name = "dup" if same_name else f"tool_{i}"
        schema = {"type": "object", "properties": {"q": {"type": "string"}}}
        if route == "/v1/chat/completions":
            return {"type": "function", "function": {"name": name, "description": f"tool {i}",
                                                     "parameters": schema}}
        if route == "/v1/responses":
            return {"type": "function", "name": name, "description": f"tool {i}", "parameters": schema}
        return {"name": name, "description": f"tool {i}", "input_schema": schema}

    return [one(i) for i in range(count)]


def _syntax_cases(route: str) -> Iterator[Case]:
    valid = encode(VALID[route])
    fixed = {
        "empty": b"", "whitespace": b"  \n", "null": b"null", "array": b"[]", "string": b'"x"',
        "number": b"1", "open_brace": b"{", "not_json": b"{not json", "trailing_garbage": valid + b"}x",
        "bom": b"\xef\xbb\xbf" + valid, "nan": valid.replace(b'"stream": false', b'"stream": NaN'),
        "duplicate_keys": valid[:-1] + b', "model": "other", "model": 7}',
        "nul_bytes": valid.replace(b"Paris", b"Pa\x00ris"),
    }
    # Readable all the same: the last duplicate wins, NaN is read (and written as null).
    readable = {"duplicate_keys", "nan"}
    for name, body in fixed.items():
        yield Case(f"syntax/{name}", route, body,
                   Expect.PASSED if name in readable else Expect.FORWARDED)
    for cut in (1, len(valid) // 3, len(valid) // 2, len(valid) - 1):
        yield Case(f"truncated/{cut}", route, valid[:cut], Expect.FORWARDED)
    for depth in (5_000, 100_000):
        yield Case(f"deep/arrays_{depth}", route, nested_bytes(route, depth), Expect.FORWARDED)
    yield Case("deep/objects_5000", route, nested_bytes(route, 5_000, kind="object"),
               Expect.FORWARDED)
    # Just under what the parser takes: every recursive walk after it must cope too.
    for depth in (200, 900):
        deep_tool = replaced(VALID[route], ("tools", 0, "description" if route != "/v1/chat/completions"
                                            else "function"), nested(depth))
        yield Case(f"deep/readable_{depth}_in_a_tool", route, encode(deep_tool), Expect.PASSED)
        yield Case(f"deep/readable_{depth}_in_a_message", route,
                   encode(replaced(VALID[route], (_messages_key(route), 0, "content"),
                                   nested(depth, {"type": "text", "text": "x"}))), Expect.PASSED)


def _messages_key(route: str) -> str:
    return "input" if route == "/v1/responses" else "messages"


def _text_path(route: str) -> Path:
    return (_messages_key(route), 1 if route == "/v1/chat/completions" else 0, "content", 0, "text")


def _encoding_cases(route: str) -> Iterator[Case]:
    valid = encode(VALID[route])
    raw_bytes = {"invalid_utf8": b"\xff\xfe\xfd", "overlong": b"\xc0\xaf", "truncated_seq": b"\xe2\x98",
                 "cesu_surrogate": b"\xed\xa0\x80"}
    for name, raw in raw_bytes.items():
        yield Case(f"utf8/{name}", route, valid.replace(b"Paris", raw), Expect.FORWARDED)
    escaped = {"lone_high": "\\ud800", "lone_low": "\\udfff", "reversed_pair": "\\udc00\\ud800"}
    for name, text in escaped.items():
        yield Case(f"utf8/escaped_{name}", route, valid.replace(b"Paris", text.encode()),
                   Expect.PASSED)
        model = valid.replace(encode(VALID[route]["model"]), f'"m{text}"'.encode(), 1)
        yield Case(f"utf8/escaped_{name}_in_model", route, model, Expect.PASSED)


def _wrong_type_cases(route: str) -> Iterator[Case]:
    for path in FIELDS[route]:
        for value in WRONG_VALUES:
            name = "wrong_type/" + ".".join(map(str, path)) + "=" + json.dumps(value)[:20]
            yield Case(name, route, encode(replaced(VALID[route], path, value)), Expect.PASSED)


def _size_cases(route: str) -> Iterator[Case]:
    tools = ("tools",)
    yield Case("tools/10000", route, encode(replaced(VALID[route], tools, tools_for(route, 10_000))),
               Expect.PASSED)
    yield Case("tools/10001", route, encode(replaced(VALID[route], tools, tools_for(route, 10_001))),
               Expect.REFUSED)
    yield Case("tools/duplicate_names", route,
               encode(replaced(VALID[route], tools, tools_for(route, 50, same_name=True))),
               Expect.PASSED)
    yield Case("tools/identical_twice", route,
               encode(replaced(VALID[route], tools, VALID[route]["tools"] * 2)), Expect.PASSED)
    yield Case("size/huge_text", route, encode(replaced(VALID[route], _text_path(route),
                                                        "word 2026-12-03 " * 200_000)), Expect.PASSED)
    yield Case("size/huge_tool_description", route,
               encode(replaced(VALID[route], tools, [{**tools_for(route, 1)[0], "description": "d" * 2_000_000}])),
               Expect.PASSED)
    yield Case("size/huge_number", route, encode(replaced(VALID[route], ("model",), "m"))[:-1]
               + b', "seed": ' + b"9" * 5000 + b"}", Expect.FORWARDED)


def _unknown_cases(route: str) -> Iterator[Case]:
    key = _messages_key(route)
    index = 1 if route == "/v1/chat/completions" else 0
    block = {"type": "hologram", "payload": {"x": 1}}
    yield Case("unknown/block_type", route,
               encode(replaced(VALID[route], (key, index, "content"), [block])), Expect.PASSED)
    for role in ("wizard", "", "system", "tool", "developer"):
        yield Case(f"unknown/role_{role or 'empty'}", route,
                   encode(replaced(VALID[route], (key, index, "role"), role)), Expect.PASSED)
    yield Case("unknown/top_level_field", route,
               encode({**VALID[route], "frobnicate": {"x": [1, 2]}}), Expect.PASSED)
    yield Case("unknown/tool_type", route,
               encode(replaced(VALID[route], ("tools", 0), {"type": "hologram_2030"})), Expect.PASSED)


def _tools_reader_cases(route: str) -> Iterator[Case]:
    """Wrong-typed fields the tools plugin reads beyond the dialect, which once failed it open.

    Each is what the dialect's reader defines: a non-string tool `type` is no known type,
    a `function` that is not an object names no tool. Found by benchmarks/fuzz.py (116 of
    11,197 cases: `unhashable type`, `'list' object has no attribute 'get'`).
    """
    kinds: tuple[Any, ...] = ([], {}, [None])
    for kind in kinds:
        yield Case(f"wrong_type/tools_reader/tool_type={json.dumps(kind)}", route,
                   encode(replaced(VALID[route], ("tools", 0, "type"), kind)), Expect.PASSED)
    for choice in ({"type": "function", "function": "x"}, {"type": "function", "function": [1]},
                   {"type": "allowed_tools", "tools": [{"type": "function", "function": 7}]}):
        yield Case(f"wrong_type/tools_reader/tool_choice={json.dumps(choice)}", route,
                   encode(replaced(VALID[route], ("tool_choice",), choice)), Expect.PASSED)
    if route == "/v1/chat/completions":
        functions: tuple[Any, ...] = (1, "x", [None], True)
        for function in functions:
            yield Case(f"wrong_type/tools_reader/tool_call_function={json.dumps(function)}", route,
                       encode(replaced(VALID[route], ("messages", 2, "tool_calls", 0, "function"),
                                       function)), Expect.PASSED)


@functools.cache
def nasty_cases() -> tuple[Case, ...]:
    """The fixed corpus: every class of bad input, for every route (built once: 26 MB)."""
    return tuple(case for route in VALID for make in (
        _syntax_cases, _encoding_cases, _wrong_type_cases, _tools_reader_cases, _size_cases,
        _unknown_cases)
        for case in make(route))


# --- hypothesis: generated bodies -------------------------------------------------

# Text with what breaks naive code: surrogates, NUL, RTL marks, astral characters.
texts = st.text(st.characters(codec=None, categories=None), max_size=40) | st.sampled_from(
    ["", "\ud800", "\x00", "\u202e", "\U0001f600", "2026-12-03T08:00:00Z", "a-" * 30,
     "3f2b8c1e-0d4a-4a8e-9c1f-2b7d6e5a4c3b"])
scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | texts)
json_values = st.recursive(scalars, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(texts, children, max_size=4), max_leaves=20)


@st.composite
def mutated_bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid body of a random route with fields replaced, added, or its bytes broken."""
    route = draw(st.sampled_from(sorted(VALID)))
    body: Any = copy.deepcopy(VALID[route])
    for path in draw(st.lists(st.sampled_from(FIELDS[route]), max_size=4)):
        try:
            body = replaced(body, path, draw(json_values))
        except (KeyError, IndexError, TypeError):
            pass  # an earlier replacement removed the parent: nothing to replace
    if draw(st.booleans()):
        extra = draw(st.dictionaries(texts, json_values, max_size=3))
        body = {**body, **extra}
    raw = encode(body)
    damage = draw(st.sampled_from(["none", "none", "none", "truncate", "flip", "insert"]))
    if damage == "truncate":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif damage in ("flip", "insert") and raw:
        at = draw(st.integers(0, len(raw) - 1))
        byte = bytes([draw(st.integers(0, 255))])
        raw = raw[:at] + byte + raw[at + (1 if damage == "flip" else 0):]
    return route, raw

"""Canonical tools, as properties: idempotent, order-insensitive, meaning-preserving."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.prefix_cache import shuffled_keys
from benchmarks.workload import load_jsonl
from tokenopt.dialects.base import Tool
from tokenopt.plugins.normalize.canonical import canonical, canonical_text, canonical_tools

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6), children, max_size=5),
    max_leaves=25,
)
REAL_TOOLS = load_jsonl("tools.jsonl")[:400]


def tool(raw: dict[str, Any]) -> Tool:
    return Tool(str(raw.get("name")), raw.get("description"), raw.get("input_schema"), raw)


@given(JSON_VALUES)
def test_canonical_is_idempotent_and_keeps_meaning(value: Any) -> None:
    once = canonical(value)
    assert canonical(once) == once and repr(canonical(once)) == repr(once)
    # Meaning: the same JSON value; only object key order may differ.
    assert json.loads(json.dumps(once)) == json.loads(json.dumps(value))


@given(st.lists(st.sampled_from(REAL_TOOLS), min_size=1, max_size=12, unique_by=lambda t: t["id"]),
       st.randoms(use_true_random=False))
@settings(max_examples=60)
def test_a_tool_set_gives_the_same_bytes_in_any_order_and_key_order(
    tools: list[dict[str, Any]], rng: random.Random
) -> None:
    shuffled = [shuffled_keys(t, rng) for t in tools]
    rng.shuffle(shuffled)

    first = canonical_tools([tool(t) for t in tools])
    second = canonical_tools([tool(t) for t in shuffled])

    assert [json.dumps(t.raw) for t in first] == [json.dumps(t.raw) for t in second]
    # Nothing lost or changed: the same schemas, compared after key sorting.
    assert sorted(canonical_text(t.raw) for t in first) == sorted(canonical_text(t) for t in tools)
    assert canonical_tools(first) == first  # idempotent on tool lists too
    assert all(t.parameters == t.raw.get("input_schema") for t in first)


def test_cache_markers_are_not_part_of_a_canonical_tool() -> None:
    marked = {"name": "a", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}
    (out,) = canonical_tools([tool(marked)])
    assert "cache_control" not in out.raw

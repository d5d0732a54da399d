"""Prompt segments and the simulated model's deterministic choices."""

from __future__ import annotations

from tokenopt.sim.prompt import Prompt
from tokenopt.sim.reply import Ask, minimal_value, plan_reply, words
from tokenopt.tokens import TokenCounter

COUNTER = TokenCounter()


def test_segments_run_tools_then_system_then_messages_without_cache_markers() -> None:
    tool = {"name": "b", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}
    system = {"type": "text", "text": "Rules.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    prompt = Prompt.build("/v1/messages", "claude-sonnet-4-6", COUNTER, tools=[tool],
                          system=[system], messages=[{"role": "user", "content": "hi"}])
    assert [(s.kind, s.text, s.breakpoint) for s in prompt.segments] == [
        ("tool", '{"name":"b","input_schema":{"type":"object"}}', "5m"),
        ("system", "Rules.", "1h"),
        ("message", "user\nhi", None),
    ]
    assert prompt.tokens == sum(COUNTER.count(s.text) for s in prompt.segments)


def test_tool_key_order_changes_the_bytes_but_not_much_the_count() -> None:
    a = Prompt.build("/v1/responses", "gpt-5", COUNTER, tools=[{"name": "t", "type": "function"}])
    b = Prompt.build("/v1/responses", "gpt-5", COUNTER, tools=[{"type": "function", "name": "t"}])
    assert a.segments[0].text != b.segments[0].text


def test_message_parts_and_extra_fields_are_tokenised() -> None:
    message = {"role": "assistant", "content": [{"type": "text", "text": "ok"}],
               "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}]}
    [segment] = Prompt.build("/v1/chat/completions", "gpt-4o", COUNTER, messages=[message]).segments
    assert segment.text.startswith("assistant\nok\n") and '"tool_calls"' in segment.text


def test_minimal_values_satisfy_common_schemas() -> None:
    schema = {"type": "object", "required": ["a", "b", "c", "d", "e"], "properties": {
        "a": {"type": "array", "items": {"type": "integer", "exclusiveMinimum": 3}, "minItems": 1},
        "b": {"anyOf": [{"type": "boolean"}, {"type": "string"}]},
        "c": {"type": ["null", "string"], "minLength": 3},
        "d": {"const": 7},
        "e": {"type": "object"},
        "optional": {"type": "string"}}}
    assert minimal_value(schema) == {"a": [4], "b": False, "c": "xxx", "d": 7, "e": {}}


def test_words_are_one_token_each_and_stable() -> None:
    assert words(b"seed", 40) == words(b"seed", 40) != words(b"other", 40)
    assert COUNTER.count(words(b"seed", 40)) == 40


def test_reasoning_beyond_the_cap_leaves_no_visible_text() -> None:
    ask = Ask(model="gpt-5", stream=False, cap=50, reasoning_tokens=256)
    reply = plan_reply(ask, b"seed", COUNTER, 24)
    assert (reply.reasoning_tokens, reply.text, reply.truncated) == (50, "", True)

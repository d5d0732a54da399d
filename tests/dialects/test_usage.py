"""Usage read from JSON bodies and SSE streams, in each provider's own shape."""

from __future__ import annotations

import json

from tokenopt._sse import SSEParser
from tokenopt.dialects import (
    AnthropicMessagesDialect,
    OpenAIChatDialect,
    OpenAIResponsesDialect,
    Usage,
)


def sse(*events: tuple[str | None, object]) -> list:
    raw = b"".join(
        (f"event: {name}\n".encode() if name else b"")
        + b"data: " + (data if isinstance(data, bytes) else json.dumps(data).encode()) + b"\n\n"
        for name, data in events
    )
    return SSEParser().feed(raw)


def test_chat_usage_from_json() -> None:
    body = {"usage": {"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
                      "prompt_tokens_details": {"cached_tokens": 1920, "cache_write_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 12}}}
    assert OpenAIChatDialect().usage_from_json(body) == Usage(
        input_tokens=2006, cached_input_tokens=1920, output_tokens=300, reasoning_tokens=12
    )


def test_chat_stream_usage_chunk_is_dropped_only_when_tokenopt_asked_for_it() -> None:
    events = sse(
        (None, {"choices": [{"index": 0, "delta": {"content": "Hi"}}], "usage": None}),
        (None, {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 5}}),
        (None, b"[DONE]"),
    )
    for strip in (True, False):
        tap = OpenAIChatDialect().usage_tap(strip_usage_event=strip)
        relayed = [tap.feed(event) for event in events]
        assert [seen is not None for seen in relayed] == [True, not strip, True]
        assert tap.usage == Usage(input_tokens=12, output_tokens=5)
        assert tap.complete
        first = relayed[0]
        assert first is not None
        # The `"usage":null` member goes too when the client never asked for usage.
        assert json.loads(first.data) == (
            {"choices": [{"index": 0, "delta": {"content": "Hi"}}]} if strip
            else {"choices": [{"index": 0, "delta": {"content": "Hi"}}], "usage": None}
        )
        assert first.raw.decode().startswith("data: ") and (first.raw == events[0].raw) != strip


def test_null_usage_is_removed_wherever_it_sits_and_only_as_a_member() -> None:
    raw = (b'data: {"usage" : null, "id":"x","choices":[{"delta":{"content":"\\"usage\\":null,"}}]}'
           b"\n\n")
    tap = OpenAIChatDialect().usage_tap(strip_usage_event=True)
    (event,) = SSEParser().feed(raw)
    seen = tap.feed(event)
    assert seen is not None
    assert json.loads(seen.raw[6:]) == {"id": "x", "choices": [{"delta": {"content": '"usage":null,'}}]}


def test_chat_injection_is_wanted_only_for_streams_without_include_usage() -> None:
    dialect = OpenAIChatDialect()
    assert dialect.wants_usage_injection({"stream": True})
    assert dialect.wants_usage_injection({"stream": True, "stream_options": {"include_obfuscation": False}})
    assert not dialect.wants_usage_injection({"stream": True, "stream_options": {"include_usage": True}})
    assert not dialect.wants_usage_injection({"stream": False})


def test_responses_usage_from_the_completed_event() -> None:
    usage = {"input_tokens": 2006, "output_tokens": 300, "total_tokens": 2306,
             "input_tokens_details": {"cached_tokens": 1920},
             "output_tokens_details": {"reasoning_tokens": 64}}
    events = sse(
        ("response.created", {"type": "response.created", "response": {"usage": None}}),
        ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "usage"}),
        ("response.completed", {"type": "response.completed", "response": {"usage": usage}}),
    )
    tap = OpenAIResponsesDialect().usage_tap(strip_usage_event=False)
    assert [tap.feed(event) for event in events] == events
    expected = Usage(input_tokens=2006, cached_input_tokens=1920, output_tokens=300, reasoning_tokens=64)
    assert tap.usage == expected and tap.complete
    assert OpenAIResponsesDialect().usage_from_json({"usage": usage}) == expected


def test_anthropic_whole_prompt_adds_cache_reads_and_writes() -> None:
    body = {"usage": {"input_tokens": 50, "cache_creation_input_tokens": 248,
                      "cache_read_input_tokens": 100000,
                      "cache_creation": {"ephemeral_5m_input_tokens": 148, "ephemeral_1h_input_tokens": 100},
                      "output_tokens": 503, "output_tokens_details": {"thinking_tokens": 120}}}
    assert AnthropicMessagesDialect().usage_from_json(body) == Usage(
        input_tokens=100298, cached_input_tokens=100000, cache_write_tokens=248,
        cache_write_1h_tokens=100, output_tokens=503, reasoning_tokens=120,
    )


def test_anthropic_stream_keeps_the_last_cumulative_output_count() -> None:
    events = sse(
        ("message_start", {"type": "message_start", "message": {"usage": {
            "input_tokens": 50, "cache_read_input_tokens": 9000, "cache_creation_input_tokens": 0,
            "output_tokens": 1}}}),
        ("ping", {"type": "ping"}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                           "usage": {"output_tokens": 200}}),
        ("message_delta", {"type": "message_delta", "delta": {}, "usage": {"output_tokens": 412}}),
        ("message_stop", {"type": "message_stop"}),
    )
    tap = AnthropicMessagesDialect().usage_tap(strip_usage_event=False)
    assert [tap.feed(event) for event in events] == events
    assert tap.usage == Usage(input_tokens=9050, cached_input_tokens=9000, output_tokens=412)
    assert tap.complete


def test_error_bodies_speak_each_dialect() -> None:
    assert OpenAIChatDialect().error_body(413, "too big")["error"]["type"] == "request_too_large"
    anthropic = AnthropicMessagesDialect().error_body(504, "slow")
    assert anthropic == {"type": "error", "error": {"type": "timeout_error", "message": "slow"}}

"""The simulator answers each provider route in that provider's own wire shape."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tokenopt._sse import SSEEvent, SSEParser
from tokenopt.dialects import (
    AnthropicMessagesDialect,
    Dialect,
    OpenAIChatDialect,
    OpenAIResponsesDialect,
    Usage,
)
from tokenopt.sim import CacheResult, Prompt, create_sim_app
from tokenopt.tokens import TokenCounter

pytestmark = pytest.mark.anyio

COUNTER = TokenCounter()
WEATHER = {"type": "object", "properties": {"city": {"type": "string"},
                                            "days": {"type": "integer", "minimum": 1},
                                            "unit": {"enum": ["c", "f"]}},
           "required": ["city", "unit", "days"]}
CHAT = {"model": "gpt-4o", "messages": [{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": "Weather in Paris?"}]}
RESPONSES = {"model": "gpt-5", "instructions": "Be brief.", "input": "Weather in Paris?"}
MESSAGES = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "system": "Be brief.",
            "messages": [{"role": "user", "content": "Weather in Paris?"}]}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_sim_app(counter=COUNTER)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://sim") as c:
        c.app = app  # type: ignore[attr-defined]
        yield c


def events_of(text: str) -> list[SSEEvent]:
    return SSEParser().feed(text.encode())


def tapped(dialect: Dialect, text: str) -> Usage | None:
    tap = dialect.usage_tap(strip_usage_event=False)
    for event in events_of(text):
        tap.feed(event)
    assert tap.complete
    return tap.usage


def payloads(text: str) -> list[dict[str, Any]]:
    return [json.loads(e.data) for e in events_of(text) if e.data and e.data != "[DONE]"]


async def test_chat_usage_reads_the_same_streamed_and_not(client: httpx.AsyncClient) -> None:
    plain = (await client.post("/v1/chat/completions", json=CHAT)).json()
    prompt_tokens = COUNTER.count("system\nBe brief.") + COUNTER.count("user\nWeather in Paris?")
    assert plain["object"] == "chat.completion" and plain["id"].startswith("chatcmpl-")
    assert plain["choices"][0]["message"]["refusal"] is None
    assert plain["choices"][0]["finish_reason"] == "stop"
    usage = plain["usage"]
    assert usage["prompt_tokens"] == prompt_tokens
    assert usage["completion_tokens"] == 24 == COUNTER.count(plain["choices"][0]["message"]["content"])
    assert usage["total_tokens"] == prompt_tokens + 24
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    streamed = await client.post("/v1/chat/completions",
                                 json={**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    expected = Usage(input_tokens=prompt_tokens, output_tokens=24)
    assert OpenAIChatDialect().usage_from_json(plain) == expected
    assert tapped(OpenAIChatDialect(), streamed.text) == expected
    chunks = payloads(streamed.text)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == usage
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])
    assert text == plain["choices"][0]["message"]["content"]
    assert streamed.text.endswith("data: [DONE]\n\n")


async def test_chat_stream_has_no_usage_unless_asked(client: httpx.AsyncClient) -> None:
    streamed = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
    chunks = payloads(streamed.text)
    assert all("usage" not in chunk and chunk["choices"] for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_responses_usage_reads_the_same_streamed_and_not(client: httpx.AsyncClient) -> None:
    plain = (await client.post("/v1/responses", json=RESPONSES)).json()
    assert plain["object"] == "response" and plain["status"] == "completed"
    [message] = plain["output"]
    assert message["type"] == "message" and message["content"][0]["type"] == "output_text"
    assert message["content"][0]["annotations"] == []
    usage = plain["usage"]
    assert usage["input_tokens"] == COUNTER.count("Be brief.") + COUNTER.count("user\nWeather in Paris?")
    assert usage["input_tokens_details"]["cached_tokens"] == 0
    assert usage["output_tokens_details"]["reasoning_tokens"] == 0
    streamed = await client.post("/v1/responses", json={**RESPONSES, "stream": True})
    expected = OpenAIResponsesDialect().usage_from_json(plain)
    assert expected is not None and expected.output_tokens == 24
    assert tapped(OpenAIResponsesDialect(), streamed.text) == expected
    events = events_of(streamed.text)
    kinds = [event.event for event in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]
    data = [json.loads(event.data) for event in events]
    assert [d["sequence_number"] for d in data] == list(range(len(data)))
    assert all(d["type"] == event.event for d, event in zip(data, events, strict=True))
    assert data[-1]["response"]["usage"] == usage


async def test_messages_usage_reads_the_same_streamed_and_not(client: httpx.AsyncClient) -> None:
    plain = (await client.post("/v1/messages", json=MESSAGES)).json()
    assert plain["type"] == "message" and plain["id"].startswith("msg_")
    assert plain["stop_reason"] == "end_turn" and plain["stop_sequence"] is None
    assert [block["type"] for block in plain["content"]] == ["text"]
    usage = plain["usage"]
    assert usage["input_tokens"] == COUNTER.count("Be brief.") + COUNTER.count("user\nWeather in Paris?")
    assert usage["cache_creation"] == {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}
    streamed = await client.post("/v1/messages", json={**MESSAGES, "stream": True})
    expected = AnthropicMessagesDialect().usage_from_json(plain)
    assert expected is not None and expected.output_tokens == 24
    assert tapped(AnthropicMessagesDialect(), streamed.text) == expected
    kinds = [event.event for event in events_of(streamed.text)]
    assert kinds[:4] == ["message_start", "content_block_start", "ping", "content_block_delta"]
    assert kinds[-4:] == ["content_block_delta", "content_block_stop", "message_delta", "message_stop"]


class FixedCache:
    def __init__(self) -> None:
        self.seen: list[tuple[Prompt, str]] = []

    def lookup(self, prompt: Prompt, *, scope: str, now: float) -> CacheResult:
        self.seen.append((prompt, scope))
        return CacheResult(cached_tokens=4, cache_write_tokens=3, cache_write_1h_tokens=1)


@pytest.mark.parametrize("stream", [False, True])
async def test_cache_results_land_in_each_providers_usage_fields(stream: bool) -> None:
    cache = FixedCache()
    app = create_sim_app(counter=COUNTER, cache=cache)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://sim") as c:
        chat = await c.post("/v1/chat/completions", json={**CHAT, "stream": stream, **(
            {"stream_options": {"include_usage": True}} if stream else {})},
            headers={"authorization": "Bearer sk-one"})
        anthropic = await c.post("/v1/messages", json={**MESSAGES, "stream": stream},
                                 headers={"x-api-key": "sk-two"})
    whole = cache.seen[0][0].tokens
    read = OpenAIChatDialect().usage_from_json(chat.json()) if not stream else tapped(
        OpenAIChatDialect(), chat.text)
    assert read == Usage(input_tokens=whole, cached_input_tokens=4, cache_write_tokens=3,
                         output_tokens=24)
    raw = anthropic.json()["usage"] if not stream else payloads(anthropic.text)[0]["message"]["usage"]
    whole = cache.seen[1][0].tokens
    assert raw["input_tokens"] == whole - 4 - 3  # Anthropic's input excludes cache reads and writes
    assert raw["cache_creation"] == {"ephemeral_5m_input_tokens": 2, "ephemeral_1h_input_tokens": 1}
    read = AnthropicMessagesDialect().usage_from_json(anthropic.json()) if not stream else tapped(
        AnthropicMessagesDialect(), anthropic.text)
    assert read == Usage(input_tokens=whole, cached_input_tokens=4, cache_write_tokens=3,
                         cache_write_1h_tokens=1, output_tokens=24)
    scopes = {scope for _, scope in cache.seen}
    assert len(scopes) == 2 and all(scope.startswith("t_") for scope in scopes)


async def test_the_same_request_gets_the_same_reply(client: httpx.AsyncClient) -> None:
    first = (await client.post("/v1/chat/completions", json=CHAT)).json()
    second = (await client.post("/v1/chat/completions", json=CHAT)).json()
    other = (await client.post("/v1/chat/completions",
                               json={**CHAT, "messages": CHAT["messages"][:1] + [
                                   {"role": "user", "content": "And in Rome?"}]})).json()
    text = first["choices"][0]["message"]["content"]
    assert text == second["choices"][0]["message"]["content"]
    assert text != other["choices"][0]["message"]["content"]
    assert first["id"] != second["id"]


@pytest.mark.parametrize(
    ("path", "body", "read_stop"),
    [
        ("/v1/chat/completions", {**CHAT, "max_completion_tokens": 5},
         lambda r: r["choices"][0]["finish_reason"] == "length"),
        ("/v1/chat/completions", {**CHAT, "max_tokens": 5},
         lambda r: r["choices"][0]["finish_reason"] == "length"),
        ("/v1/responses", {**RESPONSES, "max_output_tokens": 5},
         lambda r: r["status"] == "incomplete"
         and r["incomplete_details"] == {"reason": "max_output_tokens"}),
        ("/v1/messages", {**MESSAGES, "max_tokens": 5}, lambda r: r["stop_reason"] == "max_tokens"),
    ],
)
async def test_a_small_output_cap_truncates_with_a_length_stop(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], read_stop: Any
) -> None:
    reply = (await client.post(path, json=body)).json()
    assert read_stop(reply)
    assert reply["usage"].get("completion_tokens", reply["usage"].get("output_tokens")) == 5


async def test_responses_stream_ends_incomplete_when_truncated(client: httpx.AsyncClient) -> None:
    streamed = await client.post("/v1/responses",
                                 json={**RESPONSES, "max_output_tokens": 5, "stream": True})
    last = events_of(streamed.text)[-1]
    assert last.event == "response.incomplete"
    assert tapped(OpenAIResponsesDialect(), streamed.text).output_tokens == 5  # type: ignore[union-attr]


async def test_a_forced_tool_is_called_with_minimal_valid_arguments(client: httpx.AsyncClient) -> None:
    arguments = {"city": "x", "unit": "c", "days": 1}
    chat_tools = [{"type": "function", "function": {"name": "other", "parameters": {}}},
                  {"type": "function", "function": {"name": "weather", "parameters": WEATHER}}]
    chat = (await client.post("/v1/chat/completions", json={
        **CHAT, "tools": chat_tools,
        "tool_choice": {"type": "function", "function": {"name": "weather"}}})).json()
    [call] = chat["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "weather" and call["id"].startswith("call_")
    assert json.loads(call["function"]["arguments"]) == arguments
    assert chat["choices"][0]["finish_reason"] == "tool_calls"

    responses = (await client.post("/v1/responses", json={
        **RESPONSES, "tool_choice": "required",
        "tools": [{"type": "function", "name": "weather", "parameters": WEATHER}]})).json()
    [item] = responses["output"]
    assert item["type"] == "function_call" and item["name"] == "weather"
    assert json.loads(item["arguments"]) == arguments and item["call_id"].startswith("call_")

    anthropic = (await client.post("/v1/messages", json={
        **MESSAGES, "tool_choice": {"type": "any"},
        "tools": [{"name": "weather", "input_schema": WEATHER}]})).json()
    [block] = anthropic["content"]
    assert block["type"] == "tool_use" and block["id"].startswith("toolu_")
    assert block["input"] == arguments and anthropic["stop_reason"] == "tool_use"


async def test_streamed_tool_arguments_join_to_the_whole_call(client: httpx.AsyncClient) -> None:
    tools = [{"name": "weather", "input_schema": WEATHER}]
    streamed = await client.post("/v1/messages", json={
        **MESSAGES, "stream": True, "tools": tools,
        "tool_choice": {"type": "tool", "name": "weather"}})
    parts = [p["delta"]["partial_json"] for p in payloads(streamed.text)
             if p["type"] == "content_block_delta"]
    assert json.loads("".join(parts)) == {"city": "x", "unit": "c", "days": 1}
    chat = await client.post("/v1/chat/completions", json={
        **CHAT, "stream": True, "tool_choice": "required",
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": WEATHER}}]})
    deltas = [c["choices"][0]["delta"] for c in payloads(chat.text)]
    arguments = "".join(d["tool_calls"][0]["function"]["arguments"] for d in deltas if "tool_calls" in d)
    assert json.loads(arguments)["unit"] == "c"
    assert payloads(chat.text)[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_reasoning_spends_tokens_each_provider_reports(client: httpx.AsyncClient) -> None:
    chat = (await client.post("/v1/chat/completions", json={**CHAT, "reasoning_effort": "high"})).json()
    assert chat["usage"]["completion_tokens_details"]["reasoning_tokens"] == 256
    assert chat["usage"]["completion_tokens"] == 256 + 24
    responses = (await client.post("/v1/responses", json={**RESPONSES, "reasoning": {"effort": "low"}})).json()
    assert [item["type"] for item in responses["output"]] == ["reasoning", "message"]
    assert responses["usage"]["output_tokens_details"]["reasoning_tokens"] == 64
    body = {**MESSAGES, "max_tokens": 8000, "thinking": {"type": "enabled", "budget_tokens": 4000}}
    anthropic = (await client.post("/v1/messages", json=body)).json()
    thinking, _ = anthropic["content"]
    assert thinking["type"] == "thinking" and thinking["signature"]
    assert COUNTER.count(thinking["thinking"]) == 1000  # a quarter of the budget
    assert anthropic["usage"]["output_tokens"] == 1000 + 24  # thinking is billed as output
    assert AnthropicMessagesDialect().usage_from_json(anthropic).reasoning_tokens == 1000  # type: ignore[union-attr]
    streamed = await client.post("/v1/messages", json={**body, "stream": True})
    deltas = [p["delta"]["type"] for p in payloads(streamed.text) if p["type"] == "content_block_delta"]
    assert {"thinking_delta", "signature_delta", "text_delta"} <= set(deltas)
    assert tapped(AnthropicMessagesDialect(), streamed.text).output_tokens == 1024  # type: ignore[union-attr]


async def test_a_smaller_thinking_budget_spends_less(client: httpx.AsyncClient) -> None:
    spent = []
    for budget in (1024, 2048):
        body = {**MESSAGES, "max_tokens": 4096, "thinking": {"type": "enabled", "budget_tokens": budget}}
        spent.append((await client.post("/v1/messages", json=body)).json()["usage"]["output_tokens"])
    assert spent[0] < spent[1]


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"messages": CHAT["messages"]}, "model", "Missing required parameter: 'model'."),
        ({"model": "gpt-4o"}, "messages", "Missing required parameter: 'messages'."),
        ({**CHAT, "max_tokens": "5"}, "max_tokens",
         "Invalid type for 'max_tokens': expected an integer."),
        ({**CHAT, "stream": "yes"}, "stream", "Invalid type for 'stream': expected a boolean."),
    ],
)
async def test_chat_validation_errors_speak_openai(
    client: httpx.AsyncClient, body: dict[str, Any], param: str, message: str
) -> None:
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert (error["param"], error["message"]) == (param, message)
    assert error["code"] in {"missing_required_parameter", "invalid_type"}


async def test_responses_requires_input(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/responses", json={"model": "gpt-5"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "input"
    response = await client.post("/v1/responses", json={"model": "gpt-5", "input": 3})
    assert response.json()["error"]["message"] == "Invalid type for 'input': expected a string or an array."


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({k: v for k, v in MESSAGES.items() if k != "max_tokens"}, "max_tokens: Field required"),
        ({k: v for k, v in MESSAGES.items() if k != "model"}, "model: Field required"),
        ({**MESSAGES, "max_tokens": 1.5}, "max_tokens: Input should be an integer"),
        ({**MESSAGES, "thinking": {"type": "enabled", "budget_tokens": 2048}},
         "`max_tokens` must be greater than `thinking.budget_tokens`."),
    ],
)
async def test_messages_validation_errors_speak_anthropic(
    client: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    response = await client.post("/v1/messages", json=body)
    assert response.status_code == 400
    assert response.json() == {"type": "error",
                               "error": {"type": "invalid_request_error", "message": message}}


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses", "/v1/messages"])
async def test_malformed_json_is_a_400_in_the_providers_shape(
    client: httpx.AsyncClient, path: str
) -> None:
    for raw in (b"{not json", b"[1, 2]"):
        response = await client.post(path, content=raw, headers={"content-type": "application/json"})
        assert response.status_code == 400
        body = response.json()
        if path == "/v1/messages":
            assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
        else:
            assert body["error"]["type"] == "invalid_request_error"


async def test_unknown_paths_and_methods_are_json_errors(client: httpx.AsyncClient) -> None:
    missing = await client.post("/v1/embeddings", json={})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_url"
    wrong = await client.get("/v1/messages")
    assert wrong.status_code == 405 and wrong.json()["type"] == "error"


async def test_models_are_listed_in_the_clients_dialect(client: httpx.AsyncClient) -> None:
    openai = (await client.get("/v1/models")).json()
    assert openai["object"] == "list" and {"gpt-4o", "claude-sonnet-4-6"} <= {
        m["id"] for m in openai["data"]}
    anthropic = (await client.get("/v1/models", headers={"anthropic-version": "2023-06-01"})).json()
    assert all(m["type"] == "model" and m["id"].startswith("claude") for m in anthropic["data"])


async def test_every_request_is_logged_with_its_exact_bytes(client: httpx.AsyncClient) -> None:
    raw = b'{"model": "gpt-4o",   "messages": [{"role": "user", "content": "hi"}]}'
    await client.post("/v1/chat/completions", content=raw, headers={"x-custom": "1"})
    await client.get("/nowhere")
    received = client.app.state.received  # type: ignore[attr-defined]
    method, path, headers, body = received[0]
    assert (method, path, body) == ("POST", "/v1/chat/completions", raw)
    assert ("x-custom", "1") in headers
    assert received[1][:2] == ("GET", "/nowhere") and received[1][3] == b""

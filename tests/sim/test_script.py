"""The simulated model with a recorded answer: replay it, search for a missing tool, or miss."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tokenopt.sim import create_sim_app
from tokenopt.sim.script import RECORDED_HEADER

pytestmark = pytest.mark.anyio

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
SEARCH = {"type": "function", "function": {"name": "tool_search", "parameters": {
    "type": "object", "properties": {"query": {"type": "string"}}}}}
RECORDED_CHAT = {
    "choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]}}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 57,
              "completion_tokens_details": {"reasoning_tokens": 40}},
}


async def ask(body: dict[str, Any], recorded: dict[str, Any] | None, path: str = "/v1/chat/completions"
              ) -> tuple[dict[str, Any], Any]:
    app = create_sim_app()
    headers = {"authorization": "Bearer k"}
    if recorded is not None:
        app.state.script.add("line-1", recorded)
        headers[RECORDED_HEADER] = "line-1"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
        response = await client.post(path, json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json(), app.state.bills[-1]


def chat(tools: list[dict[str, Any]]) -> dict[str, Any]:
    return {"model": "gpt-4.1", "tools": tools,
            "messages": [{"role": "user", "content": "Weather in Paris?"}]}


async def test_the_recorded_answer_is_replayed_when_its_tools_are_offered() -> None:
    body, bill = await ask(chat([WEATHER]), RECORDED_CHAT)

    call = body["choices"][0]["message"]["tool_calls"][0]["function"]
    assert call == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    # The recorded spend is billed, not a re-count: 57 output tokens, 40 of them reasoning.
    assert body["usage"]["completion_tokens"] == 57
    assert body["usage"]["completion_tokens_details"]["reasoning_tokens"] == 40
    assert bill.outcome == "recorded" and bill.counts.output_tokens == 57


async def test_a_missing_tool_sends_the_model_to_the_search_tool_with_the_user_text() -> None:
    body, bill = await ask(chat([SEARCH]), RECORDED_CHAT)

    call = body["choices"][0]["message"]["tool_calls"][0]["function"]
    assert call["name"] == "tool_search"
    assert json.loads(call["arguments"]) == {"query": "Weather in Paris?"}
    assert bill.outcome == "search"


async def test_a_missing_tool_without_search_is_a_tool_miss_answered_as_recorded() -> None:
    body, bill = await ask(chat([]), RECORDED_CHAT)

    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert bill.outcome == "tool_miss"


async def test_a_deferred_tool_is_callable_only_once_a_tool_reference_loads_it() -> None:
    deferred = {"name": "get_weather", "input_schema": {"type": "object"}, "defer_loading": True}
    finder = {"name": "finder", "input_schema": {"type": "object"}}
    recorded = {"content": [{"type": "tool_use", "id": "t1", "name": "get_weather",
                             "input": {"city": "Paris"}}],
                "usage": {"output_tokens": 30}}
    turn = [{"role": "user", "content": "Weather?"}]
    loaded = [*turn,
              {"role": "assistant", "content": [{"type": "tool_use", "id": "t0", "name": "finder",
                                                 "input": {}}]},
              {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t0", "content": [
                  {"type": "tool_reference", "tool_name": "get_weather"}]}]}]
    body = {"model": "claude-sonnet-4-6", "max_tokens": 100, "tools": [finder, deferred]}

    _, miss = await ask({**body, "messages": turn}, recorded, "/v1/messages")
    answered, hit = await ask({**body, "messages": loaded}, recorded, "/v1/messages")

    assert miss.outcome == "tool_miss"
    assert hit.outcome == "recorded"
    assert answered["content"][0]["name"] == "get_weather"
    assert answered["usage"]["output_tokens"] == 30


async def test_a_recorded_text_answer_on_responses() -> None:
    recorded = {"output": [{"type": "message", "role": "assistant", "content": [
        {"type": "output_text", "text": "It is sunny."}]}], "usage": {"output_tokens": 5}}
    body, bill = await ask({"model": "gpt-5", "input": "Weather?"}, recorded, "/v1/responses")

    texts = [part["text"] for item in body["output"] if item["type"] == "message"
             for part in item["content"]]
    assert texts == ["It is sunny."]
    assert body["usage"]["output_tokens"] == 5 and bill.outcome == "recorded"


async def test_without_a_recording_the_reply_is_generated() -> None:
    _, bill = await ask(chat([WEATHER]), None)
    assert bill.outcome == "generated" and bill.counts.output_tokens > 0

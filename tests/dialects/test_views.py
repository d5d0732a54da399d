"""Each dialect reads a neutral view and writes back only what changed."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from tokenopt.dialects import (
    AnthropicMessagesDialect,
    OpenAIChatDialect,
    OpenAIResponsesDialect,
    Reasoning,
    TextPart,
    dialect_for,
)
from tokenopt.dialects.base import Dialect
from tokenopt.exceptions import DialectError

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

CHAT = {
    "model": "gpt-4.1",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
        {"role": "user", "content": "Weather in Oslo?"},
    ],
    "tools": [{"type": "function", "function": {"name": "weather", "description": "Forecast",
                                                 "parameters": WEATHER}, "x-extra": 1}],
    "tool_choice": "auto",
    "reasoning_effort": "high",
    "max_completion_tokens": 500,
    "stream": True,
    "user": "u1",
}
RESPONSES = {
    "model": "gpt-5",
    "instructions": "Be brief.",
    "input": "Weather in Oslo?",
    "tools": [{"type": "function", "name": "weather", "description": "Forecast",
               "parameters": WEATHER, "strict": True}, {"type": "web_search"}],
    "reasoning": {"effort": "medium", "summary": "auto"},
    "max_output_tokens": 800,
}
MESSAGES = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 2048,
    "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    "messages": [{"role": "user", "content": "Weather in Oslo?"}],
    "tools": [{"name": "weather", "description": "Forecast", "input_schema": WEATHER,
               "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
    "thinking": {"type": "enabled", "budget_tokens": 1500},
    "output_config": {"effort": "high"},
}
CASES: list[tuple[Dialect, dict[str, Any]]] = [
    (OpenAIChatDialect(), CHAT),
    (OpenAIResponsesDialect(), RESPONSES),
    (AnthropicMessagesDialect(), MESSAGES),
]
IDS = ["chat", "responses", "messages"]


def view_of(dialect: Dialect, body: dict[str, Any], **headers: str) -> Any:
    return dialect.parse(json.loads(json.dumps(body)), tenant="t_x", headers=headers)


@pytest.mark.parametrize(("dialect", "body"), CASES, ids=IDS)
def test_a_view_nobody_changed_renders_as_nothing_to_write(dialect: Dialect, body: dict[str, Any]) -> None:
    assert dialect.render(view_of(dialect, body)) is None


@pytest.mark.parametrize(("dialect", "body"), CASES, ids=IDS)
def test_the_view_reads_model_tools_system_and_knobs(dialect: Dialect, body: dict[str, Any]) -> None:
    view = view_of(dialect, body)
    assert view.model == body["model"]
    assert view.tools[0].name == "weather"
    assert view.tools[0].description == "Forecast"
    assert view.tools[0].parameters == WEATHER
    assert view.system[0].text == "Be brief."
    assert view.max_output_tokens == body.get("max_completion_tokens", body.get("max_output_tokens", body.get("max_tokens")))


def test_chat_reads_leading_system_and_developer_messages_as_system() -> None:
    view = view_of(OpenAIChatDialect(), CHAT)
    assert [p.text for p in view.system] == ["Be brief.", "Use tools."]
    assert view.messages == [{"role": "user", "content": "Weather in Oslo?"}]
    assert view.reasoning == Reasoning(effort="high")
    assert view.stream is True


def test_anthropic_reads_thinking_budget_and_effort() -> None:
    view = view_of(AnthropicMessagesDialect(), MESSAGES)
    assert view.reasoning == Reasoning(effort="high", thinking="enabled", budget_tokens=1500)


@pytest.mark.parametrize(("dialect", "body"), CASES, ids=IDS)
def test_reordering_tools_writes_only_tools_and_keeps_their_native_fields(
    dialect: Dialect, body: dict[str, Any]
) -> None:
    extra = {**body, "tools": [*body["tools"], *_second_tool(dialect)]}
    view = view_of(dialect, extra)
    view.tools = list(reversed(view.tools))
    rendered = dialect.render(view)
    assert rendered is not None
    assert rendered["tools"] == list(reversed(extra["tools"]))
    assert {k: v for k, v in rendered.items() if k != "tools"} == {
        k: v for k, v in extra.items() if k != "tools"
    }


@pytest.mark.parametrize(("dialect", "body"), CASES, ids=IDS)
def test_editing_a_tool_description_rewrites_it_in_the_native_place(
    dialect: Dialect, body: dict[str, Any]
) -> None:
    view = view_of(dialect, body)
    view.tools = [dataclasses.replace(view.tools[0], description="Weather forecast")]
    rendered = dialect.render(view)
    assert rendered is not None
    reparsed = view_of(dialect, rendered)
    assert reparsed.tools[0].description == "Weather forecast"
    assert reparsed.tools[0].parameters == WEATHER
    assert dialect.render(reparsed) is None


@pytest.mark.parametrize(("dialect", "body"), CASES, ids=IDS)
def test_editing_system_text_round_trips(dialect: Dialect, body: dict[str, Any]) -> None:
    view = view_of(dialect, body)
    view.system = [TextPart("Be very brief.", view.system[0].raw), *view.system[1:]]
    rendered = dialect.render(view)
    assert rendered is not None
    assert view_of(dialect, rendered).system[0].text == "Be very brief."
    assert view_of(dialect, rendered).messages == view.messages


def test_anthropic_system_blocks_keep_their_cache_control() -> None:
    dialect = AnthropicMessagesDialect()
    view = view_of(dialect, MESSAGES)
    view.system = [TextPart("Changed.", view.system[0].raw)]
    rendered = dialect.render(view)
    assert rendered is not None
    assert rendered["system"] == [
        {"type": "text", "text": "Changed.", "cache_control": {"type": "ephemeral"}}
    ]


@pytest.mark.parametrize(
    ("dialect", "body", "field", "value"),
    [
        (OpenAIChatDialect(), CHAT, "reasoning_effort", "low"),
        (OpenAIResponsesDialect(), RESPONSES, "reasoning", {"effort": "low", "summary": "auto"}),
        (AnthropicMessagesDialect(), MESSAGES, "output_config", {"effort": "low"}),
    ],
    ids=IDS,
)
def test_lowering_effort_writes_the_dialects_own_field(
    dialect: Dialect, body: dict[str, Any], field: str, value: Any
) -> None:
    view = view_of(dialect, body)
    view.reasoning = dataclasses.replace(view.reasoning, effort="low")
    rendered = dialect.render(view)
    assert rendered is not None
    assert rendered[field] == value


def test_anthropic_thinking_budget_and_max_tokens_are_written_back() -> None:
    dialect = AnthropicMessagesDialect()
    view = view_of(dialect, MESSAGES)
    view.reasoning = dataclasses.replace(view.reasoning, budget_tokens=1024)
    view.max_output_tokens = 1500
    rendered = dialect.render(view)
    assert rendered is not None
    assert rendered["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert rendered["max_tokens"] == 1500


def test_responses_string_input_stays_a_string_until_messages_change() -> None:
    dialect = OpenAIResponsesDialect()
    view = view_of(dialect, RESPONSES)
    assert view.messages == [{"role": "user", "content": "Weather in Oslo?"}]
    view.max_output_tokens = 100
    assert dialect.render(view)["input"] == "Weather in Oslo?"  # type: ignore[index]


@pytest.mark.parametrize(
    ("dialect", "body"),
    [
        (OpenAIChatDialect(), {"model": "m", "messages": "hi"}),
        (OpenAIChatDialect(), {"model": "m", "messages": [], "tools": ["nope"]}),
        (OpenAIResponsesDialect(), {"model": "m", "input": 3}),
        (AnthropicMessagesDialect(), {"model": "m", "max_tokens": 5}),
    ],
)
def test_bodies_of_the_wrong_shape_raise_dialect_error(dialect: Dialect, body: dict[str, Any]) -> None:
    with pytest.raises(DialectError):
        view_of(dialect, body)


def test_conversation_comes_from_the_header_or_from_how_it_began() -> None:
    dialect = AnthropicMessagesDialect()
    assert view_of(dialect, MESSAGES, **{"x-tokenopt-conversation": "c1"}).conversation == "c1"
    later = {**MESSAGES, "messages": [*MESSAGES["messages"], {"role": "assistant", "content": "Sunny"},
                                      {"role": "user", "content": "Tomorrow?"}]}
    assert view_of(dialect, MESSAGES).conversation == view_of(dialect, later).conversation
    other = {**MESSAGES, "messages": [{"role": "user", "content": "Weather in Rome?"}]}
    assert view_of(dialect, MESSAGES).conversation != view_of(dialect, other).conversation


@pytest.mark.parametrize(
    ("method", "path", "name"),
    [
        ("POST", "/v1/chat/completions", "openai-chat"),
        ("POST", "/openai/v1/chat/completions/", "openai-chat"),
        ("POST", "/v1/responses", "openai-responses"),
        ("POST", "/v1/messages", "anthropic-messages"),
        ("POST", "/v1/messages/count_tokens", None),
        ("GET", "/v1/chat/completions", None),
        ("POST", "/v1/embeddings", None),
    ],
)
def test_routes_map_to_dialects(method: str, path: str, name: str | None) -> None:
    dialect = dialect_for(method, path)
    assert (dialect.name if dialect else None) == name


def _second_tool(dialect: Dialect) -> list[dict[str, Any]]:
    schema = {"type": "object", "properties": {}}
    if isinstance(dialect, OpenAIChatDialect):
        return [{"type": "function", "function": {"name": "time", "parameters": schema}}]
    if isinstance(dialect, OpenAIResponsesDialect):
        return [{"type": "function", "name": "time", "parameters": schema}]
    return [{"name": "time", "input_schema": schema}]

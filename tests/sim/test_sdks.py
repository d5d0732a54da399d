"""The official SDKs parse every simulated route, streamed and not."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from tokenopt.serving import ServerThread
from tokenopt.sim import create_sim_app

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with ServerThread(create_sim_app()) as base:
        yield base


@pytest.fixture
def oai(url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{url}/v1", api_key="sk-test", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=url, api_key="sk-ant-test", max_retries=0) as client:
        yield client


def test_openai_chat(oai: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "hi"}]
    completion = oai.chat.completions.create(model="gpt-4o", messages=messages)  # type: ignore[arg-type]
    assert completion.choices[0].message.content and completion.usage is not None
    assert completion.usage.completion_tokens == 24
    stream = oai.chat.completions.create(model="gpt-4o", messages=messages, stream=True,  # type: ignore[arg-type]
                                         stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == completion.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == completion.usage.prompt_tokens


def test_openai_chat_tool_call(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "weather?"}],
        tools=[{"type": "function", "function": {"name": "weather", "parameters": WEATHER}}],
        tool_choice="required",
    )
    [call] = completion.choices[0].message.tool_calls or []
    assert call.function.name == "weather" and call.function.arguments == '{"city":"x"}'  # type: ignore[union-attr]


def test_openai_responses(oai: openai.OpenAI) -> None:
    response = oai.responses.create(model="gpt-5", input="hi", reasoning={"effort": "low"})
    assert response.output_text and response.usage is not None
    assert response.usage.output_tokens_details.reasoning_tokens == 64
    with oai.responses.stream(model="gpt-5", input="hi", reasoning={"effort": "low"}) as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert final.output_text == response.output_text
    assert final.usage is not None and final.usage.output_tokens == response.usage.output_tokens


def test_anthropic_messages(claude: anthropic.Anthropic) -> None:
    kwargs = {"model": "claude-sonnet-4-6", "max_tokens": 2048,
              "messages": [{"role": "user", "content": "hi"}],
              "thinking": {"type": "enabled", "budget_tokens": 1024}}
    message = claude.messages.create(**kwargs)  # type: ignore[call-overload]
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.usage.output_tokens == 256 + 24
    with claude.messages.stream(**kwargs) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == message.content[1].text  # type: ignore[union-attr]
    assert final.content[0].signature == message.content[0].signature  # type: ignore[union-attr]
    assert final.usage.output_tokens == message.usage.output_tokens
    assert final.usage.input_tokens == message.usage.input_tokens


def test_anthropic_tool_use_streamed(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(
        model="claude-sonnet-4-6", max_tokens=256, messages=[{"role": "user", "content": "weather?"}],
        tools=[{"name": "weather", "input_schema": WEATHER}],  # type: ignore[list-item]
        tool_choice={"type": "tool", "name": "weather"},
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].input == {"city": "x"}  # type: ignore[union-attr]


def test_sdk_errors_are_typed(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(model="gpt-4o", messages=[])
    with pytest.raises(anthropic.RateLimitError):
        claude.messages.create(model="claude-sonnet-4-6", max_tokens=16,
                               messages=[{"role": "user", "content": "hi"}],
                               extra_headers={"x-sim-status": "429", "x-sim-retry-after": "0"})

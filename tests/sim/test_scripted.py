"""Scripted turns: `tokenopt sim --script` answers a session turn by turn, in all three dialects."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tokenopt import jsonio
from tokenopt.cli import main
from tokenopt.exceptions import ConfigError
from tokenopt.serving import ServerThread
from tokenopt.sim import create_sim_app
from tokenopt.sim.journal import JournalMiddleware
from tokenopt.sim.scripted import TurnScript, answers_given

SHELL = {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}
SCRIPT = TurnScript.parse({"turns": [
    {"tool": "shell", "arguments": {"command": "echo hi", "timeout": 5}},
    {"text": "The shell said hi."},
]})
ARGUMENTS = '{"command":"echo hi","timeout":5}'
TITLE = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}


@pytest.fixture(scope="module")
def sim() -> Iterator[tuple[str, Any]]:
    app = create_sim_app(turns=SCRIPT)
    with ServerThread(app) as url:
        yield url, app


@pytest.fixture
def claude(sim: tuple[str, Any]) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=sim[0], api_key="k", max_retries=0) as client:
        yield client


@pytest.fixture
def oai(sim: tuple[str, Any]) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{sim[0]}/v1", api_key="k", max_retries=0) as client:
        yield client


def test_toml_and_json_scripts_read_the_same(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text('[[turns]]\ntool = "shell"\narguments = { command = "echo hi", timeout = 5 }\n\n'
                    '[[turns]]\ntext = "The shell said hi."\n')
    as_json = tmp_path / "s.json"
    as_json.write_text(json.dumps({"turns": [{"tool": "shell", "arguments": {
        "command": "echo hi", "timeout": 5}}, {"text": "The shell said hi."}]}))
    assert TurnScript.load(toml) == TurnScript.load(as_json) == SCRIPT


@pytest.mark.parametrize(("data", "problem"), [
    ({"turns": []}, "non-empty list 'turns'"),
    ({"turns": [{"text": "a", "tool": "b"}]}, "turn 0: give either 'text' or 'tool'"),
    ({"turns": [{"text": "a"}, {"tool": "b", "arguments": "x"}]}, "turn 1: 'arguments'"),
    ({"turns": [{"say": "a"}]}, "turn 0: unknown key 'say'"),
])
def test_a_bad_script_names_the_turn(tmp_path: Path, data: Any, problem: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=problem):
        TurnScript.load(path)


def test_the_sim_command_refuses_a_bad_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[[turns]]\nsay = 1\n")
    assert main(["sim", "--port", "0", "--script", str(path)]) == 2
    assert "unknown key 'say'" in capsys.readouterr().err


def _anthropic_history(call_id: str) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "run it"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": call_id, "name": "shell", "input": {"command": "echo hi"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id, "content": "hi"}]},
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_turns_call_the_tool_then_answer(claude: anthropic.Anthropic, stream: bool) -> None:
    tools = [{"name": "shell", "description": "Run a command.", "input_schema": SHELL}]
    ask: dict[str, Any] = {"model": "claude-sonnet-4-6", "max_tokens": 1024, "tools": tools}
    first_messages: Any = [{"role": "user", "content": "run it"}]
    if stream:
        with claude.messages.stream(messages=first_messages, **ask) as events:
            first = events.get_final_message()
    else:
        first = claude.messages.create(messages=first_messages, **ask)
    [call] = [block for block in first.content if block.type == "tool_use"]
    assert (call.name, call.input, first.stop_reason) == (
        "shell", {"command": "echo hi", "timeout": 5}, "tool_use")
    history: Any = _anthropic_history(call.id)
    if stream:
        with claude.messages.stream(messages=history, **ask) as events:
            second = events.get_final_message()
    else:
        second = claude.messages.create(messages=history, **ask)
    assert [b.text for b in second.content if b.type == "text"] == ["The shell said hi."]
    assert second.stop_reason == "end_turn"


@pytest.mark.parametrize("stream", [False, True])
def test_chat_turns_call_the_tool_then_answer(oai: openai.OpenAI, stream: bool) -> None:
    tools: Any = [{"type": "function", "function": {"name": "shell", "parameters": SHELL}}]
    messages: Any = [{"role": "user", "content": "run it"}]
    if stream:
        chunks = list(oai.chat.completions.create(model="gpt-4o", messages=messages, tools=tools,
                                                  stream=True))
        deltas = [c.choices[0].delta for c in chunks if c.choices]
        calls = [call for d in deltas for call in d.tool_calls or []]
        name = calls[0].function.name if calls[0].function else None
        arguments = "".join(call.function.arguments or "" for call in calls if call.function)
        call_id = calls[0].id
    else:
        done = oai.chat.completions.create(model="gpt-4o", messages=messages, tools=tools)
        [tool_call] = done.choices[0].message.tool_calls or []
        assert tool_call.type == "function"
        name, arguments, call_id = tool_call.function.name, tool_call.function.arguments, tool_call.id
    assert (name, arguments) == ("shell", ARGUMENTS)
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": "shell", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "hi"},
    ]
    if stream:
        chunks = list(oai.chat.completions.create(model="gpt-4o", messages=messages, tools=tools,
                                                  stream=True))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        text = oai.chat.completions.create(model="gpt-4o", messages=messages,
                                           tools=tools).choices[0].message.content or ""
    assert text == "The shell said hi."


@pytest.mark.parametrize("stream", [False, True])
def test_responses_turns_call_the_tool_then_answer(oai: openai.OpenAI, stream: bool) -> None:
    tools: Any = [{"type": "function", "name": "shell", "parameters": SHELL}]
    items: Any = [{"role": "user", "content": "run it"}]

    def ask() -> Any:
        if not stream:
            return oai.responses.create(model="gpt-5", input=items, tools=tools,
                                        reasoning={"effort": "low"})
        with oai.responses.stream(model="gpt-5", input=items, tools=tools,
                                  reasoning={"effort": "low"}) as events:
            return events.get_final_response()

    first = ask()
    [call] = [item for item in first.output if item.type == "function_call"]
    assert (call.name, call.arguments) == ("shell", ARGUMENTS)
    items += [item.model_dump(exclude_none=True) for item in first.output]
    items.append({"type": "function_call_output", "call_id": call.call_id, "output": "hi"})
    assert ask().output_text == "The shell said hi."


def test_a_scripted_call_reaches_a_function_inside_a_responses_namespace(sim: tuple[str, Any]) -> None:
    tools = [{"type": "namespace", "name": "box", "description": "Tools in a box.",
              "tools": [{"type": "function", "name": "shell", "parameters": SHELL}]}]
    body = {"model": "gpt-5", "input": "run it", "tools": tools}
    [call] = httpx.post(f"{sim[0]}/v1/responses", json=body).json()["output"]
    assert (call["type"], call["namespace"], call["name"], call["arguments"]) == (
        "function_call", "box", "shell", ARGUMENTS)


def test_a_side_request_without_tools_gets_the_generated_answer(claude: anthropic.Anthropic,
                                                                 sim: tuple[str, Any]) -> None:
    answer = claude.messages.create(model="claude-sonnet-4-6", max_tokens=64,
                                    messages=[{"role": "user", "content": "run it"}])
    assert answer.content[0].type == "text" and "hi" not in answer.content[0].text
    assert len(answer.content[0].text.split()) == 24  # the simulator's usual reply
    assert sim[1].state.bills[-1].outcome == "generated"


def test_a_structured_side_request_gets_json_its_schema_allows(sim: tuple[str, Any]) -> None:
    body = {"model": "claude-sonnet-4-6", "max_tokens": 64,
            "messages": [{"role": "user", "content": "title this"}],
            "output_config": {"format": {"type": "json_schema", "schema": TITLE}}}
    answer = httpx.post(f"{sim[0]}/v1/messages", json=body).json()
    assert json.loads(answer["content"][0]["text"]) == {"title": "x"}
    text_format = {"format": {"type": "json_schema", "name": "t", "schema": TITLE}}
    answer = httpx.post(f"{sim[0]}/v1/responses",
                        json={"model": "gpt-5", "input": "title this", "text": text_format}).json()
    assert json.loads(answer["output"][-1]["content"][0]["text"]) == {"title": "x"}
    assert sim[1].state.bills[-1].outcome == "structured"


def test_past_the_last_turn_the_simulator_generates(sim: tuple[str, Any]) -> None:
    history = _anthropic_history("toolu_1") + [
        {"role": "assistant", "content": "The shell said hi."}, {"role": "user", "content": "more?"}]
    body = {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": history,
            "tools": [{"name": "shell", "input_schema": SHELL}]}
    answer = httpx.post(f"{sim[0]}/v1/messages", json=body).json()
    assert answer["content"][0]["text"] != "The shell said hi."
    assert sim[1].state.bills[-1].outcome == "generated"


def test_answers_are_counted_as_runs_of_model_items() -> None:
    items = [{"role": "user", "content": "x"}, {"type": "reasoning", "summary": []},
             {"type": "function_call", "call_id": "a", "name": "f", "arguments": "{}"},
             {"type": "function_call_output", "call_id": "a", "output": "1"},
             {"type": "message", "role": "assistant", "content": []},
             {"role": "user", "content": "y"}]
    assert answers_given("/v1/responses", {"input": items}) == 2
    assert answers_given("/v1/responses", {"input": "hi"}) == 0
    messages = [{"role": "user"}, {"role": "assistant"}, {"role": "user"}, {"role": "system"}]
    assert answers_given("/v1/messages", {"messages": messages}) == 1


@pytest.mark.anyio
async def test_usage_is_what_the_simulator_bills_without_a_script() -> None:
    """Same prompt, same cache: only the words come from the script."""
    body = {"model": "claude-sonnet-4-6", "max_tokens": 2048,
            "system": [{"type": "text", "text": "rules " * 3000, "cache_control": {"type": "ephemeral"}}],
            "tools": [{"name": "shell", "input_schema": SHELL}],
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "messages": [{"role": "user", "content": "run it"}]}
    scripted, plain = create_sim_app(turns=SCRIPT), create_sim_app()
    (first, again), (plain_first, plain_again) = [await _bills_of(app, body) for app in (scripted, plain)]
    for mine, theirs in ((first, plain_first), (again, plain_again)):
        assert (mine.input_tokens, mine.cached_tokens, mine.cache_write_tokens) == (
            theirs.input_tokens, theirs.cached_tokens, theirs.cache_write_tokens)
        assert mine.reasoning_tokens == theirs.reasoning_tokens == 256
    assert first.cache_write_tokens > 0 and again.cached_tokens > 0
    counter = scripted.state.counter
    assert first.output_tokens == 256 + counter.count(ARGUMENTS, "claude-sonnet-4-6")
    assert scripted.state.bills[-1].outcome == "scripted"


async def _bills_of(app: Any, body: dict[str, Any]) -> list[Any]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://sim") as client:
        for _ in range(2):
            assert (await client.post("/v1/messages", json=body)).status_code == 200
    return [bill.counts for bill in app.state.bills]


@pytest.mark.anyio
async def test_the_journal_holds_what_arrived_and_what_was_billed(tmp_path: Path) -> None:
    app = create_sim_app(turns=SCRIPT)
    path = tmp_path / "journal.jsonl"
    journal = JournalMiddleware(app, path, bills=app.state.bills)
    body = {"model": "claude-sonnet-4-6", "max_tokens": 64, "stream": True,
            "tools": [{"name": "shell", "input_schema": SHELL}],
            "messages": [{"role": "user", "content": "run it"}]}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=journal),
                                 base_url="http://sim") as client:
        response = await client.post("/v1/messages?beta=true", content=jsonio.dumps(body),
                                     headers={"x-api-key": "secret", "anthropic-beta": "b1"})
    assert response.status_code == 200
    request, bill = [json.loads(line) for line in path.read_text().splitlines()]
    assert (request["kind"], request["path"], request["query"]) == ("request", "/v1/messages",
                                                                     "beta=true")
    assert request["body"] == body and request["headers"]["anthropic-beta"] == "b1"
    assert "x-api-key" not in request["headers"]
    counts = app.state.bills[-1].counts
    assert bill == {"kind": "bill", "route": "/v1/messages", "model": "claude-sonnet-4-6",
                    "outcome": "scripted", "counts": {
                        "input_tokens": counts.input_tokens, "output_tokens": counts.output_tokens,
                        "reasoning_tokens": 0, "cached_tokens": 0, "cache_write_tokens": 0,
                        "cache_write_1h_tokens": 0}}

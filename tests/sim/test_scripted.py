"""Scripted turns: `tokenopt sim --script` answers a session turn by turn, in all three dialects."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.integration.support import running_sim, settings_for
from tokenopt import jsonio
from tokenopt.cli import main
from tokenopt.engine import Engine
from tokenopt.exceptions import ConfigError
from tokenopt.proxy import create_app
from tokenopt.serving import ServerThread
from tokenopt.sim import create_sim_app
from tokenopt.sim.journal import JournalMiddleware
from tokenopt.sim.scripted import TurnScript, answers_given, offered

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


# A scripted turn whose tool the request may not carry: the model searches first --------

JSON = dict[str, Any]
SEARCH_TOOL = "tokenopt_search_tools"
FIND = "list the issues of a repository"
ISSUES = {"owner": "acme", "repo": "widgets"}
SEARCHING = TurnScript.parse({"turns": [
    {"tool": "list_issues", "search": FIND, "arguments": ISSUES}, {"text": "Three are open."}]})
QUERY_SCHEMA = {"type": "object", "properties": {"query": {"type": "string"}}}
# name -> description: a small catalog, every one a real-looking function
CATALOG = {
    "list_issues": "List issues in a GitHub repository.",
    "create_issue": "Create a new issue in a GitHub repository.",
    "get_weather": "Current weather for a city.",
    "send_email": "Send an email to a recipient.",
    "read_file": "Read a file from the local disk.",
}
MODELS = {"/v1/messages": "claude-sonnet-4-6", "/v1/chat/completions": "gpt-4o",
          "/v1/responses": "gpt-5"}
ROUTES = list(MODELS)


def _tool(route: str, name: str, description: str, schema: JSON) -> JSON:
    if route == "/v1/messages":
        return {"name": name, "description": description, "input_schema": schema}
    if route == "/v1/responses":
        return {"type": "function", "name": name, "description": description, "parameters": schema}
    return {"type": "function", "function": {"name": name, "description": description,
                                             "parameters": schema}}


def _tools(route: str, names: list[str], *, search: bool) -> list[JSON]:
    tools = [_tool(route, name, CATALOG[name], SHELL) for name in names]
    return [_tool(route, SEARCH_TOOL, "Find more tools.", QUERY_SCHEMA)] * search + tools


def _body(route: str, history: list[JSON], tools: list[JSON]) -> JSON:
    body: JSON = {"model": MODELS[route], "tools": tools}
    if route == "/v1/messages":
        return {**body, "max_tokens": 1024, "messages": history}
    if route == "/v1/responses":
        return {**body, "input": history, "reasoning": {"effort": "low"}}
    return {**body, "messages": history}


def _call(route: str, answer: JSON) -> tuple[str, JSON, str]:
    """The one tool call of an answer: name, arguments, call id."""
    if route == "/v1/messages":
        [block] = [b for b in answer["content"] if b["type"] == "tool_use"]
        return block["name"], block["input"], block["id"]
    if route == "/v1/responses":
        [item] = [i for i in answer["output"] if i["type"] == "function_call"]
        return item["name"], json.loads(item["arguments"]), item["call_id"]
    [call] = answer["choices"][0]["message"]["tool_calls"]
    return call["function"]["name"], json.loads(call["function"]["arguments"]), call["id"]


def _answered(route: str, history: list[JSON], answer: JSON, output: str) -> list[JSON]:
    """The history with the model's answer and the client's result for its call."""
    _, _, call_id = _call(route, answer)
    if route == "/v1/messages":
        return [*history, {"role": "assistant", "content": answer["content"]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": call_id, "content": output}]}]
    if route == "/v1/responses":
        return [*history, *answer["output"],
                {"type": "function_call_output", "call_id": call_id, "output": output}]
    return [*history, answer["choices"][0]["message"],
            {"role": "tool", "tool_call_id": call_id, "content": output}]


def _text(route: str, answer: JSON) -> str:
    if route == "/v1/messages":
        return "".join(b["text"] for b in answer["content"] if b["type"] == "text")
    if route == "/v1/responses":
        return "".join(part["text"] for item in answer["output"] if item["type"] == "message"
                       for part in item["content"])
    return str(answer["choices"][0]["message"]["content"])


ASKED = [{"role": "user", "content": "What is on the tracker?"}]
OTHERS = ["get_weather", "send_email"]


@pytest.fixture(scope="module")
def searching() -> Iterator[tuple[str, Any]]:
    app = create_sim_app(turns=SEARCHING)
    with ServerThread(app) as url:
        yield url, app


@pytest.mark.parametrize("route", ROUTES)
def test_a_withheld_tool_is_searched_for_then_called_once_offered(
        searching: tuple[str, Any], route: str) -> None:
    url, app = searching
    first = httpx.post(url + route, json=_body(route, ASKED, _tools(route, OTHERS, search=True)))
    assert _call(route, first.json())[:2] == (SEARCH_TOOL, {"query": FIND})
    assert app.state.bills[-1].outcome == "search"
    # The detour's round: the search answered, the tool now offered; the same turn comes.
    detour = _answered(route, ASKED, first.json(), "These tools are now available: list_issues")
    tools = _tools(route, [*OTHERS, "list_issues"], search=True)
    second = httpx.post(url + route, json=_body(route, detour, tools)).json()
    assert _call(route, second)[:2] == ("list_issues", ISSUES)
    assert app.state.bills[-1].outcome == "scripted"
    # What the client then sends has one answer (the search round is not in it): turn 2.
    after = _answered(route, ASKED, second, "3 open")
    third = httpx.post(url + route, json=_body(route, after, tools)).json()
    assert _text(route, third) == "Three are open."


@pytest.mark.parametrize("route", ROUTES)
def test_without_search_words_the_model_searches_for_the_users_text(route: str) -> None:
    script = TurnScript.parse({"turns": [{"tool": "list_issues", "arguments": ISSUES}]})
    with running_script(script) as url:
        answer = httpx.post(url + route, json=_body(route, ASKED, _tools(route, OTHERS, search=True)))
    assert _call(route, answer.json())[:2] == (SEARCH_TOOL, {"query": "What is on the tracker?"})


@pytest.mark.parametrize("route", ROUTES)
def test_with_neither_the_tool_nor_a_search_tool_the_simulator_generates(
        searching: tuple[str, Any], route: str) -> None:
    url, app = searching
    answer = httpx.post(url + route, json=_body(route, ASKED, _tools(route, OTHERS, search=False)))
    assert answer.status_code == 200 and "Three" not in _text(route, answer.json())
    assert app.state.bills[-1].outcome == "generated"


@contextlib.contextmanager
def running_script(script: TurnScript) -> Iterator[str]:
    with ServerThread(create_sim_app(turns=script)) as url:
        yield url


def test_search_only_rounds_are_no_answers_on_any_route() -> None:
    search_block = {"type": "tool_use", "id": "s", "name": SEARCH_TOOL, "input": {"query": "x"}}
    real_block = {"type": "tool_use", "id": "r", "name": "list_issues", "input": {}}
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "s"}]}
    thinking = {"type": "thinking", "thinking": "...", "signature": "z"}
    searched = [ASKED[0], {"role": "assistant", "content": [thinking, search_block]}, result]
    assert answers_given("/v1/messages", {"messages": searched}) == 0
    beside = [ASKED[0], {"role": "assistant", "content": [search_block, real_block]}, result]
    assert answers_given("/v1/messages", {"messages": beside}) == 1  # a real call beside it
    chat_search = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "s", "type": "function", "function": {"name": SEARCH_TOOL, "arguments": "{}"}}]}
    chat = [ASKED[0], chat_search, {"role": "tool", "tool_call_id": "s", "content": "found"}]
    assert answers_given("/v1/chat/completions", {"messages": chat}) == 0
    said = {**chat_search, "content": "Looking."}
    assert answers_given("/v1/chat/completions", {"messages": [ASKED[0], said]}) == 1
    items = [ASKED[0], {"type": "reasoning", "summary": []},
             {"type": "function_call", "call_id": "s", "name": SEARCH_TOOL, "arguments": "{}"},
             {"type": "function_call_output", "call_id": "s", "output": "found"},
             {"type": "reasoning", "summary": []},
             {"type": "function_call", "call_id": "r", "name": "list_issues", "arguments": "{}"},
             {"type": "function_call_output", "call_id": "r", "output": "3"}]
    assert answers_given("/v1/responses", {"input": items}) == 1


@pytest.mark.parametrize(("turn", "problem"), [
    ({"text": "a", "search": "b"}, "'search' must be words, on a tool turn"),
    ({"tool": "a", "search": ""}, "'search' must be words"),
    ({"tool": "a", "search": 3}, "'search' must be words"),
])
def test_a_bad_search_names_the_turn(turn: JSON, problem: str) -> None:
    with pytest.raises(ConfigError, match=f"turn 0: {problem}"):
        TurnScript.parse({"turns": [turn]})


@pytest.mark.parametrize("route", ROUTES)
def test_through_the_sidecar_the_search_is_a_detour_the_client_never_sees(route: str) -> None:
    """The real detour: lazy tools withhold `list_issues`, the scripted model searches for it,
    the sidecar answers the search and asks again, and the client gets the call."""
    lazy = {"lazy": True, "mode": "search", "lazy_threshold_tokens": 0, "preload_k": 1}
    everything = _tools(route, [*CATALOG], search=False)
    with running_sim(turns=SEARCHING) as sim:
        settings = settings_for(sim.url, plugins={"tools": lazy}, ledger={"enabled": False})
        app = create_app(settings, engine=Engine.from_settings(settings))
        with ServerThread(app) as url:
            first = httpx.post(url + route, json=_body(route, ASKED, everything)).json()
            after = _answered(route, ASKED, first, "3 open")
            final = httpx.post(url + route, json=_body(route, after, everything)).json()
        received = [json.loads(body) for body in sim.bodies]
    assert _call(route, first)[:2] == ("list_issues", ISSUES)
    assert SEARCH_TOOL not in json.dumps(first)
    assert _text(route, final) == "Three are open."
    offered_then = [offered(body) for body in received]
    assert SEARCH_TOOL in offered_then[0] and "list_issues" not in offered_then[0]
    assert {SEARCH_TOOL, "list_issues"} <= offered_then[1]
    assert [bill.outcome for bill in sim.app.state.bills] == ["search", "scripted", "scripted"]

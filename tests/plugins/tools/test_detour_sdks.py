"""The search detour end to end: the official SDKs, the real sidecar, the simulator behind it.

The first move of each turn is a search (the recorded tool is withheld); the
client must get one clean answer carrying the recorded call, billed as the sum
of every upstream call, and the next turn must forward the same tools bytes.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.integration.support import QueueSink, Sim, running_sim, settings_for
from tests.plugins.tools.corpus import (
    JSON,
    MODELS,
    ROUTES,
    in_form,
    mcp_tools,
    name_of,
    ranked,
    recorded_call,
)
from tests.report.test_report import metric
from tokenopt.engine import Engine
from tokenopt.proxy import create_app
from tokenopt.records import ExchangeRecord
from tokenopt.serving import ServerThread
from tokenopt.sim.bills import Bill

SEARCH = "tokenopt_search_tools"
QUERY = "Open a pull request on GitHub that merges my feature branch into main"
TOOLS = mcp_tools(240)
PRELOAD = 3
RANKS = ranked(TOOLS, QUERY, PRELOAD + 2)
ARGS = {"owner": "acme", "repo": "web", "pullNumber": 7, "event": "APPROVE"}
LAZY = {"lazy": True, "mode": "search", "preload_k": PRELOAD, "siblings": 0, "search_k": 5}


@dataclass
class Front:
    sim: Sim
    url: str
    sink: QueueSink


@contextlib.contextmanager
def front(**tools: Any) -> Iterator[Front]:
    """The sidecar as `tokenopt serve` builds it (discovered plugins), lazy tools on."""
    with running_sim() as sim:
        settings = settings_for(sim.url, plugins={"tools": {**LAZY, **tools}},
                                ledger={"enabled": False})
        sink = QueueSink()
        engine = Engine.from_settings(settings, sinks=[sink])
        with ServerThread(create_app(settings, engine=engine)) as url:
            yield Front(sim, url, sink)


@dataclass
class Turn:
    """What the client got of one turn, read through the SDK."""

    calls: list[tuple[str, JSON, str]]  # name, arguments, call id
    usage: tuple[int, int, int]  # whole prompt, cached part, output
    visible: str  # everything the SDK handed the client, serialised
    assistant: list[JSON]  # the answer as the client sends it back


def totals(bills: list[Bill]) -> tuple[int, int, int]:
    return (sum(b.counts.input_tokens for b in bills), sum(b.counts.cached_tokens for b in bills),
            sum(b.counts.output_tokens for b in bills))


def contiguous(indexes: list[int]) -> bool:
    return sorted(set(indexes)) == list(range(len(set(indexes))))


# one turn per route, streamed or not --------------------------------------------------------


def messages_turn(url: str, body: JSON, headers: dict[str, str], stream: bool) -> Turn:
    message: anthropic.types.Message
    with anthropic.Anthropic(base_url=url, api_key="sk-detour", max_retries=0) as client:
        if stream:
            with client.messages.stream(**body, extra_headers=headers) as events:
                seen = list(events)
                message = events.get_final_message()
            kinds = [e.type for e in seen]
            assert kinds.count("message_start") == 1 and kinds.count("message_stop") == 1
            started = [e.index for e in seen if e.type == "content_block_start"]
            assert started == list(range(len(message.content)))
            assert {e.index for e in seen if e.type == "content_block_delta"} <= set(started)
            visible = "".join(e.model_dump_json(warnings=False) for e in seen)
        else:
            message = client.messages.create(**body, extra_headers=headers)
            visible = ""
    calls = [(b.name, dict(b.input), b.id) for b in message.content
             if b.type == "tool_use"]
    u = message.usage
    cached, written = u.cache_read_input_tokens or 0, u.cache_creation_input_tokens or 0
    return Turn(calls,
                (u.input_tokens + cached + written, cached, u.output_tokens),
                visible + message.model_dump_json(warnings=False),
                [{"role": "assistant", "content": [b.model_dump(warnings=False, exclude_none=True)
                                                   for b in message.content]}])


def responses_turn(url: str, body: JSON, headers: dict[str, str], stream: bool) -> Turn:
    response: openai.types.responses.Response
    with openai.OpenAI(base_url=url + "/v1", api_key="sk-detour", max_retries=0) as client:
        if stream:
            with client.responses.stream(**body, extra_headers=headers) as events:
                seen = list(events)
                response = events.get_final_response()
            kinds = [e.type for e in seen]
            assert kinds.count("response.created") == 1 and kinds[-1] == "response.completed"
            assert [e.sequence_number for e in seen] == list(range(len(seen)))
            added = [e.output_index for e in seen if e.type == "response.output_item.added"]
            assert added == list(range(len(response.output)))
            visible = "".join(e.model_dump_json(warnings=False) for e in seen)
        else:
            response = client.responses.create(**body, extra_headers=headers)
            visible = ""
    calls = [(i.name, json.loads(i.arguments), i.call_id) for i in response.output
             if i.type == "function_call"]
    u = response.usage
    assert u is not None
    return Turn(calls,
                (u.input_tokens, u.input_tokens_details.cached_tokens, u.output_tokens),
                visible + response.model_dump_json(warnings=False),
                [i.model_dump(warnings=False, exclude_none=True, exclude={"parsed_arguments"})
                 for i in response.output])


def chat_turn(url: str, body: JSON, headers: dict[str, str], stream: bool) -> Turn:
    completion: openai.types.chat.ChatCompletion
    with openai.OpenAI(base_url=url + "/v1", api_key="sk-detour", max_retries=0) as client:
        if stream:
            with client.chat.completions.stream(**body, extra_headers=headers,
                                                stream_options={"include_usage": True}) as events:
                seen = list(events)
                completion = events.get_final_completion()
            chunks = [e.chunk for e in seen if e.type == "chunk"]
            assert len({c.id for c in chunks}) == 1
            deltas = [c.choices[0].delta for c in chunks if c.choices]
            assert sum(d.role is not None for d in deltas) == 1
            assert contiguous([t.index for d in deltas for t in d.tool_calls or []])
            assert sum(c.choices[0].finish_reason is not None for c in chunks if c.choices) == 1
            assert [c.usage is not None for c in chunks].count(True) == 1
            visible = "".join(c.model_dump_json(warnings=False) for c in chunks)
        else:
            completion = client.chat.completions.create(**body, extra_headers=headers)
            visible = ""
    message = completion.choices[0].message
    calls = [(c.function.name, json.loads(c.function.arguments), c.id)
             for c in message.tool_calls or [] if c.type == "function"]
    u = completion.usage
    assert u is not None and u.prompt_tokens_details is not None
    return Turn(calls,
                (u.prompt_tokens, u.prompt_tokens_details.cached_tokens or 0, u.completion_tokens),
                visible + completion.model_dump_json(warnings=False),
                [{"role": "assistant", "content": None,
                  "tool_calls": [c.model_dump(warnings=False, exclude_none=True) for c in message.tool_calls or []]}])


DRIVERS = {"/v1/messages": messages_turn, "/v1/responses": responses_turn,
           "/v1/chat/completions": chat_turn}


def body_for(route: str, history: list[JSON]) -> JSON:
    body: JSON = {"model": MODELS[route], "tools": in_form(route, TOOLS)}
    if route == "/v1/messages":
        return {**body, "max_tokens": 1024, "messages": history}
    return {**body, "input": history} if route == "/v1/responses" else {**body, "messages": history}


def tool_result(route: str, call_id: str, text: str) -> JSON:
    if route == "/v1/messages":
        return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id,
                                             "content": text}]}
    if route == "/v1/responses":
        return {"type": "function_call_output", "call_id": call_id, "output": text}
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def reply(route: str, text: str) -> JSON:
    if route == "/v1/messages":
        return {"content": [{"type": "text", "text": text}], "usage": {"output_tokens": 6}}
    if route == "/v1/responses":
        return {"output": [{"type": "message", "role": "assistant",
                            "content": [{"type": "output_text", "text": text}]}],
                "usage": {"output_tokens": 6}}
    return {"choices": [{"message": {"role": "assistant", "content": text}}],
            "usage": {"completion_tokens": 6}}


def answered(route: str, body: JSON) -> list[str]:
    """The call ids a forwarded body answers (tool_result / tool message / function_call_output)."""
    turns = body.get("messages") or body.get("input") or []
    if route == "/v1/messages":
        return [b["tool_use_id"] for m in turns if isinstance(m.get("content"), list)
                for b in m["content"] if b.get("type") == "tool_result"]
    if route == "/v1/responses":
        return [i["call_id"] for i in turns if i.get("type") == "function_call_output"]
    return [m["tool_call_id"] for m in turns if m.get("role") == "tool"]


def searched(route: str, body: JSON) -> list[str]:
    """The ids of the search calls replayed in a forwarded body."""
    turns = body.get("messages") or body.get("input") or []
    if route == "/v1/messages":
        return [b["id"] for m in turns if isinstance(m.get("content"), list)
                for b in m["content"] if b.get("type") == "tool_use" and b.get("name") == SEARCH]
    if route == "/v1/responses":
        return [i["call_id"] for i in turns if i.get("type") == "function_call"
                and i.get("name") == SEARCH]
    return [c["id"] for m in turns for c in m.get("tool_calls") or []
            if c["function"]["name"] == SEARCH]


def forwarded_tools(route: str, body: JSON, leave_out: str | None = None) -> str:
    """The tools bytes as the provider caches them (Anthropic's markers are not content)."""
    tools = [t for t in body["tools"] if name_of(t) != leave_out]
    if route == "/v1/messages":
        tools = [{k: v for k, v in t.items() if k != "cache_control"} for t in tools]
    return json.dumps(tools, ensure_ascii=False, separators=(",", ":"))


def tools_note(record: ExchangeRecord) -> JSON:
    notes = record.plugin_notes.get("tools")
    assert isinstance(notes, dict)
    return notes


CASES = [pytest.param(route, stream, id=f"{route.rsplit('/', 1)[1]}-{'sse' if stream else 'json'}")
         for route in ROUTES for stream in (False, True)]


@pytest.mark.parametrize(("route", "stream"), CASES)
def test_a_search_first_turn_reaches_the_client_as_one_clean_answer(route: str,
                                                                    stream: bool) -> None:
    target = RANKS[PRELOAD]  # not preloaded; the first search finds it
    assert target not in RANKS[:PRELOAD]
    drive = DRIVERS[route]
    with front() as f:
        f.sim.app.state.script.add("turn-1", recorded_call(route, target, ARGS))
        history: list[JSON] = [{"role": "user", "content": QUERY}]
        first = drive(f.url, body_for(route, history), {"x-sim-recorded": "turn-1"}, stream)
        record = f.sink.next()
        bills = list(f.sim.app.state.bills)
        bodies = [json.loads(b) for b in f.sim.bodies]

        [(name, arguments, call_id)] = first.calls
        assert (name, arguments) == (target, ARGS)
        assert SEARCH not in first.visible
        assert [b.outcome for b in bills] == ["search", "recorded"]
        assert first.usage == totals(bills)
        assert len(bodies) == 2
        names = [[name_of(t) for t in b["tools"]] for b in bodies]
        assert target not in names[0] and target in names[1]
        assert searched(route, bodies[1]) == answered(route, bodies[1]) != []
        assert tools_note(record)["search_detours"] >= 1
        assert record.status == 200 and record.complete
        exposed = httpx.get(f.url + "/metrics").text
        assert metric(exposed, "tokenopt_search_detours_total", route=route,
                      model=record.model or "") == 1
        assert metric(exposed, "tokenopt_search_detour_cost_usd_total", route=route,
                      model=record.model or "") > 0

        # Turn 2: the client sends back what it got and the tool's result.
        f.sim.app.state.script.add("turn-2", reply(route, "Review submitted."))
        history += [*first.assistant, tool_result(route, call_id, '{"ok": true}')]
        done = drive(f.url, body_for(route, history), {"x-sim-recorded": "turn-2"}, stream)
        f.sink.next()
        second = json.loads(f.sim.bodies[-1])

    assert done.calls == [] and "Review submitted." in done.visible
    assert len(f.sim.bodies) == 3  # no search in turn 2: the tool was remembered
    assert target in [name_of(t) for t in second["tools"]]
    # The loaded set was remembered: the same tools, in the same order, only appended ...
    before, after = forwarded_tools(route, bodies[1], SEARCH), forwarded_tools(route, second, SEARCH)
    assert after[:len(before) - 1] == before[:-1]
    # ... and the same bytes, the search tool's own included (the prefix the provider caches).
    before, after = forwarded_tools(route, bodies[1]), forwarded_tools(route, second)
    assert after[:len(before) - 1] == before[:-1]


@pytest.mark.parametrize("route", ROUTES)
def test_a_first_search_that_misses_takes_one_more_round(route: str) -> None:
    target = RANKS[PRELOAD + 1]  # the first search (k=1) returns the tool ranked before it
    with front(search_k=1, search_rounds=2) as f:
        f.sim.app.state.script.add("turn-1", recorded_call(route, target, ARGS))
        got = DRIVERS[route](f.url, body_for(route, [{"role": "user", "content": QUERY}]),
                             {"x-sim-recorded": "turn-1"}, True)
        record = f.sink.next()
        bills = list(f.sim.app.state.bills)
        bodies = [json.loads(b) for b in f.sim.bodies]

    assert [(n, a) for n, a, _ in got.calls] == [(target, ARGS)]
    assert SEARCH not in got.visible
    assert [b.outcome for b in bills] == ["search", "search", "recorded"]
    assert got.usage == totals(bills)
    assert tools_note(record)["search_detours"] == 2
    # The last round allowed goes without the search tool; both searches are answered there.
    assert SEARCH in [name_of(t) for t in bodies[1]["tools"]]
    assert SEARCH not in [name_of(t) for t in bodies[2]["tools"]]
    assert target in [name_of(t) for t in bodies[2]["tools"]]
    assert len(answered(route, bodies[2])) == 2

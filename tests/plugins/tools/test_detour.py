"""The search detour's edge cases, in process: `TokenOptMiddleware` in front of the simulator.

Where a case needs the upstream to do something the simulated model does not
(fail on the second call, write text before its search, call a real tool beside
it), a thin ASGI wrapper changes that one call; the simulator still answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.plugins.tools.corpus import (
    JSON,
    ROUTES,
    in_form,
    mcp_tools,
    name_of,
    ranked,
    recorded_call,
    request,
)
from tokenopt._sse import SSEEvent, SSEParser
from tokenopt.asgi import TokenOptMiddleware
from tokenopt.dialects.base import loads_object, sse_event
from tokenopt.engine import Engine
from tokenopt.records import ExchangeRecord
from tokenopt.settings import Settings
from tokenopt.sim import create_sim_app
from tokenopt.sim.script import RECORDED_HEADER
from tokenopt.store import MemoryStore
from tokenopt.tokens import TokenCounter
from tokenopt.types import ASGIApp, Message, Receive, Scope, Send

pytestmark = pytest.mark.anyio
SEARCH = "tokenopt_search_tools"
QUERY = "Open a pull request on GitHub that merges my feature branch into main"
TOOLS = mcp_tools(240)
PRELOAD = 3
RANKS = ranked(TOOLS, QUERY, 40)
TARGET = RANKS[PRELOAD]  # not preloaded; the first search finds it
FAR = RANKS[-1]  # not among the first searches' results
ARGS = {"owner": "acme", "repo": "web", "pullNumber": 7, "event": "APPROVE"}
LAZY = {"lazy": True, "mode": "search", "preload_k": PRELOAD, "siblings": 0, "search_k": 5}


@dataclass
class Upstream:
    """The simulator behind a wrapper that can fail or edit one numbered call (1-based)."""

    sim: Starlette = field(default_factory=create_sim_app)
    fail: dict[int, int] = field(default_factory=dict)  # call number -> status the sim answers
    edits: dict[int, Callable[[str, bytes], bytes]] = field(default_factory=dict)
    app: ASGIApp | None = None  # what serves the calls, when not the simulator itself
    calls: int = 0

    @property
    def bodies(self) -> list[JSON]:
        return [json.loads(body) for _, _, _, body in self.sim.state.received]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.sim(scope, receive, send)
            return
        self.calls += 1
        number = self.calls
        if number in self.fail:
            headers = [*scope["headers"], (b"x-sim-status", str(self.fail[number]).encode())]
            scope = {**scope, "headers": headers}
        edit = self.edits.get(number)
        serve = self.app or self.sim
        if edit is None:
            await serve(scope, receive, send)
            return
        held: list[Message] = []
        chunks: list[bytes] = []

        async def hold(message: Message) -> None:
            if message["type"] == "http.response.start":
                held.append(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await serve(scope, receive, hold)
        body = edit(scope["path"], b"".join(chunks))
        start = held[0]
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body, "more_body": False})


class Records:
    def __init__(self) -> None:
        self.all: list[ExchangeRecord] = []

    async def write(self, record: ExchangeRecord) -> None:
        self.all.append(record)


@dataclass
class Exchange:
    status: int
    body: bytes
    record: ExchangeRecord

    def json(self) -> JSON:
        parsed = json.loads(self.body)
        assert isinstance(parsed, dict)
        return parsed

    def events(self) -> list[SSEEvent]:
        return SSEParser().feed(self.body)

    @property
    def notes(self) -> JSON:
        return self.record.plugin_notes.get("tools", {})


async def exchange(upstream: Upstream | ASGIApp, route: str, body: JSON, *, key: str | None = None,
                   **tools: Any) -> Exchange:
    """One client request through tokenopt (tools plugin lazy) to `upstream`."""
    settings = Settings.load(environ={}, plugins={"tools": {**LAZY, **tools}},
                             ledger={"enabled": False})
    records = Records()
    engine = Engine.from_settings(settings, store=MemoryStore(), sinks=[records])
    app = TokenOptMiddleware(upstream, engine=engine)
    headers = {"x-api-key": "sk-edge", "authorization": "Bearer sk-edge"}
    if key is not None:
        headers[RECORDED_HEADER] = key
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://tokenopt") as client:
            response = await client.post(route, json=body, headers=headers)
    finally:
        await engine.aclose()
    [record] = records.all
    return Exchange(response.status_code, response.content, record)


def offering(route: str, *, stream: bool) -> JSON:
    return request(route, in_form(route, TOOLS), QUERY, stream=stream)


def scripted(upstream: Upstream, route: str, name: str = TARGET) -> str:
    upstream.sim.state.script.add("turn", recorded_call(route, name, ARGS))
    return "turn"


def tool_names(body: JSON) -> list[str | None]:
    return [name_of(t) for t in body.get("tools", [])]


def kinds(events: list[SSEEvent]) -> list[str]:
    return [event.event if event.event != "message" else str(loads_object(event.data).get("type"))
            for event in events]


CASES = [pytest.param(r, s, id=f"{r.rsplit('/', 1)[1]}-{'sse' if s else 'json'}")
         for r in ROUTES for s in (False, True)]


# what the wrapper changes of one call, in each dialect ---------------------------------------

TEXT = "Let me look for a tool that can do this."
Frames = list[tuple[str | None, Any]]  # (event name, payload: a JSON object or raw text)


def frames(raw: bytes) -> Frames:
    return [(e.event if e.event != "message" else None, loads_object(e.data) or e.data)
            for e in SSEParser().feed(raw)]


def unframe(items: Frames) -> bytes:
    return b"".join(sse_event(p if isinstance(p, str) else json.dumps(p), name).raw
                    for name, p in items)


def shifted(items: Frames, key: str, start: int) -> Frames:
    """Every event from `start` on with its `key` index one higher (room for a new item first)."""
    return [*items[:start], *((n, {**p, key: p[key] + 1} if isinstance(p, dict) and key in p
                               else p) for n, p in items[start:])]


def position(items: Frames, kind: str) -> int:
    return next(i for i, (n, p) in enumerate(items)
                if n == kind or (isinstance(p, dict) and p.get("type") == kind))


def message_item(text: str) -> JSON:
    return {"type": "message", "id": "msg_pre", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def text_first(route: str, raw: bytes) -> bytes:
    """The answer with a text part before what the model called."""
    if not raw.startswith(b"{"):
        return unframe(_text_first_stream(route, frames(raw)))
    body = json.loads(raw)
    if route == "/v1/messages":
        body["content"] = [{"type": "text", "text": TEXT}, *body["content"]]
    elif route == "/v1/responses":
        body["output"] = [message_item(TEXT), *body["output"]]
    else:
        body["choices"][0]["message"]["content"] = TEXT
    return json.dumps(body).encode()


def _text_first_stream(route: str, items: Frames) -> Frames:
    if route == "/v1/messages":
        at = position(items, "content_block_start")
        text = [("content_block_start", {"type": "content_block_start", "index": 0,
                                         "content_block": {"type": "text", "text": ""}}),
                ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                         "delta": {"type": "text_delta", "text": TEXT}}),
                ("content_block_stop", {"type": "content_block_stop", "index": 0})]
        items = shifted(items, "index", at)
        return [*items[:at], *text, *items[at:]]
    if route == "/v1/responses":
        at = position(items, "response.output_item.added")
        item = message_item(TEXT)
        text = [("response.output_item.added", {"type": "response.output_item.added",
                                                "output_index": 0,
                                                "item": {**item, "content": [],
                                                         "status": "in_progress"}}),
                ("response.output_text.delta", {"type": "response.output_text.delta",
                                                "output_index": 0, "content_index": 0,
                                                "item_id": "msg_pre", "delta": TEXT}),
                ("response.output_item.done", {"type": "response.output_item.done",
                                               "output_index": 0, "item": item})]
        items = shifted(items, "output_index", at)
        done = position(items, "response.completed")
        name, final = items[done]
        final = {**final, "response": {**final["response"],
                                       "output": [item, *final["response"]["output"]]}}
        return [*items[:at], *text, *items[at:done], (name, final), *items[done + 1:]]
    _, first = items[0]
    said = {**first, "choices": [{"index": 0, "delta": {"content": TEXT}, "finish_reason": None}]}
    return [items[0], (None, said), *items[1:]]


REAL = RANKS[0]  # a preloaded tool: the client has it, and it is offered


def real_call_beside(route: str, raw: bytes) -> bytes:
    """The answer with a call to a real (offered) tool after the search call."""
    arguments = {"owner": "acme", "repo": "web"}
    if not raw.startswith(b"{"):
        return unframe(_real_call_stream(route, frames(raw), arguments))
    body = json.loads(raw)
    if route == "/v1/messages":
        body["content"].append({"type": "tool_use", "id": "toolu_real", "name": REAL,
                                "input": arguments})
    elif route == "/v1/responses":
        body["output"].append({"type": "function_call", "id": "fc_real", "call_id": "call_real",
                               "name": REAL, "arguments": json.dumps(arguments),
                               "status": "completed"})
    else:
        body["choices"][0]["message"]["tool_calls"].append(
            {"id": "call_real", "type": "function",
             "function": {"name": REAL, "arguments": json.dumps(arguments)}})
    return json.dumps(body).encode()


def _real_call_stream(route: str, items: Frames, arguments: JSON) -> Frames:
    if route == "/v1/messages":
        at = position(items, "message_delta")
        call = [("content_block_start", {"type": "content_block_start", "index": 1,
                                         "content_block": {"type": "tool_use", "id": "toolu_real",
                                                           "name": REAL, "input": {}}}),
                ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {
                    "type": "input_json_delta", "partial_json": json.dumps(arguments)}}),
                ("content_block_stop", {"type": "content_block_stop", "index": 1})]
        return [*items[:at], *call, *items[at:]]
    if route == "/v1/responses":
        item = {"type": "function_call", "id": "fc_real", "call_id": "call_real", "name": REAL,
                "arguments": json.dumps(arguments), "status": "completed"}
        done = position(items, "response.completed")
        call = [("response.output_item.added", {"type": "response.output_item.added",
                                                "output_index": 1,
                                                "item": {**item, "status": "in_progress"}}),
                ("response.output_item.done", {"type": "response.output_item.done",
                                               "output_index": 1, "item": item})]
        name, final = items[done]
        final = {**final, "response": {**final["response"],
                                       "output": [*final["response"]["output"], item]}}
        return [*items[:done], *call, (name, final), *items[done + 1:]]
    at = next(i for i, (_, p) in enumerate(items) if isinstance(p, dict) and p.get("choices")
              and p["choices"][0].get("finish_reason"))
    _, last = items[at]
    chunk = {**last, "choices": [{"index": 0, "finish_reason": None, "delta": {"tool_calls": [
        {"index": 1, "id": "call_real", "type": "function",
         "function": {"name": REAL, "arguments": json.dumps(arguments)}}]}}]}
    return [*items[:at], (None, chunk), *items[at:]]


# the client's view ----------------------------------------------------------------------------


def calls_seen(route: str, ex: Exchange, stream: bool) -> list[str]:
    """Names of the tools the client's answer calls (from the stream's events when streamed)."""
    if not stream:
        body = ex.json()
        if route == "/v1/messages":
            return [b["name"] for b in body["content"] if b["type"] == "tool_use"]
        if route == "/v1/responses":
            return [i["name"] for i in body["output"] if i["type"] == "function_call"]
        return [c["function"]["name"] for c in body["choices"][0]["message"].get("tool_calls")
                or []]
    payloads = [loads_object(e.data) for e in ex.events()]
    if route == "/v1/messages":
        return [p["content_block"]["name"] for p in payloads
                if p.get("type") == "content_block_start"
                and p["content_block"]["type"] == "tool_use"]
    if route == "/v1/responses":
        return [p["item"]["name"] for p in payloads if p.get("type") == "response.output_item.added"
                and p["item"]["type"] == "function_call"]
    return [c["function"]["name"] for p in payloads for ch in p.get("choices") or []
            for c in ch["delta"].get("tool_calls") or [] if c.get("function", {}).get("name")]


def well_formed(route: str, ex: Exchange) -> list[JSON]:
    """The stream's payloads, after checking it reads as one answer in the route's terms."""
    events = ex.events()
    payloads = [loads_object(e.data) for e in events]
    names = kinds(events)
    if route == "/v1/messages":
        assert names.count("message_start") == 1 and names[0] == "message_start"
        started = [p["index"] for p in payloads if p.get("type") == "content_block_start"]
        assert started == list(range(len(started)))
    elif route == "/v1/responses":
        assert names.count("response.created") == 1 and names[0] == "response.created"
        assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
        added = [p["output_index"] for p in payloads if p.get("type") == "response.output_item.added"]
        assert added == list(range(len(added)))
    else:
        chunks = [p for p in payloads if p.get("choices")]
        assert len({p["id"] for p in chunks}) == 1
        assert sum("role" in c["delta"] for p in chunks for c in p["choices"]) == 1
    return payloads


# the cases --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("route", "stream"), CASES)
async def test_an_upstream_error_in_the_second_round_reaches_the_client(route: str,
                                                                       stream: bool) -> None:
    from tokenopt.sim.app import route_for

    upstream = Upstream(fail={2: 500})
    ex = await exchange(upstream, route, offering(route, stream=stream),
                        key=scripted(upstream, route))

    error = route_for(route).error(500, "simulated upstream error (x-sim-status: 500)")
    assert upstream.calls == 2
    if not stream:
        assert (ex.status, ex.json()) == (500, error)
        assert ex.record.status == 500
        assert "500" in ex.notes["failed"]  # counted: the detour did not finish
        return
    assert ex.status == 200  # the stream had begun: it is closed with an error event
    payloads = well_formed(route, ex)
    names = kinds(ex.events())
    assert SEARCH.encode() not in ex.body
    if route == "/v1/messages":
        assert names[-1] == "error" and payloads[-1] == error
        assert "message_stop" not in names
    elif route == "/v1/responses":
        assert names[-1] == "error" and "response.completed" not in names
        assert payloads[-1]["message"] == error["error"]["message"]
    else:
        assert payloads[-1] == error and b"[DONE]" not in ex.body
    assert "round 2" in ex.notes["failed"]


@pytest.mark.parametrize(("route", "stream"), CASES)
async def test_no_search_rounds_means_no_detour_and_no_search_call_for_the_client(
        route: str, stream: bool) -> None:
    upstream = Upstream()
    ex = await exchange(upstream, route, offering(route, stream=stream),
                        key=scripted(upstream, route), search_rounds=0)

    assert ex.status == 200 and upstream.calls == 1
    assert SEARCH.encode() not in ex.body
    assert "search_detours" not in ex.notes
    if stream:
        well_formed(route, ex)


@pytest.mark.parametrize(("route", "stream"), CASES)
async def test_the_last_round_is_sent_without_the_search_tool(route: str, stream: bool) -> None:
    upstream = Upstream()
    ex = await exchange(upstream, route, offering(route, stream=stream),
                        key=scripted(upstream, route, FAR), search_rounds=1)

    first, last = upstream.bodies
    assert SEARCH in tool_names(first) and SEARCH not in tool_names(last)
    assert FAR not in tool_names(last)  # never found: the model answers with what it has
    assert [b.outcome for b in upstream.sim.state.bills] == ["search", "tool_miss"]
    assert calls_seen(route, ex, stream) == [FAR]
    assert ex.notes["search_detours"] == 1
    if stream:
        well_formed(route, ex)


@pytest.mark.parametrize(("route", "stream"), CASES)
async def test_the_tokens_forwarded_are_those_of_the_round_the_client_is_answered_from(
        route: str, stream: bool) -> None:
    upstream = Upstream()
    ex = await exchange(upstream, route, offering(route, stream=stream),
                        key=scripted(upstream, route))
    first, last = upstream.bodies
    assert TARGET in tool_names(last) and TARGET not in tool_names(first)
    # The last round carries the found tools and the search's call and answer: its usage
    # (the answer the client gets) is priced against its own counts, not the first round's.
    before, after = ex.record.tokens_before, ex.record.tokens_after
    first_tools = TokenCounter().count(json.dumps(first["tools"], separators=(",", ":")),
                                       first["model"])
    assert first_tools < after["tools"] < before["tools"]
    assert after["messages"] > before["messages"]


@pytest.mark.parametrize(("route", "stream"), CASES)
async def test_a_real_call_beside_a_search_goes_to_the_client_without_the_search(
        route: str, stream: bool) -> None:
    upstream = Upstream(edits={1: real_call_beside})
    ex = await exchange(upstream, route, offering(route, stream=stream),
                        key=scripted(upstream, route))

    assert upstream.calls == 1
    assert calls_seen(route, ex, stream) == [REAL]
    assert SEARCH.encode() not in ex.body
    assert ex.notes["searches_dropped"] == 1
    if stream:
        well_formed(route, ex)


@pytest.mark.parametrize(("route", "stream"), CASES)
async def test_text_before_a_search_is_relayed_once_and_the_next_round_continues(
        route: str, stream: bool) -> None:
    upstream = Upstream(edits={1: text_first})
    ex = await exchange(upstream, route, offering(route, stream=stream),
                        key=scripted(upstream, route))

    assert upstream.calls == 2 and ex.status == 200
    if stream and route == "/v1/responses":  # a delta, then the done item and the final output
        assert ex.body.count(TEXT.encode()) == 3
    else:
        assert ex.body.count(TEXT.encode()) == 1
    assert calls_seen(route, ex, stream) == [TARGET]
    assert SEARCH.encode() not in ex.body
    # The text is what the model said before it searched: the second round was sent it.
    assert TEXT in json.dumps(upstream.bodies[1])
    if not stream:
        body = ex.json()
        if route == "/v1/messages":
            assert [b["type"] for b in body["content"]] == ["text", "tool_use"]
        elif route == "/v1/responses":
            assert [i["type"] for i in body["output"]] == ["message", "function_call"]
        else:
            assert body["choices"][0]["message"]["content"] == TEXT
        return
    payloads = well_formed(route, ex)
    if route == "/v1/messages":
        starts = [p["content_block"]["type"] for p in payloads
                  if p.get("type") == "content_block_start"]
        assert starts == ["text", "tool_use"]  # indexes 0 and 1 (checked by well_formed)
    elif route == "/v1/responses":
        added = [p["item"]["type"] for p in payloads if p.get("type") == "response.output_item.added"]
        assert added == ["message", "function_call"]
        deltas = [p["delta"] for p in payloads if p.get("type") == "response.output_text.delta"]
        assert deltas == [TEXT]
        [final] = [p for p in payloads if p.get("type") == "response.completed"]
        assert [i["type"] for i in final["response"]["output"]] == ["message", "function_call"]
    else:
        indexes = [c["index"] for p in payloads for ch in p.get("choices") or []
                   for c in ch["delta"].get("tool_calls") or []]
        assert set(indexes) == {0}


def proxy_to(sim: Starlette) -> tuple[Starlette, httpx.AsyncClient]:
    """An application's own LLM gateway, forwarding to its provider (the simulator)."""
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim), base_url="http://sim")

    async def forward(request: Request) -> Response:
        headers = {k: v for k, v in request.headers.items() if k not in ("host", "content-length")}
        answer = await client.post(request.url.path, content=await request.body(), headers=headers)
        return Response(answer.content, status_code=answer.status_code,
                        media_type=answer.headers["content-type"])

    return Starlette(routes=[Route("/v1/{path:path}", forward, methods=["POST"])]), client


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_the_mounted_form_calls_the_wrapped_app_once_per_round(stream: bool) -> None:
    route = "/v1/messages"
    sim = create_sim_app()
    app, client = proxy_to(sim)
    upstream = Upstream(sim=sim, app=app)
    try:
        ex = await exchange(upstream, route, offering(route, stream=stream),
                            key=scripted(upstream, route))
    finally:
        await client.aclose()

    assert upstream.calls == 2 == len(sim.state.received)
    assert calls_seen(route, ex, stream) == [TARGET]
    assert ex.notes["search_detours"] == 1


async def test_the_last_round_drops_the_search_tool_even_when_it_carries_the_breakpoint() -> None:
    route = "/v1/messages"  # nothing preloaded: the search tool is the last tool, so marked
    upstream = Upstream()
    ex = await exchange(upstream, route, offering(route, stream=False),
                        key=scripted(upstream, route), preload_k=0, search_rounds=1)

    first, last = upstream.bodies
    assert tool_names(first) == [SEARCH] and "cache_control" in first["tools"][-1]
    assert SEARCH not in tool_names(last) and TARGET in tool_names(last)
    assert "cache_control" in last["tools"][-1]
    assert sum("cache_control" in t for t in last["tools"]) == 1
    assert calls_seen(route, ex, False) == [TARGET]


async def test_a_detour_round_moves_the_tools_breakpoint_to_the_last_tool() -> None:
    route = "/v1/messages"
    upstream = Upstream()
    await exchange(upstream, route, offering(route, stream=False), key=scripted(upstream, route))

    for body in upstream.bodies:
        marked = [name_of(t) for t in body["tools"] if "cache_control" in t]
        assert marked == [name_of(body["tools"][-1])]
    assert len(upstream.bodies[1]["tools"]) > len(upstream.bodies[0]["tools"])

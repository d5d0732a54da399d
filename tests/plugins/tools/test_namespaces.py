"""Lazy tools inside Responses `namespace` entries, as Codex CLI sends MCP servers.

A request shaped like Codex's: a few flat functions, one namespace per MCP server
(`mcp__github` holds GitHub's 117 real tools under their own names) and a built-in.
Functions are withheld and loaded by (namespace, name); the detour runs through the
real simulator, which names a namespaced call by its `namespace` field.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from benchmarks.workload import load_jsonl
from tests.plugins.tools.corpus import JSON, Forwarder, mcp_tools, ranked
from tests.plugins.tools.test_detour import SEARCH, Upstream
from tokenopt import jsonio
from tokenopt._sse import SSEParser
from tokenopt.asgi import TokenOptMiddleware
from tokenopt.dialects.base import loads_object
from tokenopt.engine import Engine
from tokenopt.identity import CONVERSATION_HEADER
from tokenopt.plugins.tools.selection import server_of
from tokenopt.settings import Settings
from tokenopt.sim import create_sim_app
from tokenopt.sim.script import RECORDED_HEADER
from tokenopt.store import MemoryStore

pytestmark = pytest.mark.anyio
ROUTE = "/v1/responses"
SERVERS = ("filesystem", "github", "playwright")  # 12 + 117 + 32 real tools
# Preloads tools of two of the three servers: Playwright's first, then GitHub's.
QUERY = "Review the pull request on GitHub and take a screenshot of its page in the browser"
SEARCHED = "list issues in a GitHub repository"
PRELOAD = 3
LAZY: dict[str, Any] = {"lazy": True, "mode": "search", "preload_k": PRELOAD, "siblings": 0,
                        "search_k": 5}
ARGS = {"owner": "acme", "repo": "widgets", "state": "OPEN"}


def function(name: str, description: str, schema: JSON) -> JSON:
    return {"type": "function", "name": name, "description": description,
            "parameters": schema, "strict": False}


def server_tools(server: str) -> list[JSON]:
    rows = [row for row in load_jsonl("tools.jsonl") if row.get("server") == server]
    return [function(row["name"], row["description"], row["input_schema"]) for row in rows]


def namespace(server: str, tools: list[JSON]) -> JSON:
    return {"type": "namespace", "name": f"mcp__{server}",
            "description": f"Tools in the mcp__{server} namespace.", "tools": tools}


FLAT = sorted((function(t["name"], t["description"], t["input_schema"])
               for t in mcp_tools(6, seed=3)), key=lambda t: t["name"])
SPACES = [namespace(server, server_tools(server)) for server in SERVERS]
WEB = {"type": "web_search", "external_web_access": True}
# Sorted by name, as `normalize` leaves them: the index sees the plugin's order.
TOOLS = [*FLAT, *SPACES, WEB]
# The catalog as the plugin keys it: flat names, then `<namespace>__<name>`.
KEYED = [*FLAT, *({**fn, "name": f"{space['name']}__{fn['name']}"}
                  for space in SPACES for fn in space["tools"])]


def codex_body(*, stream: bool = False, history: list[JSON] | None = None,
               tools: list[JSON] | None = None, model: str = "gpt-5", user: str = QUERY) -> JSON:
    items = [{"role": "user", "content": user}, *(history or [])]
    return {"model": model, "input": items, "tools": tools or TOOLS, "stream": stream,
            "store": False, "tool_choice": "auto"}


def forwarded_keys(body: JSON) -> list[str]:
    """What a forwarded body offers, flat names and namespaced keys, in order."""
    keys: list[str] = []
    for tool in body["tools"]:
        if tool.get("type") == "namespace":
            keys += [f"{tool['name']}__{fn['name']}" for fn in tool["tools"]]
        elif tool.get("type") == "function":
            keys.append(tool["name"])
    return keys


def spaces_of(body: JSON) -> dict[str, JSON]:
    return {tool["name"]: tool for tool in body["tools"] if tool.get("type") == "namespace"}


def as_sent(key: str) -> tuple[JSON, JSON]:
    """The namespace entry and the function inside it, as the client sent them."""
    for space in SPACES:
        prefix = f"{space['name']}__"
        if key.startswith(prefix):
            return space, next(fn for fn in space["tools"] if fn["name"] == key[len(prefix):])
    raise KeyError(key)


# selection and rendering ------------------------------------------------------------------------


async def test_namespaced_functions_are_preloaded_by_rank_inside_their_namespace() -> None:
    forwarded, notes = await Forwarder(**LAZY).send(ROUTE, codex_body())

    preloaded = ranked(KEYED, QUERY, PRELOAD)
    assert [k.split("__")[1] for k in preloaded] == ["playwright", "github", "github"]
    assert notes["lazy"]["strategy"] == "search"
    assert notes["lazy"]["tools_offered"] == len(KEYED) and notes["lazy"]["preloaded"] == preloaded
    assert sorted(k for k in forwarded_keys(forwarded) if k != SEARCH) == sorted(preloaded)
    assert WEB in forwarded["tools"]  # a built-in is the client's
    # Each forwarded namespace is the client's entry with only its loaded functions, as sent.
    for name, space in spaces_of(forwarded).items():
        sent = next(s for s in SPACES if s["name"] == name)
        assert space["tools"] and {k: v for k, v in space.items() if k != "tools"} == {
            k: v for k, v in sent.items() if k != "tools"}
        assert all(fn in sent["tools"] for fn in space["tools"])
    # A namespace with nothing loaded is not forwarded empty: it is left out.
    assert list(spaces_of(forwarded)) == ["mcp__playwright", "mcp__github"]  # in load order
    assert forwarded_keys(forwarded) == [SEARCH, *preloaded]


async def test_the_search_tool_names_the_servers_and_counts_every_function() -> None:
    forwarded, _ = await Forwarder(**LAZY).send(ROUTE, codex_body())

    [search] = [t for t in forwarded["tools"] if t.get("name") == SEARCH]
    assert f"{len(KEYED)} available tools" in search["description"]
    for server in SERVERS:
        assert server in search["description"]


async def test_a_called_namespaced_function_stays_offered_in_its_namespace() -> None:
    called = next(k for k in (f"mcp__filesystem__{fn['name']}" for fn in SPACES[0]["tools"])
                  if k not in ranked(KEYED, QUERY, 20))
    name = called.removeprefix("mcp__filesystem__")
    history = [{"type": "function_call", "call_id": "call_1", "namespace": "mcp__filesystem",
                "name": name, "arguments": "{}"},
               {"type": "function_call_output", "call_id": "call_1", "output": "{}"}]
    forwarded, notes = await Forwarder(**LAZY).send(ROUTE, codex_body(history=history))

    assert called in notes["lazy"]["preloaded"]
    assert as_sent(called)[1] in spaces_of(forwarded)["mcp__filesystem"]["tools"]


CLIENT_SEARCH = {
    "a deferred function in a namespace": [
        *FLAT, {**SPACES[0], "tools": [{**fn, "defer_loading": True}
                                       for fn in SPACES[0]["tools"]]}, *SPACES[1:], WEB],
    "a tool_search tool": [*TOOLS, {"type": "tool_search"}],
}


@pytest.mark.parametrize("managed", sorted(CLIENT_SEARCH))
async def test_a_client_that_runs_its_own_search_keeps_its_namespaces_whole(managed: str) -> None:
    tools = CLIENT_SEARCH[managed]
    forwarded, notes = await Forwarder(**LAZY).send(ROUTE, codex_body(tools=tools))
    plain, _ = await Forwarder().send(ROUTE, codex_body(tools=tools))

    assert forwarded["tools"] == plain["tools"] and "lazy" not in notes
    assert sum(len(s["tools"]) for s in spaces_of(forwarded).values()) == len(KEYED) - len(FLAT)


async def test_a_tool_in_a_namespace_that_is_not_a_function_is_never_withheld() -> None:
    grammar = {"type": "custom", "name": "apply_patch", "description": "Apply a patch.",
               "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}}
    playwright = {**SPACES[2], "tools": [*SPACES[2]["tools"], grammar]}
    tools = [*FLAT, *SPACES[:2], playwright, WEB]
    forwarded, _ = await Forwarder(**LAZY).send(ROUTE, codex_body(tools=tools))

    assert grammar in spaces_of(forwarded)["mcp__playwright"]["tools"]


async def test_native_mode_defers_functions_inside_their_namespace_not_the_namespace() -> None:
    body = codex_body(model="gpt-5.4")
    forwarded, notes = await Forwarder(**{**LAZY, "mode": "native", "native_upstream": True}).send(
        ROUTE, body)

    assert notes["lazy"]["strategy"] == "native"
    spaces = spaces_of(forwarded)
    assert set(spaces) == {s["name"] for s in SPACES}  # every function still sent
    assert all("defer_loading" not in space for space in spaces.values())
    kept = {f"{s['name']}__{fn['name']}" for s in spaces.values() for fn in s["tools"]
            if not fn.get("defer_loading")}
    assert kept == {k for k in ranked(KEYED, QUERY, PRELOAD) if k.startswith("mcp__")}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_sim_app()),
                                 base_url="http://sim") as sim:
        response = await sim.post(ROUTE, json=forwarded)
    assert response.status_code == 200, response.text  # OpenAI's checks, as the sim has them


def test_claude_code_and_codex_names_give_the_mcp_server() -> None:
    assert server_of("mcp__github__list_issues") == "github"  # Claude Code; Codex's key
    assert server_of("github__list_issues") == "github"  # `server__tool` gateways
    assert server_of("mcp__github") is None and server_of("list_issues") is None


# the detour, through the simulator --------------------------------------------------------------

# The user asks SEARCHED: preloading takes its first three, the model wants the fourth,
# and the simulated model's search (with the user's words) finds it.
TARGET = ranked(KEYED, SEARCHED, PRELOAD + 1)[PRELOAD]
TARGET_NAME = TARGET.removeprefix("mcp__github__")


class Client:
    """One tokenopt in front of the simulator, for several turns of one conversation."""

    def __init__(self) -> None:
        self.upstream = Upstream()
        settings = Settings.load(environ={}, plugins={"tools": LAZY}, ledger={"enabled": False})
        self.engine = Engine.from_settings(settings, store=MemoryStore())
        self.app = TokenOptMiddleware(self.upstream, engine=self.engine)

    async def send(self, body: JSON, recorded: str | None = None) -> httpx.Response:
        headers = {"authorization": "Bearer sk-codex", CONVERSATION_HEADER: "codex-1"}
        if recorded is not None:
            headers[RECORDED_HEADER] = recorded
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                     base_url="http://tokenopt") as client:
            return await client.post(ROUTE, json=body, headers=headers)


def recorded_search_then_call() -> JSON:
    # The recorded model called the tool by its bare name; the simulator adds the namespace.
    return {"output": [{"type": "function_call", "call_id": "call_rec_1", "name": TARGET_NAME,
                        "arguments": json.dumps(ARGS)}], "usage": {"output_tokens": 20}}


def calls_in(response: httpx.Response, stream: bool) -> list[JSON]:
    if not stream:
        return [i for i in response.json()["output"] if i["type"] == "function_call"]
    events = [json.loads(line[6:]) for line in response.text.splitlines()
              if line.startswith("data: ") and line[6:].startswith("{")]
    return [e["item"] for e in events if e.get("type") == "response.output_item.done"
            and e["item"]["type"] == "function_call"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_the_detour_loads_a_namespaced_function_into_its_namespace(stream: bool) -> None:
    client = Client()
    client.upstream.sim.state.script.add("turn", recorded_search_then_call())
    try:
        response = await client.send(codex_body(stream=stream, user=SEARCHED), recorded="turn")
        first, again = client.upstream.bodies
        assert [b.outcome for b in client.upstream.sim.state.bills] == ["search", "recorded"]
        assert TARGET not in forwarded_keys(first) and SEARCH in forwarded_keys(first)
        # The search was answered with the function named as the model calls it ...
        answer = again["input"][-1]
        assert answer["type"] == "function_call_output"
        assert f"{TARGET_NAME} (in namespace mcp__github)" in answer["output"]
        # ... and the function is back inside its namespace, as sent.
        space, fn = as_sent(TARGET)
        assert fn in spaces_of(again)["mcp__github"]["tools"]
        assert spaces_of(again)["mcp__github"]["description"] == space["description"]
        # The client sees one answer: the real call, by namespace and name, and no search.
        assert response.status_code == 200 and SEARCH not in response.text
        [call] = calls_in(response, stream)
        assert (call["namespace"], call["name"], json.loads(call["arguments"])) == (
            "mcp__github", TARGET_NAME, ARGS)
        if stream:
            one_stream(response.content)

        # The next turn carries the call: the tools are the bytes the detour last sent.
        history = [{k: v for k, v in call.items() if k in (
                        "type", "call_id", "namespace", "name", "arguments")},
                   {"type": "function_call_output", "call_id": call["call_id"], "output": "{}"}]
        await client.send(codex_body(stream=stream, history=history, user=SEARCHED))
        after = client.upstream.bodies[-1]
        assert jsonio.dumps(after["tools"]) == jsonio.dumps(again["tools"])
    finally:
        await client.engine.aclose()


def one_stream(raw: bytes) -> None:
    """A Responses stream that reads as one answer: one start, contiguous numbering."""
    payloads = [loads_object(event.data) for event in SSEParser().feed(raw)]
    types = [p.get("type") for p in payloads]
    assert types.count("response.created") == 1 and types[0] == "response.created"
    assert types.count("response.completed") == 1 and types[-1] == "response.completed"
    assert [p["sequence_number"] for p in payloads] == list(range(len(payloads)))
    added = [p["output_index"] for p in payloads if p.get("type") == "response.output_item.added"]
    assert added == list(range(len(added)))

"""What users of other gateways' lazy tool loading reported, each pinned as a test here."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from benchmarks.workload import load_jsonl
from tests.plugins.tools.corpus import (
    JSON,
    ROUTES,
    Forwarder,
    in_form,
    mcp_tools,
    name_of,
    names,
    ranked,
    recorded_call,
    request,
)
from tests.plugins.tools.test_detour import ARGS, Upstream, exchange, tool_names

pytestmark = pytest.mark.anyio
SEARCH = "tokenopt_search_tools"
TOOLS = mcp_tools(240)
QUERY = "Open a pull request on GitHub that merges my feature branch into main"
LAZY: dict[str, Any] = {"lazy": True, "mode": "search", "preload_k": 3, "siblings": 0}
ROUTE_IDS = [r.rsplit("/", 1)[1] for r in ROUTES]
NONSENSE = "qxzv wprrt blorf"  # shares no word with any tool


def with_extra(route: str, extra: list[JSON]) -> JSON:
    return request(route, [*in_form(route, TOOLS), *extra], QUERY)


# built-ins, server tools and toolsets are the client's ------------------------------------------


BUILT_INS: dict[str, list[JSON]] = {
    "/v1/responses": [{"type": "web_search"}, {"type": "code_interpreter",
                                               "container": {"type": "auto"}}],
    "/v1/messages": [{"type": "bash_20250124", "name": "bash"},
                     {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}],
}


@pytest.mark.parametrize("route", sorted(BUILT_INS), ids=["messages", "responses"])
async def test_built_in_tools_are_never_withheld(route: str) -> None:
    forwarded, notes = await Forwarder(**LAZY).send(route, with_extra(route, BUILT_INS[route]))

    assert notes["lazy"]["strategy"] == "search"
    kept = [{k: v for k, v in t.items() if k != "cache_control"} for t in forwarded["tools"]
            if t.get("type") not in (None, "function")]
    def key(tool: JSON) -> str:
        return json.dumps(tool, sort_keys=True)

    assert sorted(kept, key=key) == sorted(BUILT_INS[route], key=key)


TOOLSETS: dict[str, tuple[str, JSON]] = {
    # A namespace whose functions the client deferred: its own tool search (a plain
    # namespace is withheld function by function: test_namespaces.py).
    "deferred_namespace": ("/v1/responses", {
        "type": "namespace", "name": "crm", "description": "The CRM's tools",
        "tools": [{**t, "defer_loading": True}
                  for t in in_form("/v1/responses", mcp_tools(3, seed=99))]}),
    "mcp_toolset": ("/v1/messages", {"type": "mcp_toolset", "mcp_server_name": "github"}),
}


@pytest.mark.parametrize("kind", sorted(TOOLSETS))
async def test_toolsets_the_client_manages_keep_every_tool(kind: str) -> None:
    route, toolset = TOOLSETS[kind]
    sent = with_extra(route, [toolset])
    if kind == "mcp_toolset":
        sent["mcp_servers"] = [{"type": "url", "url": "https://example.invalid/mcp",
                                "name": "github"}]

    forwarded, _ = await Forwarder(**LAZY).send(route, sent)
    plain, _ = await Forwarder().send(route, sent)

    assert forwarded["tools"] == plain["tools"] and len(forwarded["tools"]) == len(TOOLS) + 1
    assert SEARCH not in names(forwarded)


async def test_chat_nested_function_tools_are_not_filtered_to_nothing() -> None:
    route = "/v1/chat/completions"
    forwarded, notes = await Forwarder(**LAZY).send(route, request(route, in_form(route, TOOLS),
                                                                   QUERY))

    real = [t for t in forwarded["tools"] if name_of(t) != SEARCH]
    assert [name_of(t) for t in real] == ranked(TOOLS, QUERY, 3)
    assert all(t["type"] == "function" and t["function"]["parameters"] for t in real)
    assert notes["lazy"]["tools_offered"] == len(TOOLS)


# no fallback to every tool, never beyond 128 ----------------------------------------------------


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
async def test_a_search_that_finds_nothing_never_falls_back_to_every_tool(route: str) -> None:
    upstream = Upstream()
    upstream.sim.state.script.add("turn", recorded_call(route, TOOLS[0]["name"], ARGS))
    ex = await exchange(upstream, route, request(route, in_form(route, TOOLS), NONSENSE),
                        key="turn")

    assert ex.status == 200
    assert [b.outcome for b in upstream.sim.state.bills][:2] == ["search", "search"]
    assert all(set(tool_names(b)) <= {SEARCH} for b in upstream.bodies)
    assert ex.notes["found"] == []


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
async def test_many_loads_never_exceed_128_tools(route: str) -> None:
    queries = [q["query"] for q in load_jsonl("queries.jsonl")
               if q["source"].startswith("livemcpbench")]
    proxy = Forwarder(**{**LAZY, "preload_k": 16, "siblings": 2})
    counts, loaded = [], 0
    for query in queries[:30]:
        forwarded, notes = await proxy.send(route, request(route, in_form(route, TOOLS), query))
        counts.append(len(forwarded["tools"]))
        loaded = notes["lazy"]["loaded"]
    assert loaded > 128 and max(counts) == 128


async def test_a_detour_never_takes_the_request_beyond_128_tools() -> None:
    route = "/v1/chat/completions"
    target = ranked(TOOLS, QUERY, 4)[3]
    pinned = [t["name"] for t in TOOLS if t["name"] != target][:126]
    upstream = Upstream()
    upstream.sim.state.script.add("turn", recorded_call(route, target, ARGS))
    ex = await exchange(upstream, route, request(route, in_form(route, TOOLS), QUERY),
                        key="turn", pinned=pinned, preload_k=0)

    assert ex.status == 200
    assert len(upstream.bodies[0]["tools"]) == 127
    assert all(len(b["tools"]) <= 128 for b in upstream.bodies)


# schemas, scale, order ----------------------------------------------------------------------------


def schema_of(tool: JSON) -> Any:
    function = tool.get("function")
    if isinstance(function, dict):
        return function.get("parameters")
    return tool.get("input_schema", tool.get("parameters"))


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("slim", [False, True], ids=["as-sent", "slim"])
async def test_every_forwarded_schema_is_a_valid_schema(route: str, slim: bool) -> None:
    upstream = Upstream()
    upstream.sim.state.script.add("turn", recorded_call(route, ranked(TOOLS, QUERY, 4)[3], ARGS))
    ex = await exchange(upstream, route, request(route, in_form(route, TOOLS), QUERY),
                        key="turn", slim=slim)

    assert ex.status == 200 and len(upstream.bodies) == 2
    schemas = [schema_of(t) for b in upstream.bodies for t in b["tools"]]
    assert schemas and all(isinstance(s, dict) for s in schemas)
    for schema in schemas:
        Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_a_request_with_2500_tools_completes(stream: bool) -> None:
    route = "/v1/messages"
    tools = mcp_tools(2500, seed=11, mcp_only=False)
    upstream = Upstream()
    target = ranked(tools, QUERY, 4)[3]
    upstream.sim.state.script.add("turn", recorded_call(route, target, ARGS))
    ex = await exchange(upstream, route, request(route, in_form(route, tools), QUERY,
                                                 stream=stream), key="turn")

    assert ex.status == 200
    assert ex.notes["lazy"]["tools_offered"] == 2500
    assert target.encode() in ex.body and SEARCH.encode() not in ex.body


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("lazy", [False, True], ids=["all-tools", "lazy"])
async def test_reordered_client_tools_forward_the_same_bytes(route: str, lazy: bool) -> None:
    proxy = Forwarder(**LAZY) if lazy else Forwarder()
    tools = in_form(route, TOOLS)
    shuffled = random.Random(3).sample(tools, len(tools))
    first, _ = await proxy.send(route, request(route, tools, QUERY))
    again, _ = await proxy.send(route, request(route, shuffled, QUERY))

    def dumped(body: JSON) -> str:
        return json.dumps(body["tools"], ensure_ascii=False, separators=(",", ":"))

    assert dumped(again) == dumped(first)

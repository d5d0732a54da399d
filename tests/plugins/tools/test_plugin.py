"""The `tools` plugin's lazy loading through the real pipeline: what it forwards, and for whom."""

from __future__ import annotations

from typing import Any

import pytest

from tests.plugins.tools.corpus import (
    JSON,
    ROUTES,
    Forwarder,
    in_form,
    mcp_tools,
    name_of,
    names,
    ranked,
    request,
)

pytestmark = pytest.mark.anyio
SEARCH = "tokenopt_search_tools"
TOOLS = mcp_tools(240)
CLIENT_NAMES = [t["name"] for t in TOOLS]
Q1 = "Open a pull request on GitHub that merges my feature branch into main"
Q2 = "List the pods running in the staging Kubernetes namespace"
LAZY: dict[str, Any] = {"lazy": True, "mode": "search", "preload_k": 3, "siblings": 0}
# A tool no query here retrieves: only pinning can bring it.
PINNED = next(n for n in CLIENT_NAMES if n not in ranked(TOOLS, Q1, 60) + ranked(TOOLS, Q2, 60))
ROUTE_IDS = [r.rsplit("/", 1)[1] for r in ROUTES]


def body(route: str, user: str = Q1, **extra: Any) -> JSON:
    return {**request(route, in_form(route, TOOLS), user), **extra}


def history_calling(route: str, name: str) -> list[JSON]:
    """An earlier turn of the conversation in which the model called `name`."""
    result = '{"ok": true}'
    if route == "/v1/messages":
        return [{"role": "user", "content": "Check the account first"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                                                   "name": name, "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                              "content": result}]},
                {"role": "assistant", "content": "Done."}]
    if route == "/v1/responses":
        return [{"role": "user", "content": "Check the account first"},
                {"type": "function_call", "call_id": "call_1", "name": name, "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": result},
                {"role": "assistant", "content": "Done."}]
    return [{"role": "user", "content": "Check the account first"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": name, "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": result},
            {"role": "assistant", "content": "Done."}]


def forced(route: str, name: str) -> Any:
    if route == "/v1/messages":
        return {"type": "tool", "name": name}
    if route == "/v1/responses":
        return {"type": "function", "name": name}
    return {"type": "function", "function": {"name": name}}


def functions(route: str, forwarded: JSON) -> list[JSON]:
    return [t for t in forwarded["tools"] if name_of(t) in CLIENT_NAMES]


# pinned tools ----------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("how", ["configured", "tool_choice", "called_earlier"])
async def test_pinned_tools_are_always_forwarded(route: str, how: str) -> None:
    settings = {**LAZY, "pinned": [PINNED]} if how == "configured" else LAZY
    sent = body(route)
    if how == "tool_choice":
        sent["tool_choice"] = forced(route, PINNED)
    elif how == "called_earlier":
        key = "input" if route == "/v1/responses" else "messages"
        sent[key] = [*history_calling(route, PINNED), *sent[key]]

    forwarded, notes = await Forwarder(**settings).send(route, sent)

    assert notes["lazy"]["strategy"] == "search"
    assert PINNED in names(forwarded) and SEARCH in names(forwarded)
    assert len(forwarded["tools"]) < len(TOOLS) // 10
    # Pinned is not preloaded: it is forwarded on every later turn as well.
    forwarded, _ = await Forwarder(**settings).send(route, sent, conversation="conv-2")
    assert PINNED in names(forwarded)


async def test_responses_allowed_tools_are_pinned() -> None:
    route = "/v1/responses"
    choice = {"type": "allowed_tools", "mode": "auto",
              "tools": [{"type": "function", "name": PINNED}]}
    forwarded, _ = await Forwarder(**LAZY).send(route, body(route, tool_choice=choice))
    assert PINNED in names(forwarded)


# when lazy loading stays off -----------------------------------------------------------------


PROVIDER_SEARCH = {"/v1/messages": {"type": "tool_search_tool_bm25_20251119",
                                    "name": "tool_search_tool_bm25"},
                   "/v1/responses": {"type": "tool_search"}}


@pytest.mark.parametrize("route", ["/v1/messages", "/v1/responses"], ids=["messages", "responses"])
@pytest.mark.parametrize("managed", ["defer_loading", "provider_search"])
async def test_client_managed_search_leaves_the_tools_alone(route: str, managed: str) -> None:
    tools = in_form(route, TOOLS)
    if managed == "defer_loading":
        tools = [{**t, "defer_loading": True} if i % 2 else t for i, t in enumerate(tools)]
    else:
        tools = [*tools, PROVIDER_SEARCH[route]]
    sent = request(route, tools, Q1)

    forwarded, notes = await Forwarder(**LAZY).send(route, sent)
    plain, _ = await Forwarder().send(route, sent)

    assert "lazy" not in notes
    assert forwarded["tools"] == plain["tools"]
    assert len(forwarded["tools"]) == len(tools) and SEARCH not in names(forwarded)


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
async def test_nothing_is_withheld_at_or_below_the_threshold(route: str) -> None:
    _, notes = await Forwarder(**LAZY).send(route, body(route))
    tokens = notes["lazy"]["tool_tokens"]
    plain, _ = await Forwarder().send(route, body(route))

    at, at_notes = await Forwarder(**LAZY, lazy_threshold_tokens=tokens).send(route, body(route))
    above, _ = await Forwarder(**LAZY, lazy_threshold_tokens=tokens - 1).send(route, body(route))

    assert at["tools"] == plain["tools"] and at_notes["lazy"]["strategy"] == "keep"
    assert SEARCH in names(above) and len(above["tools"]) < len(TOOLS)


# the loaded set: per conversation, per tenant ------------------------------------------------


def second_turn(route: str, first_user: str = Q1) -> JSON:
    earlier = [{"role": "user", "content": first_user}, {"role": "assistant", "content": "Sure."}]
    sent = body(route, Q2)
    key = "input" if route == "/v1/responses" else "messages"
    sent[key] = [*earlier, *sent[key]]
    return sent


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
async def test_the_loaded_set_belongs_to_one_conversation_of_one_tenant(route: str) -> None:
    proxy = Forwarder(**LAZY)
    first, _ = await proxy.send(route, body(route))
    loaded = [n for n in names(first) if n != SEARCH]
    assert loaded and not set(loaded) & set(ranked(TOOLS, Q2, 3))

    same, _ = await proxy.send(route, second_turn(route))
    other_tenant, _ = await proxy.send(route, second_turn(route), key="sk-tenant-b")
    other_conversation, _ = await proxy.send(route, second_turn(route), conversation="conv-9")

    assert names(same)[:len(names(first))] == names(first)  # kept, and appended to
    assert len(names(same)) > len(names(first))
    assert not set(loaded) & set(names(other_tenant))
    assert not set(loaded) & set(names(other_conversation))


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
async def test_without_a_header_the_conversation_is_the_way_it_began(route: str) -> None:
    proxy = Forwarder(**LAZY)
    first, _ = await proxy.send(route, body(route), conversation=None)
    loaded = {n for n in names(first) if n != SEARCH}

    same, _ = await proxy.send(route, second_turn(route), conversation=None)
    other, _ = await proxy.send(route, second_turn(route, "Something else entirely"),
                                conversation=None)
    other_tenant, _ = await proxy.send(route, second_turn(route), key="sk-tenant-b",
                                       conversation=None)

    assert loaded <= set(names(same))
    assert not loaded & set(names(other)) and not loaded & set(names(other_tenant))


# native tool search ----------------------------------------------------------------------------


NATIVE = {**LAZY, "mode": "native", "native_upstream": True, "pinned": [PINNED]}
NATIVE_MODELS = {"/v1/messages": "claude-sonnet-4-5", "/v1/responses": "gpt-5.4"}


@pytest.mark.parametrize("route", ["/v1/messages", "/v1/responses"], ids=["messages", "responses"])
async def test_native_mode_defers_what_is_not_pinned_and_adds_the_provider_search(
        route: str) -> None:
    forwarded, notes = await Forwarder(**NATIVE).send(route, body(route,
                                                                  model=NATIVE_MODELS[route]))

    assert notes["lazy"]["strategy"] == "native"
    sent = functions(route, forwarded)
    assert [name_of(t) for t in sent] == [name_of(t) for t in
                                          (await Forwarder().send(route, body(route)))[0]["tools"]]
    deferred = [name_of(t) for t in sent if t.get("defer_loading") is True]
    kept = [name_of(t) for t in sent if "defer_loading" not in t]
    assert PINNED in kept and len(deferred) + len(kept) == len(TOOLS)
    assert len(kept) == notes["lazy"]["loaded"]  # pinned and preloaded
    provider = [t for t in forwarded["tools"] if name_of(t) not in CLIENT_NAMES]
    assert [{k: v for k, v in t.items() if k != "cache_control"}
            for t in provider] == [PROVIDER_SEARCH[route]]
    assert SEARCH not in names(forwarded)


@pytest.mark.parametrize(("route", "model", "native_upstream"), [
    ("/v1/chat/completions", "gpt-5.4", True),  # Chat has no tool search
    ("/v1/messages", "claude-haiku-4-5", True),  # nor Haiku
    ("/v1/messages", "claude-sonnet-4-5", False),  # the upstream does not serve it
], ids=["chat", "haiku", "not-served"])
async def test_native_mode_falls_back_to_search(route: str, model: str,
                                                native_upstream: bool) -> None:
    proxy = Forwarder(**{**NATIVE, "native_upstream": native_upstream})
    forwarded, notes = await proxy.send(route, body(route, model=model))

    assert notes["lazy"]["strategy"] == "search"
    assert SEARCH in names(forwarded) and PINNED in names(forwarded)
    assert not any(t.get("defer_loading") for t in forwarded["tools"])


# Anthropic's tools breakpoint -------------------------------------------------------------------


@pytest.mark.parametrize("settings", [LAZY, {**LAZY, "preload_k": 0}, NATIVE],
                         ids=["search", "search-nothing-preloaded", "native"])
async def test_the_tools_breakpoint_ends_the_tools_forwarded(settings: dict[str, Any]) -> None:
    route = "/v1/messages"
    plain, _ = await Forwarder().send(route, body(route))
    assert "cache_control" in plain["tools"][-1]  # normalize marked the last tool

    forwarded, _ = await Forwarder(**settings).send(route, body(route))

    marked = [i for i, t in enumerate(forwarded["tools"]) if "cache_control" in t]
    assert marked == [len(forwarded["tools"]) - 1]
    assert forwarded["tools"][-1]["cache_control"] == plain["tools"][-1]["cache_control"]


# what preloading searches for ------------------------------------------------------------------


def follow_up(route: str, first: str, reply: str) -> list[JSON]:
    """An earlier request answered in text, then a short follow-up from the user."""
    return [{"role": "user", "content": first}, {"role": "assistant", "content": "Shall I?"},
            {"role": "user", "content": reply}]


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
async def test_a_short_follow_up_preloads_for_the_request_before_it(route: str) -> None:
    key = "input" if route == "/v1/responses" else "messages"
    system = [] if route != "/v1/chat/completions" else [{"role": "system", "content": "Be brief."}]
    sent = {**body(route), key: [*system, *follow_up(route, Q2, "yes, go ahead")]}
    _, notes = await Forwarder(**LAZY).send(route, sent)
    assert set(ranked(TOOLS, Q2, 3)) <= set(notes["lazy"]["preloaded"])

    # A follow-up that says enough on its own is searched alone.
    alone = "Open a pull request on GitHub that merges my feature branch into main, please"
    sent = {**body(route), key: [*system, *follow_up(route, Q2, alone)]}
    _, notes = await Forwarder(**LAZY).send(route, sent, conversation="conv-2")
    assert set(notes["lazy"]["preloaded"]) == set(ranked(TOOLS, alone, 3))


async def test_the_search_tool_lists_claude_code_servers_by_their_own_names() -> None:
    claude = [{**tool, "name": f"mcp__{tool['name']}"} for tool in TOOLS]  # mcp__<server>__<tool>
    forwarded, _ = await Forwarder(**LAZY).send("/v1/messages", request(
        "/v1/messages", claude, Q1))

    [search] = [tool for tool in forwarded["tools"] if tool["name"] == SEARCH]
    listed = search["description"].partition("(servers: ")[2].partition(")")[0].split(", ")
    servers = sorted({tool["name"].split("__")[0] for tool in TOOLS})
    assert listed == servers[:12] and "mcp" not in listed

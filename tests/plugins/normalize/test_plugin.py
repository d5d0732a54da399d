"""The `normalize` plugin through the real dialects: what it changes, and what it never does."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

from benchmarks.prefix_cache import shuffled_keys
from benchmarks.workload import as_route_tools, load_jsonl, tool_set
from tokenopt.dialects import dialect_for
from tokenopt.pipeline import PluginContext, ResponseView
from tokenopt.plugins.normalize import NormalizePlugin, NormalizeSettings
from tokenopt.plugins.normalize.breakpoints import choose_ttl
from tokenopt.plugins.normalize.canonical import canonical_text
from tokenopt.store import MemoryStore
from tokenopt.tokens import TokenCounter

pytestmark = pytest.mark.anyio
TOOLS = tool_set(load_jsonl("tools.jsonl"), {"github-mcp-server"}, 30)
SYSTEM = "You are a careful operations agent. Current time: 2026-11-23T10:15:00Z. Be concise."
COUNTER = TokenCounter()


class Harness:
    """One plugin and one tenant's store, so conversations carry over between calls."""

    def __init__(self, **settings: Any) -> None:
        self.plugin = NormalizePlugin(NormalizeSettings(**settings))
        self.store = MemoryStore()

    async def send(self, route: str, body: dict[str, Any], *, tenant: str = "t_a",
                   conversation: str = "c1") -> tuple[dict[str, Any], dict[str, Any]]:
        """The body tokenopt would forward, and the plugin's notes."""
        dialect = dialect_for("POST", route)
        assert dialect is not None
        original = copy.deepcopy(body)
        view = dialect.parse(body, tenant=tenant, headers={"x-tokenopt-conversation": conversation})
        ctx = PluginContext(store=self.store.namespace(tenant), counter=COUNTER)
        rendered = dialect.render(await self.plugin.on_request(view, ctx))
        assert body == original  # the client's body is never edited in place
        return (rendered if rendered is not None else body), ctx.notes


def request(route: str, tools: list[dict[str, Any]], user: str = "List my open pull requests",
            system: str = SYSTEM, history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    messages = [*(history or []), {"role": "user", "content": user}]
    if route == "/v1/messages":
        return {"model": "claude-sonnet-4-5", "max_tokens": 512, "system": system,
                "tools": as_route_tools(route, tools), "messages": messages}
    if route == "/v1/responses":
        return {"model": "gpt-5", "instructions": system, "tools": as_route_tools(route, tools),
                "input": messages}
    return {"model": "gpt-4.1", "tools": as_route_tools(route, tools),
            "messages": [{"role": "system", "content": system}, *messages]}


def without_markers(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_markers(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [without_markers(v) for v in value]
    return value


def as_blocks(value: Any) -> Any:
    """Text as the provider reads it: a string is the same as one text block."""
    if isinstance(value, str):
        return [{"type": "text", "text": value}]
    if isinstance(value, list):
        return [{**m, "content": as_blocks(m["content"])} if isinstance(m, dict) and "content" in m
                else m for m in value]
    return value


def text_of(body: dict[str, Any]) -> str:
    """Everything the model reads besides tools, in order, without cache markers."""
    parts = [body.get("system"), body.get("instructions"), body.get("messages"), body.get("input")]
    return json.dumps(without_markers([as_blocks(p) for p in parts if p is not None]),
                      sort_keys=True)


def shuffled(tools: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """The tools in another order, each with its keys in another order."""
    rng = random.Random(seed)
    out = [shuffled_keys(t, rng) for t in tools]
    rng.shuffle(out)
    return out


ROUTES = ["/v1/chat/completions", "/v1/responses", "/v1/messages"]


@pytest.mark.parametrize("route", ROUTES)
async def test_the_model_gets_the_same_tools_and_text(route: str) -> None:
    body = request(route, TOOLS)

    sent, _ = await Harness().send(route, body)

    assert sorted(canonical_text(without_markers(t)) for t in sent["tools"]) == sorted(
        canonical_text(t) for t in body["tools"])
    assert text_of(sent) == text_of(body)
    modelled = ("tools", "system", "instructions", "messages", "input", "prompt_cache_key")
    assert {k: v for k, v in sent.items() if k not in modelled} == {
        k: v for k, v in body.items() if k not in modelled}


@pytest.mark.parametrize("route", ROUTES)
async def test_the_same_tool_set_is_sent_as_the_same_bytes(route: str) -> None:
    harness = Harness(breakpoints=False)
    first, _ = await harness.send(route, request(route, TOOLS), conversation="a")
    second, _ = await harness.send(route, request(route, shuffled(TOOLS, 3)), conversation="b")

    assert json.dumps(first["tools"]) == json.dumps(second["tools"])
    assert [_name(t) for t in first["tools"]] == sorted(_name(t) for t in first["tools"])


@pytest.mark.parametrize("route", ROUTES)
async def test_a_tool_changed_between_turns_is_sent_changed_despite_the_memos(route: str) -> None:
    harness = Harness()
    await harness.send(route, request(route, TOOLS))
    edited = copy.deepcopy(TOOLS)
    edited[4]["description"] = "Edited: " + edited[4]["description"]

    sent, notes = await harness.send(route, request(route, edited))

    descriptions = [t.get("description") or t.get("function", {}).get("description")
                    for t in sent["tools"]]
    assert edited[4]["description"] in descriptions
    assert TOOLS[4]["description"] not in descriptions
    assert notes["cache_break"]["segment"] == "tools"


def _name(tool: dict[str, Any]) -> str:
    return str(tool.get("name") or tool["function"]["name"])


@pytest.mark.parametrize("route", ROUTES)
async def test_volatile_spans_move_verbatim_into_a_labelled_note(route: str) -> None:
    sent, notes = await Harness(relocate_volatile=True).send(route, request(route, TOOLS))

    assert "2026-11-23T10:15:00Z" not in json.dumps(sent.get("system") or sent.get("instructions")
                                                    or sent["messages"][0])
    assert notes["volatile_moved"] == [{"label": "ts1", "kind": "timestamp"}]
    newest = (sent.get("messages") or sent["input"])[-1]
    assert newest["content"][0]["text"] == "List my open pull requests"  # the client's text, first
    assert newest["content"][-1]["text"] == (
        "(Values referenced in the system prompt: [ts1] = 2026-11-23T10:15:00Z)")
    system = sent.get("system") or sent.get("instructions") or sent["messages"][0]["content"]
    assert "Current time: [ts1]." in json.dumps(system)


async def test_relocation_is_off_by_default() -> None:
    sent, notes = await Harness().send("/v1/chat/completions", request("/v1/chat/completions", TOOLS))
    assert "volatile_moved" not in notes
    assert sent["messages"][0]["content"] == SYSTEM


async def test_openai_requests_sharing_a_prefix_share_a_derived_cache_key() -> None:
    harness = Harness()
    route = "/v1/chat/completions"
    _, first = await harness.send(route, request(route, TOOLS), conversation="a")
    _, again = await harness.send(route, request(route, shuffled(TOOLS, 9), "Other question"),
                                  conversation="b")
    _, other_tenant = await harness.send(route, request(route, TOOLS), tenant="t_b")
    given, notes = await harness.send(route, {**request(route, TOOLS), "prompt_cache_key": "mine"})

    assert first["prompt_cache_key"] == again["prompt_cache_key"]
    assert first["prompt_cache_key"] != other_tenant["prompt_cache_key"]
    assert given["prompt_cache_key"] == "mine" and "prompt_cache_key" not in notes


def markers(body: dict[str, Any]) -> list[str]:
    found = [f"tool:{t['name']}" for t in body["tools"] if "cache_control" in t]
    system = body["system"] if isinstance(body["system"], list) else []
    found += ["system" for block in system if "cache_control" in block]
    for i, message in enumerate(body["messages"]):
        content = message["content"] if isinstance(message["content"], list) else []
        found += [f"message:{i}" for block in content if "cache_control" in block]
    return found


async def test_anthropic_breakpoints_end_tools_system_and_conversation() -> None:
    route = "/v1/messages"
    sent, notes = await Harness().send(route, request(route, TOOLS))

    last_tool = max(t["name"] for t in TOOLS)
    assert markers(sent) == [f"tool:{last_tool}", "system", "message:0"]
    assert notes["breakpoints"]["ttl"] == "5m"


async def test_breakpoints_respect_the_minimum_and_the_limit_of_four() -> None:
    route = "/v1/messages"
    short, notes = await Harness().send(route, request(route, TOOLS[:1], system="Be brief."))
    assert markers(short) == [] and notes["breakpoints"]["placed"] == []

    body = request(route, TOOLS, history=[
        {"role": "user", "content": [{"type": "text", "text": f"q{i}",
                                      "cache_control": {"type": "ephemeral"}}]}
        for i in range(3)])
    limited, _ = await Harness().send(route, body)
    assert len(markers(limited)) == 4  # 3 of the client's + 1 of ours


async def test_a_history_the_client_already_marked_leaves_the_breakpoint_for_tools() -> None:
    # Claude Code marks its own last block (and two system blocks): one breakpoint is left.
    route = "/v1/messages"
    body = request(route, TOOLS, system=[
        {"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "More rules. " * 200, "cache_control": {"type": "ephemeral"}}])
    body["messages"][-1]["content"] = [{"type": "text", "text": "List my open pull requests",
                                        "cache_control": {"type": "ephemeral"}}]

    sent, notes = await Harness().send(route, body)

    last_tool = max(t["name"] for t in TOOLS)
    assert markers(sent) == [f"tool:{last_tool}", "system", "system", "message:0"]
    assert notes["breakpoints"]["placed"] == ["tools"]


async def test_a_first_request_without_tools_or_history_gets_no_breakpoint() -> None:
    route = "/v1/messages"
    body = {**request(route, [], system=SYSTEM * 200), "tools": []}
    del body["tools"]
    sent, _ = await Harness().send(route, body)
    assert isinstance(sent["system"], str)  # nothing was placed: no reuse expected yet


@pytest.mark.parametrize(("gap", "ttl"), [(None, "5m"), (30.0, "5m"), (299.0, "5m"),
                                          (420.0, "1h"), (3000.0, "1h"), (4000.0, "5m")])
def test_one_hour_ttl_only_when_the_cadence_makes_it_cheaper(gap: float | None, ttl: str) -> None:
    assert choose_ttl(gap) == ttl


async def test_the_break_detector_names_the_first_change() -> None:
    route = "/v1/chat/completions"
    harness = Harness()
    base = request(route, TOOLS)

    async def after_base(variant: dict[str, Any], conversation: str) -> dict[str, Any]:
        await harness.send(route, base, conversation=conversation)
        _, notes = await harness.send(route, variant, conversation=conversation)
        return notes

    reordered = await after_base({**base, "tools": base["tools"][::-1]}, "order")
    keyed = await after_base({**base, "tools": [shuffled([base["tools"][0]], 1)[0],
                                                *base["tools"][1:]]}, "keys")
    system = await after_base(request(route, TOOLS, system=SYSTEM.replace("10:15", "10:16")),
                              "system")
    grown = {**base, "messages": [*base["messages"], {"role": "assistant", "content": "Done."}]}
    appended = await after_base(grown, "grown")
    edited = copy.deepcopy(grown)
    edited["messages"][1]["content"] = "List my closed pull requests"
    message = await after_base(edited, "edited")

    assert reordered["cache_break"]["cause"] == "tool order changed"
    assert keyed["cache_break"]["cause"].startswith("tool schema re-serialised (key order)")
    assert system["cache_break"]["cause"] == f"system text changed at character {SYSTEM.index('15:00') + 1}"
    assert "cache_break" not in appended  # a growing conversation is not a break
    assert message["cache_break"]["cause"] == "message 0 edited"
    assert all(n["cache_break"]["tokens_lost"] > 0 for n in (reordered, keyed, system, message))
    assert reordered["cache_break"]["tokens_lost"] > system["cache_break"]["tokens_lost"]


async def test_what_the_client_added_since_its_last_request_is_counted_after_the_response(
) -> None:
    route = "/v1/chat/completions"
    harness = Harness()
    base = request(route, TOOLS)
    _, first = await harness.send(route, base)
    reply = {"role": "assistant", "content": "You have three open pull requests."}
    grown = {**base, "messages": [*base["messages"], reply]}
    forwarded, notes = await harness.send(route, grown)
    assert "client_prefix" not in first  # nothing before it in the conversation
    # The Chat system message is the system segment, not one of the view's messages.
    assert notes["client_prefix"] == {"messages": len(base["messages"]) - 1}

    dialect = dialect_for("POST", route)
    assert dialect is not None
    view = dialect.parse(forwarded, tenant="t_a", headers={})
    ctx = PluginContext(store=harness.store.namespace("t_a"), counter=COUNTER)
    ctx.notes = copy.deepcopy(notes)
    await harness.plugin.on_response(ResponseView(view, 200, None, True), ctx)
    added = COUNTER.count(json.dumps(reply, separators=(",", ":")), base["model"])
    assert ctx.notes["client_prefix"]["new_tokens"] == added

    edited = copy.deepcopy(grown)
    edited["messages"][-1]["content"] = "You have two open pull requests."
    _, broken = await harness.send(route, edited)
    assert "client_prefix" not in broken and "cache_break" in broken  # the client broke it


async def test_a_string_sent_again_as_its_text_block_or_a_moved_marker_is_not_a_break() -> None:
    # Claude Code sends its system message as a block, then as a string, and moves its marker.
    route = "/v1/messages"
    harness = Harness(breakpoints=False)
    note = "<system-reminder>Today is Thursday.</system-reminder>"
    first = request(route, TOOLS, history=[
        {"role": "user", "content": [{"type": "text", "text": "Hello",
                                      "cache_control": {"type": "ephemeral"}}]},
        {"role": "system", "content": [{"type": "text", "text": note}]}])
    second = request(route, TOOLS, history=[
        {"role": "user", "content": [{"type": "text", "text": "Hello"}]},
        {"role": "system", "content": note},
        {"role": "user", "content": "List my open pull requests"},
        {"role": "assistant", "content": "Hi."}])
    edited = request(route, TOOLS, history=[
        {"role": "user", "content": "Hello"}, {"role": "system", "content": note + " Really."},
        {"role": "user", "content": "List my open pull requests"},
        {"role": "assistant", "content": "Hi."}])

    await harness.send(route, first)
    _, notes = await harness.send(route, second)
    _, after_edit = await harness.send(route, edited)

    assert "cache_break" not in notes
    assert after_edit["cache_break"]["cause"] == "message 1 edited"


async def test_the_ttl_follows_the_conversations_cadence_on_the_contexts_clock() -> None:
    from tests.clock import FakeClock

    clock = FakeClock()
    plugin = NormalizePlugin(NormalizeSettings())
    store = MemoryStore(clock=clock)
    route = "/v1/messages"
    dialect = dialect_for("POST", route)
    assert dialect is not None

    async def ttl_after(seconds: float) -> str:
        clock.advance(seconds)
        view = dialect.parse(request(route, TOOLS), tenant="t_a", headers={})
        ctx = PluginContext(store=store.namespace("t_a"), counter=COUNTER, clock=clock)
        await plugin.on_request(view, ctx)
        return str(ctx.notes["breakpoints"]["ttl"])

    # First turn: no cadence yet. Ten minutes later: a 5-minute entry would have expired.
    assert [await ttl_after(0), await ttl_after(600), await ttl_after(60)] == ["5m", "1h", "5m"]


async def test_a_change_among_tools_sharing_a_name_is_named_not_a_failure() -> None:
    # Found by benchmarks/fuzz.py: the per-name comparison found no difference and raised.
    route = "/v1/chat/completions"
    harness = Harness()
    base = request(route, TOOLS)
    first = base["tools"][0]
    twin = copy.deepcopy(first)
    twin["function"]["description"] = "Another tool by the same name."
    await harness.send(route, {**base, "tools": [first, twin]}, conversation="twins")
    _, notes = await harness.send(route, {**base, "tools": [twin, twin]}, conversation="twins")

    assert notes["cache_break"]["cause"] == "tools sharing a name changed"

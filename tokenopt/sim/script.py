"""The simulated model when a recorded answer exists: replay it, detour to search, or miss.

Replay hands the simulator each traffic line's recorded response. The model
answers with it when every tool it calls is offered in the (possibly
optimised) request. When one is not, it does what a real model would: call the
request's search tool with the latest user text; without a search tool it
answers as recorded anyway and the turn counts as a tool miss.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal

from tokenopt.sim.reply import Ask, Reply, ToolCall, words
from tokenopt.tokens import TokenCounter

JSON = dict[str, Any]
Outcome = Literal["generated", "recorded", "search", "tool_miss"]
RECORDED_HEADER: Final = "x-sim-recorded"
# Function tools that look up other tools (tokenopt's own and common MCP gateways').
SEARCH_TOOL_NAMES: Final = frozenset({"tool_search", "search_tools", "tokenopt_search_tools"})
# Provider-hosted search tools, by type.
SEARCH_TOOL_TYPES: Final = frozenset({
    "tool_search", "tool_search_tool_regex_20251119", "tool_search_tool_bm25_20251119",
})


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the recorded model did: the tools it called, its text, and what it spent."""

    tool_calls: tuple[ToolCall, ...]
    text: str
    output_tokens: int | None
    reasoning_tokens: int


class Script:
    """Recorded responses by id; a request names its own with the `x-sim-recorded` header."""

    def __init__(self) -> None:
        self._responses: dict[str, JSON] = {}

    def add(self, key: str, response: JSON) -> None:
        self._responses[key] = response

    def get(self, key: str | None) -> JSON | None:
        # Kept until discarded: a pipeline's search detour re-asks the same turn.
        return self._responses.get(key) if key else None

    def discard(self, key: str) -> None:
        self._responses.pop(key, None)


def scripted_reply(
    route: str, body: JSON, recorded: JSON, ask: Ask, counter: TokenCounter
) -> tuple[Reply, Outcome]:
    """The reply to a request whose recorded response is known, and which rule chose it."""
    done = read_recorded(route, recorded)
    offered = offered_tools(route, body)
    missing = [call.name for call in done.tool_calls if call.name not in offered]
    if missing:
        search = search_tool(route, body)
        if search is not None:
            query = json.dumps({"query": latest_user_text(route, body)}, ensure_ascii=False)
            tokens = counter.count(query, ask.model)
            return Reply("", tokens, "", 0, ToolCall(search, query), False), "search"
    outcome: Outcome = "tool_miss" if missing else "recorded"
    reasoning = done.reasoning_tokens
    if done.tool_calls:
        call = done.tool_calls[0]  # one call carries the turn; the rest only add output
        visible = counter.count(call.arguments, ask.model)
        reply_text = ""
    else:
        reply_text = done.text
        visible = counter.count(reply_text, ask.model)
    if done.output_tokens is not None:  # the recorded spend is the truth, whatever we re-count
        visible = max(done.output_tokens - reasoning, 0)
    thinking = words(b"recorded-reasoning", reasoning)
    tool = done.tool_calls[0] if done.tool_calls else None
    return Reply(reply_text, visible, thinking, reasoning, tool, False), outcome


def read_recorded(route: str, response: JSON) -> Recorded:
    """Tool calls, text and output spend of a recorded response in any of the three shapes."""
    usage = _dict(response.get("usage"))
    if route == "/v1/messages":
        blocks = _dicts(response.get("content"))
        calls = tuple(ToolCall(str(b.get("name")), json.dumps(b.get("input", {})))
                      for b in blocks if b.get("type") == "tool_use")
        text = "".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
        thinking = _dict(usage.get("output_tokens_details")).get("thinking_tokens")
        return Recorded(calls, text, _int(usage.get("output_tokens")), _int(thinking) or 0)
    if route == "/v1/responses":
        items = _dicts(response.get("output"))
        calls = tuple(ToolCall(str(i.get("name")), str(i.get("arguments", "{}")))
                      for i in items if i.get("type") == "function_call")
        text = "".join(str(part.get("text", "")) for i in items if i.get("type") == "message"
                       for part in _dicts(i.get("content")))
        details = _dict(usage.get("output_tokens_details"))
    else:
        choices = _dicts(response.get("choices"))
        message = _dict(choices[0].get("message")) if choices else {}
        calls = tuple(
            ToolCall(str(f.get("name")), str(f.get("arguments", "{}")))
            for call in _dicts(message.get("tool_calls"))
            if isinstance(f := call.get("function"), dict)
        )
        content = message.get("content")
        text = content if isinstance(content, str) else ""
        details = _dict(usage.get("completion_tokens_details"))
        usage = {**usage, "output_tokens": usage.get("completion_tokens")}
    reasoning = _int(details.get("reasoning_tokens")) or 0
    return Recorded(calls, text, _int(usage.get("output_tokens")), reasoning)


def offered_tools(route: str, body: JSON) -> set[str]:
    """Names of the tools a request makes callable, deferred ones included.

    A deferred tool (`defer_loading`) is callable once the provider's search
    loads it, so it counts as offered only when a search tool is offered too.
    """
    searchable = search_tool(route, body) is not None
    return {
        name for tool in _dicts(body.get("tools"))
        if (name := _tool_name(tool)) and (searchable or not tool.get("defer_loading"))
    }


def search_tool(route: str, body: JSON) -> str | None:
    """The name the model calls to search for tools, if the request offers one."""
    for tool in _dicts(body.get("tools")):
        if tool.get("type") in SEARCH_TOOL_TYPES:
            return str(tool.get("name") or tool.get("type"))
        name = _tool_name(tool)
        if name in SEARCH_TOOL_NAMES:
            return name
    return None


def latest_user_text(route: str, body: JSON) -> str:
    """The text of the newest user turn (what a model would search for)."""
    turns = body.get("input") if route == "/v1/responses" else body.get("messages")
    if isinstance(turns, str):
        return turns
    for turn in reversed(_dicts(turns)):
        if turn.get("role") != "user":
            continue
        content = turn.get("content")
        if isinstance(content, str):
            return content
        texts = [str(p.get("text")) for p in _dicts(content) if isinstance(p.get("text"), str)]
        if texts:
            return "\n".join(texts)
    return ""


def _tool_name(tool: JSON) -> str | None:
    function = tool.get("function")
    name = function.get("name") if isinstance(function, dict) else tool.get("name")
    return name if isinstance(name, str) else None


def _dict(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[JSON]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None

"""The simulated model when a recorded answer exists: replay it, search for tools, or miss.

Replay hands the simulator each traffic line's recorded response. The model
answers with it when every tool it calls is callable in the (possibly
optimised) request. When one is not, it does what a real model would:

- with the provider's own tool search offered (and the tool deferred, or no
  function search tool to use instead), it searches natively: a server-side
  search loads what it finds and answers within the same call
  (`native_search`, or `tool_miss` if the tool was not found); a client-side
  one ends the turn at the search call (`client_search`);
- with a function search tool (tokenopt's own), it calls that with the latest
  user text (`search`);
- otherwise it answers as recorded anyway and the turn is a `tool_miss`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal

from tokenopt.dialects.base import as_dict, dicts
from tokenopt.sim.deferred import catalog
from tokenopt.sim.native_search import client_search, server_search
from tokenopt.sim.reply import Ask, Reply, ToolCall, ToolSearch, words
from tokenopt.sim.wire import tool_name
from tokenopt.tokens import TokenCounter

JSON = dict[str, Any]
Outcome = Literal["generated", "recorded", "search", "native_search", "client_search", "tool_miss"]
RECORDED_HEADER: Final = "x-sim-recorded"
# Function tools that look up other tools (tokenopt's own and common MCP gateways').
SEARCH_TOOL_NAMES: Final = frozenset({"tool_search", "search_tools", "tokenopt_search_tools"})


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the recorded model did: the tools it called, its text, and what it spent.

    `searched`: the recorded answer already ran a provider tool search, so its
    output spend includes that search call.
    """

    tool_calls: tuple[ToolCall, ...]
    text: str
    output_tokens: int | None
    reasoning_tokens: int
    searched: bool = False


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
    tools = catalog(route, body)
    missing = [call.name for call in done.tool_calls if call.name not in tools.callable]
    if not missing:
        return _as_recorded(done, ask, counter), "recorded"
    text = latest_user_text(route, body)
    function = search_tool(route, body)
    native = tools.search
    if native is not None and (function is None or any(n in tools.deferred for n in missing)):
        if native.execution == "client":
            search = client_search(native, text, counter, ask.model)
            return Reply("", 0, "", 0, None, False, search), "client_search"
        search = server_search(route, tools, text, counter, ask.model)
        found = set(missing) <= set(search.found)
        return _as_recorded(done, ask, counter, search), "native_search" if found else "tool_miss"
    if function is not None:
        query = json.dumps({"query": text}, ensure_ascii=False)
        tokens = counter.count(query, ask.model)
        return Reply("", tokens, "", 0, ToolCall(function, query), False), "search"
    return _as_recorded(done, ask, counter), "tool_miss"


def _as_recorded(done: Recorded, ask: Ask, counter: TokenCounter,
                 search: ToolSearch | None = None) -> Reply:
    """The recorded answer, with the recorded output spend (a search call adds its own)."""
    reasoning = done.reasoning_tokens
    if done.tool_calls:
        call = done.tool_calls[0]  # one call carries the turn; the rest only add output
        visible = counter.count(call.arguments, ask.model)
        reply_text = ""
    else:
        reply_text = done.text
        visible = counter.count(reply_text, ask.model)
    if done.output_tokens is not None:  # the recorded spend is the truth, whatever we re-count
        already = search.call_tokens if search and done.searched else 0
        visible = max(done.output_tokens - reasoning - already, 0)
    thinking = words(b"recorded-reasoning", reasoning)
    tool = done.tool_calls[0] if done.tool_calls else None
    return Reply(reply_text, visible, thinking, reasoning, tool, False, search)


def read_recorded(route: str, response: JSON) -> Recorded:
    """Tool calls, text and output spend of a recorded response in any of the three shapes."""
    usage = as_dict(response.get("usage"))
    if route == "/v1/messages":
        blocks = dicts(response.get("content"))
        calls = tuple(ToolCall(str(b.get("name")), json.dumps(b.get("input", {})))
                      for b in blocks if b.get("type") == "tool_use")
        text = "".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
        thinking = as_dict(usage.get("output_tokens_details")).get("thinking_tokens")
        searched = any(b.get("type") == "tool_search_tool_result" for b in blocks)
        return Recorded(calls, text, _int(usage.get("output_tokens")), _int(thinking) or 0,
                        searched)
    if route == "/v1/responses":
        items = dicts(response.get("output"))
        calls = tuple(ToolCall(str(i.get("name")), str(i.get("arguments", "{}")))
                      for i in items if i.get("type") == "function_call")
        text = "".join(str(part.get("text", "")) for i in items if i.get("type") == "message"
                       for part in dicts(i.get("content")))
        details = as_dict(usage.get("output_tokens_details"))
        searched = any(i.get("type") == "tool_search_call" and i.get("execution") != "client"
                       for i in items)
    else:
        choices = dicts(response.get("choices"))
        message = as_dict(choices[0].get("message")) if choices else {}
        calls = tuple(
            ToolCall(str(f.get("name")), str(f.get("arguments", "{}")))
            for call in dicts(message.get("tool_calls"))
            if isinstance(f := call.get("function"), dict)
        )
        content = message.get("content")
        text = content if isinstance(content, str) else ""
        details = as_dict(usage.get("completion_tokens_details"))
        usage = {**usage, "output_tokens": usage.get("completion_tokens")}
        searched = False
    reasoning = _int(details.get("reasoning_tokens")) or 0
    return Recorded(calls, text, _int(usage.get("output_tokens")), reasoning, searched)


def search_tool(route: str, body: JSON) -> str | None:
    """The function the model calls to search for tools, if the request offers one.

    Provider-hosted searches are not functions; `deferred.catalog` finds those.
    """
    for tool in dicts(body.get("tools")):
        name = tool_name(tool)
        if name in SEARCH_TOOL_NAMES:
            return name
    return None


def latest_user_text(route: str, body: JSON) -> str:
    """The text of the newest user turn (what a model would search for)."""
    turns = body.get("input") if route == "/v1/responses" else body.get("messages")
    if isinstance(turns, str):
        return turns
    for turn in reversed(dicts(turns)):
        if turn.get("role") != "user":
            continue
        content = turn.get("content")
        if isinstance(content, str):
            return content
        texts = [str(p.get("text")) for p in dicts(content) if isinstance(p.get("text"), str)]
        if texts:
            return "\n".join(texts)
    return ""





def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None

"""A round's answer in each dialect: the search calls in it, the turn that answers them, the merge.

The search detour needs three things of a response body, per wire API: which
calls went to tokenopt's search tool (and which to real tools), the messages
that replay the answer and carry tokenopt's results back to the model, and the
one body the client finally gets — the earlier rounds' visible parts (text,
thinking) before the last round's, and usage summed over every call, since
that is what the provider bills.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from tokenopt.dialects.base import JSON, dicts


@dataclass(frozen=True, slots=True)
class SearchCall:
    """One call to the search tool: its id and the query the model asked."""

    call_id: str
    query: str


@dataclass(frozen=True, slots=True)
class RoundCalls:
    """What one answer called: tokenopt's search (to answer) and real tools (the client's)."""

    searches: tuple[SearchCall, ...]
    real: tuple[str, ...]


class Answers(Protocol):
    """One dialect's reading and writing of whole answers."""

    def calls(self, body: JSON, search: str) -> RoundCalls: ...
    def follow_up(self, body: JSON, results: dict[str, str]) -> list[JSON]: ...
    def merge(self, earlier: list[JSON], final: JSON, search: str) -> JSON: ...


def add_usage(a: Any, b: Any) -> Any:
    """Usage objects summed field by field (numbers add, objects recurse, others: latest)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return {key: add_usage(a.get(key), b.get(key)) if key in a and key in b
                else (b[key] if key in b else a[key]) for key in {**a, **b}}
    if _number(a) and _number(b):
        return a + b
    return b if b is not None else a


def total_usage(bodies: list[JSON]) -> Any:
    usage: Any = None
    for body in bodies:
        found = body.get("usage")
        if isinstance(found, dict):
            usage = found if usage is None else add_usage(usage, found)
    return usage


def _with_total_usage(merged: JSON, bodies: list[JSON]) -> JSON:
    """`merged` carrying the usage of every call behind it (what the provider billed)."""
    usage = total_usage(bodies)
    return merged if usage is None else {**merged, "usage": usage}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _query(arguments: Any) -> str:
    if isinstance(arguments, str):
        text = arguments
        try:
            arguments = json.loads(text)
        except ValueError:
            return text
    if isinstance(arguments, dict):
        value = arguments.get("query")
        return value if isinstance(value, str) else json.dumps(arguments)
    return ""



class MessagesAnswers:
    """Anthropic Messages: `tool_use` blocks; results go back as `tool_result` blocks."""

    def calls(self, body: JSON, search: str) -> RoundCalls:
        uses = [b for b in dicts(body.get("content")) if b.get("type") == "tool_use"]
        return RoundCalls(
            tuple(SearchCall(str(b.get("id")), _query(b.get("input"))) for b in uses
                  if b.get("name") == search),
            tuple(str(b.get("name")) for b in uses if b.get("name") != search),
        )

    def follow_up(self, body: JSON, results: dict[str, str]) -> list[JSON]:
        content = [_block_as_input(b) for b in dicts(body.get("content"))]
        answers = [{"type": "tool_result", "tool_use_id": call_id, "content": text}
                   for call_id, text in results.items()]
        return [{"role": "assistant", "content": content}, {"role": "user", "content": answers}]

    def merge(self, earlier: list[JSON], final: JSON, search: str) -> JSON:
        kept = [b for body in [*earlier, final] for b in dicts(body.get("content"))
                if not (b.get("type") == "tool_use" and b.get("name") == search)]
        return _with_total_usage({**final, "content": kept}, [*earlier, final])


def _block_as_input(block: JSON) -> JSON:
    # Response-only members (citations=None and the like) are not accepted back as input.
    return {k: v for k, v in block.items() if v is not None}


class ChatAnswers:
    """OpenAI Chat: `tool_calls` on the assistant message; results as `tool` messages."""

    def calls(self, body: JSON, search: str) -> RoundCalls:
        calls = dicts(_message(body).get("tool_calls"))
        named = [(c, _function(c)) for c in calls]
        return RoundCalls(
            tuple(SearchCall(str(c.get("id")), _query(f.get("arguments"))) for c, f in named
                  if f.get("name") == search),
            tuple(str(f.get("name")) for _, f in named if f.get("name") != search),
        )

    def follow_up(self, body: JSON, results: dict[str, str]) -> list[JSON]:
        message = _message(body)
        assistant: JSON = {"role": "assistant", "content": message.get("content")}
        if message.get("tool_calls"):
            assistant["tool_calls"] = message["tool_calls"]
        return [assistant, *({"role": "tool", "tool_call_id": call_id, "content": text}
                             for call_id, text in results.items())]

    def merge(self, earlier: list[JSON], final: JSON, search: str) -> JSON:
        texts = [c for body in earlier if isinstance(c := _message(body).get("content"), str) and c]
        choices = dicts(final.get("choices"))
        if choices:
            message = dict(_message(final))
            own = message.get("content")
            if texts:
                message["content"] = "".join([*texts, own if isinstance(own, str) else ""])
            calls = [c for c in dicts(message.get("tool_calls"))
                     if _function(c).get("name") != search]
            if calls:
                message["tool_calls"] = calls
            else:
                message.pop("tool_calls", None)
            choices = [{**choices[0], "message": message}, *choices[1:]]
        return _with_total_usage({**final, "choices": choices}, [*earlier, final])


def _function(call: JSON) -> JSON:
    function = call.get("function")
    return function if isinstance(function, dict) else {}


def _message(body: JSON) -> JSON:
    choices = dicts(body.get("choices"))
    message = choices[0].get("message") if choices else None
    return message if isinstance(message, dict) else {}


class ResponsesAnswers:
    """OpenAI Responses: `function_call` output items; results as `function_call_output` items."""

    def calls(self, body: JSON, search: str) -> RoundCalls:
        calls = [i for i in dicts(body.get("output")) if i.get("type") == "function_call"]
        return RoundCalls(
            tuple(SearchCall(str(i.get("call_id")), _query(i.get("arguments"))) for i in calls
                  if i.get("name") == search),
            tuple(str(i.get("name")) for i in calls if i.get("name") != search),
        )

    def follow_up(self, body: JSON, results: dict[str, str]) -> list[JSON]:
        items = [_item_as_input(i) for i in dicts(body.get("output"))]
        return [*items, *({"type": "function_call_output", "call_id": call_id, "output": text}
                          for call_id, text in results.items())]

    def merge(self, earlier: list[JSON], final: JSON, search: str) -> JSON:
        kept = [i for body in [*earlier, final] for i in dicts(body.get("output"))
                if not (i.get("type") == "function_call" and i.get("name") == search)]
        return _with_total_usage(without_search_tool({**final, "output": kept}, search),
                                [*earlier, final])


def without_search_tool(response: JSON, search: str) -> JSON:
    """A Responses object whose echoed `tools` no longer show tokenopt's search tool."""
    tools = response.get("tools")
    if not isinstance(tools, list):
        return response
    return {**response, "tools": [t for t in tools
                                  if not (isinstance(t, dict) and t.get("name") == search)]}


def _item_as_input(item: JSON) -> JSON:
    # Output-only members are not accepted in `input`; `status` is, but adds nothing.
    return {k: v for k, v in item.items() if v is not None and k != "status"}


ANSWERS: dict[str, Answers] = {
    "anthropic-messages": MessagesAnswers(),
    "openai-chat": ChatAnswers(),
    "openai-responses": ResponsesAnswers(),
}

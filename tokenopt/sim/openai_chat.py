"""OpenAI Chat Completions on the wire: validation, bodies, chunks and errors."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from tokenopt.sim.prompt import Prompt, str_or_none
from tokenopt.sim.reply import Ask, Reply, reasoning_for_effort
from tokenopt.sim.wire import JSON, Counts, Event, Invalid, new_id, pieces, take, text_deltas
from tokenopt.tokens import TokenCounter

OPENAI_ERROR_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "unknown_url"),
    429: ("requests", "rate_limit_exceeded"),
}
SYSTEM_ROLES = frozenset({"system", "developer"})


def openai_error(status: int, message: str, *, param: str | None = None,
                 code: str | None = None) -> JSON:
    """An error body in OpenAI's shape, shared by Chat Completions and Responses."""
    kind, default_code = OPENAI_ERROR_TYPES.get(
        status, ("invalid_request_error" if status < 500 else "server_error", None)
    )
    return {"error": {"message": message, "type": kind, "param": param, "code": code or default_code}}


def openai_invalid(exc: Invalid) -> JSON:
    """OpenAI's wording for a missing or mistyped parameter."""
    if exc.problem == "missing":
        return openai_error(400, f"Missing required parameter: '{exc.param}'.", param=exc.param,
                            code="missing_required_parameter")
    if exc.problem == "type":
        return openai_error(400, f"Invalid type for '{exc.param}': expected {exc.expected}.",
                            param=exc.param, code="invalid_type")
    if exc.problem == "unknown":
        return openai_error(400, f"Unknown parameter: '{exc.param}'.", param=exc.param,
                            code="unknown_parameter")
    return openai_error(400, exc.problem, param=exc.param, code="invalid_value")


def openai_usage_details(counts: Counts) -> tuple[JSON, JSON]:
    """The (input, output) detail objects both OpenAI APIs attach to usage."""
    return (
        {"cached_tokens": counts.cached_tokens, "cache_write_tokens": counts.cache_write_tokens},
        {"reasoning_tokens": counts.reasoning_tokens},
    )


def forced_tool(choice: Any, tools: list[Any],
                name_of: Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]
                ) -> tuple[str, dict[str, Any]] | None:
    """The (name, schema) a tool_choice forces, if it forces one.

    `name_of(tool)` returns a tool entry's (name, schema) in the route's own layout.
    """
    named = [name_of(tool) for tool in tools if isinstance(tool, dict)]
    named = [entry for entry in named if entry[0]]
    if choice in ("required", "any") and named:
        return named[0]
    if isinstance(choice, dict):
        if choice.get("type") in ("required", "any") and named:
            return named[0]
        wanted = choice.get("name") or (choice.get("function") or {}).get("name")
        for name, schema in named:
            if name == wanted:
                return name, schema
    return None


def _chat_tool(tool: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    found = tool.get("function")
    function: dict[str, Any] = found if isinstance(found, dict) else {}
    schema = function.get("parameters")
    return str(function.get("name", "")), schema if isinstance(schema, dict) else {}


class OpenAIErrors:
    """Errors in OpenAI's shape, shared by both OpenAI routes."""

    def error(self, status: int, message: str) -> JSON:
        return openai_error(status, message)

    def invalid(self, exc: Invalid) -> JSON:
        return openai_invalid(exc)


class ChatRoute(OpenAIErrors):
    """`POST /v1/chat/completions` as OpenAI serves it."""

    path: ClassVar[str] = "/v1/chat/completions"

    def ask(self, body: JSON) -> Ask:
        model = take(body, "model", "string", required=True)
        messages = take(body, "messages", "array", required=True)
        if not messages:
            raise Invalid("messages", "'messages' must contain at least one message.")
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise Invalid(f"messages[{index}]", "missing")
        tools = take(body, "tools", "array") or []
        take(body, "stream_options", "object")
        effort = take(body, "reasoning_effort", "string")
        cap = take(body, "max_completion_tokens", "integer")
        cap = take(body, "max_tokens", "integer") if cap is None else cap
        return Ask(
            model=model,
            stream=bool(take(body, "stream", "boolean")),
            cap=cap,
            reasoning_tokens=reasoning_for_effort(effort),
            tool=forced_tool(body.get("tool_choice"), tools, _chat_tool),
        )

    def prompt(self, body: JSON, counter: TokenCounter) -> Prompt:
        messages = body["messages"]
        lead = 0
        while lead < len(messages) and messages[lead].get("role") in SYSTEM_ROLES:
            lead += 1
        return Prompt.build(
            self.path, body["model"], counter, tools=body.get("tools") or [],
            system=messages[:lead], messages=messages[lead:],
            cache_key=body.get("prompt_cache_key"),
            retention=str_or_none(body.get("prompt_cache_retention")),
        )

    def respond(self, body: JSON, ask: Ask, reply: Reply, counts: Counts) -> JSON:
        message: JSON = {"role": "assistant", "content": reply.text if not reply.tool_call else None,
                         "refusal": None, "annotations": []}
        if reply.tool_call:
            message["tool_calls"] = [_tool_call(reply)]
        return {
            **_envelope("chat.completion", ask),
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": _finish(reply)}],
            "usage": _usage(counts),
            "service_tier": "default",
        }

    def stream(self, body: JSON, ask: Ask, reply: Reply, counts: Counts) -> list[Event]:
        options = body.get("stream_options") or {}
        include_usage = options.get("include_usage") is True
        head = _envelope("chat.completion.chunk", ask)
        extra: JSON = {"usage": None} if include_usage else {}

        def chunk(delta: JSON, finish: str | None = None) -> Event:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return None, {**head, "choices": [choice], **extra}

        events = [chunk({"role": "assistant", "content": "", "refusal": None})]
        if reply.tool_call:
            call = _tool_call(reply)
            opening = {**call, "index": 0, "function": {"name": call["function"]["name"], "arguments": ""}}
            events.append(chunk({"tool_calls": [opening]}))
            for piece in pieces(reply.tool_call.arguments):
                events.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
        else:
            events += [chunk({"content": piece}) for piece in text_deltas(reply.text)]
        events.append(chunk({}, _finish(reply)))
        if include_usage:
            events.append((None, {**head, "choices": [], "usage": _usage(counts)}))
        events.append((None, "[DONE]"))
        return events


def _envelope(kind: str, ask: Ask) -> JSON:
    return {"id": new_id("chatcmpl-"), "object": kind, "created": int(time.time()),
            "model": ask.model, "system_fingerprint": None}


def _tool_call(reply: Reply) -> JSON:
    assert reply.tool_call is not None
    return {"id": new_id("call_"), "type": "function",
            "function": {"name": reply.tool_call.name, "arguments": reply.tool_call.arguments}}


def _finish(reply: Reply) -> str:
    if reply.truncated:
        return "length"
    return "tool_calls" if reply.tool_call else "stop"


def _usage(counts: Counts) -> JSON:
    prompt_details, completion_details = openai_usage_details(counts)
    return {
        "prompt_tokens": counts.input_tokens,
        "completion_tokens": counts.output_tokens,
        "total_tokens": counts.input_tokens + counts.output_tokens,
        "prompt_tokens_details": {**prompt_details, "audio_tokens": 0},
        "completion_tokens_details": {**completion_details, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0,
                                      "rejected_prediction_tokens": 0},
    }


"""OpenAI Chat Completions (`POST /v1/chat/completions`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from tokenopt._sse import SSEEvent
from tokenopt.dialects.base import (
    JSON,
    Reasoning,
    RequestView,
    TextPart,
    Tool,
    Usage,
    as_dict,
    as_int,
    build_view,
    changed_fields,
    int_or_none,
    loads_object,
    pending_overrides,
    set_or_drop,
    str_or_none,
    tool_unchanged,
    written_tools,
)
from tokenopt.exceptions import DialectError

SYSTEM_ROLES = frozenset({"system", "developer"})


class OpenAIChatDialect:
    name: ClassVar[str] = "openai-chat"
    path: ClassVar[str] = "/v1/chat/completions"

    def parse(self, body: JSON, *, tenant: str, headers: Mapping[str, str]) -> RequestView:
        return build_view(self.name, self.path, body, _fields(body), tenant=tenant, headers=headers)

    def render(self, view: RequestView) -> JSON | None:
        changed = changed_fields(view, _fields)
        overrides = pending_overrides(view)
        if not changed and not overrides:
            return None
        body = dict(view.body)
        if "system" in changed or "messages" in changed:
            body["messages"] = [_system_message(part) for part in view.system] + view.messages
        if "tools" in changed:
            body["tools"] = written_tools(view.tools, _tool_raw)
        if "tool_choice" in changed:
            set_or_drop(body, "tool_choice", view.tool_choice)
        if "reasoning" in changed:
            set_or_drop(body, "reasoning_effort", view.reasoning.effort)
        if "max_output_tokens" in changed:
            key = "max_tokens" if "max_tokens" in body else "max_completion_tokens"
            set_or_drop(body, key, view.max_output_tokens)
        for key, value in overrides.items():
            set_or_drop(body, key, value)
        return body

    def wants_usage_injection(self, body: JSON) -> bool:
        return body.get("stream") is True and as_dict(body.get("stream_options")).get(
            "include_usage"
        ) is not True

    def usage_from_json(self, body: JSON) -> Usage | None:
        return _usage(body.get("usage"))

    def usage_tap(self, *, strip_usage_event: bool) -> ChatUsageTap:
        return ChatUsageTap(strip_usage_event=strip_usage_event)

    def error_body(self, status: int, message: str) -> JSON:
        return openai_error(status, message)


class ChatUsageTap:
    """Reads the final usage chunk; drops it when tokenopt asked for it, not the client."""

    def __init__(self, *, strip_usage_event: bool) -> None:
        self.strip_usage_event = strip_usage_event
        self.usage: Usage | None = None
        self.complete = False

    def feed(self, event: SSEEvent) -> SSEEvent | None:
        if event.data == "[DONE]":
            self.complete = True
            return event
        if '"usage"' not in event.data:
            return event
        if _NULL_USAGE_TEXT.search(event.data):  # most chunks: no usage yet, no need to parse
            return _without_null_usage(event) if self.strip_usage_event else event
        chunk = loads_object(event.data)
        usage = _usage(chunk.get("usage"))
        if usage is None:
            return _without_null_usage(event) if self.strip_usage_event else event
        self.usage = usage
        return None if self.strip_usage_event and not chunk.get("choices") else event


# With include_usage on, OpenAI adds `"usage":null` to every chunk. A client that
# did not ask for usage never sees that member: removing exactly its bytes keeps
# the rest of the chunk as sent. Inside JSON strings quotes are escaped, so the
# pattern can only match the member itself.
_NULL_USAGE = r',\s*"usage"\s*:\s*null(?=\s*[,}])|"usage"\s*:\s*null\s*,'
_NULL_USAGE_TEXT, _NULL_USAGE_BYTES = re.compile(_NULL_USAGE), re.compile(_NULL_USAGE.encode())


def _without_null_usage(event: SSEEvent) -> SSEEvent:
    raw = _NULL_USAGE_BYTES.sub(b"", event.raw, count=1)
    if raw == event.raw:
        return event
    return SSEEvent(event.event, _NULL_USAGE_TEXT.sub("", event.data, count=1), raw)


def openai_error(status: int, message: str) -> JSON:
    """An error body in OpenAI's shape (shared by both OpenAI dialects)."""
    kinds = {413: "request_too_large", 502: "upstream_error", 504: "upstream_timeout"}
    kind = kinds.get(status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}


def _fields(body: JSON) -> dict[str, Any]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise DialectError("'messages' must be a list")
    lead = 0
    while lead < len(messages) and _is_system(messages[lead]):
        lead += 1
    tools = body.get("tools")
    return {
        "system": [_system_part(message) for message in messages[:lead]],
        "messages": messages[lead:],
        "tools": [_tool(raw) for raw in tools] if isinstance(tools, list) else [],
        "tool_choice": body.get("tool_choice"),
        "reasoning": Reasoning(effort=str_or_none(body.get("reasoning_effort"))),
        "max_output_tokens": int_or_none(
            body.get("max_completion_tokens", body.get("max_tokens"))
        ),
    }


def _is_system(message: Any) -> bool:
    # A role of the wrong type (a list, an object) is not hashable: not a system message.
    return isinstance(message, dict) and isinstance(role := message.get("role"), str) \
        and role in SYSTEM_ROLES


def _system_part(message: JSON) -> TextPart:
    content = message.get("content")
    if isinstance(content, list):
        text = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    else:
        text = content if isinstance(content, str) else ""
    return TextPart(text=text, raw=message)


def _system_message(part: TextPart) -> JSON:
    raw = part.raw if isinstance(part.raw, dict) else {"role": "system"}
    if _system_part(raw).text == part.text and "content" in raw:
        return raw
    return {**raw, "content": part.text}


def _tool(raw: Any) -> Tool:
    if not isinstance(raw, dict):
        raise DialectError("each tool must be an object")
    function = as_dict(raw.get("function"))
    spec = function or as_dict(raw.get("custom")) or raw
    parameters = spec.get("parameters")
    return Tool(
        name=str(spec.get("name", raw.get("type", ""))),
        description=str_or_none(spec.get("description")),
        parameters=parameters if isinstance(parameters, dict) else None,
        raw=raw,
    )


def _tool_raw(tool: Tool) -> JSON:
    if tool_unchanged(tool, _tool(tool.raw)):
        return tool.raw
    function = {**as_dict(tool.raw.get("function")), "name": tool.name}
    set_or_drop(function, "description", tool.description)
    set_or_drop(function, "parameters", tool.parameters)
    return {**tool.raw, "type": tool.raw.get("type", "function"), "function": function}


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt = as_dict(raw.get("prompt_tokens_details"))
    completion = as_dict(raw.get("completion_tokens_details"))
    return Usage(
        input_tokens=as_int(raw.get("prompt_tokens")),
        cached_input_tokens=as_int(prompt.get("cached_tokens")),
        cache_write_tokens=as_int(prompt.get("cache_write_tokens")),
        output_tokens=as_int(raw.get("completion_tokens")),
        reasoning_tokens=as_int(completion.get("reasoning_tokens")),
    )

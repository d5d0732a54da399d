"""Anthropic Messages (`POST /v1/messages`)."""

from __future__ import annotations

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

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    502: "api_error",
    504: "timeout_error",
}


class AnthropicMessagesDialect:
    name: ClassVar[str] = "anthropic-messages"
    path: ClassVar[str] = "/v1/messages"

    def parse(self, body: JSON, *, tenant: str, headers: Mapping[str, str]) -> RequestView:
        return build_view(self.name, self.path, body, _fields(body), tenant=tenant, headers=headers)

    def render(self, view: RequestView) -> JSON | None:
        changed = changed_fields(view, _fields)
        overrides = pending_overrides(view)
        if not changed and not overrides:
            return None
        body = dict(view.body)
        if "system" in changed:
            set_or_drop(body, "system", _system_raw(view.system))
        if "messages" in changed:
            body["messages"] = view.messages
        if "tools" in changed:
            body["tools"] = written_tools(view.tools, _tool_raw)
        if "tool_choice" in changed:
            set_or_drop(body, "tool_choice", view.tool_choice)
        if "reasoning" in changed:
            _write_reasoning(body, view.reasoning)
        if "max_output_tokens" in changed:
            set_or_drop(body, "max_tokens", view.max_output_tokens)
        for key, value in overrides.items():
            set_or_drop(body, key, value)
        return body

    def wants_usage_injection(self, body: JSON) -> bool:
        return False  # message_start and message_delta always carry usage

    def usage_from_json(self, body: JSON) -> Usage | None:
        return _usage(body.get("usage"))

    def usage_tap(self, *, strip_usage_event: bool) -> MessagesUsageTap:
        return MessagesUsageTap()

    def error_body(self, status: int, message: str) -> JSON:
        kind = ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}


class MessagesUsageTap:
    """Input and cache counts from `message_start`; cumulative output from `message_delta`."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.complete = False
        self._raw: JSON = {}

    def feed(self, event: SSEEvent) -> SSEEvent | None:
        if event.event == "message_start":
            self._raw = dict(as_dict(as_dict(loads_object(event.data).get("message")).get("usage")))
            self.usage = _usage(self._raw)
        elif event.event == "message_delta":
            # Cumulative: later values replace earlier ones, field by field.
            self._raw.update(as_dict(loads_object(event.data).get("usage")))
            self.usage = _usage(self._raw)
        elif event.event == "message_stop":
            self.complete = True
        return event


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    read = as_int(raw.get("cache_read_input_tokens"))
    write = as_int(raw.get("cache_creation_input_tokens"))
    return Usage(
        input_tokens=as_int(raw.get("input_tokens")) + read + write,
        cached_input_tokens=read,
        cache_write_tokens=write,
        cache_write_1h_tokens=as_int(as_dict(raw.get("cache_creation")).get("ephemeral_1h_input_tokens")),
        output_tokens=as_int(raw.get("output_tokens")),
        reasoning_tokens=as_int(as_dict(raw.get("output_tokens_details")).get("thinking_tokens")),
    )


def _fields(body: JSON) -> dict[str, Any]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise DialectError("'messages' must be a list")
    tools = body.get("tools")
    thinking = as_dict(body.get("thinking"))
    return {
        "system": _system(body.get("system")),
        "messages": messages,
        "tools": [_tool(raw) for raw in tools] if isinstance(tools, list) else [],
        "tool_choice": body.get("tool_choice"),
        "reasoning": Reasoning(
            effort=str_or_none(as_dict(body.get("output_config")).get("effort")),
            thinking=str_or_none(thinking.get("type")),
            budget_tokens=int_or_none(thinking.get("budget_tokens")),
        ),
        "max_output_tokens": int_or_none(body.get("max_tokens")),
    }


def _system(raw: Any) -> list[TextPart]:
    if isinstance(raw, str):
        return [TextPart(raw, raw)]
    if isinstance(raw, list):
        return [TextPart(str(block.get("text", "")), block) for block in raw if isinstance(block, dict)]
    return []


def _system_raw(parts: list[TextPart]) -> str | list[JSON] | None:
    if not parts:
        return None
    if len(parts) == 1 and isinstance(parts[0].raw, str):
        return parts[0].text
    return [
        {**part.raw, "text": part.text} if isinstance(part.raw, dict) else {"type": "text", "text": part.text}
        for part in parts
    ]


def _write_reasoning(body: JSON, reasoning: Reasoning) -> None:
    if reasoning.thinking is None:
        body.pop("thinking", None)
    else:
        thinking: JSON = {"type": reasoning.thinking}
        if reasoning.thinking == "enabled" and reasoning.budget_tokens is not None:
            thinking["budget_tokens"] = reasoning.budget_tokens
        display = as_dict(body.get("thinking")).get("display")
        if display is not None and reasoning.thinking == "adaptive":
            thinking["display"] = display
        body["thinking"] = thinking
    config = dict(as_dict(body.get("output_config")))
    set_or_drop(config, "effort", reasoning.effort)
    set_or_drop(body, "output_config", config or None)


def _tool(raw: Any) -> Tool:
    if not isinstance(raw, dict):
        raise DialectError("each tool must be an object")
    schema = raw.get("input_schema")
    return Tool(
        name=str(raw.get("name", raw.get("type", ""))),
        description=str_or_none(raw.get("description")),
        parameters=schema if isinstance(schema, dict) else None,
        raw=raw,
    )


def _tool_raw(tool: Tool) -> JSON:
    if tool_unchanged(tool, _tool(tool.raw)):
        return tool.raw
    raw = {**tool.raw, "name": tool.name}
    set_or_drop(raw, "description", tool.description)
    set_or_drop(raw, "input_schema", tool.parameters)
    return raw

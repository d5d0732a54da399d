"""OpenAI Responses (`POST /v1/responses`)."""

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
from tokenopt.dialects.openai_chat import openai_error
from tokenopt.exceptions import DialectError

# Events whose `response.usage` is final; a stream ends with exactly one of them.
FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class OpenAIResponsesDialect:
    name: ClassVar[str] = "openai-responses"
    path: ClassVar[str] = "/v1/responses"

    def parse(self, body: JSON, *, tenant: str, headers: Mapping[str, str]) -> RequestView:
        return build_view(self.name, self.path, body, _fields(body), tenant=tenant, headers=headers)

    def render(self, view: RequestView) -> JSON | None:
        changed = changed_fields(view, _fields)
        overrides = pending_overrides(view)
        if not changed and not overrides:
            return None
        body = dict(view.body)
        if "system" in changed:
            text = "\n".join(part.text for part in view.system)
            set_or_drop(body, "instructions", text if view.system else None)
        if "messages" in changed:
            body["input"] = view.messages
        if "tools" in changed:
            body["tools"] = written_tools(view.tools, _tool_raw)
        if "tool_choice" in changed:
            set_or_drop(body, "tool_choice", view.tool_choice)
        if "reasoning" in changed:
            reasoning = dict(as_dict(body.get("reasoning")))
            set_or_drop(reasoning, "effort", view.reasoning.effort)
            set_or_drop(body, "reasoning", reasoning or None)
        if "max_output_tokens" in changed:
            set_or_drop(body, "max_output_tokens", view.max_output_tokens)
        for key, value in overrides.items():
            set_or_drop(body, key, value)
        return body

    def wants_usage_injection(self, body: JSON) -> bool:
        return False  # Responses streams always end with usage

    def usage_from_json(self, body: JSON) -> Usage | None:
        return responses_usage(body.get("usage"))

    def usage_tap(self, *, strip_usage_event: bool) -> ResponsesUsageTap:
        return ResponsesUsageTap()

    def error_body(self, status: int, message: str) -> JSON:
        return openai_error(status, message)


class ResponsesUsageTap:
    """Reads usage from the one terminal `response.*` event."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.complete = False

    def feed(self, event: SSEEvent) -> SSEEvent | None:
        if event.event in FINAL_EVENTS or (
            event.event == "message" and '"response.' in event.data and '"usage"' in event.data
        ):
            payload = loads_object(event.data)
            if payload.get("type") in FINAL_EVENTS:
                self.usage = responses_usage(as_dict(payload.get("response")).get("usage"))
                self.complete = True
        return event


def responses_usage(raw: Any) -> Usage | None:
    """Usage in the Responses shape (`input_tokens`, `output_tokens`, `*_details`)."""
    if not isinstance(raw, dict):
        return None
    details = as_dict(raw.get("input_tokens_details"))
    output = as_dict(raw.get("output_tokens_details"))
    return Usage(
        input_tokens=as_int(raw.get("input_tokens")),
        cached_input_tokens=as_int(details.get("cached_tokens")),
        cache_write_tokens=as_int(details.get("cache_write_tokens")),
        output_tokens=as_int(raw.get("output_tokens")),
        reasoning_tokens=as_int(output.get("reasoning_tokens")),
    )


def _fields(body: JSON) -> dict[str, Any]:
    instructions = body.get("instructions")
    items = body.get("input")
    if isinstance(items, str):
        messages: list[JSON] = [{"role": "user", "content": items}]
    elif isinstance(items, list):
        messages = items
    elif items is None:
        messages = []
    else:
        raise DialectError("'input' must be a string or a list")
    tools = body.get("tools")
    return {
        "system": [TextPart(instructions, None)] if isinstance(instructions, str) else [],
        "messages": messages,
        "tools": [_tool(raw) for raw in tools] if isinstance(tools, list) else [],
        "tool_choice": body.get("tool_choice"),
        "reasoning": Reasoning(effort=str_or_none(as_dict(body.get("reasoning")).get("effort"))),
        "max_output_tokens": int_or_none(body.get("max_output_tokens")),
    }


def _tool(raw: Any) -> Tool:
    if not isinstance(raw, dict):
        raise DialectError("each tool must be an object")
    parameters = raw.get("parameters")
    return Tool(
        name=str(raw.get("name", raw.get("type", ""))),
        description=str_or_none(raw.get("description")),
        parameters=parameters if isinstance(parameters, dict) else None,
        raw=raw,
    )


def _tool_raw(tool: Tool) -> JSON:
    if tool_unchanged(tool, _tool(tool.raw)):
        return tool.raw
    raw = {**tool.raw, "type": tool.raw.get("type", "function"), "name": tool.name}
    set_or_drop(raw, "description", tool.description)
    set_or_drop(raw, "parameters", tool.parameters)
    return raw

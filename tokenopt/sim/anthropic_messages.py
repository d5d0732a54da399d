"""Anthropic Messages on the wire: validation, message bodies, named stream events."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, ClassVar

from tokenopt.sim.cache_anthropic import MAX_BREAKPOINTS
from tokenopt.sim.deferred import anthropic_loads, check_messages, prompt_tools
from tokenopt.sim.native_search import search_arguments
from tokenopt.sim.openai_chat import forced_tool
from tokenopt.sim.prompt import Prompt
from tokenopt.sim.reply import (
    Ask,
    Reply,
    ToolSearch,
    reasoning_for_budget,
    reasoning_for_effort,
)
from tokenopt.sim.wire import JSON, Counts, Event, Invalid, new_id, pieces, take, text_deltas
from tokenopt.tokens import TokenCounter

ANTHROPIC_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
MIN_THINKING_BUDGET = 1024
# A `system` message inside `messages` (current Claude Code sends one after the first user
# turn) is part of the message sequence: it is cached, and looked back over, like any turn.
MESSAGE_ROLES = ("user", "assistant", "system")


def anthropic_error(status: int, message: str) -> JSON:
    kind = ANTHROPIC_ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def _anthropic_tool(tool: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    schema = tool.get("input_schema")
    return str(tool.get("name", "")), schema if isinstance(schema, dict) else {}


class MessagesRoute:
    """`POST /v1/messages` as Anthropic serves it."""

    path: ClassVar[str] = "/v1/messages"

    def error(self, status: int, message: str) -> JSON:
        return anthropic_error(status, message)

    def invalid(self, exc: Invalid) -> JSON:
        if exc.problem == "missing":
            return anthropic_error(400, f"{exc.param}: Field required")
        if exc.problem == "type":
            return anthropic_error(400, f"{exc.param}: Input should be {exc.expected}")
        if exc.problem == "unknown":
            return anthropic_error(400, f"{exc.param}: Extra inputs are not permitted")
        return anthropic_error(400, exc.problem)

    def ask(self, body: JSON) -> Ask:
        model = take(body, "model", "string", required=True)
        cap = take(body, "max_tokens", "integer", required=True)
        if cap < 0:  # 0 is the documented cache pre-warm
            raise Invalid("max_tokens", "max_tokens: Input should be greater than or equal to 0")
        messages = take(body, "messages", "array", required=True)
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in MESSAGE_ROLES:
                raise Invalid(f"messages.{index}.role", "type", "'user', 'assistant' or 'system'")
            if message["role"] == "system":
                _check_system_message(index, message)
        take(body, "system", "string|array")
        tools = take(body, "tools", "array") or []
        marked = _breakpoints(body)
        if marked > MAX_BREAKPOINTS:
            raise Invalid("cache_control", f"A maximum of {MAX_BREAKPOINTS} blocks with "
                          f"cache_control may be provided. Found {marked}.")
        check_messages(body)
        return Ask(
            model=model,
            stream=bool(take(body, "stream", "boolean")),
            cap=cap,
            reasoning_tokens=_thinking_tokens(body, cap),
            tool=forced_tool(body.get("tool_choice"), tools, _anthropic_tool),
        )

    def prompt(self, body: JSON, counter: TokenCounter) -> Prompt:
        system = body.get("system")
        salt = json.dumps([body.get("tool_choice"), body.get("thinking")], sort_keys=True)
        tools = body.get("tools") or []
        blocks = _blocks_of(body["messages"])
        prompt = Prompt.build(
            self.path, body["model"], counter, tools=prompt_tools(self.path, tools),
            system=[system] if isinstance(system, str) else system or [],
            messages=blocks, loaded_at=anthropic_loads(blocks, tools), salt=salt,
        )
        automatic = body.get("cache_control")
        if isinstance(automatic, dict) and prompt.segments:
            # Top-level cache_control: a breakpoint on the last cacheable block.
            *head, last = prompt.segments
            if last.breakpoint is None:
                last = dataclasses.replace(last, breakpoint=str(automatic.get("ttl", "5m")))
            prompt = dataclasses.replace(prompt, segments=(*head, last))
        return prompt

    def respond(self, body: JSON, ask: Ask, reply: Reply, counts: Counts) -> JSON:
        return {**_message(ask, _blocks(reply), counts, reply.output_tokens),
                "stop_reason": _stop(reply)}

    def stream(self, body: JSON, ask: Ask, reply: Reply, counts: Counts) -> list[Event]:
        start = _message(ask, [], counts, 1)
        events: list[Event] = [("message_start", {"type": "message_start", "message": start})]
        for index, block in enumerate(_blocks(reply)):
            block_events = _block_events(index, block)
            if index == 0:  # Anthropic pings right after the first block opens
                block_events.insert(1, ("ping", {"type": "ping"}))
            events += block_events
        usage = _usage(counts, reply.output_tokens)
        usage.pop("cache_creation")  # the TTL breakdown comes only in message_start
        events.append(("message_delta", {"type": "message_delta",
                                         "delta": {"stop_reason": _stop(reply), "stop_sequence": None},
                                         "usage": usage}))
        events.append(("message_stop", {"type": "message_stop"}))
        return events


def _check_system_message(index: int, message: JSON) -> None:
    content = message.get("content")
    if isinstance(content, str):
        return
    if not isinstance(content, list) or not all(
            isinstance(block, dict) and block.get("type") == "text" for block in content):
        raise Invalid(f"messages.{index}.content",
                      f"messages.{index}.content: a system message takes text only")


def _blocks_of(messages: list[Any]) -> list[Any]:
    """One prompt segment per content block: Anthropic caches (and looks back) by block.

    The first block of a message carries the role; later ones stand alone.
    """
    blocks: list[Any] = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list) or len(content) < 2:
            blocks.append(message)
            continue
        blocks.append({**message, "content": content[:1]})
        blocks += content[1:]
    return blocks


def _breakpoints(body: JSON) -> int:
    """`cache_control` markers on tools, system blocks and message blocks, plus the automatic one."""
    def marked(items: Any) -> int:
        return sum(isinstance(i, dict) and isinstance(i.get("cache_control"), dict)
                   for i in items) if isinstance(items, list) else 0

    count = marked(body.get("tools")) + marked(body.get("system"))
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            count += marked(message.get("content"))
    return count + isinstance(body.get("cache_control"), dict)


def _thinking_tokens(body: JSON, cap: int) -> int:
    thinking = take(body, "thinking", "object") or {}
    kind = thinking.get("type")
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool):
            raise Invalid("thinking.enabled.budget_tokens", "missing")
        if budget < MIN_THINKING_BUDGET:
            raise Invalid("thinking.enabled.budget_tokens", "thinking.enabled.budget_tokens: "
                          f"Input should be greater than or equal to {MIN_THINKING_BUDGET}")
        if budget >= cap:
            raise Invalid("max_tokens", "`max_tokens` must be greater than `thinking.budget_tokens`.")
        return reasoning_for_budget(budget)
    if kind == "adaptive":
        found = body.get("output_config")
        config: dict[str, Any] = found if isinstance(found, dict) else {}
        return reasoning_for_effort(config.get("effort") or "high")
    return 0


def _message(ask: Ask, content: list[JSON], counts: Counts, output_tokens: int) -> JSON:
    return {"id": new_id("msg_01"), "type": "message", "role": "assistant", "model": ask.model,
            "content": content, "stop_reason": None, "stop_sequence": None,
            "usage": _usage(counts, output_tokens)}


def _blocks(reply: Reply) -> list[JSON]:
    blocks: list[JSON] = []
    if reply.reasoning_tokens:
        blocks.append({"type": "thinking", "thinking": reply.reasoning_text,
                       "signature": _signature(reply.reasoning_text)})
    if reply.search:
        blocks += _search_blocks(reply.search)
    if reply.tool_call:
        blocks.append({"type": "tool_use", "id": new_id("toolu_01"), "name": reply.tool_call.name,
                       "input": json.loads(reply.tool_call.arguments)})
    elif reply.text:
        blocks.append({"type": "text", "text": reply.text})
    return blocks


def _search_blocks(search: ToolSearch) -> list[JSON]:
    """The server-side search, then what it found: both blocks precede the answer."""
    call_id = new_id("srvtoolu_01")
    references = [{"type": "tool_reference", "tool_name": name} for name in search.found]
    return [
        {"type": "server_tool_use", "id": call_id, "name": search.tool,
         "input": search_arguments(search)},
        {"type": "tool_search_tool_result", "tool_use_id": call_id,
         "content": {"type": "tool_search_tool_search_result", "tool_references": references}},
    ]


def _block_events(index: int, block: JSON) -> list[Event]:
    """start, deltas, stop: how Anthropic streams one content block."""
    kind = block["type"]
    deltas: list[JSON]
    if kind == "thinking":
        shell: JSON = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [{"type": "thinking_delta", "thinking": piece} for piece in text_deltas(block["thinking"])]
        deltas.append({"type": "signature_delta", "signature": block["signature"]})
    elif kind in ("tool_use", "server_tool_use"):
        shell = {**block, "input": {}}
        arguments = json.dumps(block["input"], separators=(",", ":"))
        deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in pieces(arguments)]
    elif kind == "text":
        shell = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": piece} for piece in text_deltas(block["text"])]
    else:  # a server tool's result arrives whole in its start event
        shell, deltas = block, []
    events: list[Event] = [("content_block_start",
                            {"type": "content_block_start", "index": index, "content_block": shell})]
    events += [("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
               for delta in deltas]
    events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


def _stop(reply: Reply) -> str:
    if reply.truncated:
        return "max_tokens"
    return "tool_use" if reply.tool_call else "end_turn"


def _usage(counts: Counts, output_tokens: int) -> JSON:
    """Anthropic's split: `input_tokens` is only what was neither read from nor written to cache."""
    write_1h = counts.cache_write_1h_tokens
    usage: JSON = {
        "input_tokens": counts.input_tokens - counts.cached_tokens - counts.cache_write_tokens,
        "cache_creation_input_tokens": counts.cache_write_tokens,
        "cache_read_input_tokens": counts.cached_tokens,
        "cache_creation": {"ephemeral_5m_input_tokens": counts.cache_write_tokens - write_1h,
                           "ephemeral_1h_input_tokens": write_1h},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }
    if counts.reasoning_tokens:
        usage["output_tokens_details"] = {"thinking_tokens": counts.reasoning_tokens}
    return usage


def _signature(text: str) -> str:
    """An opaque, stable stand-in for the signature that lets clients echo thinking back."""
    return "sim_" + hashlib.sha256(text.encode()).hexdigest()

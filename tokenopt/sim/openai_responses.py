"""OpenAI Responses on the wire: validation, the response object, typed stream events."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from tokenopt.sim.deferred import (
    check_responses,
    prompt_tools,
    responses_input,
    responses_loaded,
)
from tokenopt.sim.native_search import search_arguments
from tokenopt.sim.openai_chat import OpenAIErrors, forced_tool, openai_usage_details
from tokenopt.sim.prompt import Prompt, str_or_none
from tokenopt.sim.reply import Ask, Reply, ToolSearch, reasoning_for_effort
from tokenopt.sim.wire import JSON, Counts, Event, new_id, pieces, take, text_deltas
from tokenopt.tokens import TokenCounter


def _responses_tool(tool: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    schema = tool.get("parameters")
    name = tool.get("name") if tool.get("type", "function") == "function" else None
    return str(name or ""), schema if isinstance(schema, dict) else {}


class ResponsesRoute(OpenAIErrors):
    """`POST /v1/responses` as OpenAI serves it."""

    path: ClassVar[str] = "/v1/responses"

    def ask(self, body: JSON) -> Ask:
        model = take(body, "model", "string", required=True)
        take(body, "input", "string|array", required=True)
        take(body, "instructions", "string")
        tools = take(body, "tools", "array") or []
        reasoning = take(body, "reasoning", "object") or {}
        check_responses(body)
        return Ask(
            model=model,
            stream=bool(take(body, "stream", "boolean")),
            cap=take(body, "max_output_tokens", "integer"),
            reasoning_tokens=reasoning_for_effort(reasoning.get("effort")),
            tool=forced_tool(body.get("tool_choice"), tools, _responses_tool),
        )

    def prompt(self, body: JSON, counter: TokenCounter) -> Prompt:
        items = body["input"]
        messages = [{"role": "user", "content": items}] if isinstance(items, str) else items
        instructions = body.get("instructions")
        tools = prompt_tools(self.path, body.get("tools") or [])
        return Prompt.build(
            self.path, body["model"], counter, tools=tools,
            system=[instructions] if isinstance(instructions, str) else [],
            messages=responses_input(messages), loaded_last=responses_loaded(messages),
            cache_key=body.get("prompt_cache_key"),
            retention=str_or_none(body.get("prompt_cache_retention")),
        )

    def respond(self, body: JSON, ask: Ask, reply: Reply, counts: Counts) -> JSON:
        return _response(body, ask, _items(body, reply), reply, counts)

    def stream(self, body: JSON, ask: Ask, reply: Reply, counts: Counts) -> list[Event]:
        base = _response(body, ask, [], None, None)
        items = _items(body, reply)
        raw: list[JSON] = [
            {"type": "response.created", "response": base},
            {"type": "response.in_progress", "response": base},
        ]
        for index, item in enumerate(items):
            raw += _item_events(index, item)
        final = {**_response(body, ask, items, reply, counts), "id": base["id"],
                 "created_at": base["created_at"]}
        kind = "response.incomplete" if reply.truncated else "response.completed"
        raw.append({"type": kind, "response": final})
        return [(event["type"], {**event, "sequence_number": n}) for n, event in enumerate(raw)]


def _response(body: JSON, ask: Ask, output: list[JSON], reply: Reply | None,
              counts: Counts | None) -> JSON:
    status = "in_progress" if reply is None else "incomplete" if reply.truncated else "completed"
    found = body.get("reasoning")
    reasoning: dict[str, Any] = found if isinstance(found, dict) else {}
    return {
        "id": new_id("resp_", 48), "object": "response", "created_at": int(time.time()),
        "status": status, "background": False, "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.get("instructions"), "max_output_tokens": ask.cap,
        "model": ask.model, "output": output, "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": body.get("store", True), "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}}, "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [], "top_p": body.get("top_p", 1.0),
        "truncation": "disabled", "usage": _usage(counts) if counts else None,
        "user": None, "metadata": body.get("metadata") or {},
    }


def _items(body: JSON, reply: Reply) -> list[JSON]:
    status = "incomplete" if reply.truncated else "completed"
    items: list[JSON] = []
    if reply.reasoning_tokens:
        items.append({"id": new_id("rs_", 48), "type": "reasoning", "summary": []})
    if reply.search:
        items += _search_items(reply.search)
    if reply.tool_call:
        call: JSON = {"id": new_id("fc_", 48), "type": "function_call", "status": status,
                      "arguments": reply.tool_call.arguments, "call_id": new_id("call_"),
                      "name": reply.tool_call.name}
        namespace = _namespace_of(body, reply.tool_call.name)
        items.append({**call, "namespace": namespace} if namespace else call)
    elif reply.search and reply.search.execution == "client":
        pass  # the turn ends at the search call: the client runs it
    elif reply.text or not reply.truncated:
        part = {"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}
        items.append({"id": new_id("msg_", 48), "type": "message", "status": status,
                      "role": "assistant", "content": [part]})
    return items


def _search_items(search: ToolSearch) -> list[JSON]:
    """The search call; a server-run search also returns what it loaded, before the answer."""
    call_id = new_id("call_")
    call = {"id": new_id("tsc_", 48), "type": "tool_search_call", "call_id": call_id,
            "execution": search.execution, "status": "completed",
            "arguments": search_arguments(search)}
    if search.execution == "client":
        return [call]
    return [call, {"id": new_id("tso_", 48), "type": "tool_search_output", "call_id": call_id,
                   "execution": "server", "status": "completed", "tools": list(search.loaded)}]


def _namespace_of(body: JSON, name: str) -> str | None:
    """The namespace a called function sits in: Responses names it on the call."""
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and tool.get("type") == "namespace":
            inner = tool.get("tools")
            if isinstance(inner, list) and any(
                    isinstance(fn, dict) and fn.get("name") == name for fn in inner):
                return str(tool.get("name"))
    return None


def _item_events(index: int, item: JSON) -> list[JSON]:
    """added, its deltas and dones, in the order OpenAI streams one output item."""
    where = {"item_id": item["id"], "output_index": index}
    if item["type"] == "reasoning":
        shell = item
    elif item["type"] == "function_call":
        shell = {**item, "arguments": "", "status": "in_progress"}
    elif item["type"] in ("tool_search_call", "tool_search_output"):
        shell = {**item, "status": "in_progress"}
    else:
        shell = {**item, "content": [], "status": "in_progress"}
    events: list[JSON] = [{"type": "response.output_item.added", "output_index": index, "item": shell}]
    if item["type"] == "function_call":
        events += [{"type": "response.function_call_arguments.delta", **where, "delta": piece}
                   for piece in pieces(item["arguments"])]
        events.append({"type": "response.function_call_arguments.done", **where,
                       "arguments": item["arguments"]})
    elif item["type"] == "message":
        part = item["content"][0]
        at = {**where, "content_index": 0}
        events.append({"type": "response.content_part.added", **at,
                       "part": {**part, "text": ""}})
        events += [{"type": "response.output_text.delta", **at, "delta": delta, "logprobs": []}
                   for delta in text_deltas(part["text"])]
        events.append({"type": "response.output_text.done", **at, "text": part["text"],
                       "logprobs": []})
        events.append({"type": "response.content_part.done", **at, "part": part})
    events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    return events


def _usage(counts: Counts) -> JSON:
    input_details, output_details = openai_usage_details(counts)
    return {
        "input_tokens": counts.input_tokens,
        "input_tokens_details": input_details,
        "output_tokens": counts.output_tokens,
        "output_tokens_details": output_details,
        "total_tokens": counts.input_tokens + counts.output_tokens,
    }

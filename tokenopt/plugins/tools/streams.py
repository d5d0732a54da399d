"""Several rounds' streams relayed as one, in each dialect's own terms.

The client must see one well-formed stream: one message start, content
indexes (Anthropic), tool-call indexes (Chat) and output indexes and sequence
numbers (Responses) that run on without gaps, no trace of tokenopt's search
calls, and one end whose usage is the sum of every upstream call. A merger
relays what it can at once and holds only each round's end; `closing` emits
the end once the detour knows no round follows.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from tokenopt._sse import SSEEvent
from tokenopt.dialects.base import JSON, as_dict, loads_object, sse_event
from tokenopt.plugins.tools.answers import without_search_tool


class StreamMerger(Protocol):
    def feed(self, event: SSEEvent) -> list[SSEEvent]: ...
    def next_round(self) -> None: ...
    def closing(self, merged: JSON | None) -> list[SSEEvent]: ...
    def error(self, status: int, body: bytes) -> list[SSEEvent]: ...


def _event(payload: JSON, name: str | None) -> SSEEvent:
    return sse_event(json.dumps(payload, ensure_ascii=False, separators=(",", ":")), name)


def _error_payload(body: bytes) -> JSON:
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {}


class Renumber:
    """One round's upstream indexes mapped to the client's, which run on across rounds.

    A hidden index (tokenopt's search call) maps to None: its events are dropped.
    """

    def __init__(self) -> None:
        self.next = 0
        self.map: dict[Any, int | None] = {}

    def next_round(self) -> None:
        self.map = {}

    def open(self, index: Any, *, hidden: bool) -> None:
        if hidden:
            self.map[index] = None
        else:
            self.map[index] = self.next
            self.next += 1

    def __contains__(self, index: object) -> bool:
        return index in self.map

    def get(self, index: Any) -> int | None:
        return self.map.get(index)


class MessagesMerger:
    """Anthropic: one `message_start`, content blocks renumbered, one `message_delta`/`stop`."""

    def __init__(self, search: str) -> None:
        self.search = search
        self.round = 0
        self.indexes = Renumber()
        self.delta: JSON | None = None

    def next_round(self) -> None:
        self.round += 1
        self.indexes.next_round()

    def feed(self, event: SSEEvent) -> list[SSEEvent]:
        payload = loads_object(event.data)
        kind = event.event if event.event not in ("message", "") else str(payload.get("type", ""))
        if kind in ("message_start", "ping"):
            return [event] if self.round == 0 else []
        if kind == "message_delta":
            self.delta = payload
            return []
        if kind == "message_stop":
            return []
        if kind == "content_block_start":
            block = as_dict(payload.get("content_block"))
            hidden = block.get("type") == "tool_use" and block.get("name") == self.search
            self.indexes.open(payload.get("index", 0), hidden=hidden)
        if kind in ("content_block_start", "content_block_delta", "content_block_stop"):
            mapped = self.indexes.get(payload.get("index", 0))
            if mapped is None:
                return []
            if mapped == payload.get("index"):
                return [event]
            return [_event({**payload, "index": mapped}, kind)]
        return [event]

    def closing(self, merged: JSON | None) -> list[SSEEvent]:
        delta = self.delta or {"type": "message_delta",
                               "delta": {"stop_reason": "end_turn", "stop_sequence": None}}
        usage = (merged or {}).get("usage")
        if isinstance(usage, dict):
            delta = {**delta, "usage": usage}
        return [_event(delta, "message_delta"), _event({"type": "message_stop"}, "message_stop")]

    def error(self, status: int, body: bytes) -> list[SSEEvent]:
        payload = _error_payload(body)
        if payload.get("type") != "error":
            payload = {"type": "error", "error": {
                "type": "api_error", "message": f"upstream answered {status} during a tool search"}}
        return [_event(payload, "error")]


class ChatMerger:
    """OpenAI Chat: chunks under the first id, tool-call indexes renumbered, one finish."""

    def __init__(self, search: str) -> None:
        self.search = search
        self.round = 0
        self.id: Any = None
        self.indexes = Renumber()
        self.finish: JSON | None = None
        self.usage_seen = False

    def next_round(self) -> None:
        self.round += 1
        self.indexes.next_round()

    def feed(self, event: SSEEvent) -> list[SSEEvent]:
        if event.data.strip() == "[DONE]":
            return []
        chunk = loads_object(event.data)
        if not chunk:
            return [event]
        if self.id is None:
            self.id = chunk.get("id")
        if chunk.get("usage") is not None:
            self.usage_seen = True
        choices = chunk.get("choices") if isinstance(chunk.get("choices"), list) else []
        if not choices:
            return [] if chunk.get("usage") is not None else [event]
        out = []
        for choice in choices:
            edited = self._choice(choice) if isinstance(choice, dict) else None
            if edited is not None:
                out.append(edited)
        if not out:
            return []
        edited_chunk = {**chunk, "id": self.id, "choices": out}
        edited_chunk.pop("usage", None)
        return [_event(edited_chunk, None)]

    def _choice(self, choice: JSON) -> JSON | None:
        delta = dict(choice.get("delta") or {})
        if choice.get("finish_reason") is not None:
            self.finish = {**choice, "delta": {}}
        if self.round > 0:
            delta.pop("role", None)
        calls = []
        for call in delta.get("tool_calls") or []:
            index = call.get("index", 0)
            hidden = (call.get("function") or {}).get("name") == self.search
            if hidden or index not in self.indexes:
                self.indexes.open(index, hidden=hidden)
            mapped = self.indexes.get(index)
            if mapped is not None:
                calls.append({**call, "index": mapped})
        if "tool_calls" in delta:
            if calls:
                delta["tool_calls"] = calls
            else:
                delta.pop("tool_calls")
        if not any(value not in (None, "") for value in delta.values()) and not (
                self.round == 0 and "role" in delta):
            return None
        return {**choice, "delta": delta, "finish_reason": None}

    def closing(self, merged: JSON | None) -> list[SSEEvent]:
        merged = merged or {}
        head = {"id": self.id, "object": "chat.completion.chunk", "created": merged.get("created"),
                "model": merged.get("model")}
        finish = self.finish or {"index": 0, "delta": {}, "finish_reason": "stop"}
        events = [_event({**head, "choices": [finish]}, None)]
        if self.usage_seen and merged.get("usage") is not None:
            events.append(_event({**head, "choices": [], "usage": merged["usage"]}, None))
        return [*events, sse_event("[DONE]")]

    def error(self, status: int, body: bytes) -> list[SSEEvent]:
        payload = _error_payload(body)
        if not isinstance(payload.get("error"), dict):
            payload = {"error": {"message": f"upstream answered {status} during a tool search",
                                 "type": "server_error", "param": None, "code": None}}
        return [_event(payload, None)]


class ResponsesMerger:
    """OpenAI Responses: one `response.created`, output indexes and sequence numbers run on."""

    FINAL = ("response.completed", "response.incomplete", "response.failed")

    def __init__(self, search: str) -> None:
        self.search = search
        self.round = 0
        self.sequence = 0
        self.indexes = Renumber()
        self.final: JSON | None = None
        self.identity: JSON = {}  # the first round's response id: the one the client knows

    def next_round(self) -> None:
        self.round += 1
        self.indexes.next_round()

    def feed(self, event: SSEEvent) -> list[SSEEvent]:
        payload = loads_object(event.data)
        kind = str(payload.get("type") or event.event)
        if kind in ("response.created", "response.in_progress", "response.queued"):
            if self.round:
                return []
            response = payload.get("response")
            if isinstance(response, dict):
                if not self.identity:
                    self.identity = {k: response[k] for k in ("id", "created_at") if k in response}
                payload = {**payload, "response": without_search_tool(response, self.search)}
                return [self._numbered(payload, event.event)]
        if kind in self.FINAL:
            self.final = payload
            return []
        if kind == "response.output_item.added":
            item = as_dict(payload.get("item"))
            hidden = item.get("type") == "function_call" and item.get("name") == self.search
            self.indexes.open(payload.get("output_index", 0), hidden=hidden)
        edited = dict(payload)
        if "output_index" in payload:
            mapped = self.indexes.get(payload["output_index"])
            if mapped is None:
                return []
            edited["output_index"] = mapped
        return [self._numbered(edited, event.event)]

    def _numbered(self, payload: JSON, name: str) -> SSEEvent:
        payload = {**payload, "sequence_number": self.sequence}
        self.sequence += 1
        return _event(payload, name if name not in ("message", "") else None)

    def closing(self, merged: JSON | None) -> list[SSEEvent]:
        final = self.final or {"type": "response.completed"}
        kind = str(final.get("type", "response.completed"))
        if merged is not None:
            final = {**final, "response": {**merged, **self.identity}}
        return [self._numbered(final, kind)]

    def error(self, status: int, body: bytes) -> list[SSEEvent]:
        error = _error_payload(body).get("error")
        error = error if isinstance(error, dict) else {}
        return [self._numbered({
            "type": "error", "code": error.get("code") or str(status),
            "message": error.get("message") or f"upstream answered {status} during a tool search",
            "param": error.get("param"),
        }, "error")]


def merger_for(dialect: str, search: str) -> StreamMerger:
    if dialect == "anthropic-messages":
        return MessagesMerger(search)
    if dialect == "openai-responses":
        return ResponsesMerger(search)
    return ChatMerger(search)

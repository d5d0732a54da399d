"""Rebuild a streamed answer as the JSON body the same request would have returned.

Recording keeps each response for replay, whose simulated model needs to know
which tools the real model called; agents mostly stream, so the stream has to
be turned back into a response body.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from tokenopt._sse import SSEEvent
from tokenopt.dialects.base import JSON, loads_object


class Assembler(Protocol):
    def feed(self, event: SSEEvent) -> None: ...
    def result(self) -> JSON | None: ...


def assembler_for(route: str) -> Assembler:
    if route == "/v1/messages":
        return MessagesAssembler()
    if route == "/v1/responses":
        return ResponsesAssembler()
    return ChatAssembler()


class ChatAssembler:
    """Chat Completions chunks → a `chat.completion` body (first choice)."""

    def __init__(self) -> None:
        self.head: JSON = {}
        self.text: list[str] = []
        self.calls: dict[int, JSON] = {}
        self.finish: str | None = None
        self.usage: Any = None

    def feed(self, event: SSEEvent) -> None:
        if event.data == "[DONE]":
            return
        chunk = loads_object(event.data)
        if not self.head and chunk:
            self.head = {k: chunk.get(k) for k in ("id", "created", "model")}
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                self.text.append(delta["content"])
            for call in delta.get("tool_calls") or []:
                slot = self.calls.setdefault(call.get("index", 0), {
                    "id": None, "type": "function", "function": {"name": "", "arguments": ""}})
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") or {}
                slot["function"]["name"] += function.get("name") or ""
                slot["function"]["arguments"] += function.get("arguments") or ""
            self.finish = choice.get("finish_reason") or self.finish

    def result(self) -> JSON | None:
        if not self.head:
            return None
        message: JSON = {"role": "assistant", "content": "".join(self.text) or None}
        if self.calls:
            message["tool_calls"] = [self.calls[i] for i in sorted(self.calls)]
        body: JSON = {**self.head, "object": "chat.completion",
                      "choices": [{"index": 0, "message": message, "finish_reason": self.finish}]}
        if self.usage is not None:
            body["usage"] = self.usage
        return body


class ResponsesAssembler:
    """Responses streams end with the whole response object: keep it."""

    def __init__(self) -> None:
        self.response: JSON | None = None

    def feed(self, event: SSEEvent) -> None:
        if event.event in ("response.completed", "response.incomplete", "response.failed") or (
                event.event == "message" and '"response.' in event.data):
            payload = loads_object(event.data)
            if isinstance(payload.get("response"), dict) and payload.get("type", "").startswith(
                    ("response.completed", "response.incomplete", "response.failed")):
                self.response = payload["response"]

    def result(self) -> JSON | None:
        return self.response


class MessagesAssembler:
    """Anthropic events → a `message` body: blocks from their deltas, the latest usage."""

    def __init__(self) -> None:
        self.message: JSON | None = None
        self.blocks: dict[int, JSON] = {}
        self.json_parts: dict[int, list[str]] = {}

    def feed(self, event: SSEEvent) -> None:
        payload = loads_object(event.data)
        kind = event.event if event.event != "message" else payload.get("type")
        if kind == "message_start" and isinstance(payload.get("message"), dict):
            self.message = dict(payload["message"])
        elif kind == "content_block_start":
            self.blocks[payload.get("index", 0)] = dict(payload.get("content_block") or {})
        elif kind == "content_block_delta":
            self._delta(payload.get("index", 0), payload.get("delta") or {})
        elif kind == "message_delta" and self.message is not None:
            self.message.update({k: v for k, v in (payload.get("delta") or {}).items()})
            usage = payload.get("usage")
            if isinstance(usage, dict):
                self.message["usage"] = {**(self.message.get("usage") or {}), **usage}

    def _delta(self, index: int, delta: JSON) -> None:
        block = self.blocks.setdefault(index, {"type": "text", "text": ""})
        kind = delta.get("type")
        if kind == "text_delta":
            block["text"] = block.get("text", "") + delta.get("text", "")
        elif kind == "input_json_delta":
            self.json_parts.setdefault(index, []).append(delta.get("partial_json", ""))
        elif kind == "thinking_delta":
            block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
        elif kind == "signature_delta":
            block["signature"] = delta.get("signature", "")

    def result(self) -> JSON | None:
        if self.message is None:
            return None
        for index, parts in self.json_parts.items():
            try:
                self.blocks[index]["input"] = json.loads("".join(parts) or "{}")
            except ValueError:
                self.blocks[index]["input"] = {}
        return {**self.message, "content": [self.blocks[i] for i in sorted(self.blocks)]}

"""Hard cap on streamed reasoning, for upstreams that do not enforce a budget.

Each editor counts the reasoning deltas as they pass and, at the cap, ends the
response the way the provider ends one that ran out of tokens: Anthropic
`stop_reason: "max_tokens"`, Chat `finish_reason: "length"`, Responses
`response.incomplete` with reason `max_output_tokens`. The client never sees a
broken stream; the middleware then tells the app the client left, so the
upstream generation stops too.
"""

from __future__ import annotations

import json
from typing import Any

from tokenopt._sse import SSEEvent
from tokenopt.dialects.base import JSON, StreamEditor, as_dict, loads_object, sse_event
from tokenopt.tokens import TokenCounter


class _Cap:
    """Shared counting; subclasses read their dialect's deltas and write its ending."""

    def __init__(self, cap: int, counter: TokenCounter, model: str | None) -> None:
        self.cap = cap
        self.counter = counter
        self.model = model
        self.used = 0
        self.ended = False
        self.notes: dict[str, Any] = {"stream_cap": cap}

    def _over(self, text: str) -> bool:
        """Count `text`; True when it would take reasoning past the cap."""
        tokens = self.counter.count(text, self.model)
        if self.used + tokens > self.cap:
            self.ended = True
            self.notes.update(stream_cut=True, stream_reasoning_tokens=self.used)
            return True
        self.used += tokens
        self.notes["stream_reasoning_tokens"] = self.used
        return False


def _dumps(payload: JSON) -> str:
    return json.dumps(payload, separators=(",", ":"))


class AnthropicStreamCap(_Cap):
    """Counts `thinking_delta` text; ends with `message_delta` stop_reason `max_tokens`."""

    def feed(self, event: SSEEvent) -> list[SSEEvent]:
        if event.event != "content_block_delta" or '"thinking_delta"' not in event.data:
            return [event]
        payload = loads_object(event.data)
        delta = as_dict(payload.get("delta"))
        if delta.get("type") != "thinking_delta" or not self._over(str(delta.get("thinking", ""))):
            return [event]
        index = payload.get("index", 0)
        return [
            sse_event(_dumps({"type": "content_block_stop", "index": index}), "content_block_stop"),
            sse_event(_dumps({"type": "message_delta",
                              "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
                              "usage": {"output_tokens": self.used}}), "message_delta"),
            sse_event(_dumps({"type": "message_stop"}), "message_stop"),
        ]


class ChatStreamCap(_Cap):
    """Counts `delta.reasoning_content` (vLLM, Qwen, DeepSeek) or `delta.reasoning`."""

    def __init__(self, cap: int, counter: TokenCounter, model: str | None) -> None:
        super().__init__(cap, counter, model)
        self.head: JSON = {}
        self.indices: set[int] = set()

    def feed(self, event: SSEEvent) -> list[SSEEvent]:
        if event.data == "[DONE]" or '"reasoning' not in event.data:
            return [event]
        chunk = loads_object(event.data)
        self.head = {k: chunk[k] for k in ("id", "created", "model") if k in chunk}
        text = ""
        for choice in chunk.get("choices") or []:
            delta = as_dict(as_dict(choice).get("delta"))
            self.indices.add(as_dict(choice).get("index", 0))
            reasoning = delta.get("reasoning_content", delta.get("reasoning"))
            text += reasoning if isinstance(reasoning, str) else ""
        if not text or not self._over(text):
            return [event]
        final = {**self.head, "object": "chat.completion.chunk", "choices": [
            {"index": i, "delta": {}, "finish_reason": "length"} for i in sorted(self.indices)
        ]}
        return [sse_event(_dumps(final)), sse_event("[DONE]")]


class ResponsesStreamCap(_Cap):
    """Counts `response.reasoning_text.delta`; ends with `response.incomplete`."""

    def __init__(self, cap: int, counter: TokenCounter, model: str | None) -> None:
        super().__init__(cap, counter, model)
        self.response: JSON = {}
        self.sequence = 0

    def feed(self, event: SSEEvent) -> list[SSEEvent]:
        payload = loads_object(event.data) if event.data.startswith("{") else {}
        kind = payload.get("type")
        if kind in ("response.created", "response.in_progress"):
            self.response = as_dict(payload.get("response"))
        if kind != "response.reasoning_text.delta" or not self._over(str(payload.get("delta", ""))):
            # Only relayed events count, so the client sees an unbroken sequence.
            self.sequence = max(self.sequence, payload.get("sequence_number") or 0)
            return [event]
        response = {**self.response, "status": "incomplete",
                    "incomplete_details": {"reason": "max_output_tokens"}}
        ending = {"type": "response.incomplete", "sequence_number": self.sequence + 1,
                  "response": response}
        return [sse_event(_dumps(ending), "response.incomplete")]


EDITORS: dict[str, type[_Cap]] = {
    "anthropic-messages": AnthropicStreamCap,
    "openai-chat": ChatStreamCap,
    "openai-responses": ResponsesStreamCap,
}


def stream_cap_for(
    dialect: str, cap: int, counter: TokenCounter, model: str | None
) -> StreamEditor | None:
    """The hard-cap editor for a dialect, or None for a dialect without one."""
    editor = EDITORS.get(dialect)
    return editor(cap, counter, model) if editor is not None else None  # type: ignore[return-value]

"""The hard cap ends a streamed answer cleanly at the budget, in each dialect's own terms."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from tests.plugins.thinking.support import CHAT, MESSAGES, RESPONSES, plugin
from tokenopt._sse import SSEParser
from tokenopt.asgi import TokenOptMiddleware
from tokenopt.engine import Engine
from tokenopt.records import ExchangeRecord
from tokenopt.settings import Settings
from tokenopt.types import Message

WORDS = " ".join(["step"] * 40)  # about 40 tokens per delta


def sse(data: dict[str, Any] | str, event: str | None = None) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    return (f"event: {event}\n" if event else "").encode() + f"data: {text}\n\n".encode()


ANTHROPIC_STREAM = [
    sse({"type": "message_start", "message": {"id": "m1", "usage": {"input_tokens": 9,
                                                                   "output_tokens": 1}}},
        "message_start"),
    sse({"type": "content_block_start", "index": 0,
         "content_block": {"type": "thinking", "thinking": ""}}, "content_block_start"),
    *[sse({"type": "content_block_delta", "index": 0,
           "delta": {"type": "thinking_delta", "thinking": WORDS}}, "content_block_delta")] * 5,
    sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
    sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
         "usage": {"output_tokens": 400}}, "message_delta"),
    sse({"type": "message_stop"}, "message_stop"),
]
CHAT_STREAM = [
    *[sse({"id": "c1", "created": 1, "model": "qwen3", "object": "chat.completion.chunk",
           "choices": [{"index": 0, "delta": {"reasoning_content": WORDS}}]})] * 5,
    sse({"id": "c1", "choices": [{"index": 0, "delta": {"content": "ok"},
                                  "finish_reason": "stop"}]}),
    sse("[DONE]"),
]
RESPONSES_STREAM = [
    sse({"type": "response.created", "sequence_number": 0,
         "response": {"id": "r1", "status": "in_progress", "output": []}}, "response.created"),
    *[sse({"type": "response.reasoning_text.delta", "sequence_number": i, "delta": WORDS},
          "response.reasoning_text.delta") for i in range(1, 6)],
    sse({"type": "response.completed", "sequence_number": 6,
         "response": {"id": "r1", "status": "completed"}}, "response.completed"),
]
BODIES = {
    MESSAGES: {"model": "claude-sonnet-4-5", "max_tokens": 4000, "stream": True, "messages": [],
               "thinking": {"type": "enabled", "budget_tokens": 3000}},
    CHAT: {"model": "qwen3", "stream": True, "messages": [],
           "stream_options": {"include_usage": True}},
    RESPONSES: {"model": "gpt-oss-120b", "stream": True, "input": "hi"},
}


class StreamingApp:
    """An upstream relay that streams fixed events, then notes what `receive` says next."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.after: Message | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        for chunk in self.chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        with anyio.move_on_after(0.2):  # the client itself never leaves
            self.after = await receive()


async def exchange(path: str, chunks: list[bytes], cap: int | None) -> tuple[list[Any], ExchangeRecord,
                                                                              StreamingApp]:
    records: list[ExchangeRecord] = []

    class Sink:
        async def write(self, record: ExchangeRecord) -> None:
            records.append(record)

    rules = [{"max_thinking_tokens": cap}] if cap is not None else []
    engine = Engine(Settings.load(environ={}), plugins=[plugin(rules, hard_cap=True)], sinks=[Sink()])
    app = StreamingApp(chunks)
    sent: list[Message] = []
    incoming = [{"type": "http.request", "body": json.dumps(BODIES[path]).encode()}]

    async def receive() -> Message:
        if incoming:
            return incoming.pop(0)
        await anyio.sleep_forever()
        raise AssertionError

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": [], "query_string": b""}
    await TokenOptMiddleware(app, engine=engine)(scope, receive, send)
    await engine.drain()
    bodies = [m for m in sent if m["type"] == "http.response.body"]
    assert bodies[-1]["more_body"] is False
    assert not any(m.get("more_body") is False for m in bodies[:-1])  # one clean ending
    events = SSEParser().feed(b"".join(m["body"] for m in bodies))
    return events, records[0], app


@pytest.mark.anyio
async def test_anthropic_stream_stops_at_the_cap_with_max_tokens() -> None:
    events, record, app = await exchange(MESSAGES, ANTHROPIC_STREAM, cap=100)
    names = [e.event for e in events]
    assert names == ["message_start", "content_block_start", "content_block_delta",
                     "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert json.loads(events[-2].data)["delta"]["stop_reason"] == "max_tokens"
    assert app.after == {"type": "http.disconnect"}  # the relay is told to stop the upstream
    notes = record.plugin_notes["thinking"]
    assert notes["stream_cut"] is True and notes["hit_cap"] is True
    assert 0 < notes["stream_reasoning_tokens"] <= 100
    assert record.complete


@pytest.mark.anyio
async def test_chat_stream_stops_at_the_cap_with_finish_reason_length() -> None:
    events, record, app = await exchange(CHAT, CHAT_STREAM, cap=100)
    assert events[-1].data == "[DONE]"
    final = json.loads(events[-2].data)
    assert final["choices"] == [{"index": 0, "delta": {}, "finish_reason": "length"}]
    assert final["id"] == "c1" and len(events) == 4
    assert record.plugin_notes["thinking"]["stream_cut"] is True and record.complete


@pytest.mark.anyio
async def test_responses_stream_stops_at_the_cap_with_response_incomplete() -> None:
    events, record, _ = await exchange(RESPONSES, RESPONSES_STREAM, cap=100)
    last = json.loads(events[-1].data)
    assert events[-1].event == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert last["sequence_number"] == 3 and last["response"]["id"] == "r1"
    assert record.complete


@pytest.mark.anyio
@pytest.mark.parametrize("path", [MESSAGES, CHAT, RESPONSES])
async def test_a_stream_under_the_cap_is_relayed_byte_for_byte(path: str) -> None:
    chunks = {MESSAGES: ANTHROPIC_STREAM, CHAT: CHAT_STREAM, RESPONSES: RESPONSES_STREAM}[path]
    events, record, app = await exchange(path, chunks, cap=100_000)
    assert b"".join(e.raw for e in events) == b"".join(chunks) and app.after is None
    assert "stream_cut" not in record.plugin_notes["thinking"]


@pytest.mark.anyio
async def test_without_a_matching_rule_no_editor_is_installed() -> None:
    events, record, app = await exchange(CHAT, CHAT_STREAM, cap=None)
    assert b"".join(e.raw for e in events) == b"".join(CHAT_STREAM)
    assert record.plugin_notes == {} and app.after is None

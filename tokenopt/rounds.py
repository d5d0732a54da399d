"""Exchanges that take several upstream calls: a plugin's optional `detour` hook.

A plugin may answer part of a response itself and ask the upstream again (the
`tools` plugin answers its own search tool). The middleware knows nothing of
why: it calls the wrapped app once per round, passes every round's response
through the plugin's `Detour`, and sends the client one response, as if the
upstream had answered once.

`RoundRelay` is the `send` each round's app call gets. A JSON answer is held
until the detour has seen it whole (nothing was streamed, so nothing is
delayed); a stream is relayed event by event as the detour lets it through,
and only the end of a round that leads to another is held back.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from tokenopt._sse import SSEEvent, SSEParser
from tokenopt.dialects.base import JSON, RequestView
from tokenopt.types import Message, Send


class Detour(Protocol):
    """One exchange's rounds, as a plugin runs them (returned by `detour(view, ctx)`).

    Streams: `feed` takes each upstream event of the current round and returns
    the events the client gets; `stream_end` is called when a round's stream
    ends and says whether another round is wanted. JSON: `json_end` takes a
    round's whole body and returns the body the client gets, or None when
    another round is wanted. `next_request` gives the next round's body, or
    None when no further round can be made; then `closing` (streams) or
    `last_json` (JSON) end the response with what was held. `stream_error`
    closes a stream already under way when a later round fails. `view` is the
    request of the latest round made: the one whose answer the client gets.
    """

    notes: dict[str, Any]
    view: RequestView

    def feed(self, event: SSEEvent) -> list[SSEEvent]: ...
    def stream_end(self) -> bool: ...
    def json_end(self, body: JSON) -> JSON | None: ...
    async def next_request(self) -> JSON | None: ...
    def closing(self) -> list[SSEEvent]: ...
    def last_json(self) -> JSON: ...
    def stream_error(self, status: int, body: bytes) -> list[SSEEvent]: ...


class RoundRelay:
    """The `send` of one round: what the client gets of it, through the detour.

    The first round sends the response start; a later one (`first` False) only
    continues what the first started, a stream when `streaming`. `again` is True
    after the round when the detour wants
    another; `passthrough` when this round's answer was not one the detour
    reads (an error, an unknown type), which then ends the exchange as is.
    """

    def __init__(self, detour: Detour, send: Send, *, first: bool, streaming: bool) -> None:
        self.detour = detour
        self._send = send
        self.first = first
        self.streaming = streaming  # the client already has the start of a stream
        self.mode: str | None = None
        self.again = False
        self.passthrough = False
        self.parser = SSEParser()
        self.chunks: list[bytes] = []
        self.head: Message | None = None
        self.status = 0
        self.started = streaming  # whether the client has a response start (the status is out)

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            await self._start(message)
        elif message["type"] == "http.response.body":
            await self._body(message)
        else:
            await self._send(message)

    async def _start(self, message: Message) -> None:
        self.status = message["status"]
        headers = {k.lower(): v for k, v in message.get("headers", [])}
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        identity = headers.get(b"content-encoding", b"identity").lower() == b"identity"
        if self.status == 200 and identity and kind == b"text/event-stream":
            self.mode = "sse"
        elif self.status == 200 and identity and kind == b"application/json":
            self.mode = "json"
        if self.streaming:
            if self.mode != "sse":  # a later round failed after the stream began
                self.mode = "error"
            return
        if self.mode == "json":
            self.head = message  # held until the detour has read the body
            return
        self.started = True
        if self.mode == "sse":
            kept = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-length"]
            await self._send({**message, "headers": kept})
        else:
            self.passthrough = True
            if not self.first:  # the detour could not finish: the upstream's answer goes out
                self.detour.notes["failed"] = f"upstream status {self.status} in a later round"
            await self._send(message)

    async def _body(self, message: Message) -> None:
        chunk: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        if self.passthrough:
            await self._send(message)
            return
        if self.mode == "sse":
            events = [out for event in self.parser.feed(chunk) for out in self.detour.feed(event)]
            if not more:
                self.again = self.detour.stream_end()
                if not self.again:
                    events += self.detour.closing()
            await self._send({"type": "http.response.body",
                              "body": b"".join(e.raw for e in events),
                              "more_body": more or self.again})
            return
        self.chunks.append(chunk)
        if more:
            return
        body = b"".join(self.chunks)
        if self.mode == "error":
            events = self.detour.stream_error(self.status, body)
            await self._send({"type": "http.response.body",
                              "body": b"".join(e.raw for e in events), "more_body": False})
            return
        await self._json_end(body)

    async def _json_end(self, body: bytes) -> None:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        answer = self.detour.json_end(parsed) if isinstance(parsed, dict) else None
        if answer is None and isinstance(parsed, dict):
            self.again = True
            return
        await self.send_json(answer if answer is not None else body)

    async def send_json(self, answer: JSON | bytes) -> None:
        """Send the held start with `answer` as the whole body."""
        payload = answer if isinstance(answer, bytes) else json.dumps(
            answer, ensure_ascii=False, separators=(",", ":")).encode()
        head = self.head or {"type": "http.response.start", "status": 200,
                             "headers": [(b"content-type", b"application/json")]}
        headers = [(k, v) for k, v in head.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(payload)).encode()))
        self.started = True
        await self._send({**head, "headers": headers})
        await self._send({"type": "http.response.body", "body": payload, "more_body": False})

    async def give_up(self) -> None:
        """No further round: end the response with what the detour held."""
        if self.mode == "sse":
            events = self.detour.closing()
            await self._send({"type": "http.response.body",
                              "body": b"".join(e.raw for e in events), "more_body": False})
        elif self.mode == "json":
            await self.send_json(self.detour.last_json())

"""`tokenopt sim --journal FILE`: what the simulator received and what it billed, as JSON lines.

An end-to-end test runs the simulator as its own process, behind the sidecar
and a real agent; this file is how it sees the bytes that arrived (path, query
string, headers, body) and the usage billed for each answer. Credentials
(`authorization`, `x-api-key`, cookies) are left out.

Two kinds of line, written as they happen:

    {"kind": "request", "method": "POST", "path": "/v1/messages", "query": "beta=true",
     "headers": {...}, "body": {...}}
    {"kind": "bill", "route": "/v1/messages", "model": "...", "outcome": "scripted",
     "counts": {"input_tokens": ..., "output_tokens": ..., ...}}

A bill is written before its answer's first byte leaves, after the request it answers;
concurrent requests may interleave.
"""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path
from typing import Any

from tokenopt import jsonio
from tokenopt.exceptions import ConfigError
from tokenopt.sim.bills import Bill
from tokenopt.types import ASGIApp, Message, Receive, Scope, Send

SECRET_HEADERS = frozenset({"authorization", "x-api-key", "cookie", "proxy-authorization"})


class JournalMiddleware:
    """Wraps the simulator app; appends a line per request received and per bill."""

    def __init__(self, app: ASGIApp, path: str | Path, *, bills: collections.deque[Bill]) -> None:
        self.app = app
        self.bills = bills
        self._written = 0  # bills already in the file; the deque only grows in a session
        self.path = Path(path)
        try:  # fail at start-up, not at the first request
            self.path.touch()
        except OSError as exc:
            raise ConfigError(f"cannot write the journal '{path}': {exc.strerror}") from exc

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        logged = False

        async def tapped() -> Message:
            nonlocal logged
            message = await receive()
            if message["type"] == "http.request" and not logged:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    logged = True
                    self._request(scope, b"".join(chunks))
            return message

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._new_bills()  # billed before answering: the line is in before the answer
            await send(message)

        try:
            await self.app(scope, tapped, sending)
        finally:
            self._new_bills()

    def _request(self, scope: Scope, body: bytes) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            parsed: Any = jsonio.loads(body) if body else None
        except jsonio.JSONError:
            parsed = body.decode("utf-8", "replace")
        self._line({
            "kind": "request", "method": scope["method"], "path": scope["path"],
            "query": scope.get("query_string", b"").decode("latin-1"),
            "headers": {k: v for k, v in headers.items() if k not in SECRET_HEADERS},
            "body": parsed,
        })

    def _new_bills(self) -> None:
        fresh = list(self.bills)[self._written:]
        self._written += len(fresh)
        for bill in fresh:
            self._line({"kind": "bill", "route": bill.route, "model": bill.model,
                        "outcome": bill.outcome, "counts": dataclasses.asdict(bill.counts)})

    def _line(self, fields: dict[str, Any]) -> None:
        # Opened per line: a test's traffic is small, and a reader sees every line at once.
        with self.path.open("ab") as file:
            file.write(jsonio.dumps(fields) + b"\n")

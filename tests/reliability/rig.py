"""A sidecar with every built-in plugin on, in front of the simulator, in one process.

Shared by the bad-input tests and `benchmarks/fuzz.py`: `Rig.send` posts one body
through the sidecar and `problems` says what, if anything, broke a promise:

- never a 500 (nor any status tokenopt or the simulator did not mean to send);
- every error body is JSON in the client's dialect;
- one exchange record per LLM request, and the process keeps serving.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from tokenopt.engine import Engine
from tokenopt.proxy import create_app
from tokenopt.records import ExchangeRecord
from tokenopt.settings import Settings
from tokenopt.sim import create_sim_app

ROUTES = ("/v1/chat/completions", "/v1/responses", "/v1/messages")
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-fuzz-tenant",
           "x-api-key": "sk-fuzz-tenant", "anthropic-version": "2023-06-01"}
# Every plugin on, with the options that read the most of a request.
PLUGINS: dict[str, dict[str, Any]] = {
    "normalize": {"relocate_volatile": True},
    "tools": {"lazy": True, "lazy_threshold_tokens": 0},
    "thinking": {"rules": [{"max_thinking_tokens": 2048, "max_effort": "medium",
                            "mode": "clamp"}]},
}


class ListSink:
    """Keeps every exchange record the engine writes."""

    def __init__(self) -> None:
        self.records: list[ExchangeRecord] = []

    async def write(self, record: ExchangeRecord) -> None:
        self.records.append(record)


@dataclass
class Sent:
    route: str
    body: bytes
    status: int
    payload: bytes
    forwarded: list[bytes]  # what the simulator received for this request


def is_dialect_error(route: str, payload: bytes) -> bool:
    """The error shape the client's SDK reads: Anthropic's, or OpenAI's."""
    try:
        data = json.loads(payload)
    except ValueError:
        return False
    if not isinstance(data, dict) or not isinstance(data.get("error"), dict):
        return False
    error = data["error"]
    shaped = isinstance(error.get("message"), str) and isinstance(error.get("type"), str)
    return shaped and (data.get("type") == "error" if route.endswith("/messages") else True)


def problems(sent: Sent) -> list[str]:
    """The promises one exchange broke (empty when it behaved as documented)."""
    found: list[str] = []
    if sent.status == 0:
        found.append(f"exception: {sent.payload[:300]!r}")
    elif sent.status >= 500 or sent.status < 200:
        found.append(f"status {sent.status}")
    if sent.status >= 400 and not is_dialect_error(sent.route, sent.payload):
        found.append(f"error body not in the client's dialect: {sent.payload[:200]!r}")
    return found


class Rig:
    """The sidecar (plugins on, lenient like production) over the simulator."""

    def __init__(self, sidecar: httpx.AsyncClient, sim: httpx.AsyncClient,
                 engine: Engine, sink: ListSink, received: Any) -> None:
        self.sidecar = sidecar
        self.sim = sim
        self.engine = engine
        self.sink = sink
        self.received = received

    async def send(self, route: str, body: bytes, headers: dict[str, str] | None = None) -> Sent:
        self.received.clear()  # the simulator keeps 1000: count from empty
        try:
            response = await self.sidecar.post(route, content=body,
                                               headers={**HEADERS, **(headers or {})})
        except Exception as exc:  # noqa: BLE001 - any app exception is a 500 for a real client
            return Sent(route, body, 0, repr(exc).encode(), [])
        forwarded = [raw for _, _, _, raw in self.received]
        return Sent(route, body, response.status_code, response.content, forwarded)

    async def direct(self, route: str, body: bytes) -> Sent:
        """The simulator answering the body itself, as the provider would."""
        try:
            response = await self.sim.post(route, content=body, headers=HEADERS)
        except Exception as exc:  # noqa: BLE001 - the fuzz run records it, then goes on
            return Sent(route, body, 0, repr(exc).encode(), [])
        return Sent(route, body, response.status_code, response.content, [])


@asynccontextmanager
async def running_rig(**overrides: Any) -> AsyncIterator[Rig]:
    sim_app = create_sim_app()
    settings = Settings.load(environ={}, upstream={"url": "http://sim"},
                             ledger={"enabled": False}, plugins=PLUGINS, **overrides)
    sink = ListSink()
    engine = Engine.from_settings(settings, sinks=[sink])
    timeout = httpx.Timeout(60.0)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(sim_app), base_url="http://sim",
                          timeout=timeout) as upstream,
        httpx.AsyncClient(transport=httpx.ASGITransport(create_app(settings, client=upstream,
                                                                   engine=engine)),
                          base_url="http://sidecar", timeout=timeout) as sidecar,
    ):
        try:
            yield Rig(sidecar, upstream, engine, sink, sim_app.state.received)
        finally:
            await engine.aclose()

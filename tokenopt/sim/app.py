"""The simulator's HTTP face: routes, the received-request log, and injected faults.

Faults are asked for per request with headers, so one running simulator can
serve a proxy test that needs a slow, failing or vanishing upstream:

    x-sim-delay-ms: N            wait N ms before answering
    x-sim-status: 429|500|...    answer that status with a provider-shaped error
    x-sim-retry-after: S         the `retry-after` sent with that status (429 gets 1 unasked)
    x-sim-fail: reset-before     drop the connection without answering
    x-sim-fail: reset-mid-stream send a few SSE events, then drop the connection
    x-sim-fail: reset-mid-body   send the start and half the first body chunk, then drop it
    x-sim-fail: endless-stream   after the first text delta, repeat it until the client leaves
    x-sim-fail: linger           send every event, then hold the stream open until the client leaves
    x-sim-stream-delay-ms: N     wait N ms between SSE events (a trickle; a stall when long)
    x-sim-reply-bytes: N         the reply's text is N bytes (an answer far larger than usual)
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import socket
import struct
import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Protocol

import anyio
import anyio.lowlevel
import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tokenopt.identity import tenant_of
from tokenopt.sim.anthropic_messages import MessagesRoute
from tokenopt.sim.bills import Bill
from tokenopt.sim.cache import CacheModel, ProviderCache
from tokenopt.sim.openai_chat import ChatRoute
from tokenopt.sim.openai_responses import ResponsesRoute
from tokenopt.sim.prompt import Prompt
from tokenopt.sim.reply import Ask, Reply, plan_reply, seed_of
from tokenopt.sim.script import RECORDED_HEADER, Script, scripted_reply
from tokenopt.sim.scripted import TurnScript
from tokenopt.sim.wire import JSON, Counts, Event, Invalid, frame
from tokenopt.tokens import TokenCounter
from tokenopt.types import ASGIApp, Message, Receive, Scope, Send

CONNECTION_KEY = "tokenopt.sim.connection"
RESET_MID_STREAM_AFTER = 3  # events sent before a `reset-mid-stream` drops the connection
ENDLESS_MIN_DELAY_S = 0.01  # an endless stream never spins: it trickles at least this slowly
MODELS = ("gpt-5", "gpt-4.1-mini", "gpt-4o", "claude-sonnet-4-6", "claude-haiku-4-5")


class WireRoute(Protocol):
    """One provider API: how it validates, counts, answers and streams."""

    path: ClassVar[str]

    def error(self, status: int, message: str) -> JSON: ...
    def invalid(self, exc: Invalid) -> JSON: ...
    def ask(self, body: JSON) -> Ask: ...
    def prompt(self, body: JSON, counter: TokenCounter) -> Prompt: ...
    def respond(self, body: JSON, ask: Ask, reply: Reply, counts: Counts) -> JSON: ...
    def stream(self, body: JSON, ask: Ask, reply: Reply, counts: Counts) -> list[Event]: ...


WIRE_ROUTES: tuple[WireRoute, ...] = (ChatRoute(), ResponsesRoute(), MessagesRoute())


class SimulatedReset(ConnectionResetError):
    """Raised instead of dropping the connection when no socket is at hand (ASGITransport)."""


class Connection:
    """The client connection behind one request, so a fault can cut it."""

    def __init__(self, receive: Receive) -> None:
        # uvicorn's `receive` is a method of its request cycle, which holds the transport.
        self.transport: asyncio.Transport | None = getattr(
            getattr(receive, "__self__", None), "transport", None
        )

    async def reset(self) -> None:
        """Abort the TCP connection with an RST, as a crashed upstream would."""
        if self.transport is None:
            raise SimulatedReset("x-sim-fail: connection reset by the simulator")
        sock = self.transport.get_extra_info("socket")
        if sock is not None:  # linger 0: close() sends RST instead of FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()
        await anyio.lowlevel.checkpoint()  # let uvicorn see the loss before the app returns


def route_for(path: str) -> WireRoute:
    """The provider a path belongs to, for shaping errors (OpenAI unless Anthropic's)."""
    return WIRE_ROUTES[2] if path.startswith(("/v1/messages", "/v1/complete")) else WIRE_ROUTES[0]


class SimMiddleware:
    """Logs every request's exact bytes, then applies the faults its headers ask for."""

    def __init__(self, app: ASGIApp, *, received: collections.deque[Any]) -> None:
        self.app = app
        self.received = received

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        connection = Connection(receive)
        body, first = await _read_body(receive)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        self.received.append((scope["method"], scope["path"], headers, body))
        asked = {k.lower(): v for k, v in headers}
        delay = _int(asked.get("x-sim-delay-ms"))
        if delay:
            with anyio.move_on_after(delay / 1000):
                await _disconnected(receive)
                return  # the client stopped waiting: nothing to answer (and no task left behind)
        if asked.get("x-sim-fail") == "reset-before":
            await connection.reset()
            return
        status = _int(asked.get("x-sim-status"))
        if status:
            await _fault_response(scope["path"], status, asked)(scope, receive, send)
            return
        scope = {**scope, CONNECTION_KEY: connection}
        if asked.get("x-sim-fail") == "reset-mid-body":
            send = _cut_mid_body(send, connection)
        await self.app(scope, _replay(first, receive), send)


def _fault_response(path: str, status: int, asked: dict[str, str]) -> Response:
    message = f"simulated upstream error (x-sim-status: {status})"
    retry = asked.get("x-sim-retry-after", "1" if status == 429 else None)
    headers = {"retry-after": retry} if retry is not None else None
    return JSONResponse(route_for(path).error(status, message), status_code=status, headers=headers)


def _cut_mid_body(send: Send, connection: Connection) -> Send:
    """A `send` that lets the start and half the first body chunk out, then resets."""
    cut = False

    async def cutting(message: Message) -> None:
        nonlocal cut
        if cut:
            return  # the connection is gone: what the app still sends goes nowhere
        if message["type"] != "http.response.body":
            await send(message)
            return
        body: bytes = message.get("body", b"")
        await send({"type": "http.response.body", "body": body[:len(body) // 2],
                    "more_body": True})
        cut = True
        await connection.reset()

    return cutting


async def _read_body(receive: Receive) -> tuple[bytes, Message]:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            body = b"".join(chunks)
            return body, {"type": "http.request", "body": body, "more_body": False}


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _replay(first: Message, receive: Receive) -> Receive:
    """Hand the app the body already read, then the real messages (http.disconnect)."""
    pending = [first]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


def _int(value: str | None) -> int:
    try:
        return int(value) if value else 0
    except ValueError:
        return 0


class EventStream:
    """An SSE response that notices a client leaving mid-stream and counts it.

    Starlette's StreamingResponse hides the disconnect; proxy tests need to know
    the upstream saw the cancel, so this watches `receive` itself.
    """

    def __init__(self, events: Iterable[Event], *, delay: float, reset_after: int | None,
                 connection: Connection | None, on_cancel: Callable[[], None],
                 linger: bool = False) -> None:
        self.events = events
        self.delay = delay
        self.linger = linger
        self.reset_after = reset_after
        self.connection = connection
        self.on_cancel = on_cancel

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
        ]})
        outcome: str | None = None  # stays None when the watcher cancelled the sending
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(watch)
            try:
                outcome = await self._send_events(send)
            except OSError:  # a server that reports the disconnect by failing send()
                outcome = None
            group.cancel_scope.cancel()
        if outcome == "reset" and self.connection is not None:
            await self.connection.reset()  # outside the task group: may raise SimulatedReset
        elif outcome is None:
            self.on_cancel()
        else:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _send_events(self, send: Send) -> str:
        for index, event in enumerate(self.events):
            if index and self.delay:
                await anyio.sleep(self.delay)
            if index == self.reset_after:
                return "reset"
            await send({"type": "http.response.body", "body": frame(event), "more_body": True})
        if self.linger:  # the answer is whole; the body's end never comes
            await anyio.sleep_forever()
        return "done"


def _endless(events: list[Event]) -> Iterable[Event]:
    """The stream's opening events, then its first text delta forever: a model that never stops."""
    at = next((i for i, event in enumerate(events) if _is_text_delta(event)), len(events) - 1)
    return itertools.chain(events[:at + 1], itertools.repeat(events[at]))


def _is_text_delta(event: Event) -> bool:
    _, payload = event
    if not isinstance(payload, dict):
        return False
    kind = payload.get("type")
    if isinstance(kind, str):  # Anthropic's content_block_delta, Responses' output_text.delta
        return kind in ("content_block_delta", "response.output_text.delta")
    choices = payload.get("choices") or [{}]  # Chat: a chunk whose delta carries text
    return bool(isinstance(choices[0], dict) and (choices[0].get("delta") or {}).get("content"))


def create_sim_app(*, counter: TokenCounter | None = None, reply_tokens: int = 24,
                   cache: CacheModel | None = None, max_bills: int = 100_000,
                   clock: Callable[[], float] = time.time,
                   turns: TurnScript | None = None) -> Starlette:
    """The provider simulator: OpenAI Chat and Responses, Anthropic Messages.

    Args:
        counter: counts prompt and reply tokens (default: a fresh `TokenCounter`).
        reply_tokens: length of every reply, before any `max_tokens`-style cap.
        cache: the prompt-cache rules (default: each provider's, `ProviderCache`;
            `NoCache()` turns caching off).
        max_bills: how many bills `app.state.bills` keeps.
        clock: seconds for cache expiry; replay sets it from each line's `ts`.
        turns: a scripted session (`tokenopt sim --script`): what the model says per turn.

    `app.state.received` holds `(method, path, headers, raw_body)` of the last
    1000 requests; `app.state.cancelled` counts streams the client abandoned;
    `app.state.bills` the usage billed per answer (the latest `max_bills`).
    `app.state.script` takes recorded responses: a request naming one in the
    `x-sim-recorded` header is answered by `scripted_reply`.
    """
    counter = counter or TokenCounter()
    script = Script()
    bills: collections.deque[Bill] = collections.deque(maxlen=max_bills)
    cache_model: CacheModel = cache if cache is not None else ProviderCache(counter)

    def on_cancel() -> None:
        app.state.cancelled += 1

    def endpoint(wire: WireRoute) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response | EventStream:
            body = _strict_json(await request.body())
            if not isinstance(body, dict):
                return JSONResponse(wire.error(400, _malformed(wire.path)), status_code=400)
            try:
                ask = wire.ask(body)
                if (ask.cap is not None and ask.cap < 0) or ask.reasoning_tokens < 0:
                    # Else the usage billed would be negative, which no provider reports.
                    raise Invalid("max_tokens", "Invalid value: integer below minimum value 0")
                prompt = wire.prompt(body, counter)
            except Invalid as exc:
                return JSONResponse(wire.invalid(exc), status_code=400)
            except _UNREADABLE as exc:
                # A nested field of a type the checks let through: a provider's schema refuses it.
                message = f"Invalid request body ({type(exc).__name__}: {str(exc)[:200]})"
                return JSONResponse(wire.error(400, message), status_code=400)
            scope = tenant_of(request.headers)
            hit = cache_model.lookup(prompt, scope=scope, now=clock())
            recorded = script.get(request.headers.get(RECORDED_HEADER))
            outcome: str
            if recorded is not None:
                reply, outcome = scripted_reply(wire.path, body, recorded, ask, counter)
            elif turns is not None:
                reply, outcome = turns.reply(wire.path, body, ask, counter, reply_tokens)
            else:
                reply, outcome = plan_reply(ask, seed_of(body), counter, reply_tokens), "generated"
            size = _int(request.headers.get("x-sim-reply-bytes"))
            if size > 0:  # billed as planned: only the bytes on the wire grow
                reply = dataclasses.replace(reply, text="x" * size)
            # A server-side tool search loads definitions mid-call: input beyond the prompt.
            counts = Counts(prompt.tokens + reply.search_input_tokens, reply.output_tokens,
                            reply.reasoning_tokens,
                            hit.cached_tokens, hit.cache_write_tokens, hit.cache_write_1h_tokens)
            bills.append(Bill(wire.path, ask.model, scope, counts, outcome,
                              counter.is_estimate(ask.model)))
            if not ask.stream:
                return JSONResponse(wire.respond(body, ask, reply, counts))
            headers = request.headers
            fail = headers.get("x-sim-fail")
            events: Iterable[Event] = wire.stream(body, ask, reply, counts)
            delay = _int(headers.get("x-sim-stream-delay-ms")) / 1000
            if fail == "endless-stream":
                events, delay = _endless(list(events)), max(delay, ENDLESS_MIN_DELAY_S)
            return EventStream(
                events, delay=delay,
                reset_after=RESET_MID_STREAM_AFTER if fail == "reset-mid-stream" else None,
                connection=request.scope.get(CONNECTION_KEY), on_cancel=on_cancel,
                linger=fail == "linger",
            )

        return handle

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        message = f"Unknown request URL: {request.method} {request.url.path}."
        return JSONResponse(route_for(request.url.path).error(status, message), status_code=status)

    routes = [Route(wire.path, endpoint(wire), methods=["POST"]) for wire in WIRE_ROUTES]
    routes.append(Route("/v1/models", _models, methods=["GET"]))
    received: collections.deque[Any] = collections.deque(maxlen=1000)
    app = Starlette(
        routes=routes,
        middleware=[Middleware(SimMiddleware, received=received)],
        exception_handlers={404: not_found, 405: not_found},
    )
    app.state.received = received
    app.state.cancelled = 0
    app.state.counter = counter
    app.state.cache = cache_model
    app.state.script = script
    app.state.bills = bills
    return app


_MALFORMED = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload.)"
)
_UNREADABLE = (TypeError, AttributeError, KeyError, IndexError, ValueError, RecursionError)
_decode_strict = msgspec.json.Decoder().decode


def _malformed(path: str) -> str:
    return "The request body is not valid JSON." if path == "/v1/messages" else _MALFORMED


def _strict_json(raw: bytes) -> Any:
    """The body as a provider's parser reads it, or None when it is not strict JSON.

    Stricter than `tokenopt.jsonio.loads` on purpose: invalid UTF-8, lone surrogates,
    NaN and nesting too deep are refused as providers refuse them (400), never a 500.
    """
    try:
        return _decode_strict(raw)
    except (msgspec.MsgspecError, RecursionError):
        return None


async def _models(request: Request) -> Response:
    """OpenAI's model list, or Anthropic's when the client speaks Anthropic."""
    if "anthropic-version" in request.headers:
        data = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
                for m in MODELS if m.startswith("claude")]
        return JSONResponse({"data": data, "has_more": False, "first_id": data[0]["id"],
                             "last_id": data[-1]["id"]})
    listed: list[dict[str, Any]] = [
        {"id": m, "object": "model", "created": 1735689600, "owned_by": "tokenopt-sim"}
        for m in MODELS]
    return JSONResponse({"object": "list", "data": listed})

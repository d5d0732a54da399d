"""`TokenOptMiddleware`: the pure ASGI middleware both forms are built on.

It reads an LLM request's body (capped), runs the pipeline over the dialect's
view, hands the (possibly rewritten) body to the wrapped app, and watches the
response go by to read usage. Everything else passes through untouched.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import anyio

from tokenopt import jsonio
from tokenopt._sse import SSEEvent, SSEParser
from tokenopt.dialects.base import JSON, Dialect, RequestView, StreamEditor, UsageTap
from tokenopt.engine import Engine
from tokenopt.exceptions import DialectError, PolicyRejected, UpstreamError, UpstreamTimeout
from tokenopt.identity import tenant_of
from tokenopt.pipeline import PluginContext, ResponseView
from tokenopt.records import ExchangeRecord
from tokenopt.rounds import Detour, RoundRelay
from tokenopt.settings import Settings
from tokenopt.stream_assembly import Assembler, assembler_for
from tokenopt.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("tokenopt.asgi")
OWN_HEADER_PREFIX = b"x-tokenopt-"
# On an error tokenopt's forwarder answered itself (no upstream answer): the cause, for the record.
ERROR_HEADER = b"x-tokenopt-error"
# A JSON response larger than this is relayed but not parsed for usage.
MAX_JSON_TAP_BYTES = 16 * 1024 * 1024


class TokenOptMiddleware:
    """Rewrites the LLM requests of the app it wraps; passes everything else through.

    Args:
        app: the ASGI app that serves or proxies LLM requests.
        engine: a ready engine; built from `settings` (or the default settings) if absent.
        settings: settings to build the engine from when no engine is given.
        metrics_path: serve Prometheus metrics at this path (e.g. "/metrics"); off when None.
    """

    def __init__(
        self, app: ASGIApp, *, engine: Engine | None = None, settings: Settings | None = None,
        metrics_path: str | None = None,
    ) -> None:
        self.app = app
        self.engine = engine if engine is not None else Engine.from_settings(
            settings if settings is not None else Settings.load()
        )
        self.metrics_path = metrics_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._warming_on_startup(receive),
                           self._closing_on_shutdown(send))
            return
        if self.metrics_path is not None and scope["type"] == "http" \
                and scope["path"] == self.metrics_path and scope["method"] == "GET":
            await self.engine.metrics.asgi(scope, receive, send)
            return
        dialect = self.engine.dialect_for(scope)
        if dialect is None:
            await self.app(scope, receive, send)
            return
        await Exchange(self.engine, dialect, scope).run(self.app, receive, send)

    def _warming_on_startup(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.engine.warm()
            return message

        return wrapped

    def _closing_on_shutdown(self, send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await self.engine.aclose()
            await send(message)

        return wrapped


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


class Exchange:
    """The state of one LLM request as it passes through: body, view, record, response tap."""

    def __init__(self, engine: Engine, dialect: Dialect, scope: Scope) -> None:
        self.engine = engine
        self.dialect = dialect
        self.scope = scope
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        self.tenant = tenant_of(self.headers)
        self.record = ExchangeRecord(
            ts=time.time(), tenant=self.tenant, route=dialect.path, dialect=dialect.name,
            model=None, conversation=None, stream=False,
        )
        self.view: RequestView | None = None
        self.last_round: RequestView | None = None  # a detour's latest round, when it made one
        self.client_body: JSON | None = None
        self.client_view: RequestView | None = None
        self.editors: list[tuple[str, StreamEditor]] = []

    async def run(self, app: ASGIApp, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            body = await self._read_body(receive)
        except ClientGone:
            return
        except BodyTooLarge:
            limit = self.engine.max_body_bytes
            await self._answer(send, 413, f"request body exceeds the limit of {limit} bytes")
            self.record.error = "body_too_large"
            self.engine.spawn(self.engine.record(self.record))
            return
        ready = time.perf_counter()
        try:
            forwarded, strip_usage = await self._prepare(body)
        except PolicyRejected as exc:
            await self._answer(send, exc.status, str(exc))
            self.record.error = f"policy:{exc.rule or 'rejected'}"
            self.engine.spawn(self.engine.record(self.record))
            return
        self.record.added_latency_ms = (time.perf_counter() - ready) * 1000
        self.record.body_bytes_before, self.record.body_bytes_after = len(body), len(forwarded)
        tap = ResponseTap(self.dialect, send, strip_usage=strip_usage, editors=self.editors,
                          assemble=self.engine.recorder is not None)
        detour = self._detour()
        try:
            if detour is None:
                replayed = _replay(forwarded, receive, tap.cut if self.editors else None)
                await app(self._forward_scope(len(forwarded)), replayed, tap.send)
            else:
                await self._rounds(app, receive, tap, forwarded, detour, strip_usage)
        except BaseException as exc:
            self.record.error = type(exc).__name__
            raise
        finally:
            self.record.duration_ms = (time.perf_counter() - started) * 1000
            self.engine.spawn(self._finish(tap))

    async def _read_body(self, receive: Receive) -> bytes:
        limit = self.engine.max_body_bytes
        declared = self.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _prepare(self, body: bytes) -> tuple[bytes, bool]:
        """The bytes to forward, and whether tokenopt (not the client) asked for stream usage."""
        try:
            parsed = jsonio.loads_request(body)
            if not isinstance(parsed, dict):
                raise DialectError("the body is not a JSON object")
            self.view = view = self.dialect.parse(parsed, tenant=self.tenant, headers=self.headers)
            self.client_body, self.client_view = parsed, view
        except (ValueError, DialectError) as exc:
            # Not ours to judge: the upstream answers malformed requests in its own words.
            logger.debug("forwarding an unreadable %s body as is: %s", self.dialect.name, exc)
            self.record.fail_open = "unreadable_body"
            return body, False
        self.record.model, self.record.conversation = view.model, view.conversation
        self.record.stream = view.stream
        limit = self.engine.settings.limits.max_tools
        if len(view.tools) > limit:  # refused before any plugin spends time on them
            raise PolicyRejected(f"the request has {len(view.tools)} tools; tokenopt's limit is "
                                 f"{limit} ([limits] max_tools)", status=400, rule="max_tools")
        rewritten = await self._transform(view)
        current = rewritten if rewritten is not None else parsed
        strip_usage = self.dialect.wants_usage_injection(current)
        if strip_usage:
            if rewritten is None and "stream_options" not in parsed:
                return _splice_stream_usage(body), True
            rewritten = _with_stream_usage(current)
        if rewritten is None:
            return body, strip_usage
        return _dumps(rewritten), strip_usage

    async def _transform(self, view: RequestView) -> JSON | None:
        pipeline = self.engine.pipeline
        if not pipeline:
            return None
        result = await pipeline.run(view, self.engine.context_for(self.tenant))
        self.record.plugin_notes = result.notes
        if result.failed is not None:
            self.record.fail_open = f"plugin:{result.failed}"
            return None
        try:
            rendered = self.dialect.render(result.view)
        except Exception as exc:
            if pipeline.strict:
                raise
            logger.warning("writing back the %s view failed, forwarding unchanged: %r",
                           self.dialect.name, exc)
            self.record.fail_open = "render"
            return None
        self.view = result.view
        self.record.changed = rendered is not None
        if result.view.stream:
            self.editors = self._stream_editors(result.view)
        return rendered

    def _stream_editors(self, view: RequestView) -> list[tuple[str, StreamEditor]]:
        """Editors from plugins with the optional `stream_editor(view, ctx)` hook."""
        editors: list[tuple[str, StreamEditor]] = []
        context = self.engine.context_for(self.tenant)
        for plugin in self.engine.pipeline.plugins:
            hook = getattr(plugin, "stream_editor", None)
            editor = hook(view, context(plugin.name)) if hook is not None else None
            if editor is not None:
                editors.append((plugin.name, editor))
        return editors

    def _detour(self) -> tuple[str, Detour] | None:
        """The first plugin `detour(view, ctx)` hook that takes this exchange over several rounds."""
        if self.view is None or self.record.fail_open is not None:
            return None
        context = self.engine.context_for(self.tenant)
        for plugin in self.engine.pipeline.plugins:
            hook = getattr(plugin, "detour", None)
            found = hook(self.view, context(plugin.name)) if hook is not None else None
            if found is not None:
                return plugin.name, found
        return None

    async def _rounds(self, app: ASGIApp, receive: Receive, tap: ResponseTap, body: bytes,
                      named: tuple[str, Detour], strip_usage: bool) -> None:
        """Call the app once per round until the detour has the answer the client gets."""
        name, detour = named
        first, streaming, number = True, False, 1
        try:
            while True:
                relay = RoundRelay(detour, tap.send, first=first, streaming=streaming)
                replayed = _replay(body, receive, tap.cut if self.editors else None)
                try:
                    await app(self._forward_scope(len(body)), replayed, relay.send)
                except UpstreamError as exc:
                    await self._round_failed(tap, relay, detour, number, exc)
                    return
                if not relay.again or tap.cut.is_set():
                    return
                following = await detour.next_request()
                if following is None:
                    await relay.give_up()
                    return
                self.last_round = detour.view  # the request the client's answer is billed for
                body = _dumps(_with_stream_usage(following) if strip_usage else following)
                first, streaming, number = False, streaming or relay.mode == "sse", number + 1
        finally:
            if detour.notes:
                notes = self.record.plugin_notes
                notes[name] = {**notes.get(name, {}), **detour.notes}

    async def _round_failed(self, tap: ResponseTap, relay: RoundRelay, detour: Detour,
                            number: int, exc: UpstreamError) -> None:
        """A round's answer broke after its status (tokenopt's forwarder raised).

        Counted as a failed detour from the second round on. When the client has nothing
        yet (a JSON round is held whole), it gets a clean 502/504; else, as for a plain
        stream, the error goes up and the connection is aborted.
        """
        if number > 1:
            detour.notes["failed"] = f"{type(exc).__name__} in round {number}"
        if relay.started:
            raise exc
        self.record.error = type(exc).__name__
        status = 504 if isinstance(exc, UpstreamTimeout) else 502
        await self._answer(tap.send, status, str(exc))

    def _forward_scope(self, length: int) -> Scope:
        headers = [
            (k, v) for k, v in self.scope["headers"]
            if k.lower() not in (b"content-length", b"accept-encoding", b"transfer-encoding")
            and not k.lower().startswith(OWN_HEADER_PREFIX)
        ]
        headers += [(b"content-length", str(length).encode()), (b"accept-encoding", b"identity")]
        return {**self.scope, "headers": headers}

    async def _answer(self, send: Send, status: int, message: str) -> None:
        payload = json.dumps(self.dialect.error_body(status, message)).encode()
        self.record.status = status
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
        ]})
        await send({"type": "http.response.body", "body": payload})

    async def _finish(self, tap: ResponseTap) -> None:
        usage, complete = tap.result()
        record = self.record
        record.status, record.usage, record.complete = tap.status, usage, complete
        record.error = record.error or tap.error
        if self.client_view is not None:
            count = self.engine.counter.count
            record.tokens_before = segment_tokens(self.client_view, count)
            sent = self.last_round or self.view or self.client_view
            record.tokens_after = segment_tokens(sent, count,
                                                 same_as=(self.client_view, record.tokens_before))
        for name, editor in self.editors:
            if editor.notes:
                record.plugin_notes[name] = {**record.plugin_notes.get(name, {}), **editor.notes}
        if self.view is not None and self.engine.pipeline.responders:
            response = ResponseView(self.view, tap.status, usage, complete)
            contexts: dict[str, PluginContext] = {}
            await self.engine.pipeline.respond(response, self._noting_context(contexts))
            for name, ctx in contexts.items():
                if ctx.notes:
                    record.plugin_notes[name] = ctx.notes
        await self.engine.record(record)
        recorder = self.engine.recorder
        if recorder is not None and self.client_body is not None:
            answer = (tap.json_body() or tap.assembled()) if tap.status == 200 else None
            await recorder.write(ts=record.ts, path=self.dialect.path, headers=self.headers,
                                 body=self.client_body, response=answer)

    def _noting_context(self, contexts: dict[str, PluginContext]) -> Any:
        """Contexts for `on_response` that start from what the plugin noted so far.

        A plugin thus sees its own request-time notes (what it enforced) and what
        it adds lands in the same record entry, without keeping per-request state.
        """
        factory = self.engine.context_for(self.tenant)

        def context(plugin: str) -> PluginContext:
            ctx = contexts[plugin] = factory(plugin)
            ctx.notes = dict(self.record.plugin_notes.get(plugin, {}))
            return ctx

        return context


class ResponseTap:
    """Relays the response as it comes and reads usage from it on the side.

    Chunks go to the client at once. Without stream editors, the only change
    ever made is dropping the usage event tokenopt itself asked for; then events
    are relayed whole. Stream editors (see `StreamEditor`) may replace events;
    when one ends the stream, the tap sends the final body message, sets `cut`
    and drops whatever the app sends afterwards.
    """

    def __init__(
        self, dialect: Dialect, send: Send, *, strip_usage: bool,
        editors: list[tuple[str, StreamEditor]] | None = None, assemble: bool = False,
    ) -> None:
        self.dialect = dialect
        self.assemble = assemble
        self.assembler: Assembler | None = None
        self._send = send
        self.strip_usage = strip_usage
        self.editors = [editor for _, editor in editors or []]
        self.cut = anyio.Event()
        self.status = 0
        self.mode: str | None = None
        self.events: UsageTap | None = None
        self.parser = SSEParser()
        self.json_chunks: list[bytes] = []
        self.json_size = 0
        self.ended = False
        self.error: str | None = None  # the cause of an error tokenopt's forwarder answered

    async def send(self, message: Message) -> None:
        if self.cut.is_set():
            return  # an editor already ended the response
        if message["type"] == "http.response.start":
            message = self._start(message)
        elif message["type"] == "http.response.body":
            message = self._body(message)
        await self._send(message)

    def _start(self, message: Message) -> Message:
        self.status = message["status"]
        headers = {k.lower(): v for k, v in message.get("headers", [])}
        cause = headers.get(ERROR_HEADER)
        self.error = cause.decode("latin-1") if cause is not None else None
        encoding = headers.get(b"content-encoding", b"identity").lower()
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if encoding != b"identity":
            return message  # compressed by the app: relayed, usage unknown
        if kind == b"text/event-stream":
            self.mode = "sse"
            self.events = self.dialect.usage_tap(strip_usage_event=self.strip_usage)
            if self.assemble:
                self.assembler = assembler_for(self.dialect.path)
            if self.strip_usage or self.editors:  # the body will differ from what was announced
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-length"]
                return {**message, "headers": kept}
        elif kind == b"application/json":
            self.mode = "json"
        return message

    def _body(self, message: Message) -> Message:
        chunk: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        self.ended = not more
        if self.mode == "sse" and self.events is not None:
            events = self.parser.feed(chunk)
            if self.assembler is not None:
                for event in events:
                    self.assembler.feed(event)
            if self.editors:
                return self._edited(events, more)
            if not self.strip_usage:
                for event in events:
                    self.events.feed(event)
                return message
            kept = b"".join(seen.raw for event in events if (seen := self.events.feed(event)))
            return {**message, "body": kept + (b"" if more else self.parser.flush())}
        if self.mode == "json":
            self.json_size += len(chunk)
            if self.json_size <= MAX_JSON_TAP_BYTES:
                self.json_chunks.append(chunk)
        return message

    def _edited(self, events: list[SSEEvent], more: bool) -> Message:
        for editor in self.editors:
            events = [out for event in events for out in _edit(editor, event)]
        assert self.events is not None
        kept = b"".join(seen.raw for event in events if (seen := self.events.feed(event)))
        if any(editor.ended for editor in self.editors):
            self.cut.set()
            self.ended = True
            return {"type": "http.response.body", "body": kept, "more_body": False}
        return {"type": "http.response.body", "body": kept + (b"" if more else self.parser.flush()),
                "more_body": more}

    def result(self) -> tuple[Any, bool]:
        """The usage read (or None) and whether the response ended normally."""
        if self.mode == "sse" and self.events is not None:
            # The terminal event makes a stream whole: a client that hangs up after reading
            # it (Codex does) has had the full answer, though the final empty chunk is unsent.
            return self.events.usage, self.events.complete
        if self.mode == "json" and self.ended:
            body = self.json_body()
            return (self.dialect.usage_from_json(body) if body is not None else None), True
        return None, self.ended

    def assembled(self) -> JSON | None:
        """A streamed answer rebuilt as the JSON body it stands for (when assembling)."""
        if self.assembler is None or not self.ended:
            return None
        return self.assembler.result()

    def json_body(self) -> JSON | None:
        """The JSON object the response carried, when it was one and not too large to keep."""
        if self.mode != "json" or not self.ended or self.json_size > MAX_JSON_TAP_BYTES:
            return None
        try:  # jsonio: an answer nested too deep is a JSONError, not a RecursionError
            body = jsonio.loads(b"".join(self.json_chunks))
        except ValueError:
            return None
        return body if isinstance(body, dict) else None


def _edit(editor: StreamEditor, event: SSEEvent) -> list[SSEEvent]:
    # An editor that has ended the stream sees nothing more.
    return [] if editor.ended else editor.feed(event)


def segment_tokens(view: RequestView, count: Any,
                   same_as: tuple[RequestView, dict[str, int]] | None = None) -> dict[str, int]:
    """Tokens of a request by segment, the way providers lay out the prompt.

    `same_as` gives another view and its counts: a segment that is the very
    same object there is not counted again.
    """
    model = view.model
    counters: dict[str, Callable[[], int]] = {
        # One text for the whole tool list: it rarely changes, so the count is a memo hit.
        "tools": lambda: count(jsonio.dumps([t.raw for t in view.tools]).decode(), model)
        if view.tools else 0,
        "system": lambda: sum(count(part.text, model) for part in view.system),
        "messages": lambda: sum(count(jsonio.dumps(m).decode(), model) for m in view.messages),
    }
    known_view, known = same_as if same_as is not None else (None, {})
    return {name: known[name] if known_view is not None and name in known
            and getattr(view, name) is getattr(known_view, name) else counter()
            for name, counter in counters.items()}


def _replay(body: bytes, receive: Receive, cut: anyio.Event | None = None) -> Receive:
    """Hand the app the body as one message; later calls reach the real `receive`.

    With `cut`, a later call also answers `http.disconnect` once `cut` is set, so
    an app relaying a stream tokenopt ended stops (and closes its upstream).
    """
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        if cut is None:
            return await receive()
        return await _first_of(receive, cut)

    return replayed


async def _first_of(receive: Receive, cut: anyio.Event) -> Message:
    answer: list[Message] = []
    async with anyio.create_task_group() as group:
        async def real() -> None:
            answer.append(await receive())
            group.cancel_scope.cancel()

        async def ended() -> None:
            await cut.wait()
            answer.append({"type": "http.disconnect"})
            group.cancel_scope.cancel()

        group.start_soon(real)
        group.start_soon(ended)
    return answer[0]


def _with_stream_usage(body: JSON) -> JSON:
    """The body asking for usage in its stream (`stream_options.include_usage`)."""
    options = body.get("stream_options")
    options = dict(options) if isinstance(options, dict) else {}
    return {**body, "stream_options": {**options, "include_usage": True}}


def _dumps(body: JSON) -> bytes:
    return jsonio.dumps(body)


def _splice_stream_usage(body: bytes) -> bytes:
    # Inserting the member after the opening brace leaves every other byte as sent.
    start = body.index(b"{") + 1
    return body[:start] + b'"stream_options":{"include_usage":true},' + body[start:]

"""The sidecar: `TokenOptMiddleware` around a forwarder, assembled in one function.

The forwarder relays every method and path to the upstream with one pooled
`httpx.AsyncClient`, streams both ways, and translates transport errors once
into 502/504 answers in the client's dialect.
"""

from __future__ import annotations

import contextlib
import hmac
import http.cookiejar
import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from tokenopt.asgi import ERROR_HEADER, OWN_HEADER_PREFIX, ClientGone, TokenOptMiddleware
from tokenopt.dialects import dialect_for
from tokenopt.engine import Engine
from tokenopt.exceptions import ConfigError, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from tokenopt.settings import Settings, UpstreamSettings
from tokenopt.store import StoreUnavailable
from tokenopt.types import Message, Receive, Scope, Send

logger = logging.getLogger("tokenopt.proxy")

# RFC 9110 §7.6.1 connection-specific fields, never relayed.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
    b"trailer", b"trailers", b"transfer-encoding", b"upgrade", b"proxy-connection",
})
BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "TRACE"})


def create_app(
    settings: Settings,
    *,
    client: httpx.AsyncClient | None = None,
    engine: Engine | None = None,
) -> Starlette:
    """The sidecar ASGI app: `/healthz`, and every other route relayed to the upstream.

    Args:
        settings: `settings.upstream.url` is where requests go.
        client: an injected client (tests pass one over an ASGI transport); by
            default one pooled client is created and closed with the app.
        engine: an injected engine; by default built from `settings`.
    """
    if not settings.upstream.url:
        raise ConfigError("no upstream: pass --upstream URL or set TOKENOPT_UPSTREAM")
    owns_client = client is None
    client = client if client is not None else new_client(settings.upstream)
    engine = engine if engine is not None else Engine.from_settings(settings)
    forwarder = Forwarder(settings.upstream.url, client)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "plugins": [p.name for p in engine.pipeline.plugins]})

    async def metrics(request: Request) -> Response:
        return Response(engine.metrics.exposition(), media_type=engine.metrics.content_type)

    async def live_report(request: Request) -> Response:
        return await _live_report(request, engine, settings.admin.token)

    async def erase_tenant(request: Request) -> Response:
        return await _erase_tenant(request, engine, settings.admin.token)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await engine.warm()
        try:
            yield
        finally:
            await engine.aclose()
            if owns_client:
                await client.aclose()

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/tokenopt/report", live_report, methods=["GET"]),
            Route("/tokenopt/tenants/{tenant}", erase_tenant, methods=["DELETE"]),
            Mount("", app=TokenOptMiddleware(forwarder, engine=engine)),
        ],
        lifespan=lifespan,
    )
    app.state.engine = engine
    return app


def _admin_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "admin_error", "code": status}},
                        status_code=status)


def _admin_denied(request: Request, token: str) -> Response | None:
    """401/403 unless the request carries the admin token, compared in constant time."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    given = given.strip() if scheme.lower() == "bearer" else ""
    if not given:
        return _admin_error(401, "send the admin token as 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(given.encode(), token.encode()):
        return _admin_error(403, "wrong admin token")
    return None


async def _erase_tenant(request: Request, engine: Engine, token: str | None) -> Response:
    """`DELETE /tokenopt/tenants/{tenant}`, admin token only: the tenant's state and entries."""
    from tokenopt.erase import erase

    if not token:
        return _admin_error(404, "admin endpoints are off: set [admin] token")
    denied = _admin_denied(request, token)
    if denied is not None:
        return denied
    try:
        erased = await erase(request.path_params["tenant"], engine.store, engine.ledger,
                             store_name="this sidecar's store", ledger_name="its ledger")
    except ConfigError as exc:
        return _admin_error(400, str(exc))
    except StoreUnavailable as exc:
        return _admin_error(503, f"not erased: {exc}")
    engine.recent.forget(erased.tenant)
    logger.info("erased tenant %s: %d store keys, %d ledger entries",
                erased.tenant, erased.store_keys, erased.ledger_entries)
    return JSONResponse(erased.as_json())


async def _live_report(request: Request, engine: Engine, token: str | None) -> Response:
    """`GET /tokenopt/report?format=json|html[&since=24h&group_by=model]`, admin token only."""
    from tokenopt.report import parse_time, render, report_from

    if not token or engine.ledger is None:
        return _admin_error(404, "the live report is off: set [admin] token (and keep the ledger on)")
    denied = _admin_denied(request, token)
    if denied is not None:
        return denied
    fmt = request.query_params.get("format", "json")
    group_by = request.query_params.get("group_by", "model")
    if fmt not in ("json", "html") or group_by not in ("model", "route", "tenant", "plugin"):
        return _admin_error(400, "format is json or html; group_by is model, route, tenant or plugin")
    try:
        since = parse_time(request.query_params.get("since"))
        until = parse_time(request.query_params.get("until"))
    except ConfigError as exc:
        return _admin_error(400, str(exc))
    report = await report_from(engine.ledger, since=since, until=until, group_by=group_by)
    media = "text/html; charset=utf-8" if fmt == "html" else "application/json"
    return Response(render(report, fmt), media_type=media)


def new_client(upstream: UpstreamSettings) -> httpx.AsyncClient:
    """One pooled client for the app's lifetime; reads may be long (streams), connects not.

    httpx's API over aiohttp's pool (`tokenopt.upstream`): half the bare sidecar's CPU
    per request. The cookie jar refuses every cookie: a proxy's client is shared by all
    its clients, so a `Set-Cookie` kept from one answer would go out with everyone's
    next request.
    """
    from tokenopt.upstream import AiohttpTransport

    timeout = httpx.Timeout(upstream.read_timeout, connect=upstream.connect_timeout)
    return httpx.AsyncClient(
        transport=AiohttpTransport(max_connections=upstream.max_connections), timeout=timeout,
        follow_redirects=False, trust_env=False,
        cookies=http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[])),
    )


class Forwarder:
    """Relays one request to the upstream and streams the answer back."""

    def __init__(self, upstream: str, client: httpx.AsyncClient) -> None:
        self.base = httpx.URL(upstream)
        self.prefix = self.base.raw_path.rstrip(b"/").split(b"?")[0]
        self.client = client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # websockets are not relayed; closing the scope refuses them
        problem = _unsafe_target(scope)
        if problem is not None:  # answered before the body is read: nothing goes upstream
            logger.info("refused a request target that %s", problem)
            await _answer_error(scope, send, 400, f"the request path {problem}",
                                kind="invalid_request_error")
            return
        try:
            content = await _request_content(scope, receive)
        except ClientGone:
            return
        request = self.client.build_request(
            scope["method"], self._url(scope), headers=_request_headers(scope["headers"]),
            content=content,
        )
        try:
            response = await self._send(request)
        except UpstreamError as exc:
            status = 504 if isinstance(exc, UpstreamTimeout) else 502
            await _answer_error(scope, send, status, str(exc), cause=type(exc).__name__)
            return
        try:
            await send({
                "type": "http.response.start",
                "status": response.status_code,
                "headers": _response_headers(response.headers.raw),
            })
            await self._relay(response, receive, send)
        finally:
            await response.aclose()

    def _url(self, scope: Scope) -> httpx.URL:
        path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        return self.base.copy_with(raw_path=self.prefix + path + (b"?" + query if query else b""))

    async def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self.client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"the upstream did not answer in time ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise UpstreamUnavailable(f"the upstream could not be reached ({type(exc).__name__})") from exc

    async def _relay(self, response: httpx.Response, receive: Receive, send: Send) -> None:
        broken: httpx.TransportError | None = None
        async with anyio.create_task_group() as group:
            # A client that goes away cancels the relay, which closes the upstream stream.
            group.start_soon(_cancel_on_disconnect, receive, group.cancel_scope)
            try:
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except httpx.TransportError as exc:
                broken = exc
            else:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            group.cancel_scope.cancel()
        if broken is not None:
            # The status is sent already: abort the connection so the client sees the
            # stream broke, as it would have talking to the upstream directly.
            logger.warning("upstream stream broke: %s", type(broken).__name__)
            if isinstance(broken, httpx.TimeoutException):  # silent past the read timeout
                raise UpstreamTimeout("the upstream stream went silent") from broken
            raise UpstreamUnavailable("the upstream stream broke") from broken


def _unsafe_target(scope: Scope) -> str | None:
    """Why a request target may not be relayed, or None.

    The upstream URL is configuration: a path is only ever appended to it. An
    absolute-form target (`http://evil.example/...`, which uvicorn's h11 parser
    passes as the path) has no place there, and a dot segment (`..`, `%2e%2e`)
    would be resolved by the HTTP client, climbing out of the upstream's base path.
    """
    raw = scope.get("raw_path") or scope["path"].encode()
    if not raw.startswith(b"/"):
        return "must start with '/' (absolute-form targets are not relayed)"
    segments = unquote(raw.decode("latin-1")).replace("\\", "/").split("/")
    if any(segment in (".", "..") for segment in segments):
        return "may not contain '.' or '..' segments"
    return None


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return


async def _request_content(scope: Scope, receive: Receive) -> bytes | AsyncIterator[bytes] | None:
    headers = {k.lower() for k, _ in scope["headers"]}
    if scope["method"] in BODYLESS and not headers & {b"content-length", b"transfer-encoding"}:
        return None
    first = await receive()
    if first["type"] == "http.disconnect":
        raise ClientGone
    if not first.get("more_body", False):
        return bytes(first.get("body", b""))
    return _stream_rest(first, receive)


async def _stream_rest(first: Message, receive: Receive) -> AsyncIterator[bytes]:
    yield first.get("body", b"")
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


def _request_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    named = _connection_tokens(raw)
    return [
        (k, v) for k, v in raw
        if (key := k.lower()) not in HOP_BY_HOP and key != b"host" and key not in named
        and not key.startswith(OWN_HEADER_PREFIX)
    ]


def _response_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    named = _connection_tokens(raw)
    return [(k.lower(), v) for k, v in raw if k.lower() not in HOP_BY_HOP and k.lower() not in named]


def _connection_tokens(raw: list[tuple[bytes, bytes]]) -> set[bytes]:
    # Fields named in Connection are hop-by-hop too.
    return {
        token.strip().lower()
        for k, v in raw if k.lower() == b"connection"
        for token in v.split(b",")
    }


async def _answer_error(scope: Scope, send: Send, status: int, message: str,
                        kind: str = "upstream_error", cause: str | None = None) -> None:
    """An error tokenopt answers itself; `cause` goes out as `x-tokenopt-error`, so the
    client and the exchange record can tell a 502/504 of tokenopt's from the upstream's."""
    dialect = dialect_for(scope["method"], scope["path"])
    body: Any = (
        dialect.error_body(status, message) if dialect is not None
        else {"error": {"message": message, "type": kind, "code": status}}
    )
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(payload)).encode())]
    if cause is not None:
        headers.append((ERROR_HEADER, cause.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})

"""The sidecar's upstream transport: httpx's API over aiohttp's connection pool.

httpx's own transport (httpcore on anyio) costs the bare sidecar about half its CPU
per request: typed-attribute lookups on every read and write, a `select()` per pooled
connection to check it is still alive, cancel scopes around each I/O. aiohttp's
pool does the same job for a fraction (`benchmarks/sidecar.py --stacks`). The
forwarder keeps speaking httpx (requests, streamed responses, exceptions), so only
this module knows aiohttp is there.

Errors are translated to httpx's tree so `proxy.py` answers as before: a refused or
failed connection is `httpx.ConnectError` (502), a connect timeout
`httpx.ConnectTimeout` and a read timeout `httpx.ReadTimeout` (504), a connection
that breaks mid-answer `httpx.ReadError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import aiohttp
import httpx

# uvicorn drops idle keep-alive connections after 5 s: reusing one it is closing loses
# the request, so the pool forgets idle connections a little sooner.
KEEPALIVE_S = 4.0


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An `httpx.AsyncBaseTransport` relaying through one `aiohttp.ClientSession`.

    The session is created on first use, inside the event loop that serves (aiohttp
    binds it to the running loop), and closed with the client.
    """

    def __init__(self, *, max_connections: int) -> None:
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0,
                                             keepalive_timeout=KEEPALIVE_S, ssl=True)
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),  # relay cookies, never keep them
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        try:
            data: bytes | AsyncIterator[bytes] | None = request.content or None
        except httpx.RequestNotRead:  # a streamed body: aiohttp sends it chunked
            data = _chunks(request.stream)  # type: ignore[arg-type]
        headers = [(k, v) for k, v in request.headers.multi_items() if k != "transfer-encoding"]
        with _translated(request):
            response = await self._session_now().request(
                request.method, str(request.url), headers=headers, data=data,
                allow_redirects=False, compress=None,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout.get("connect"),
                                              sock_read=timeout.get("read"),
                                              connect=timeout.get("pool")),
            )
        return httpx.Response(
            status_code=response.status, headers=response.raw_headers,
            stream=_ResponseStream(response, request), request=request,
            extensions={"http_version": b"HTTP/1.1",
                        "reason_phrase": (response.reason or "").encode()},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self.response = response
        self.request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _translated(self.request):
            # iter_any: each read as it arrives, so an SSE event is relayed at once.
            async for chunk in self.response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        # A fully read answer gives its connection back to the pool; one cut short
        # closes it, so no stale bytes reach the next request.
        if self.response.content.is_eof():
            self.response.release()
        else:
            self.response.close()


async def _chunks(stream: httpx.AsyncByteStream) -> AsyncIterator[bytes]:
    async for chunk in stream:
        yield chunk


@contextmanager
def _translated(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except aiohttp.ServerTimeoutError as exc:
        kind = httpx.ConnectTimeout if isinstance(exc, aiohttp.ConnectionTimeoutError) else httpx.ReadTimeout
        raise kind(str(exc) or type(exc).__name__, request=request) from exc
    except TimeoutError as exc:  # the pool's wait for a free connection
        raise httpx.PoolTimeout(str(exc) or "no free upstream connection", request=request) from exc
    except aiohttp.ClientConnectorError as exc:
        raise httpx.ConnectError(str(exc), request=request) from exc
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
        raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
    except aiohttp.InvalidURL as exc:
        raise httpx.UnsupportedProtocol(str(exc), request=request) from exc
    except aiohttp.ClientError as exc:
        raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__, request=request) from exc

"""The sidecar's upstream client: httpx's API over aiohttp, streaming, errors, no cookies."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tokenopt.proxy import new_client
from tokenopt.serving import ServerThread, bind, url_of
from tokenopt.settings import UpstreamSettings

T = TypeVar("T")
gate = threading.Event()


async def gated_stream(request: Request) -> StreamingResponse:
    async def events() -> AsyncIterator[bytes]:
        yield b"data: one\n\n"
        while not gate.is_set():  # the test lets the second event go once it read the first
            await asyncio.sleep(0.005)
        yield b"data: two\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


async def echo(request: Request) -> Response:
    return JSONResponse({"body": (await request.body()).decode(), "cookie": request.headers.get("cookie"),
                         "type": request.headers.get("content-type")},
                        headers={"set-cookie": "session=upstream; Path=/"})


async def slow(request: Request) -> Response:
    await asyncio.sleep(2)
    return Response(b"late")


APP = Starlette(routes=[Route("/stream", gated_stream), Route("/echo", echo, methods=["POST"]),
                        Route("/slow", slow)])


def run(coro_fn: Callable[[httpx.AsyncClient], Awaitable[T]], **settings: Any) -> T:
    async def main() -> T:
        async with new_client(UpstreamSettings(**settings)) as client:
            return await coro_fn(client)

    return asyncio.run(main())


def test_a_streamed_answer_arrives_chunk_by_chunk() -> None:
    gate.clear()

    async def read(client: httpx.AsyncClient) -> list[bytes]:
        chunks = []
        async with client.stream("GET", url + "/stream") as response:
            async for chunk in response.aiter_raw():
                chunks.append(chunk)
                gate.set()  # only now may the upstream send the rest
        return chunks

    with ServerThread(APP) as url:
        chunks = run(read)
    assert chunks[0] == b"data: one\n\n"
    assert b"".join(chunks) == b"data: one\n\ndata: two\n\n"


def test_bodies_and_headers_go_through_and_cookies_are_never_kept() -> None:
    async def twice(client: httpx.AsyncClient) -> list[dict[str, str]]:
        answers = []
        for _ in range(2):
            response = await client.post(url + "/echo", content=b'{"a":1}',
                                         headers={"content-type": "application/json"})
            answers.append(response.json())
        return answers

    with ServerThread(APP) as url:
        first, second = run(twice)
    assert first == {"body": '{"a":1}', "cookie": None, "type": "application/json"}
    assert second["cookie"] is None  # one client's Set-Cookie must not reach the next request


def test_a_refused_connection_is_a_connect_error() -> None:
    with bind() as sock:
        url = url_of(sock)  # bound, never listening: the connection is refused

    async def get(client: httpx.AsyncClient) -> None:
        await client.get(url + "/")

    with pytest.raises(httpx.ConnectError):
        run(get)


def test_a_slow_answer_is_a_read_timeout() -> None:
    async def get(client: httpx.AsyncClient) -> None:
        await client.get(url + "/slow")

    with ServerThread(APP) as url, pytest.raises(httpx.ReadTimeout):
        run(get, read_timeout=0.2)

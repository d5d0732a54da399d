"""The loopback serving helper: sockets that answer keep-alive requests without Nagle delays."""

from __future__ import annotations

import socket

import httpx
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tokenopt.serving import ServerThread, bind


def test_accepted_connections_have_nagle_disabled() -> None:
    # Without TCP_NODELAY a response written as headers then body waits for the
    # client's delayed ACK (~40 ms) on every reused connection.
    listener = bind()
    with listener, socket.create_connection(listener.getsockname()[:2]):
        accepted, _ = listener.accept()
        with accepted:
            assert accepted.proto == socket.IPPROTO_TCP  # what asyncio checks before _set_nodelay
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_server_thread_serves_until_exit_and_runs_lifespan() -> None:
    async def hello(request: object) -> PlainTextResponse:
        return PlainTextResponse("hi")

    with ServerThread(Starlette(routes=[Route("/", hello)])) as url, httpx.Client() as client:
        assert [client.get(url).text for _ in range(3)] == ["hi"] * 3
    try:
        httpx.get(url, timeout=1)
    except httpx.ConnectError:
        pass
    else:
        raise AssertionError("the server still answers after exit")

"""Faults a proxy test can ask the simulator for, over real sockets where it matters."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from tokenopt.serving import ServerThread
from tokenopt.sim import create_sim_app
from tokenopt.sim.app import SimulatedReset

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True,
        "stream_options": {"include_usage": True}}
MESSAGES = {"model": "claude-sonnet-4-5", "max_tokens": 64,
            "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def asgi_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(create_sim_app()), base_url="http://sim")


@pytest.mark.anyio
async def test_a_delay_header_holds_the_answer_back() -> None:
    async with asgi_client() as client:
        started = time.monotonic()
        response = await client.post("/v1/messages", json=MESSAGES, headers={"x-sim-delay-ms": "150"})
    assert response.status_code == 200 and time.monotonic() - started >= 0.15


@pytest.mark.anyio
async def test_a_status_header_answers_a_provider_shaped_error() -> None:
    async with asgi_client() as client:
        limited = await client.post("/v1/chat/completions", json=CHAT, headers={"x-sim-status": "429"})
        overloaded = await client.post("/v1/messages", json=MESSAGES, headers={"x-sim-status": "529"})
        broken = await client.post("/v1/responses", json={}, headers={"x-sim-status": "503"})
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert overloaded.status_code == 529
    assert overloaded.json()["error"]["type"] == "overloaded_error"
    assert broken.status_code == 503 and broken.json()["error"]["type"] == "server_error"


@pytest.mark.anyio
async def test_without_a_socket_a_reset_surfaces_as_an_exception() -> None:
    async with asgi_client() as client:
        with pytest.raises(SimulatedReset):
            await client.post("/v1/messages", json=MESSAGES, headers={"x-sim-fail": "reset-before"})


def test_reset_before_drops_the_connection_without_a_response() -> None:
    app = create_sim_app()
    with ServerThread(app) as url, httpx.Client(base_url=url) as client:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.post("/v1/messages", json=MESSAGES, headers={"x-sim-fail": "reset-before"})
        assert client.post("/v1/messages", json=MESSAGES).status_code == 200  # the server lives on
    assert len(app.state.received) == 2


def test_reset_mid_stream_sends_some_events_then_aborts() -> None:
    app = create_sim_app()
    seen: list[str] = []
    with (ServerThread(app) as url, httpx.Client(base_url=url) as client,
          pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)),
          client.stream("POST", "/v1/chat/completions", json=CHAT,
                        headers={"x-sim-fail": "reset-mid-stream"}) as response):
        assert response.status_code == 200
        seen.extend(line for line in response.iter_lines() if line)
    assert 1 <= len(seen) <= 3 and "[DONE]" not in "".join(seen)
    assert app.state.cancelled == 0  # the simulator cut it: not a client cancel


def test_a_client_leaving_mid_stream_is_counted_as_a_cancel() -> None:
    app = create_sim_app()
    with ServerThread(app) as url:
        host, port = url.removeprefix("http://").split(":")
        body = httpx.Request("POST", f"{url}/v1/messages", json={**MESSAGES, "stream": True},
                             headers={"x-sim-stream-delay-ms": "50"})
        raw = b"".join([
            f"POST /v1/messages HTTP/1.1\r\nhost: {host}\r\n".encode(),
            b"".join(k + b": " + v + b"\r\n" for k, v in body.headers.raw if k.lower() != b"host"),
            b"\r\n", body.read(),
        ])
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(raw)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        # The socket is closed with most events unsent: the simulator must notice.
        deadline = time.monotonic() + 10
        while app.state.cancelled == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert app.state.cancelled == 1


@pytest.mark.anyio
async def test_stream_delay_spaces_the_events() -> None:
    async with asgi_client() as client:
        started = time.monotonic()
        response = await client.post("/v1/messages", json={**MESSAGES, "stream": True},
                                     headers={"x-sim-stream-delay-ms": "5"})
    assert response.text.count("event: ") > 10
    assert time.monotonic() - started >= 0.05

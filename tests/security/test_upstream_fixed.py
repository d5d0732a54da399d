"""The upstream is configuration: no request path, target or header sends traffic anywhere else.

A second simulator plays the attacker's server and must receive nothing. Requests
are written on a raw socket, so targets reach the sidecar exactly as written
(an HTTP client would normalise `..` and refuse absolute-form targets itself).
Each either reaches the configured upstream, on a path under its base path, or
gets a 400 JSON error.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.support import Sim, running_sidecar, running_sim
from tokenopt.proxy import Forwarder
from tokenopt.types import Message


@pytest.fixture
def evil() -> Iterator[Sim]:
    with running_sim() as server:
        yield server


def raw_request(url: str, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send one request as written; the status and body of the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode() + b"\r\n\r\n" + body)
        answer = b""
        while chunk := sock.recv(65536):  # `Connection: close`: the server ends the answer
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def head(method: str, target: str, evil_host: str, **extra: str) -> str:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {evil_host}", "Connection: close",
             *(f"{k.replace('_', '-')}: {v}" for k, v in extra.items())]
    return "\r\n".join(lines)


DOT_TARGETS = ["/../../x", "/v1/../admin", "/v1/./models", "/v1/%2e%2e/admin", "/v1/%2E%2e/x",
               "/v1/..%2fadmin", "/v1/..\\admin", "/v1/../v1/chat/completions"]


@pytest.mark.parametrize("target", DOT_TARGETS)
def test_dot_segments_are_refused_before_anything_is_sent(
    sim: Sim, evil: Sim, target: str
) -> None:
    evil_host = evil.url.removeprefix("http://")
    body = json.dumps({"model": "gpt-4.1", "messages": []}).encode()
    with running_sidecar(sim.url + "/v1/") as sidecar:  # a base path `..` would climb out of
        status, payload = raw_request(sidecar.url, head(
            "POST", target, evil_host, content_type="application/json",
            content_length=str(len(body))), body)

    assert status == 400
    assert "'..' segments" in json.loads(payload)["error"]["message"]
    assert sim.app.state.received == evil.app.state.received == type(sim.app.state.received)()


def test_hostile_targets_and_headers_reach_the_configured_upstream_only(
    sim: Sim, evil: Sim
) -> None:
    evil_host = evil.url.removeprefix("http://")
    steer = {"x_forwarded_host": evil_host, "x_forwarded_proto": "https",
             "forwarded": f"host={evil_host};proto=http", "x_original_url": evil.url + "/v1/models",
             "x_rewrite_url": evil.url + "/v1/models", "x_forwarded_server": evil_host}
    cases = {  # target -> the path the configured upstream must see (None: refused, 400)
        f"//{evil_host}/v1/models": f"/base//{evil_host}/v1/models",
        f"http://{evil_host}/v1/models": "/base/v1/models",  # absolute form: its path only
        f"https://{evil_host}:443/v1/models?limit=1": None,  # uvicorn's parser refuses it
        "/v1/models": "/base/v1/models",
    }
    with running_sidecar(sim.url + "/base") as sidecar:
        statuses = [raw_request(sidecar.url, head("GET", target, evil_host, **steer))[0]
                    for target in cases]
        body = json.dumps({"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]})
        llm = httpx.post(sidecar.url + "/v1/chat/completions", content=body, headers={
            "host": evil_host, "content-type": "application/json",
            **{k.replace("_", "-"): v for k, v in steer.items()}})

    # The simulator's 404 for the paths it does not serve; uvicorn's own 400 for the refused.
    assert statuses == [404 if path else 400 for path in cases.values()]
    assert llm.status_code == 404  # /base/v1/chat/completions: the upstream's path, not evil's
    seen = [(path, dict(headers).get("host")) for _, path, headers, _ in sim.app.state.received]
    upstream_host = sim.url.removeprefix("http://")
    assert seen == [(path, upstream_host) for path in
                    [*filter(None, cases.values()), "/base/v1/chat/completions"]]
    assert len(evil.app.state.received) == 0


@pytest.mark.anyio
async def test_an_absolute_form_path_is_refused_by_the_forwarder(sim: Sim, evil: Sim) -> None:
    # uvicorn's h11 parser passes an absolute-form target through as the path.
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    target = (evil.url + "/v1/models").encode()
    async with httpx.AsyncClient() as client:
        await Forwarder(sim.url, client)({
            "type": "http", "method": "GET", "path": target.decode(), "raw_path": target,
            "query_string": b"", "headers": [(b"host", b"x")]}, receive, send)

    assert sent[0]["status"] == 400
    assert b"must start with '/'" in sent[1]["body"]
    assert len(sim.app.state.received) == len(evil.app.state.received) == 0

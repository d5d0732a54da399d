"""The sidecar against the simulator over real sockets: bytes, errors, streams, headers."""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar

import httpx
import pytest
from pydantic import BaseModel

from tests.integration.support import Sidecar, Sim, running_sidecar, wait_until
from tokenopt.dialects.base import RequestView
from tokenopt.pipeline import PluginContext
from tokenopt.serving import bind

KEY = {"authorization": "Bearer sk-test-secret-value", "x-api-key": "sk-test-secret-value"}
CHAT = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "Say hi"}]}
MESSAGES = {"model": "claude-sonnet-4-6", "max_tokens": 64,
            "messages": [{"role": "user", "content": "Say hi"}]}
RESPONSES = {"model": "gpt-4.1", "input": "Say hi"}


def post(url: str, path: str, content: bytes, **headers: str) -> httpx.Response:
    return httpx.post(url + path, content=content, timeout=30,
                      headers={"content-type": "application/json", **KEY, **headers})


# Odd spacing, key order, escapes and a float the client chose: none may change.
ODD_BYTES = {
    "/v1/chat/completions": b'{ "messages":[{"content":"caf\\u00e9 \xe2\x98\x95","role":"user"}],'
                            b'\n  "model" : "gpt-4.1", "temperature": 1.0e0 }',
    "/v1/messages": b'{"max_tokens":64 ,"model":"claude-sonnet-4-6","stream":true,'
                    b'"messages":[{"role":"user","content":[{"type":"text","text":"x\\ty"}]}]}',
    "/v1/responses": b'{"input":"hello   world","model":"gpt-4.1","stream":true,"store":false}',
}


@pytest.mark.parametrize("path", sorted(ODD_BYTES))
def test_without_plugins_the_upstream_receives_the_exact_bytes(
    sim: Sim, sidecar: Sidecar, path: str
) -> None:
    response = post(sidecar.url, path, ODD_BYTES[path])

    assert response.status_code == 200
    assert sim.bodies == [ODD_BYTES[path]]
    record = sidecar.sink.next()
    assert record.route == path and not record.changed and record.usage is not None


def test_stream_usage_is_requested_for_tokenopt_and_hidden_from_the_client(
    sim: Sim, sidecar: Sidecar
) -> None:
    body = json.dumps({**CHAT, "stream": True}).encode()

    response = post(sidecar.url, "/v1/chat/completions", body)

    forwarded = json.loads(sim.bodies[0])
    assert forwarded == {**json.loads(body), "stream_options": {"include_usage": True}}
    chunks = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert chunks[-1] == "[DONE]"
    assert all(json.loads(chunk)["choices"] for chunk in chunks[:-1])
    assert all("usage" not in json.loads(chunk) for chunk in chunks[:-1])
    record = sidecar.sink.next()
    assert record.usage is not None and record.usage.input_tokens > 0 and record.complete


def test_a_client_that_asked_for_stream_usage_gets_it(sim: Sim, sidecar: Sidecar) -> None:
    body = json.dumps({**CHAT, "stream": True, "stream_options": {"include_usage": True}}).encode()

    response = post(sidecar.url, "/v1/chat/completions", body)

    assert sim.bodies == [body]
    usage_chunks = [json.loads(line[6:]) for line in response.text.splitlines()
                    if line.startswith("data: {") and '"usage":{' in line.replace(" ", "")]
    assert len(usage_chunks) == 1 and usage_chunks[0]["choices"] == []
    assert sidecar.sink.next().usage.output_tokens == usage_chunks[0]["usage"]["completion_tokens"]


@pytest.mark.parametrize(("path", "error_shape"), [
    ("/v1/chat/completions", lambda b: b["error"]["message"]),
    ("/v1/responses", lambda b: b["error"]["message"]),
    ("/v1/messages", lambda b: b["type"] == "error" and b["error"]["message"]),
])
def test_a_body_over_the_limit_gets_413_in_the_clients_dialect(
    sim: Sim, path: str, error_shape: Any
) -> None:
    with running_sidecar(sim.url, limits={"max_body_bytes": 1000}) as sidecar:
        big = json.dumps({**MESSAGES, "messages": [{"role": "user", "content": "x" * 2000}]})

        response = post(sidecar.url, path, big.encode())

        assert response.status_code == 413
        assert "1000 bytes" in error_shape(response.json())
        assert sim.bodies == []
        assert sidecar.sink.next().error == "body_too_large"


def test_a_chunked_body_over_the_limit_is_refused_without_content_length(sim: Sim) -> None:
    with running_sidecar(sim.url, limits={"max_body_bytes": 1000}) as sidecar:
        chunks = iter([b'{"model":"gpt-4.1","messages":[', b'"' + b"x" * 2000 + b'"', b"]}"])

        response = httpx.post(sidecar.url + "/v1/chat/completions", content=chunks, headers=KEY)

        assert response.status_code == 413
        assert sim.bodies == []


def test_malformed_json_is_forwarded_and_the_upstream_answers_it(
    sim: Sim, sidecar: Sidecar
) -> None:
    broken = b'{"model": "gpt-4.1", "messages": ['

    response = post(sidecar.url, "/v1/chat/completions", broken)

    assert sim.bodies == [broken]
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert sidecar.sink.next().fail_open == "unreadable_body"


def test_unreachable_upstream_gets_502_in_the_clients_dialect() -> None:
    closed = bind()
    url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()  # nothing listens there now
    with running_sidecar(url) as sidecar:
        response = post(sidecar.url, "/v1/messages", json.dumps(MESSAGES).encode())

    assert response.status_code == 502
    body = response.json()
    assert body["type"] == "error" and "could not be reached" in body["error"]["message"]


def test_slow_upstream_gets_504_in_the_clients_dialect(sim: Sim) -> None:
    with running_sidecar(sim.url, upstream={"read_timeout": 0.3}) as sidecar:
        response = post(sidecar.url, "/v1/chat/completions", json.dumps(CHAT).encode(),
                        **{"x-sim-delay-ms": "5000"})

    assert response.status_code == 504
    assert "did not answer in time" in response.json()["error"]["message"]


def test_upstream_errors_are_relayed_as_the_upstream_sent_them(
    sim: Sim, sidecar: Sidecar
) -> None:
    direct = post(sim.url, "/v1/messages", json.dumps(MESSAGES).encode(),
                  **{"x-sim-status": "429"})

    relayed = post(sidecar.url, "/v1/messages", json.dumps(MESSAGES).encode(),
                   **{"x-sim-status": "429"})

    assert relayed.status_code == direct.status_code == 429
    assert relayed.json() == direct.json()
    assert relayed.headers["retry-after"] == direct.headers["retry-after"]


def test_an_upstream_that_resets_before_answering_gets_502(sim: Sim, sidecar: Sidecar) -> None:
    response = post(sidecar.url, "/v1/responses", json.dumps(RESPONSES).encode(),
                    **{"x-sim-fail": "reset-before"})

    assert response.status_code == 502
    assert response.json()["error"]["message"]


def test_a_stream_the_upstream_breaks_is_broken_for_the_client_too(
    sim: Sim, sidecar: Sidecar
) -> None:
    body = json.dumps({**MESSAGES, "stream": True}).encode()
    with httpx.stream("POST", sidecar.url + "/v1/messages", content=body, timeout=30,
                      headers={**KEY, "x-sim-fail": "reset-mid-stream"}) as response:
        assert response.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            for _ in response.iter_raw():
                pass
    record = sidecar.sink.next()
    assert not record.complete and record.error == "UpstreamUnavailable"


def test_a_client_that_disconnects_cancels_the_upstream_stream(
    sim: Sim, sidecar: Sidecar
) -> None:
    body = json.dumps({**MESSAGES, "stream": True, "max_tokens": 4000}).encode()
    with httpx.stream("POST", sidecar.url + "/v1/messages", content=body, timeout=30,
                      headers={**KEY, "x-sim-stream-delay-ms": "50"}) as response:
        first = next(response.iter_raw())
        assert first.startswith(b"event: message_start")
    # Leaving the block closed the connection mid-stream.
    wait_until(lambda: sim.app.state.cancelled == 1)
    assert not sidecar.sink.next().complete


@pytest.mark.parametrize(("path", "body", "last"), [
    ("/v1/messages", {**MESSAGES, "stream": True}, b"event: message_stop"),
    ("/v1/chat/completions", {**CHAT, "stream": True}, b"data: [DONE]"),
])
def test_a_client_that_hangs_up_after_the_last_event_got_a_whole_answer(
    sim: Sim, sidecar: Sidecar, path: str, body: dict[str, Any], last: bytes,
) -> None:
    # Codex closes the connection as soon as it reads response.completed; the simulator
    # here holds the stream open after its last event, so the body's end never arrives.
    seen = b""
    with httpx.stream("POST", sidecar.url + path, content=json.dumps(body).encode(), timeout=30,
                      headers={**KEY, "x-sim-fail": "linger"}) as response:
        for chunk in response.iter_raw():
            seen += chunk
            if last in seen:
                break
    wait_until(lambda: sim.app.state.cancelled == 1)
    record = sidecar.sink.next()
    assert record.complete and record.status == 200
    assert record.usage is not None and record.usage.output_tokens > 0


def test_hop_by_hop_and_own_headers_stay_here_auth_goes_through(
    sim: Sim, sidecar: Sidecar
) -> None:
    post(sidecar.url, "/v1/chat/completions", json.dumps(CHAT).encode(), **{
        "connection": "keep-alive, x-hop", "x-hop": "1", "proxy-authorization": "Basic eHk=",
        "te": "trailers", "x-tokenopt-conversation": "c1", "x-custom": "kept",
    })

    seen = sim.last_headers()
    assert seen["authorization"] == KEY["authorization"]
    assert seen["x-api-key"] == KEY["x-api-key"]
    assert seen["x-custom"] == "kept"
    for dropped in ("x-hop", "proxy-authorization", "te", "x-tokenopt-conversation"):
        assert dropped not in seen
    assert sidecar.sink.next().conversation == "c1"


def test_secrets_never_reach_the_logs(
    sim: Sim, sidecar: Sidecar, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    post(sidecar.url, "/v1/chat/completions", b"{not json", cookie="session=sk-test-secret-value")
    post(sidecar.url, "/v1/messages", json.dumps(MESSAGES).encode(), **{"x-sim-fail": "reset-before"})
    sidecar.sink.next(), sidecar.sink.next()

    assert caplog.records  # the failures above were logged ...
    assert "sk-test-secret-value" not in caplog.text  # ... without the key


def test_unknown_routes_and_methods_are_relayed_untouched(sim: Sim, sidecar: Sidecar) -> None:
    direct = httpx.get(sim.url + "/v1/models?limit=2", headers=KEY)
    relayed = httpx.get(sidecar.url + "/v1/models?limit=2", headers=KEY)
    assert (relayed.status_code, relayed.content) == (direct.status_code, direct.content)

    missing = httpx.delete(sidecar.url + "/v1/files/file-1", headers=KEY)
    assert missing.status_code == 404
    assert [(m, p) for m, p, _, _ in sim.app.state.received][-1] == ("DELETE", "/v1/files/file-1")
    assert sidecar.sink.records.empty()  # not LLM routes: no records


def test_upstream_base_path_is_kept(sim: Sim) -> None:
    # e.g. --upstream https://openrouter.ai/api : the client's path is appended to it
    with running_sidecar(sim.url + "/v1/") as sidecar:
        response = httpx.get(sidecar.url + "/models", headers=KEY)
    assert response.status_code == 200
    assert sim.app.state.received[-1][1] == "/v1/models"


def test_healthz(sidecar: Sidecar) -> None:
    response = httpx.get(sidecar.url + "/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "plugins": []}


class Boom:
    name: ClassVar[str] = "boom"
    enabled_by_default: ClassVar[bool] = True

    class Settings(BaseModel):
        pass

    async def on_request(self, view: RequestView, ctx: PluginContext) -> RequestView:
        raise RuntimeError("transform bug")


def test_a_failing_transform_forwards_the_original_body_and_is_counted(sim: Sim) -> None:
    body = b'{"model":"gpt-4.1",  "messages":[{"role":"user","content":"hi"}]}'
    with running_sidecar(sim.url, plugins=[Boom()]) as sidecar:
        response = post(sidecar.url, "/v1/chat/completions", body)
        record = sidecar.sink.next()
        counters = sidecar.engine.recent.counters

    assert response.status_code == 200
    assert sim.bodies == [body]
    assert record.fail_open == "plugin:boom"
    assert counters["fail_opens"] == 1

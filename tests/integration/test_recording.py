"""`--record`: the sidecar's traffic, in the replay format, without secrets."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.integration.support import Sim, running_sidecar
from tokenopt.replay.traffic import read_traffic
from tokenopt.sim.script import read_recorded

SECRET = "sk-record-secret"


def test_the_sidecar_records_replayable_lines_without_secrets(sim: Sim, tmp_path: Path) -> None:
    path = tmp_path / "traffic.jsonl"
    chat = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "Hi"}]}
    messages = {"model": "claude-sonnet-4-6", "max_tokens": 64, "stream": True,
                "messages": [{"role": "user", "content": "Hi"}]}
    headers = {"authorization": f"Bearer {SECRET}", "x-api-key": SECRET, "cookie": f"s={SECRET}",
               "x-tokenopt-conversation": "conv-7"}
    with running_sidecar(sim.url, record={"path": str(path)}) as sidecar:
        answer = httpx.post(sidecar.url + "/v1/chat/completions", json=chat, headers=headers)
        httpx.post(sidecar.url + "/v1/messages", json=messages, headers=headers)
        httpx.post(sidecar.url + "/v1/chat/completions", content=b"{broken", headers=headers)
        sidecar.sink.next(), sidecar.sink.next(), sidecar.sink.next()
    # Leaving the block shut the sidecar down, which flushes and closes the file.

    text = path.read_text()
    assert SECRET not in text
    first, second = read_traffic(path)  # the unreadable body is not a replayable line
    assert (first.path, first.body, first.headers) == (
        "/v1/chat/completions", chat, {"x-tokenopt-conversation": "conv-7"})
    assert first.response == answer.json()
    assert (second.path, second.body) == ("/v1/messages", messages)
    assert second.response is not None and second.response["content"][0]["type"] == "text"
    assert all(json.loads(line)["ts"] > 0 for line in text.splitlines())


WEATHER = {"name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]}}
STREAMED = {
    "/v1/chat/completions": {"model": "gpt-4.1", "stream": True,
                             "tools": [{"type": "function", "function": WEATHER}],
                             "tool_choice": "required",
                             "messages": [{"role": "user", "content": "Weather in Paris?"}]},
    "/v1/responses": {"model": "gpt-5", "stream": True, "input": "Weather in Paris?",
                      "tools": [{"type": "function", **WEATHER}], "tool_choice": "required"},
    "/v1/messages": {"model": "claude-sonnet-4-6", "max_tokens": 200, "stream": True,
                     "tools": [{"name": "get_weather", "description": "Weather in a city",
                                "input_schema": WEATHER["parameters"]}],
                     "tool_choice": {"type": "any"},
                     "messages": [{"role": "user", "content": "Weather in Paris?"}]},
}


def test_streamed_answers_are_recorded_as_the_bodies_they_stand_for(
    sim: Sim, tmp_path: Path
) -> None:
    path = tmp_path / "traffic.jsonl"
    unstreamed: dict[str, dict[str, object]] = {}
    with running_sidecar(sim.url, record={"path": str(path)}) as sidecar:
        for route, body in STREAMED.items():
            unstreamed[route] = httpx.post(sim.url + route, json={**body, "stream": False},
                                           headers={"x-api-key": "k"}).json()
            httpx.post(sidecar.url + route, json=body, headers={"x-api-key": "k"})
            sidecar.sink.next()

    for line in read_traffic(path):
        # What replay's simulated model reads from the recording: the tool the model called,
        # the same as in the non-streamed answer to the same request.
        recorded = read_recorded(line.path, line.response or {})
        direct = read_recorded(line.path, unstreamed[line.path])
        assert [c.name for c in recorded.tool_calls] == ["get_weather"]
        assert [json.loads(c.arguments) for c in recorded.tool_calls] == [
            json.loads(c.arguments) for c in direct.tool_calls]
        assert recorded.output_tokens == direct.output_tokens

"""`--record`: the sidecar's traffic, in the replay format, without secrets."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.integration.support import Sim, running_sidecar
from tokenopt.replay.traffic import read_traffic

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
    assert (second.path, second.body, second.response) == ("/v1/messages", messages, None)
    assert all(json.loads(line)["ts"] > 0 for line in text.splitlines())

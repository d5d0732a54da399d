"""Limits keep one request from holding a core: refused early, in the client's dialect.

The body-size check reads the declared length before any byte of the body, so a
client announcing gigabytes is answered at once; the tool-count check runs
before any plugin, so 10,001 tools cost a parse, not a pipeline.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx
import pytest

from tests.integration.support import Sim
from tests.security.support import chat_body, shipped_sidecar

EVERY_PLUGIN = {"normalize": {"relocate_volatile": True},
                "tools": {"lazy": True, "lazy_threshold_tokens": 0},
                "thinking": {"rules": [{"max_thinking_tokens": 1024, "mode": "clamp"}]}}

def status_and_body(answer: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)

@pytest.mark.parametrize("route", ["/v1/messages", "/v1/chat/completions"])
def test_a_declared_huge_body_is_refused_before_it_is_sent(sim: Sim, route: str) -> None:
    with shipped_sidecar(sim.url, plugins=EVERY_PLUGIN) as sidecar:
        host, port = sidecar.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            # Headers only: were the sidecar to wait for the 10 GB, recv would time out.
            sock.sendall(f"POST {route} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                         f"\r\nContent-Length: {10 * 2**30}\r\nx-api-key: k\r\n\r\n".encode())
            answer = b""
            while b"}" not in answer.rpartition(b"\r\n\r\n")[2]:
                answer += sock.recv(65536)
        record = sidecar.sink.next()

    status, body = status_and_body(answer)
    assert status == 413 and record.error == "body_too_large"
    if route == "/v1/messages":  # Anthropic's error shape, which its SDK reads
        assert body["type"] == "error"
    assert "33554432 bytes" in body["error"]["message"]  # type: ignore[index]
    assert sim.bodies == []


def test_ten_thousand_and_one_tools_are_refused_before_any_plugin_runs(sim: Sim) -> None:
    tools: list[dict[str, Any]] = [
        {"type": "function", "function": {"name": f"tool_{i}", "description": "d" * 40,
                                          "parameters": {"type": "object"}}}
        for i in range(10_001)]
    body = json.dumps(chat_body("/v1/chat/completions", "hi", tools=tools)).encode()
    with shipped_sidecar(sim.url, plugins=EVERY_PLUGIN) as sidecar:

        started = time.perf_counter()
        answer = httpx.post(sidecar.url + "/v1/chat/completions", content=body, timeout=30,
                            headers={"x-api-key": "k", "content-type": "application/json"})
        elapsed = time.perf_counter() - started
        record = sidecar.sink.next()

    assert answer.status_code == 400 and "10001 tools" in answer.json()["error"]["message"]
    assert record.error == "policy:max_tools" and record.plugin_notes == {}
    assert sim.bodies == []
    assert elapsed < 5  # one 1.3 MB parse, generous for a loaded 2-core machine

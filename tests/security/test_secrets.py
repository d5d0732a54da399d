"""Planted credentials never reach what tokenopt writes: logs, ledger, recording, reports, Redis.

`tokenopt serve` runs as a child process at debug level (its whole output to one
file), with recording, the ledger, the live report and every built-in plugin on,
in front of the real simulator. Requests on all three routes, streamed and not,
carry a distinct secret in each credential-bearing header and in the query
string; error paths (unreadable body, body too large, too many tools, an upstream
reset, a refused path) are taken too, since failures are what gets logged.
Then every report format is written and every byte tokenopt produced is searched.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis

from benchmarks.processes import free_port, running
from tests.integration.support import Sim
from tests.redis_server import RedisServer
from tests.security.support import ROUTES, chat_body, redis_dump
from tokenopt.cli import main

SECRETS = {
    "bearer": "sk-planted-bearer-5b9e61d0",
    "x-api-key": "sk-ant-planted-xapikey-0c7d24aa",
    "cookie": "planted-cookie-session-91f3",
    "api-key": "planted-azure-api-key-77a1",
    "x-goog-api-key": "planted-goog-key-3e08",
    "proxy-authorization": "planted-proxy-basic-c4d2",
    "x-auth-token": "planted-custom-auth-6f15",
    "query": "planted-query-key-a9b7",
    "admin": "planted-admin-token-2d4c8e",
    "redis": "planted-redis-password-e51f",
}
HEADERS = {
    "content-type": "application/json",
    "anthropic-version": "2023-06-01",
    "authorization": f"Bearer {SECRETS['bearer']}",
    "x-api-key": SECRETS["x-api-key"],
    "cookie": f"session={SECRETS['cookie']}; theme=dark",
    "api-key": SECRETS["api-key"],
    "x-goog-api-key": SECRETS["x-goog-api-key"],
    "proxy-authorization": f"Basic {SECRETS['proxy-authorization']}",
    "x-auth-token": SECRETS["x-auth-token"],
    "x-tokenopt-conversation": "planted-conversation",
}
QUERY = {"key": SECRETS["query"], "beta": "true"}
WEATHER = {"name": "get_weather", "description": "Current weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]}}
TOOLS = {
    "/v1/chat/completions": [{"type": "function", "function": WEATHER}],
    "/v1/responses": [{"type": "function", **WEATHER}],
    "/v1/messages": [{"name": WEATHER["name"], "description": WEATHER["description"],
                      "input_schema": WEATHER["parameters"]}],
}
MAX_TOOLS = 20
MAX_BODY = 200_000
REPORT_FORMATS = ("table", "md", "json", "html")


def config(path: Path, upstream: str, out: Path, redis_url: str | None) -> Path:
    store = f'[store]\nredis_url = "{redis_url}"\nkey_prefix = "sec:"\n' if redis_url else ""
    path.write_text(f"""
[upstream]
url = "{upstream}"
[ledger]
path = "{out / 'ledger.sqlite'}"
[admin]
token = "{SECRETS['admin']}"
[limits]
max_body_bytes = {MAX_BODY}
max_tools = {MAX_TOOLS}
{store}
[plugins.normalize]
relocate_volatile = true
[plugins.tools]
lazy = true
lazy_threshold_tokens = 0
[plugins.thinking]
rules = [{{max_thinking_tokens = 2048, max_effort = "medium", mode = "clamp"}}]
""")
    return path


def send_everything(url: str) -> int:
    """Every kind of exchange, each with the planted secrets; the number of LLM exchanges."""
    exchanges = 0
    with httpx.Client(base_url=url, headers=HEADERS, params=QUERY, timeout=30) as client:
        for route in ROUTES:
            for stream in (False, True):
                body = chat_body(route, "Weather in Paris, 2026-12-03 10:00?", stream=stream,
                                 system="You are terse. Today is 2026-12-03.", tools=TOOLS[route])
                assert client.post(route, json=body).status_code == 200
                exchanges += 1
        refusals = [
            ("/v1/chat/completions", b"{not json", None),
            ("/v1/messages", json.dumps(chat_body("/v1/messages", "x" * MAX_BODY)).encode(), 413),
            ("/v1/responses", json.dumps(chat_body("/v1/responses", "hi", tools=TOOLS[
                "/v1/responses"] * (MAX_TOOLS + 1))).encode(), 400),
        ]
        for route, content, status in refusals:
            answer = client.post(route, content=content)
            assert status is None or answer.status_code == status
            exchanges += 1
        reset = client.post("/v1/messages", json=chat_body("/v1/messages", "hi"),
                            headers={"x-sim-fail": "reset-before"})
        assert reset.status_code == 502
        exchanges += 1
        assert client.get("/v1/models").status_code == 200  # relayed, not an LLM exchange
        assert client.get("/v1/%2e%2e/admin").status_code == 400  # httpx keeps %2e as sent
    return exchanges


def wait_for_ledger(url: str, exchanges: int) -> dict[str, httpx.Response]:
    """The live report in both formats once the ledger holds every exchange."""
    headers = {"authorization": f"Bearer {SECRETS['admin']}"}
    deadline = time.monotonic() + 30
    while True:
        answer = httpx.get(url + "/tokenopt/report", headers=headers, timeout=30)
        if answer.json()["totals"]["requests"] >= exchanges:
            break
        assert time.monotonic() < deadline, answer.json()["totals"]
        time.sleep(0.05)  # polling the child's ledger: it writes off the request path
    html = httpx.get(url + "/tokenopt/report", params={"format": "html", "group_by": "tenant"},
                     headers=headers, timeout=30)
    return {"live-report.json": answer, "live-report.html": html}


@pytest.mark.parametrize("shared", [False, True], ids=["sqlite-ledger", "redis-store"])
def test_no_planted_secret_reaches_any_output(
    sim: Sim, tmp_path: Path, make_redis_server: Callable[..., RedisServer], shared: bool
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    server = make_redis_server(password=SECRETS["redis"]) if shared else None
    cfg = config(tmp_path / "tokenopt.toml", sim.url, out, server.url if server else None)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "tokenopt.cli", "--log-level", "debug", "serve",
            "--config", str(cfg), "--port", str(port), "--record", str(out / "traffic.jsonl")]
    with running(argv, url + "/healthz", out / "sidecar.log", env={"XDG_DATA_HOME": str(out)}):
        exchanges = send_everything(url)
        for name, answer in wait_for_ledger(url, exchanges).items():
            assert answer.status_code == 200
            (out / name).write_bytes(answer.content)
    for fmt in REPORT_FORMATS:
        assert main(["report", "--config", str(cfg), "--format", fmt, "--group-by", "tenant",
                     "--out", str(out / f"report.{fmt}")]) == 0

    outputs = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()}
    if server is not None:
        outputs["redis"] = redis_dump(redis.Redis(port=server.port, password=server.password))
    leaks = [(name, output) for name, secret in SECRETS.items()
             for output, data in outputs.items() if secret.encode() in data]
    assert leaks == []
    # The outputs are real: a debug log with access lines, ledger rows, recorded lines, keys.
    log = outputs["sidecar.log"].decode(errors="replace")
    assert " DEBUG " in log and "/v1/models?key=***&beta=true" in log
    assert json.loads(outputs["report.json"])["totals"]["requests"] == exchanges
    assert len(outputs["traffic.jsonl"].splitlines()) == 7  # the 6 answered, and the reset one
    assert not shared or b"sec:" in outputs["redis"]
    # The upstream did get the credentials it is owed, so they were there to leak.
    received = [dict(headers) for _, _, headers, _ in sim.app.state.received]
    assert any(h.get("x-api-key") == SECRETS["x-api-key"] for h in received)
    assert any(SECRETS["cookie"] in h.get("cookie", "") for h in received)

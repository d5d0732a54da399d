"""The sidecar as shipped (plugins from settings, the real ledger) for the security tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import redis

from tests.integration.support import QueueSink, Sidecar, settings_for
from tokenopt.engine import Engine
from tokenopt.proxy import create_app
from tokenopt.serving import ServerThread

ROUTES = ("/v1/chat/completions", "/v1/responses", "/v1/messages")
MODELS = {"/v1/chat/completions": "gpt-4.1", "/v1/responses": "gpt-5",
          "/v1/messages": "claude-sonnet-4-5"}
ADMIN = "admin-token-for-the-security-tests"


@contextlib.contextmanager
def shipped_sidecar(upstream: str, /, **overrides: Any) -> Iterator[Sidecar]:
    """A sidecar whose plugins come from `overrides["plugins"]`, as `tokenopt serve` builds it."""
    settings = settings_for(upstream, **overrides)
    sink = QueueSink()
    engine = Engine.from_settings(settings, sinks=[sink])
    with ServerThread(create_app(settings, engine=engine)) as url:
        yield Sidecar(url, engine, sink)


def chat_body(route: str, text: str, *, stream: bool = False, system: str | None = None,
              tools: list[dict[str, Any]] | None = None,
              history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A minimal request in `route`'s own form."""
    messages = [*(history or []), {"role": "user", "content": text}]
    body: dict[str, Any] = {"model": MODELS[route], "stream": stream}
    if tools:
        body["tools"] = tools
    if route == "/v1/messages":
        body.update(max_tokens=64, messages=messages)
        if system is not None:
            body["system"] = system
    elif route == "/v1/responses":
        body["input"] = messages
        if system is not None:
            body["instructions"] = system
    else:
        body["messages"] = ([{"role": "system", "content": system}] if system else []) + messages
    return body


def admin(token: str = ADMIN) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def report(url: str, **params: str) -> httpx.Response:
    return httpx.get(url + "/tokenopt/report", params=params, headers=admin(), timeout=30)


def redis_dump(client: redis.Redis, match: str = "*") -> bytes:
    """Every key matching `match`, with its value whatever its type, as one blob to search."""
    parts: list[Any] = []  # bytes: the client is built without decode_responses
    with client:
        for key in client.scan_iter(match=match, count=1000):
            kind = client.type(key)
            if kind == b"string":
                values = [client.get(key) or b""]
            elif kind == b"hash":
                values = [b for pair in client.hgetall(key).items() for b in pair]
            elif kind == b"set":
                values = list(client.smembers(key))
            else:
                values = client.lrange(key, 0, -1)
            parts += [key, *values]
    return b"\n".join(parts)

"""Token encodings load at start-up, not on the first request (~1 s each)."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.testclient import TestClient

from tokenopt.asgi import TokenOptMiddleware
from tokenopt.engine import Engine
from tokenopt.proxy import create_app
from tokenopt.settings import Settings
from tokenopt.tokens import TokenCounter


def loaded(counter: TokenCounter) -> set[str]:
    return set(counter._encodings)


def settings(tmp_path: Path) -> Settings:
    return Settings.load(ledger={"path": str(tmp_path / "ledger.sqlite")},
                         upstream={"url": "http://127.0.0.1:9"})


def test_the_sidecar_loads_the_encodings_before_it_serves(tmp_path: Path) -> None:
    engine = Engine.from_settings(settings(tmp_path))
    assert loaded(engine.counter) == set()
    with TestClient(create_app(settings(tmp_path), engine=engine)):
        names = {engine.counter.encoding_name("gpt-4.1"), engine.counter.encoding_name("claude-x")}
        assert loaded(engine.counter) == names


def test_the_mounted_middleware_loads_them_at_the_apps_startup(tmp_path: Path) -> None:
    engine = Engine.from_settings(settings(tmp_path))
    with TestClient(TokenOptMiddleware(Starlette(), engine=engine)):
        assert engine.counter.encoding_name("claude-x") in loaded(engine.counter)

"""Large tools that never repeat do not grow the process: memo tables stay in budget."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from benchmarks.inprocess import answering_app, call
from tokenopt.asgi import TokenOptMiddleware
from tokenopt.engine import Engine
from tokenopt.memo import TABLES
from tokenopt.settings import Settings

BUDGET = 2 << 20  # per table, patched down from the default so the test stays small
ROUTE = "/v1/chat/completions"
FILLER = "tool text that never repeats " * 4000  # ~116 KB a tool


def request(serial: int) -> bytes:
    tools = [{"type": "function", "function": {
        "name": f"t{serial}_{k}", "description": f"{serial} {k} {FILLER}",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}
        for k in range(4)]
    body: dict[str, Any] = {"model": "gpt-4.1", "tools": tools,
                            "messages": [{"role": "user", "content": f"hi {serial}"}]}
    return json.dumps(body).encode()


@pytest.mark.anyio
async def test_unique_large_tool_sets_leave_the_memo_tables_within_budget(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Engine.from_settings(Settings.load(ledger={"path": str(tmp_path / "l.sqlite")}))
    app = TokenOptMiddleware(answering_app(ROUTE), engine=engine)
    try:
        await call(app, ROUTE, request(0), "c0")  # imports, encodings: before the baseline
        await engine.drain()
        bounded = [table for table in TABLES if table.max_bytes is not None]
        assert len(bounded) >= 7  # tool entries, forms (two), canonical, marked, written, dedupe
        for table in bounded:
            table.clear()
            monkeypatch.setattr(table, "max_bytes", BUDGET)
        tracemalloc.start()
        baseline = tracemalloc.get_traced_memory()[0]
        sent = 0
        for serial in range(1, 61):  # ~28 MB of tools, none seen twice
            body = request(serial)
            sent += len(body)
            await call(app, ROUTE, body, f"c{serial}")
            await engine.drain()
        held = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
        await engine.aclose()
    assert all(table.size <= BUDGET for table in bounded)
    # Each table holds at most its budget (many share the same objects); unbounded, the
    # tables kept everything sent, several times over.
    assert held < len(bounded) * BUDGET + 4 * (1 << 20) < sent, (held, sent)

"""Large tools that never repeat do not grow the process: memo tables stay in budget."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchmarks.inprocess import answering_app, call
from tokenopt.asgi import TokenOptMiddleware
from tokenopt.engine import Engine
from tokenopt.memo import LRU, TABLES
from tokenopt.plugins.tools import catalog, slim
from tokenopt.settings import Settings
from tokenopt.tools.text import clear_caches

BUDGET = 2 << 20  # per table, patched down from the default so the test stays small
ROUTE = "/v1/chat/completions"
FILLER = "tool text that never repeats " * 4000  # ~116 KB a tool
LAZY_SLIM = {"tools": {"lazy": True, "lazy_threshold_tokens": 0, "mode": "search", "slim": True}}


def words(seed: str, count: int) -> str:
    """`count` words of 100 characters that no other seed gives: none is ever seen twice."""
    return " ".join(f"{seed}w{i}".ljust(100, "z") for i in range(count))


def lazy_request(serial: int) -> bytes:
    """Large tools and a long question, all new: what the word cache, the slimmed-schema memo
    and the catalog of indexes would keep, unbounded (a title repeating its property's name
    makes every schema one that slimming changes)."""
    tools = [{"type": "function", "function": {
        "name": f"t{serial}_{k}", "description": words(f"d{serial}_{k}_", 80),
        "parameters": {"type": "object", "properties": {"q": {
            "type": "string", "title": "Q",
            "description": words(f"p{serial}_{k}_", 80) + " " + FILLER}}}}}
        for k in range(4)]
    body: dict[str, Any] = {"model": "gpt-4.1", "tools": tools, "messages": [
        {"role": "user", "content": "find " + words(f"u{serial}_", 300)}]}
    return json.dumps(body).encode()


def request(serial: int) -> bytes:
    tools = [{"type": "function", "function": {
        "name": f"t{serial}_{k}", "description": f"{serial} {k} {FILLER}",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}
        for k in range(4)]
    body: dict[str, Any] = {"model": "gpt-4.1", "tools": tools,
                            "messages": [{"role": "user", "content": f"hi {serial}"}]}
    return json.dumps(body).encode()


async def held_by_unique_requests(
        make: Callable[[int], bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        **settings: Any) -> tuple[int, int, list[LRU[Any]]]:
    """Bytes still allocated after 60 requests none of whose content repeats, the bytes
    sent, and the byte-bounded memo tables (their budgets patched down to `BUDGET`)."""
    engine = Engine.from_settings(Settings.load(ledger={"path": str(tmp_path / "l.sqlite")},
                                                **settings))
    app = TokenOptMiddleware(answering_app(ROUTE), engine=engine)
    try:
        await call(app, ROUTE, make(0), "c0")  # imports, encodings: before the baseline
        await engine.drain()
        bounded = [table for table in TABLES if table.max_bytes is not None]
        for table in bounded:
            table.clear()
            monkeypatch.setattr(table, "max_bytes", BUDGET)
        clear_caches()
        tracemalloc.start()
        baseline = tracemalloc.get_traced_memory()[0]
        sent = 0
        for serial in range(1, 61):
            body = make(serial)
            sent += len(body)
            await call(app, ROUTE, body, f"c{serial}")
            await engine.drain()
        held = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
        await engine.aclose()
    assert all(table.size <= BUDGET for table in bounded)
    return held, sent, bounded


@pytest.mark.anyio
async def test_unique_large_tool_sets_leave_the_memo_tables_within_budget(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    held, sent, bounded = await held_by_unique_requests(request, tmp_path, monkeypatch)
    assert len(bounded) >= 7  # tool entries, forms (two), canonical, marked, written, dedupe
    used = [table for table in bounded if len(table)]  # other tests' tables stay empty
    # Each table holds at most its budget (many share the same objects); unbounded, the
    # tables kept everything sent, several times over.
    assert held < len(used) * BUDGET + 4 * (1 << 20) < sent, (held, sent)


@pytest.mark.anyio
async def test_lazy_tools_and_slimming_of_unique_large_requests_stay_within_budget(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    held, sent, bounded = await held_by_unique_requests(lazy_request, tmp_path, monkeypatch,
                                                        plugins=LAZY_SLIM)
    # The slimmed schemas and the tool-set indexes are byte-bounded tables too.
    used = [table for table in bounded if len(table)]
    assert catalog._indexes in used and slim._SLIMMED in used
    # Unbounded (every 100-character word cached, each slimmed schema kept with its text,
    # the catalog bounded by count only), these 34 MB of requests held 86 MB; now 10 MB.
    assert held < len(used) * BUDGET + 4 * (1 << 20) < sent, (held, sent)

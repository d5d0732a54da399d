"""The ledger: reported usage as the upstream sent it, costs to the cent, shared through Redis."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.support import Sim, running_sidecar, settings_for
from tokenopt.dialects.base import Usage
from tokenopt.ledger import LedgerEntry, SqliteLedger, entry_from, open_ledger
from tokenopt.ledger.redis import RedisLedger
from tokenopt.pricing import PriceBook
from tokenopt.records import ExchangeRecord
from tokenopt.report import build_report
from tokenopt.store import open_store

KEY = {"authorization": "Bearer sk-ledger", "x-api-key": "sk-ledger"}
REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("/v1/chat/completions", {"model": "gpt-5", "reasoning_effort": "low",
                              "messages": [{"role": "user", "content": "Hi"}]}),
    ("/v1/responses", {"model": "gpt-5", "input": "Hi", "reasoning": {"effort": "medium"}}),
    ("/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 3000,
                      "thinking": {"type": "enabled", "budget_tokens": 2048},
                      "system": [{"type": "text", "text": "alpha beta " * 700,
                                  "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
                      "messages": [{"role": "user", "content": "Hi"}]}),
]


def read(path: Path) -> list[LedgerEntry]:
    ledger = SqliteLedger(path)
    try:
        return asyncio.run(ledger.query())
    finally:
        asyncio.run(ledger.aclose())


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_reported_usage_is_what_the_upstream_sent(sim: Sim, tmp_path: Path, stream: bool) -> None:
    path = tmp_path / "ledger.sqlite"
    with running_sidecar(sim.url, ledger={"path": str(path)}) as sidecar:
        for route, body in REQUESTS * 2:  # twice: the second Anthropic call reads its cache
            response = httpx.post(sidecar.url + route, json={**body, "stream": stream},
                                  headers=KEY, timeout=30)
            assert response.status_code == 200, response.text
            sidecar.sink.next()

    entries = read(path)
    bills = list(sim.app.state.bills)
    assert len(entries) == len(bills) == 6
    for entry, bill in zip(entries, bills, strict=True):
        counts = bill.counts
        assert (entry.route, entry.model, entry.stream) == (bill.route, bill.model, stream)
        assert (entry.input_tokens, entry.cached_input_tokens, entry.cache_write_tokens,
                entry.cache_write_1h_tokens, entry.output_tokens, entry.reasoning_tokens) == (
            counts.input_tokens, counts.cached_tokens, counts.cache_write_tokens,
            counts.cache_write_1h_tokens, counts.output_tokens, counts.reasoning_tokens)
        assert entry.tenant.startswith("t_") and "sk-ledger" not in json.dumps(entry.as_json())
    anthropic = [e for e in entries if e.route == "/v1/messages"]
    assert anthropic[0].cache_write_1h_tokens > 1024 and anthropic[1].cached_input_tokens > 1024


def record(model: str, usage: Usage, **fields: Any) -> ExchangeRecord:
    route = "/v1/messages" if model.startswith("claude") else "/v1/chat/completions"
    return ExchangeRecord(ts=time.time(), tenant="t_x", route=route, dialect="d", model=model,
                          conversation="c", stream=False, status=200, usage=usage, **fields)


@pytest.mark.parametrize(("model", "usage", "after", "reasoning"), [
    # gpt-4.1: 6,000 uncached × $2 + 4,000 cached × $0.50 + 500 out × $8 (per MTok)
    ("gpt-4.1", Usage(input_tokens=10_000, cached_input_tokens=4_000, output_tokens=500),
     0.012 + 0.002 + 0.004, 0.0),
    # gpt-5: 8,000 × $0.125 cached + 2,000 out × $10, of which 1,500 reasoning = $0.015
    ("gpt-5", Usage(input_tokens=8_000, cached_input_tokens=8_000, output_tokens=2_000,
                    reasoning_tokens=1_500), 0.001 + 0.02, 0.015),
    # claude-sonnet-4-6: 5,000 × $3 + 2,000 read × $0.30 + 1,000 5m × $3.75 + 2,000 1h × $6
    # + 1,000 out × $15
    ("claude-sonnet-4-6", Usage(input_tokens=10_000, cached_input_tokens=2_000,
                                cache_write_tokens=3_000, cache_write_1h_tokens=2_000,
                                output_tokens=1_000), 0.015 + 0.0006 + 0.00375 + 0.012 + 0.015, 0.0),
])
def test_costs_match_the_price_library_to_the_cent(
    model: str, usage: Usage, after: float, reasoning: float
) -> None:
    entry = entry_from(record(model, usage), PriceBook())
    assert round(entry.cost_usd_after, 2) == round(after, 2)
    assert entry.cost_usd_after == pytest.approx(after, abs=1e-9)
    assert entry.reasoning_cost_usd == pytest.approx(reasoning, abs=1e-9)
    assert entry.priced


def test_cost_before_prices_what_the_client_sent() -> None:
    # The client's own request broke the cache 3,000 tokens in (normalize's finding) and was
    # 10% longer; tokenopt's forwarded version read 8,000 of 10,000 tokens from cache.
    usage = Usage(input_tokens=10_000, cached_input_tokens=8_000, output_tokens=100)
    notes = {"normalize": {"cache_break": {"cause": "tool order changed", "tokens_lost": 3_000}}}
    entry = entry_from(record("gpt-4.1", usage, plugin_notes=notes,
                              tokens_before={"tools": 5_500, "system": 500, "messages": 5_000},
                              tokens_after={"tools": 4_500, "system": 500, "messages": 5_000}),
                       PriceBook())
    # before: 11,000 input of which 5,000 cached → 6,000 × 2 + 5,000 × 0.5 + 100 × 8
    assert entry.cost_usd_before == pytest.approx(0.012 + 0.0025 + 0.0008)
    # after: 2,000 × 2 + 8,000 × 0.5 + 100 × 8
    assert entry.cost_usd_after == pytest.approx(0.004 + 0.004 + 0.0008)
    assert entry.tokens_saved == 1_000 and entry.cache_break == "tool order changed"


LAZY_TURN = {"tokens_before": {"tools": 34_000, "system": 500, "messages": 3_000},
             "tokens_after": {"tools": 9_000, "system": 500, "messages": 3_000}}


@pytest.mark.parametrize(("cached", "notes", "before_cached"), [
    # The forwarded request read past its 9,000 tool tokens: the client's 34,000 would
    # have been read too (its prefix held), 25,000 more than tokenopt's.
    (12_000, {}, 37_000),
    (12_000, {"normalize": {"cache_break": {"segment": "messages", "at": 4}}}, 37_000),
    # The first turn, a read that stopped inside the tools, a client whose own cache broke
    # in its tools: nothing more would have been cached for the client.
    (0, {}, 0),
    (5_000, {}, 5_000),
    (12_000, {"normalize": {"cache_break": {"segment": "tools", "tokens_lost": 0}}}, 12_000),
])
def test_cost_before_reads_the_withheld_tools_from_the_cache_the_client_would_have_hit(
        cached: int, notes: dict[str, Any], before_cached: int) -> None:
    usage = Usage(input_tokens=12_500, cached_input_tokens=cached, output_tokens=100)
    entry = entry_from(record("gpt-4.1", usage, plugin_notes=notes, **LAZY_TURN), PriceBook())
    # before: 37,500 input tokens (12,500 scaled by 37,500 / 12,500 counted)
    expected = (37_500 - before_cached) * 2e-6 + before_cached * 0.5e-6 + 100 * 8e-6
    assert entry.cost_usd_before == pytest.approx(expected)
    assert entry.tokens_saved == 25_000


@pytest.mark.parametrize(("cached", "before_cached"), [
    (3_000, 37_000),  # a warm conversation: all but the 500 tokens the client added
    (0, 0),  # this request read nothing from the cache: the conversation's cache is cold
])
def test_cost_before_reads_the_clients_held_prefix_from_the_cache(
        cached: int, before_cached: int) -> None:
    # tokenopt's request read only 3,000 of its 12,500 tokens from the cache (it loaded a tool
    # mid-conversation); the client's own prompt held, and it added 500 tokens since.
    notes = {"normalize": {"client_prefix": {"messages": 6, "new_tokens": 500}}}
    usage = Usage(input_tokens=12_500, cached_input_tokens=cached, output_tokens=100)
    entry = entry_from(record("gpt-4.1", usage, plugin_notes=notes, **LAZY_TURN), PriceBook())
    expected = (37_500 - before_cached) * 2e-6 + before_cached * 0.5e-6 + 100 * 8e-6
    assert entry.cost_usd_before == pytest.approx(expected)


def test_retention_drops_old_entries(tmp_path: Path) -> None:
    old = entry_from(record("gpt-4.1", Usage(input_tokens=1)), PriceBook())
    old.ts = time.time() - 10 * 86_400
    ledger = SqliteLedger(tmp_path / "l.sqlite", retention_days=30)
    asyncio.run(ledger.append([old]))
    asyncio.run(ledger.aclose())
    assert len(read(tmp_path / "l.sqlite")) == 1
    shorter = SqliteLedger(tmp_path / "l.sqlite", retention_days=7)  # pruned when opened
    assert asyncio.run(shorter.query()) == []
    asyncio.run(shorter.aclose())


def test_two_replicas_sharing_redis_report_as_one(
    sim: Sim, redis_url: str, tmp_path: Path
) -> None:
    prefix = f"ledgertest{time.monotonic_ns()}:"
    shared = {"store": {"redis_url": redis_url, "key_prefix": prefix}}
    with running_sidecar(sim.url, ledger={"path": str(tmp_path / "a.sqlite")}, **shared) as a, \
            running_sidecar(sim.url, ledger={"path": str(tmp_path / "b.sqlite")}, **shared) as b:
        for sidecar, (route, body) in [(a, REQUESTS[0]), (b, REQUESTS[1]), (b, REQUESTS[0])]:
            assert httpx.post(sidecar.url + route, json=body, headers=KEY).status_code == 200
            sidecar.sink.next()

    async def combined() -> dict[str, Any]:
        settings = settings_for(sim.url, ledger={"path": str(tmp_path / "reader.sqlite")}, **shared)
        store = open_store(redis_url, key_prefix=prefix)
        ledger = open_ledger(settings, store)
        try:
            assert isinstance(ledger, RedisLedger)
            return build_report(await ledger.query(), group_by="route").as_json()
        finally:
            await ledger.aclose()
            await store.aclose()

    report = asyncio.run(combined())
    assert report["totals"]["requests"] == 3
    assert {g["key"]: g["requests"] for g in report["groups"]} == {
        "/v1/chat/completions": 2, "/v1/responses": 1}
    assert read(tmp_path / "a.sqlite") == read(tmp_path / "b.sqlite") == []  # nothing spilled


def test_a_redis_outage_keeps_entries_locally(tmp_path: Path,
                                              make_redis_server: Callable[..., Any]) -> None:
    server = make_redis_server()
    url = server.url
    entry = entry_from(record("gpt-4.1", Usage(input_tokens=5, output_tokens=1)), PriceBook())

    async def write_during_outage() -> list[LedgerEntry]:
        store = open_store(url, key_prefix="outage:")
        local = SqliteLedger(tmp_path / "local.sqlite")
        ledger = RedisLedger(store.primary.client, key_prefix="outage:",  # type: ignore[attr-defined]
                             retention_days=1, local=local)
        server.stop()
        await ledger.append([entry])
        found = await local.query()
        await ledger.aclose()
        await store.aclose()
        return found

    assert [e.ts for e in asyncio.run(write_during_outage())] == [entry.ts]

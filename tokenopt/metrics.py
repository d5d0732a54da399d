"""Prometheus metrics: one registry per engine, fed by the exchange records.

Served at `/metrics` by the sidecar; the mounted form exposes it when
`TokenOptMiddleware(app, metrics_path="/metrics")` is given a path.

With `PROMETHEUS_MULTIPROC_DIR` set (`tokenopt serve --workers N` sets it for its
workers), prometheus_client keeps every process's values in files there, and a scrape
of any worker reads the sum over all of them, workers that have since died included.
"""

from __future__ import annotations

import os
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

from tokenopt.ledger.entry import entry_from
from tokenopt.pricing import PriceBook
from tokenopt.records import ExchangeRecord
from tokenopt.types import Receive, Scope, Send

LABELS = ("route", "model")
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250)
MULTIPROCESS_DIR: Final = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own switch


class Metrics:
    """Counters and the added-latency histogram; also a record sink."""

    def __init__(self, prices: PriceBook) -> None:
        self.prices = prices
        self.registry = CollectorRegistry(auto_describe=True)

        def counter(name: str, doc: str) -> Counter:
            return Counter(f"tokenopt_{name}", doc, LABELS, registry=self.registry)

        self.requests = counter("requests", "LLM requests seen")
        self.tokens_before = counter("tokens_before", "Prompt tokens as clients sent them")
        self.tokens_after = counter("tokens_after", "Prompt tokens as forwarded")
        self.input_tokens = counter("input_tokens", "Input tokens the upstream reported")
        self.cached_tokens = counter("cached_input_tokens", "Input tokens read from cache")
        self.output_tokens = counter("output_tokens", "Output tokens (reasoning included)")
        self.cost_saved = counter("cost_saved_usd", "Dollars saved against the requests as sent")
        self.fail_opens = counter("fail_opens", "Requests forwarded unchanged after a failure")
        self.search_detours = counter("search_detours", "Tool searches tokenopt answered itself")
        self.detour_cost = counter("search_detour_cost_usd", "Dollars of the search detours' calls")
        self.detours_unfinished = counter(
            "search_detours_unfinished", "Detours that ended without the model's final answer")
        self.added_latency = Histogram(
            "tokenopt_added_latency_ms", "Latency tokenopt added before forwarding (ms)",
            ("route",), buckets=LATENCY_BUCKETS, registry=self.registry)
        self.exposed = _all_processes() or self.registry

    async def write(self, record: ExchangeRecord) -> None:
        labels = (record.route, record.model or "unknown")
        entry = entry_from(record, self.prices)
        self.requests.labels(*labels).inc()
        self.tokens_before.labels(*labels).inc(sum(record.tokens_before.values()))
        self.tokens_after.labels(*labels).inc(sum(record.tokens_after.values()))
        self.input_tokens.labels(*labels).inc(entry.input_tokens)
        self.cached_tokens.labels(*labels).inc(entry.cached_input_tokens)
        self.output_tokens.labels(*labels).inc(entry.output_tokens)
        self.cost_saved.labels(*labels).inc(max(0.0, entry.cost_usd_before - entry.cost_usd_after))
        if record.fail_open:
            self.fail_opens.labels(*labels).inc()
        if entry.search_detours:
            self.search_detours.labels(*labels).inc(entry.search_detours)
            self.detour_cost.labels(*labels).inc(entry.detour_cost_usd)
        tools = record.plugin_notes.get("tools", {})
        if tools.get("unfinished") or tools.get("failed"):
            self.detours_unfinished.labels(*labels).inc()
        self.added_latency.labels(record.route).observe(record.added_latency_ms)

    content_type = CONTENT_TYPE_LATEST

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.exposed)

    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The exposition endpoint as a bare ASGI app (the mounted form's `metrics_path`)."""
        body = self.exposition()
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", CONTENT_TYPE_LATEST.encode()),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _all_processes() -> CollectorRegistry | None:
    """A registry reading every process's values, in multiprocess mode; else None."""
    path = os.environ.get(MULTIPROCESS_DIR)
    if not path:
        return None
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return registry

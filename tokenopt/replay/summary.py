"""Totals of one replay run, priced: the numbers `tokenopt replay` prints and emits as JSON."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from tokenopt.dialects.base import Usage
from tokenopt.pricing import Cost, PriceBook
from tokenopt.sim.bills import Bill

# Answers that were a search for tools: tokenopt's own detour, the provider's native search
# inside a call, or a client-run Responses tool search.
SEARCH_OUTCOMES = frozenset({"search", "native_search", "client_search"})


@dataclass
class Totals:
    """Usage and cost of a set of upstream calls; `input_tokens` is the whole prompt."""

    requests: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    input_cost_usd: float = 0.0
    output_cost_usd: float = 0.0
    cost_usd: float = 0.0
    tool_misses: int = 0
    search_detours: int = 0
    unpriced_requests: int = 0
    estimated_tokens: bool = False

    @property
    def cached_share(self) -> float:
        """The share of input tokens read from cache."""
        return self.cached_input_tokens / self.input_tokens if self.input_tokens else 0.0

    def add(self, bill: Bill, cost: Cost) -> None:
        counts = bill.counts
        self.requests += 1
        self.input_tokens += counts.input_tokens
        self.cached_input_tokens += counts.cached_tokens
        self.cache_write_tokens += counts.cache_write_tokens
        self.output_tokens += counts.output_tokens
        self.reasoning_tokens += counts.reasoning_tokens
        self.tool_misses += bill.outcome == "tool_miss"
        self.search_detours += bill.outcome in SEARCH_OUTCOMES
        self.estimated_tokens |= bill.estimate
        self.unpriced_requests += not cost.priced
        self.input_cost_usd += cost.input_usd
        self.output_cost_usd += cost.output_usd
        self.cost_usd += cost.total_usd

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("input_cost_usd", "output_cost_usd", "cost_usd"):
            data[name] = round(data[name], 6)
        data["cached_share"] = round(self.cached_share, 4)
        return data


@dataclass
class RunSummary:
    """A run's totals, and the same broken down by model."""

    totals: Totals = field(default_factory=Totals)
    by_model: dict[str, Totals] = field(default_factory=dict)

    @classmethod
    def of(cls, bills: Iterable[Bill], prices: PriceBook) -> RunSummary:
        summary = cls()
        for bill in bills:
            cost = prices.cost(bill.model, usage_of(bill), provider=provider_of(bill.route))
            summary.totals.add(bill, cost)
            summary.by_model.setdefault(bill.model, Totals()).add(bill, cost)
        return summary

    def as_json(self) -> dict[str, Any]:
        return {**self.totals.as_json(),
                "by_model": {model: t.as_json() for model, t in sorted(self.by_model.items())}}


def usage_of(bill: Bill) -> Usage:
    counts = bill.counts
    return Usage(
        input_tokens=counts.input_tokens,
        cached_input_tokens=counts.cached_tokens,
        cache_write_tokens=counts.cache_write_tokens,
        cache_write_1h_tokens=counts.cache_write_1h_tokens,
        output_tokens=counts.output_tokens,
        reasoning_tokens=counts.reasoning_tokens,
    )


def provider_of(route: str) -> str:
    return "anthropic" if route == "/v1/messages" else "openai"

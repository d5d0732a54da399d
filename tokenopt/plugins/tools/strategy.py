"""`mode = "auto"`: keep every tool, search for them, or let the provider search — by price.

Withholding tools saves their tokens on every turn, but each tool loaded
later changes the prompt after the tools, so what follows (system text and
history) is written to the cache again, and the search itself is one more
call. Keeping every tool costs only cache reads once cached (0.1× input on
most models, 0.25× on gpt-4.1). The choice prices each strategy's tool-related
usage over the turns a conversation is expected to have, at the model's real
prices, and keeps the cheapest; the estimates are recorded with the choice.
"""

from __future__ import annotations

from dataclasses import dataclass

from tokenopt.dialects.base import Usage
from tokenopt.pricing import PriceBook

SEARCH_CALL_TOKENS = 40  # output of one search call: the tool call and its query


@dataclass(frozen=True, slots=True)
class Shape:
    """Token sizes the choice works from (tools, and what a load rewrites)."""

    all_tools: int  # every function tool, as the client sent them
    lazy_tools: int  # what the search strategy forwards: preloaded + pinned + the search tool
    native_tools: int  # what stays visible with provider search (non-deferred tools + its tool)
    per_tool: int  # the average tool a search loads
    rest: int  # system and history: rewritten after every load
    turns: int
    loads: float  # expected searches over those turns
    k: int  # tools loaded per search


def estimates(shape: Shape, model: str | None, provider: str, prices: PriceBook,
              *, native: bool) -> dict[str, float]:
    """Dollars of each strategy's tool-related usage over the expected turns."""
    anthropic = provider == "anthropic"
    n, loads = shape.turns, shape.loads

    def cached_for(tokens: int, rewrites: float = 0.0, extra_calls: float = 0.0) -> Usage:
        # Written once, then read; every rewrite pays the write again (uncached on OpenAI).
        written = tokens * (1 + rewrites)
        sent = tokens * (n + extra_calls)
        return Usage(input_tokens=round(sent), cached_input_tokens=round(max(sent - written, 0)),
                     cache_write_tokens=round(written) if anthropic else 0,
                     output_tokens=round(extra_calls * SEARCH_CALL_TOKENS))

    keep = cached_for(shape.all_tools)
    # Each load: the turn's request is re-issued with the new tools (one more call), and
    # the tools grown plus everything after them are written anew.
    grown = shape.lazy_tools + loads * shape.k * shape.per_tool / 2
    search = cached_for(round(grown + shape.rest), rewrites=loads, extra_calls=loads)
    search_rest = cached_for(shape.rest)  # what keeping the rest cached costs anyway
    out = {
        "keep": prices.cost(model, keep, provider=provider).total_usd,
        "search": max(prices.cost(model, search, provider=provider).total_usd
                      - prices.cost(model, search_rest, provider=provider).total_usd, 0.0),
    }
    if native:
        # Loaded schemas are appended after the history: nothing before them is rewritten.
        loaded = cached_for(round(shape.native_tools + loads * shape.k * shape.per_tool / 2))
        out["native"] = prices.cost(model, loaded, provider=provider).total_usd
    return out


def choose(costs: dict[str, float], priced: bool) -> tuple[str, str]:
    """The cheapest strategy and why (unpriced models: withhold, since tokens are tokens)."""
    if not priced:
        return ("native" if "native" in costs else "search"), "model has no price: fewest tokens"
    best = min(costs, key=lambda name: (costs[name], name != "keep"))
    others = ", ".join(f"{name} ${value:.4f}" for name, value in sorted(costs.items()))
    return best, f"cheapest over the expected turns ({others})"

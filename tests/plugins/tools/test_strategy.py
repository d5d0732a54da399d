"""`mode = "auto"`: the strategy priced cheapest over the expected turns is the one chosen."""

from __future__ import annotations

import pytest

from tokenopt.plugins.tools.native import supports_native
from tokenopt.plugins.tools.strategy import Shape, choose, estimates
from tokenopt.pricing import PriceBook

PRICES = PriceBook()


def shape(all_tools: int, rest: int, *, per_tool: int = 150, loads: float = 3.0) -> Shape:
    return Shape(all_tools=all_tools, lazy_tools=per_tool * 8 + 120, native_tools=60 + per_tool,
                 per_tool=per_tool, rest=rest, turns=10, loads=loads, k=5)


@pytest.mark.parametrize(("model", "provider"), [("gpt-4.1", "openai"), ("gpt-5", "openai"),
                                                 ("claude-sonnet-4-5", "anthropic")])
def test_hundreds_of_tools_and_a_short_history_are_withheld(model: str, provider: str) -> None:
    costs = estimates(shape(36_000, 1_500), model, provider, PRICES, native=False)
    assert costs["search"] < costs["keep"]
    assert choose(costs, priced=True)[0] == "search"


@pytest.mark.parametrize(("model", "provider"), [("gpt-4.1", "openai"),
                                                 ("claude-sonnet-4-5", "anthropic")])
def test_few_tools_before_a_long_history_are_kept(model: str, provider: str) -> None:
    # Every load rewrites the 30K-token history; the 5K tools cost little once cached.
    costs = estimates(shape(5_000, 30_000), model, provider, PRICES, native=False)
    assert costs["keep"] < costs["search"]
    strategy, why = choose(costs, priced=True)
    assert strategy == "keep" and "keep $" in why and "search $" in why


def test_keeping_costs_cache_reads_in_proportion_to_the_cached_rate() -> None:
    # gpt-4.1 reads cache at 0.25x, gpt-5 at 0.1x: keeping 36K tools costs relatively more.
    def keep_share(model: str) -> float:
        costs = estimates(shape(36_000, 1_500), model, "openai", PRICES, native=False)
        return costs["search"] / costs["keep"]

    assert keep_share("gpt-4.1") < keep_share("gpt-5")


def test_native_search_wins_where_the_upstream_serves_it() -> None:
    costs = estimates(shape(36_000, 20_000), "claude-sonnet-4-5", "anthropic", PRICES, native=True)
    assert costs["native"] < costs["search"] and costs["native"] < costs["keep"]
    assert choose(costs, priced=True)[0] == "native"


def test_an_unpriced_model_withholds_tools_since_tokens_are_tokens() -> None:
    costs = estimates(shape(36_000, 1_500), "house-model-7b", "openai", PRICES, native=False)
    assert choose(costs, priced=False) == ("search", "model has no price: fewest tokens")


@pytest.mark.parametrize(("dialect", "model", "served"), [
    ("anthropic-messages", "claude-sonnet-4-5-20250929", True),
    ("anthropic-messages", "claude-opus-4-6", True),
    ("anthropic-messages", "claude-haiku-4-5", False),  # no tool search on Haiku
    ("openai-responses", "gpt-5.4", True),
    ("openai-responses", "openai/gpt-5.5-mini", True),
    ("openai-responses", "gpt-5", False),
    ("openai-chat", "gpt-5.4", False),  # Chat Completions has no tool search
])
def test_native_search_is_known_per_api_and_model(dialect: str, model: str, served: bool) -> None:
    assert supports_native(dialect, model) is served

"""Costs from the price library and the override file, checked by hand to the cent (and below)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenopt.dialects.base import Usage
from tokenopt.exceptions import ConfigError
from tokenopt.pricing import PriceBook

BOOK = PriceBook()


@pytest.mark.parametrize(("model", "provider", "usage", "input_usd", "output_usd"), [
    # gpt-4.1: $2 input, $0.50 cached, $8 output per MTok.
    # 10,000 in (4,000 cached) → 6,000 × 2 + 4,000 × 0.5 = 0.012 + 0.002
    ("gpt-4.1", "openai", Usage(input_tokens=10_000, cached_input_tokens=4_000,
                                output_tokens=500), 0.014, 0.004),
    # gpt-5: $1.25 / $0.125 / $10; reasoning is inside output: 2,000 × 10 = 0.02
    ("gpt-5", "openai", Usage(input_tokens=8_000, cached_input_tokens=8_000, output_tokens=2_000,
                              reasoning_tokens=1_500), 0.001, 0.02),
    # claude-sonnet-4-6: $3 in, $0.30 read, $3.75 5m write, $6 1h write, $15 out.
    # 10,000 in = 5,000 uncached + 2,000 read + 1,000 5m write + 2,000 1h write
    # → 0.015 + 0.0006 + 0.00375 + 0.012 = 0.03135; 1,000 out → 0.015
    ("claude-sonnet-4-6", "anthropic", Usage(input_tokens=10_000, cached_input_tokens=2_000,
                                             cache_write_tokens=3_000, cache_write_1h_tokens=2_000,
                                             output_tokens=1_000), 0.03135, 0.015),
    # claude-haiku-4-5: $1 in, $1.25 5m write; all 4,000 written for 5 minutes → 0.005
    ("claude-haiku-4-5", "anthropic", Usage(input_tokens=4_000, cache_write_tokens=4_000,
                                            output_tokens=100), 0.005, 0.0005),
])
def test_library_prices_match_hand_computed_costs(
    model: str, provider: str, usage: Usage, input_usd: float, output_usd: float
) -> None:
    cost = BOOK.cost(model, usage, provider=provider)
    assert cost.priced
    assert cost.input_usd == pytest.approx(input_usd, abs=1e-9)
    assert cost.output_usd == pytest.approx(output_usd, abs=1e-9)
    assert cost.total_usd == pytest.approx(input_usd + output_usd, abs=1e-9)


def test_one_hour_writes_cost_more_than_five_minute_writes() -> None:
    five = BOOK.cost("claude-sonnet-4-6", Usage(input_tokens=1_000_000, cache_write_tokens=1_000_000))
    hour = BOOK.cost("claude-sonnet-4-6", Usage(input_tokens=1_000_000, cache_write_tokens=1_000_000,
                                                cache_write_1h_tokens=1_000_000))
    # 1.25× and 2× of the $3 input rate
    assert (five.input_usd, hour.input_usd) == (pytest.approx(3.75), pytest.approx(6.0))


def test_unknown_models_cost_nothing_and_say_so() -> None:
    cost = BOOK.cost("acme-7b", Usage(input_tokens=1_000, output_tokens=1_000))
    assert not cost.priced and cost.total_usd == 0
    assert not BOOK.cost(None, Usage(input_tokens=1)).priced


def test_huge_model_names_are_priced_without_growing_the_memo() -> None:
    from tokenopt.pricing import _library_cost

    before = _library_cost.cache_info().currsize
    for n in range(20):
        cost = BOOK.cost(f"{n}" + "x" * 100_000, Usage(input_tokens=1_000, output_tokens=1))
        assert not cost.priced
    assert _library_cost.cache_info().currsize == before
    assert BOOK.cost("gpt-4.1", Usage(input_tokens=987_653)).priced  # a real name is memoised
    assert _library_cost.cache_info().currsize == before + 1


def test_the_override_file_prices_custom_models_and_wins(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text('[models."acme-7b"]\ninput = 0.2\ncached_input = 0.02\noutput = 0.6\n'
                    '[models."gpt-4.1"]\ninput = 1.0\noutput = 4.0\n')
    book = PriceBook.load(path)

    acme = book.cost("acme-7b", Usage(input_tokens=1_000_000, cached_input_tokens=500_000,
                                      cache_write_tokens=100_000, output_tokens=1_000_000))
    # 400k × 0.2 + 500k × 0.02 + 100k written at the input rate (no write rate given) × 0.2
    assert acme.input_usd == pytest.approx(0.08 + 0.01 + 0.02)
    assert acme.output_usd == pytest.approx(0.6)
    assert book.cost("gpt-4.1", Usage(input_tokens=1_000_000)).input_usd == pytest.approx(1.0)


@pytest.mark.parametrize(("text", "message"), [
    ("[models.x]\ninput = -1\noutput = 1\n", "greater than or equal"),
    ("[models.x]\ninput = 1\n", "output"),
    ("[models.x\n", "not valid TOML"),
])
def test_a_bad_override_file_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        PriceBook.load(path)


def test_a_missing_override_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        PriceBook.load(tmp_path / "absent.toml")

"""A search detour's extra calls are priced as the feature's cost, not as the client's request."""

from __future__ import annotations

from tokenopt.dialects.base import Usage
from tokenopt.ledger.entry import entry_from
from tokenopt.pricing import PriceBook
from tokenopt.records import ExchangeRecord

PRICES = PriceBook()


def record(notes: dict[str, object], usage: Usage) -> ExchangeRecord:
    return ExchangeRecord(ts=0.0, tenant="t", route="/v1/chat/completions", dialect="openai-chat",
                          model="gpt-4.1", conversation="c", stream=False, status=200, usage=usage,
                          plugin_notes={"tools": notes},
                          tokens_before={"tools": 1000}, tokens_after={"tools": 1000})


def test_the_detour_calls_are_priced_on_their_own_and_left_out_of_the_cost_before() -> None:
    detour = {"prompt_tokens": 2_000, "completion_tokens": 40}
    total = Usage(input_tokens=5_000, output_tokens=100)  # what the client saw: both calls
    entry = entry_from(record({"search_detours": 1, "detour_usage": detour}, total), PRICES)
    plain = entry_from(record({}, Usage(input_tokens=3_000, output_tokens=60)), PRICES)
    # gpt-4.1: $2 per 1M input, $8 per 1M output.
    assert entry.detour_cost_usd == round(2_000 * 2e-6 + 40 * 8e-6, 8)
    assert entry.search_detours == 1
    assert entry.cost_usd_before == plain.cost_usd_before  # the client's request alone
    assert entry.cost_usd_after == round(5_000 * 2e-6 + 100 * 8e-6, 8)  # what was billed


def test_an_exchange_without_a_detour_has_no_detour_cost() -> None:
    entry = entry_from(record({}, Usage(input_tokens=3_000, output_tokens=60)), PRICES)
    assert entry.detour_cost_usd == 0.0 and entry.search_detours == 0


def test_a_detour_whose_later_call_failed_is_priced_as_the_calls_it_read() -> None:
    # The second call failed: the client got its error (no usage), or, streaming, the start
    # of the first call's stream. The first call was billed all the same.
    first = {"prompt_tokens": 2_000, "completion_tokens": 40,
             "prompt_tokens_details": {"cached_tokens": 500}}
    notes = {"search_detours": 1, "calls": [first], "failed": "upstream status 503 in round 2"}
    for seen in (None, Usage(input_tokens=2_000, output_tokens=1)):
        entry = entry_from(record(notes, seen or Usage()), PRICES)
        assert (entry.input_tokens, entry.cached_input_tokens, entry.output_tokens) == (
            2_000, 500, 40)
        # gpt-4.1: $2 per 1M input, $0.50 per 1M cached input, $8 per 1M output.
        billed = round(1_500 * 2e-6 + 500 * 0.5e-6 + 40 * 8e-6, 8)
        assert entry.cost_usd_after == entry.detour_cost_usd == billed  # all of it the detour's
        assert entry.cost_usd_before == 0.0  # the client's own call was never answered


def test_a_finished_detours_answer_already_counts_every_call() -> None:
    calls = [{"prompt_tokens": 2_000, "completion_tokens": 40},
             {"prompt_tokens": 3_000, "completion_tokens": 60}]
    notes = {"search_detours": 1, "calls": calls, "detour_usage": calls[0]}
    entry = entry_from(record(notes, Usage(input_tokens=5_000, output_tokens=100)), PRICES)
    assert (entry.input_tokens, entry.output_tokens) == (5_000, 100)
    assert entry.detour_cost_usd == round(2_000 * 2e-6 + 40 * 8e-6, 8)

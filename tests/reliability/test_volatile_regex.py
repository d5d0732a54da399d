"""No volatile-span pattern backtracks catastrophically: time grows with input size, not its square.

Timing ratios, not wall-clock limits, so a busy shared machine cannot fail the test:
ten times the text may take at most ~30 times as long (linear scaling gives ~10,
quadratic ~100). Each figure is the best of a few runs, which removes most noise.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tokenopt.plugins.normalize.volatile import DEFAULT_PATTERNS, VolatileSpans

SPANS = VolatileSpans(DEFAULT_PATTERNS)
MAX_RATIO = 30.0

# Each piece repeated: runs a pattern could rescan from every position in it.
PATHOLOGICAL: dict[str, str] = {
    "dash_runs": "a-",               # id characters split by dashes: a \b at every dash
    "mixed_case_dash_runs": "aB-",   # two of base64_id's three classes, never the third
    "long_words": "a" * 19 + "-",    # almost-ids, one short of the length that counts
    "hex_without_digits": "abcdef",  # hex_id's second lookahead never satisfied
    "digits_and_colons": "1:",       # time: a start at every digit, no minutes
    "dates_without_day": "2026-1",   # timestamp/date prefixes that never complete
    "weekdays": "Mon ",              # date's weekday branch without a month
    "epoch_like": "16000000 ",       # one digit short of an epoch
    "spaces": " ",
}


def best_time(run: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def scaling(piece: str, small_chars: int = 20_000) -> float:
    """How much longer ten times the text takes."""
    small = piece * (small_chars // len(piece))
    large = small * 10
    return best_time(lambda: SPANS.relocate([large])) / best_time(lambda: SPANS.relocate([small]))


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_ten_times_the_text_takes_about_ten_times_as_long(name: str) -> None:
    ratio = scaling(PATHOLOGICAL[name])
    assert ratio < MAX_RATIO, f"{name}: 10x the input took {ratio:.0f}x as long"


def test_the_check_catches_a_quadratic_pattern() -> None:
    # The base64_id pattern as it was before its start was anchored to the run.
    quadratic = VolatileSpans({"id": r"\b(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{20,}\b"})
    small, large = "a-" * 400, "a-" * 4_000
    ratio = best_time(lambda: quadratic.relocate([large]), 1) / best_time(
        lambda: quadratic.relocate([small]), 1)
    assert ratio > MAX_RATIO


def test_ids_are_still_found_where_a_run_starts() -> None:
    texts, spans = SPANS.relocate(["key AbCdEfGh1234567890xyzQ, ref-AbCdEfGh1234567890xyzQ-x."])
    assert texts == ["key [id1], [id2]."]
    assert [span.value for span in spans] == ["AbCdEfGh1234567890xyzQ",
                                              "ref-AbCdEfGh1234567890xyzQ-x"]

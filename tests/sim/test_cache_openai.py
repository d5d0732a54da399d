"""OpenAI's automatic prefix cache, against hand-computed expectations."""

from __future__ import annotations

import pytest

from tokenopt.sim.cache_openai import OpenAIPromptCache
from tokenopt.sim.prompt import Prompt
from tokenopt.tokens import TokenCounter

COUNTER = TokenCounter()
# "alpha beta ..." words are one token each in cl100k: n words → n tokens.
WORDS = ["alpha", "beta", "gamma", "delta", "model", "token", "cache", "prefix", "stream", "reply"]


def text(tokens: int, offset: int = 0) -> str:
    return "".join(" " + WORDS[(offset + i) % len(WORDS)] for i in range(tokens))


def prompt(*texts: str, key: str | None = None, retention: str | None = None,
           model: str = "gpt-4.1") -> Prompt:
    return Prompt.build("/v1/chat/completions", model, COUNTER, messages=list(texts),
                        cache_key=key, retention=retention)


def test_word_helper_makes_exact_token_counts() -> None:
    assert prompt(text(1500)).tokens == 1500


def test_below_the_minimum_nothing_is_ever_cached() -> None:
    cache = OpenAIPromptCache(COUNTER)
    small = prompt(text(1023))
    assert [cache.lookup(small, scope="k", now=t).cached_tokens for t in (0, 1, 2)] == [0, 0, 0]


@pytest.mark.parametrize(("tokens", "cached"), [
    (1024, 1024),   # exactly the minimum
    (1151, 1024),   # 1024 + 127: the next step (1152) is not reached
    (1500, 1408),   # 1024 + 3 × 128
    (4096, 4096),   # 1024 + 24 × 128
])
def test_repeated_prompts_hit_on_128_token_steps(tokens: int, cached: int) -> None:
    cache = OpenAIPromptCache(COUNTER)
    same = prompt(text(tokens))
    assert cache.lookup(same, scope="k", now=0).cached_tokens == 0
    assert cache.lookup(same, scope="k", now=1).cached_tokens == cached


@pytest.mark.parametrize("changed_at", [1100, 1300, 1919, 2000])
def test_a_change_at_token_n_caps_the_hit_at_n_rounded_down(changed_at: int) -> None:
    cache = OpenAIPromptCache(COUNTER)
    cache.lookup(prompt(text(2500)), scope="k", now=0)
    # Same first `changed_at` tokens, then different words (one token each too).
    edited = prompt(text(changed_at) + text(2500 - changed_at, offset=5))
    ids = COUNTER.encode(text(2500))
    new = COUNTER.encode(text(changed_at) + text(2500 - changed_at, offset=5))
    first_difference = next(i for i, (a, b) in enumerate(zip(ids, new, strict=True)) if a != b)
    assert first_difference == changed_at
    expected = 1024 + (changed_at - 1024) // 128 * 128
    assert cache.lookup(edited, scope="k", now=1).cached_tokens == expected


def test_a_longer_prompt_hits_the_shared_prefix_of_a_shorter_one() -> None:
    cache = OpenAIPromptCache(COUNTER)
    cache.lookup(prompt(text(1300)), scope="k", now=0)
    # 1300 shared: hit 1024 + 2 × 128 = 1280
    assert cache.lookup(prompt(text(1300), text(700, 3)), scope="k", now=1).cached_tokens == 1280


def test_caches_are_per_api_key_and_per_prompt_cache_key() -> None:
    cache = OpenAIPromptCache(COUNTER)
    cache.lookup(prompt(text(2048), key="a"), scope="tenant-1", now=0)
    assert cache.lookup(prompt(text(2048), key="a"), scope="tenant-2", now=1).cached_tokens == 0
    assert cache.lookup(prompt(text(2048), key="b"), scope="tenant-1", now=1).cached_tokens == 0
    assert cache.lookup(prompt(text(2048)), scope="tenant-1", now=1).cached_tokens == 0
    assert cache.lookup(prompt(text(2048), key="a"), scope="tenant-1", now=1).cached_tokens == 2048


def test_a_model_switch_misses() -> None:
    cache = OpenAIPromptCache(COUNTER)
    cache.lookup(prompt(text(2048)), scope="k", now=0)
    assert cache.lookup(prompt(text(2048), model="gpt-4o"), scope="k", now=1).cached_tokens == 0


def test_in_memory_retention_expires_after_ten_idle_minutes_and_hits_refresh() -> None:
    cache = OpenAIPromptCache(COUNTER)
    same = prompt(text(2048), retention="in_memory")
    cache.lookup(same, scope="k", now=0)
    assert cache.lookup(same, scope="k", now=599).cached_tokens == 2048   # refreshed at 599
    assert cache.lookup(same, scope="k", now=1198).cached_tokens == 2048  # 599 idle seconds
    assert cache.lookup(same, scope="k", now=1799).cached_tokens == 0     # 601 idle seconds


def test_the_default_24h_retention_outlives_an_idle_hour_but_not_a_day() -> None:
    cache = OpenAIPromptCache(COUNTER)
    same = prompt(text(2048))
    cache.lookup(same, scope="k", now=0)
    assert cache.lookup(same, scope="k", now=3600).cached_tokens == 2048
    assert cache.lookup(same, scope="k", now=3600 + 86_401).cached_tokens == 0

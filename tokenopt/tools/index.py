"""`ToolIndex`: BM25F ranking of a request's tools for a query.

Why a compact pure-Python BM25F rather than `bm25s`: `bm25s` scores one flat
text per document, so field weights mean repeating text, and it pulls numpy
(and scipy for speed) into the core install. Measured on the real corpus
(benchmarks/tool_search.py, 2 cores), this index builds 2,000 tools in ~60 ms
and searches in ~0.1 ms p50, with no dependency; field weighting is what lifts
recall (see the benchmark), which plain BM25 over one text cannot express.

Every term's BM25F weight in every tool is computed once at build time, so a
search is only a sum over the query terms' postings and a top-k. The index is
immutable after construction: callers memoise it per tool set.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from tokenopt.tools.fields import FIELDS, field_terms
from tokenopt.tools.forms import read_tools
from tokenopt.tools.text import tokens

# Per-field weight and length normalisation (b), in `FIELDS` order.
WEIGHTS = (3.0, 1.5, 1.0, 1.0, 0.5)
B = (0.5, 0.3, 0.75, 0.75, 0.75)
K1 = 1.2


class ToolIndex:
    """Rank the function-like tools of a request by relevance to a query."""

    __slots__ = ("_names", "_postings")

    def __init__(self, tools: Iterable[Any]) -> None:
        docs = read_tools(tools)
        self._names: tuple[str, ...] = tuple(doc.name for doc in docs)
        self._postings: dict[str, tuple[tuple[int, ...], tuple[float, ...]]] = (
            _build([field_terms(doc) for doc in docs])
        )

    @property
    def names(self) -> tuple[str, ...]:
        """The indexed tool names, in input order."""
        return self._names

    def search(self, query: str, k: int, exclude: frozenset[str] = frozenset()) -> list[str]:
        """The `k` best tool names for `query`, best first, skipping `exclude`.

        Tools sharing no term with the query are never returned; ties keep input order.
        """
        if k <= 0 or not self._names:
            return []
        scores: dict[int, float] = {}
        get = scores.get
        for term, count in Counter(tokens(query)).items():
            posting = self._postings.get(term)
            if posting is None:
                continue
            weight = 1.0 + math.log(count)
            for doc, value in zip(*posting, strict=True):
                scores[doc] = get(doc, 0.0) + weight * value
        names = self._names
        if exclude:
            for doc in [d for d in scores if names[d] in exclude]:
                del scores[doc]
        best = heapq.nlargest(k, scores.items(), key=lambda item: (item[1], -item[0]))
        return [names[doc] for doc, _ in best]


def _build(docs: Sequence[tuple[list[str], ...]]) -> dict[str, tuple[tuple[int, ...], tuple[float, ...]]]:
    """Term -> (tool ids, BM25F weights): saturation over field-weighted, normalised counts."""
    n = len(docs)
    if n == 0:
        return {}
    avg = [max(sum(len(d[f]) for d in docs) / n, 1.0) for f in range(len(FIELDS))]
    raw: dict[str, tuple[list[int], list[float]]] = {}
    for i, fields in enumerate(docs):
        tf: dict[str, float] = {}
        for f, terms in enumerate(fields):
            if not terms:
                continue
            norm = WEIGHTS[f] / (1.0 - B[f] + B[f] * len(terms) / avg[f])
            for term, count in Counter(terms).items():
                tf[term] = tf.get(term, 0.0) + norm * count
        for term, value in tf.items():
            posting = raw.get(term)
            if posting is None:
                posting = raw[term] = ([], [])
            posting[0].append(i)
            posting[1].append(value / (K1 + value))
    out: dict[str, tuple[tuple[int, ...], tuple[float, ...]]] = {}
    for term, (ids, vals) in raw.items():
        idf = math.log(1.0 + (n - len(ids) + 0.5) / (len(ids) + 0.5))
        out[term] = (tuple(ids), tuple([v * idf for v in vals]))
    return out

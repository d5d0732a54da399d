"""Tokenising tool text and queries into the terms BM25 counts.

Identifiers are split the way people read them (`get_repoInfo` -> get, repo, info;
`math.gcd`, `fs/read-file`), everything is lower-cased, English stopwords are
dropped and words are stemmed with Snowball (Porter2), so a query word meets the
same word in a name or description (`listings`/`list`, `retrieved`/`retrieve`).
Measured on the real queries (benchmarks/tool_search.py): stopwords are worth
+3.4 points of recall@5 on 250-tool sets; Snowball +0.3 there and +0.6 on the
full corpus over a hand-rolled suffix stemmer, which missed plurals of short
words (`ids`, `apis`) and stacked suffixes (`listings`). PyStemmer is Snowball's
own C binding: 0.7 us a word against 33 us for the pure-Python `snowballstemmer`
(same stems), which matters for the first index of a process, when the whole
vocabulary (~12k words for 4,809 tools) is stemmed: 9 ms instead of 400 ms.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

import Stemmer  # type: ignore[import-not-found]  # C extension, no stubs

from tokenopt.memo import short_key_cache

# Word chunks (Unicode letters and digits), then camelCase / acronym / digit runs inside.
_CHUNK = re.compile(r"[^\W_]+")
_PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+|[^\x00-\x7f]+")
# A stemmer object is not thread-safe: one call at a time.
_STEMMER = Stemmer.Stemmer("english")
_STEMMER_LOCK = threading.Lock()

_STOPWORDS = """
a about above after again all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each either else etc
few for from further had has have having he her here hers herself him himself his how i
if in into is it its itself just let me might more most must my myself no nor not now of
off on once only or other our ours ourselves out over own please same shall she should
so some such than that the their theirs them themselves then there these they this those
through to too under until up upon us very via was we were what when where which while
who whom why will with within without would you your yours yourself yourselves
"""
STOPWORDS = frozenset(_STOPWORDS.split())
# Longer words are split uncached: 99.7% of the words of the real tool corpus are this short,
# and a longer one (a blob, a URL, a base64 string) seldom repeats. The cache then holds at
# most 65,536 words of at most 64 characters: ~33 MB with adversarial words, ~17 MB of real
# tool text (each key and its terms, measured with tracemalloc).
MAX_CACHED_WORD = 64


def tokens(text: str) -> list[str]:
    """Terms of `text` in order: split identifiers, lower-case, drop stopwords, stem."""
    out: list[str] = []
    for word in text.split():
        # The length check is inline, not a `short_key_cache`: its Python-level call a word
        # doubles the time here (41,634 words of 2,000 tools' names and descriptions: 5.8 ms
        # inline, 12.2 ms through the wrapper).
        out.extend(_word_terms(word) if len(word) <= MAX_CACHED_WORD else _terms_of(word))
    return out


def _terms_of(word: str) -> tuple[str, ...]:
    """The terms of one whitespace-separated word (cached as `_word_terms` when short):
    tool text repeats its words.

    Splitting on whitespace first and caching per word is twice as fast as one
    regex pass over the whole text.
    """
    terms: list[str] = []
    for chunk in _CHUNK.findall(word):
        parts = (chunk,) if chunk.islower() else _PART.findall(chunk)
        for part in parts:
            term = part.lower()
            if term not in STOPWORDS and not term.isdigit():
                terms.append(stem(term))
    return tuple(terms)


_word_terms = lru_cache(maxsize=1 << 16)(_terms_of)


@short_key_cache(16384)
def fold(text: str) -> str:
    """`text` case-folded, letters and digits only: `Repo-Name`, `repo_name` and `REPONAME`
    fold alike (names and labels compared whatever their case and separators)."""
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def stem(word: str) -> str:
    """The Snowball English stem of a lower-case word; non-ASCII words stay whole."""
    if len(word) < 3 or not word.isascii():
        return word
    with _STEMMER_LOCK:
        result: str = _STEMMER.stemWord(word)
    return result


def clear_caches() -> None:
    """Forget the cached word terms, so a benchmark can time a first, cold build."""
    _word_terms.cache_clear()

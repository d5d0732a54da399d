"""Tokenising tool text and queries into the terms BM25 counts.

Identifiers are split the way people read them (`get_repoInfo` -> get, repo, info;
`math.gcd`, `fs/read-file`), everything is lower-cased, English stopwords are
dropped and a light suffix stemmer folds plurals and verb forms (`files`/`file`,
`listing`/`list`), so a query word meets the same word in a name or description.
"""

from __future__ import annotations

import re
from functools import lru_cache

# Word chunks (Unicode letters and digits), then camelCase / acronym / digit runs inside.
_CHUNK = re.compile(r"[^\W_]+")
_PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+|[^\x00-\x7f]+")

STOPWORDS = frozenset(
    """
    a about above after again all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each either else etc
    few for from further had has have having he her here hers herself him himself his how i
    if in into is it its itself just let me might more most must my myself no nor not now of
    off on once only or other our ours ourselves out over own please same shall she should
    so some such than that the their theirs them themselves then there these they this those
    through to too under until up upon us very via was we were what when where which while
    who whom why will with within without would you your yours yourself yourselves
    """.split()
)


def tokens(text: str) -> list[str]:
    """Terms of `text` in order: split identifiers, lower-case, drop stopwords, stem."""
    out: list[str] = []
    for chunk in _CHUNK.findall(text):
        out.extend(_chunk_terms(chunk))
    return out


@lru_cache(maxsize=1 << 16)
def _chunk_terms(chunk: str) -> tuple[str, ...]:
    """One word chunk's terms; cached, since tool text repeats the same words a lot."""
    parts = (chunk,) if chunk.islower() else _PART.findall(chunk)
    words = (part.lower() for part in parts)
    return tuple(stem(w) for w in words if w not in STOPWORDS and not w.isdigit())


@lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """A light English suffix stemmer (plurals, -ing, -ed, -ly, final -e), cached.

    Lighter than Porter on purpose: tool vocabularies are full of identifiers that an
    aggressive stemmer mangles, and recall only needs inflections folded
    (`create`/`creates`/`creating`/`created` -> `creat`).
    """
    if len(word) <= 3 or not word.isascii():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("sses", "shes", "ches", "xes", "zes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    elif word.endswith("ing") and len(word) > 5:
        word = _undouble(word[:-3])
    elif word.endswith("ed") and len(word) > 4:
        word = _undouble(word[:-2])
    elif word.endswith("ly") and len(word) > 5:
        word = word[:-2]
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


def _undouble(base: str) -> str:
    """`running` -> `run`, `stopped` -> `stop`, but `install`, `pass` stay whole."""
    if len(base) > 2 and base[-1] == base[-2] and base[-1] not in "lsz":
        return base[:-1]
    return base

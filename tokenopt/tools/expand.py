"""Query terms with weights, expanded through a small thesaurus of API words.

People ask in their words ("how many yen for 500 dollars", "remove the file"),
tools are described in the API's words (`convert_currency`, `delete_file`), and
BM25 only sees shared terms. A short, general list of the verbs and nouns that
tool APIs use adds each query word's synonyms at a low weight, so a synonym can
bring a tool in without outranking one that shares the query's own words.
Measured (benchmarks/tool_search.py): +0.4 points of recall@5 on 250-tool
sets, neutral on the full corpus; more weight (0.6) was no better.

A request also names things whose kind says which tool it needs (`ENTITIES`: a
file path, a URL, an e-mail address), so their kind's words are added too.
Both were added for what agent tasks miss (a task's last step, "save it to
/root/markdown/report.md", ranked the file writer 36th-61st among 200+ tools;
"folder", "tomorrow", "estimate" shared no word with their tools) and measured on
one half of the queries (crc32 of the id, even), the weight chosen there among
0 / 0.3 / 0.5 / 1: the workload model (benchmarks/tool_workload.py's conversations,
one a query) missed 30 -> 25 of 2,910 turns on that half, 48 -> 46 of 3,013 on the
other; recall@5 on 250-tool sets 0.9239 -> 0.9245 (other half 0.9195 -> 0.9206).
"""

from __future__ import annotations

import math
import re
from collections import Counter

from tokenopt.tools.text import stem, tokens

SYNONYM_WEIGHT = 0.3

# Each line: words that name the same operation or thing in tool APIs.
_GROUPS = """
get fetch retrieve obtain lookup
search find query lookup locate
delete remove erase destroy
create add make new generate insert
update modify edit change alter
list enumerate browse
send post submit
convert conversion transform
calculate compute calculation estimate
book reserve reservation booking
buy purchase order
cancel cancellation
image picture photo img
movie film
song music track tune
weather forecast temperature
currency money dollar euro yen pound usd eur gbp
repo repository
doc document
stock share ticker equity
location place address
email mail
message msg chat
user account profile
news article headline
recipe meal cook dish food
flight airline plane
hotel lodging accommodation
car vehicle auto
translate translation
summary summarize summarise
start begin launch run
stop halt terminate kill
read open view
write save store
download fetch
price cost fee
distance route directions
time date clock today tomorrow yesterday tonight
folder directory dir
"""


def _thesaurus() -> dict[str, frozenset[str]]:
    related: dict[str, set[str]] = {}
    for line in _GROUPS.strip().splitlines():
        stems = {stem(word) for word in line.split()}
        for s in stems:
            related.setdefault(s, set()).update(stems - {s})
    return {s: frozenset(others) for s, others in related.items()}


THESAURUS = _thesaurus()


# Things a request names that say which kind of tool it needs without naming one: a file
# path ("save it to /root/markdown/report.md") needs a file tool, a URL a web one.
ENTITY_WEIGHT = 0.3
_EXTENSIONS = ("md|txt|csv|tsv|json|jsonl|ya?ml|xml|html?|pdf|docx?|xlsx?|pptx?|png|jpe?g|gif|"
               "svg|mp[34]|wav|zip|tar|gz|log|py|js|ts|sh|sql")
ENTITIES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"https?://\S+|\bwww\.[\w-]+\.\w+", re.IGNORECASE), "url web page"),
    (re.compile(r"(?:^|[\s\"'(])(?:~|\.{1,2})?/[\w.-]+/[\w./-]*|\b[a-z]:\\|\b[\w-]+\.(?:"
                + _EXTENSIONS + r")\b", re.IGNORECASE), "file path directory"),
    (re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b"), "email"),
)
_ENTITY_TERMS = tuple((pattern, tuple(stem(w) for w in words.split()))
                      for pattern, words in ENTITIES)


def query_weights(query: str) -> dict[str, float]:
    """Query term -> weight: 1 + log(count) for the query's own terms, then synonyms and
    the kinds of thing the query names (`ENTITIES`)."""
    counts = Counter(tokens(query))
    weights = {term: 1.0 + math.log(count) for term, count in counts.items()}
    for term in counts:
        for synonym in THESAURUS.get(term, ()):
            if synonym not in weights:
                weights[synonym] = SYNONYM_WEIGHT
    if ENTITY_WEIGHT > 0:
        for pattern, terms in _ENTITY_TERMS:
            if pattern.search(query):
                for term in terms:
                    weights[term] = max(weights.get(term, 0.0), ENTITY_WEIGHT)
    return weights

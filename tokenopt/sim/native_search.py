"""The provider's own tool search, as the simulated model calls it and the provider runs it.

When the recorded model called a tool the request defers and has not loaded,
the simulated model searches with the latest user text, as a real one would.
A server-side search (Anthropic's BM25/regex tools, OpenAI's hosted
`tool_search`) runs inside the same call: `ToolIndex` stands in for the
provider's retrieval over the deferred tools and returns at most `RESULTS`
names. Anthropic always returns 3-5 references, so fewer matches are topped
up with the next deferred tools in catalog order: each reference loads a
definition, and those are billed. The found definitions are loaded before
the model samples again. A client-side search (`execution: "client"`) ends
the response at the call; the client answers with `tool_search_output`.

Billing, kept simple: the call's input is the prompt plus the loaded
definitions (the second sampling reads them; cache reads are those of the
prompt alone, the definitions are plain input), and its output is the search
call plus the answer. Providers report one usage for a call with server
tools, so this is one bill.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from tokenopt.sim.deferred import Catalog, SearchTool
from tokenopt.sim.prompt import segment_text, unmarked
from tokenopt.sim.reply import ToolSearch
from tokenopt.sim.wire import JSON
from tokenopt.tokens import TokenCounter

if TYPE_CHECKING:
    from tokenopt.tools import ToolIndex

RESULTS: Final = 5
ANTHROPIC_MIN_RESULTS: Final = 3
REGEX_LIMIT: Final = 200  # Anthropic's cap on a regex pattern's length


def server_search(route: str, tools: Catalog, text: str, counter: TokenCounter,
                  model: str) -> ToolSearch:
    """Search the deferred tools for `text` and load what is found, as the provider does."""
    assert tools.search is not None
    found = _find(tools.deferred, text, ANTHROPIC_MIN_RESULTS if route == "/v1/messages" else 0)
    loaded = _loaded(route, found, tools)
    tokens = sum(counter.count(segment_text(unmarked(tool)), model) for tool in loaded)
    query = _query(tools.search, text)
    return ToolSearch(tools.search.name, query, "server", _call_tokens(query, counter, model),
                      tuple(found), tuple(loaded), tokens)


def client_search(search: SearchTool, text: str, counter: TokenCounter, model: str) -> ToolSearch:
    """A search call the client runs: nothing found or loaded within this response."""
    return ToolSearch(search.name, text, "client", _call_tokens(text, counter, model))


def search_arguments(search: ToolSearch) -> JSON:
    """The call's input as the model writes it."""
    return {"query": search.query}


def _call_tokens(query: str, counter: TokenCounter, model: str) -> int:
    return counter.count(json.dumps({"query": query}, ensure_ascii=False), model)


def _find(deferred: Mapping[str, JSON], text: str, minimum: int) -> list[str]:
    if not deferred:
        return []
    names = _index(segment_text(list(deferred.values()))).search(text, RESULTS)
    found = [name for name in names if name in deferred][:RESULTS]
    rest = [name for name in deferred if name not in found]
    return found + rest[: max(minimum - len(found), 0)]


@functools.lru_cache(maxsize=16)
def _index(tools_json: str) -> ToolIndex:
    """One index per distinct catalog: a replay re-sends the same deferred tools each turn."""
    from tokenopt.tools import ToolIndex  # the tools plugin; imported only when searching

    tools: list[JSON] = json.loads(tools_json)
    return ToolIndex(tools)


def _loaded(route: str, found: list[str], tools: Catalog) -> list[JSON]:
    """Found definitions as the provider returns them; Responses groups them by namespace."""
    if route != "/v1/responses":
        return [tools.deferred[name] for name in found]
    loaded: list[JSON] = []
    groups: dict[str, JSON] = {}
    for name in found:
        namespace = tools.namespaces.get(name)
        if namespace is None:
            loaded.append(tools.deferred[name])
            continue
        key = str(namespace.get("name"))
        if key not in groups:
            shown = {k: v for k, v in namespace.items() if k != "tools"}
            groups[key] = {**shown, "tools": []}
            loaded.append(groups[key])
        groups[key]["tools"].append(tools.deferred[name])
    return loaded


def _query(search: SearchTool, text: str) -> str:
    """BM25 takes the text; a regex search gets the text's words as one alternation."""
    if search.variant != "regex":
        return text
    pattern = ""
    for word in dict.fromkeys(re.findall(r"[a-z0-9]{3,}", text.lower())):
        candidate = f"{pattern}|{re.escape(word)}" if pattern else re.escape(word)
        if len("(?i)" + candidate) > REGEX_LIMIT:
            break
        pattern = candidate
    return f"(?i){pattern}" if pattern else ".*"

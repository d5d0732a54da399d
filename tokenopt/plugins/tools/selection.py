"""Which tools a search loads: the best matches, and their closest siblings on the same server.

Tools of one MCP server are used together (find the user, then read their
orders; geocode, then route), and a task's first step often shares no word
with the request while its server's other tools do. So after the `k` best
matches, up to `siblings` more tools of each of the top two matches' servers
are loaded, best-ranked first (unranked ones in the server's own order) — and so
are siblings of the tools the conversation has called (`near`): a server in use is
likely to be used again.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenopt.tools import ToolIndex
from tokenopt.tools.fields import split_server
from tokenopt.tools.semantic import FusedIndex

SIBLING_SERVERS = 3


def server_of(name: str) -> str | None:
    """The server a tool name says it belongs to, as MCP clients prefix: `server__tool`, and
    Claude Code's `mcp__<server>__<tool>` (its server is `github`, not `mcp`), read as the
    index reads it. Codex's namespaced functions are keyed `mcp__<server>__<tool>` too."""
    return split_server(name)[0] or None


def find(index: ToolIndex | FusedIndex, query: str, k: int, *, exclude: frozenset[str] = frozenset(),
         siblings: int = 0, near: Sequence[str] = ()) -> list[str]:
    """The `k` best names for `query`, then siblings of the top matches and of `near` tools."""
    if not query or k <= 0:
        return []
    ranked = index.search(query, len(index.names), exclude=exclude)
    found = ranked[:k]
    if siblings <= 0:
        return found
    taken = set(found) | exclude
    order = [*ranked, *(name for name in index.names if name not in set(ranked))]
    servers = list(dict.fromkeys(s for name in found if (s := server_of(name)) is not None))
    servers = servers[:SIBLING_SERVERS]
    servers += [s for name in near if (s := server_of(name)) is not None and s not in servers]
    for server in dict.fromkeys(servers):
        more = [name for name in order if server_of(name) == server and name not in taken]
        found += more[:siblings]
        taken.update(more[:siblings])
    return found

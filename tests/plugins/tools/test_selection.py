"""What a search loads: the best matches, then siblings on the servers in play."""

from __future__ import annotations

from collections import Counter

from tests.plugins.tools.corpus import mcp_tools
from tokenopt.plugins.tools.selection import SIBLING_SERVERS, find, server_of
from tokenopt.tools import ToolIndex

TOOLS = mcp_tools(240)
INDEX = ToolIndex(TOOLS)
QUERY = "Open a pull request on GitHub that merges my feature branch into main"


def test_without_siblings_it_is_the_index_ranking() -> None:
    assert find(INDEX, QUERY, 6) == INDEX.search(QUERY, 6)


def test_siblings_come_from_the_top_matches_servers_only_and_never_repeat() -> None:
    top = INDEX.search(QUERY, 5)
    found = find(INDEX, QUERY, 5, siblings=3)
    assert found[:5] == top and len(found) == len(set(found))
    servers = list(dict.fromkeys(server_of(name) for name in top))[:SIBLING_SERVERS]
    extra = Counter(server_of(name) for name in found[5:])
    assert extra and set(extra) <= set(servers) and max(extra.values()) <= 3


def test_a_server_the_conversation_uses_brings_its_siblings() -> None:
    far = next(t["name"] for t in TOOLS if server_of(t["name"])
               and server_of(t["name"]) not in {server_of(n) for n in find(INDEX, QUERY, 5,
                                                                          siblings=3)})
    found = find(INDEX, QUERY, 5, siblings=3, near=[far])
    assert any(server_of(name) == server_of(far) for name in found[5:])


def test_excluded_tools_are_never_found_and_an_empty_query_finds_nothing() -> None:
    first = find(INDEX, QUERY, 5, siblings=3)
    again = find(INDEX, QUERY, 5, siblings=3, exclude=frozenset(first))
    assert not set(first) & set(again)
    assert find(INDEX, "", 5, siblings=3) == []


def test_claude_code_names_load_the_siblings_of_the_real_server() -> None:
    # Claude Code names MCP tools `mcp__<server>__<tool>`: the server is `github`, not `mcp`
    # (read as `mcp`, every MCP tool was a sibling of every other).
    claude = ToolIndex([{**tool, "name": f"mcp__{tool['name']}"} for tool in TOOLS])
    for query in (QUERY, "List the pods in the Kubernetes cluster and post a message on Slack"):
        found = find(claude, query, 5, siblings=3)
        assert found == [f"mcp__{name}" for name in find(INDEX, query, 5, siblings=3)]
    assert server_of("mcp__github__list_issues") == "github"
    assert server_of("mcp__github") is None and server_of("list_issues") is None

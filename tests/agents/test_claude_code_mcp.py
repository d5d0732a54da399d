"""`claude -p` with 161 real MCP tools and lazy tools on reaches a withheld tool by searching.

Claude Code starts three stdio MCP servers (tests/agents/mcp_server.py) and sends
every tool in every request; the sidecar forwards a few of them and its search tool.
The scripted model needs `mcp__github__list_issues`, which preloading missed: it
searches, the sidecar answers the search and asks again with the tool, and Claude
Code gets one answer calling it, runs it on the MCP server and completes.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.agents.lazy_tools import (
    ARGUMENTS,
    CLAUDE_TOOL,
    FINAL,
    LAZY,
    SEARCH,
    SEARCH_TOOL,
    TARGET,
    McpRun,
    check_detour_ledger,
    claude_run,
    corpus_size,
)

pytestmark = pytest.mark.timeout(300)  # the session runs in the first test's setup


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> McpRun:
    return claude_run(tmp_path_factory.mktemp("claude-mcp-lazy"), LAZY)


def names(body: dict[str, Any]) -> set[str]:
    return {tool["name"] for tool in body.get("tools") or []}


def task(run: McpRun) -> list[tuple[dict[str, Any], str]]:
    """The model calls with tools, each with how the model answered, in arrival order."""
    lines = run.session.journal
    pairs = [(line["body"], lines[i + 1]["outcome"]) for i, line in enumerate(lines)
             if line["kind"] == "request" and i + 1 < len(lines) and lines[i + 1]["kind"] == "bill"]
    return [(body, outcome) for body, outcome in pairs if body.get("tools")]


def test_claude_runs_the_withheld_mcp_tool_and_prints_the_final_text(run: McpRun) -> None:
    assert run.session.result.returncode == 0, run.session.result.stderr
    assert run.session.result.stdout.strip() == FINAL
    assert run.calls == [{"server": TARGET[0], "tool": TARGET[1], "arguments": ARGUMENTS}]


def test_claude_sends_every_mcp_tool_and_the_sidecar_forwards_few(run: McpRun) -> None:
    sent = [line["body"] for line in run.session.sent]
    assert len(sent) == 2
    for body in sent:
        assert sum(name.startswith("mcp__") for name in names(body)) == corpus_size() >= 150
    [(first, outcome), *_] = task(run)
    assert outcome == "search"
    assert SEARCH_TOOL in names(first) and CLAUDE_TOOL not in names(first)
    assert len(names(first)) < len(names(sent[0])) // 4


def test_the_model_searched_then_got_the_request_again_with_the_tool(run: McpRun) -> None:
    (first, _), (again, outcome), (last, final) = task(run)
    assert (outcome, final) == ("scripted", "scripted")
    assert {SEARCH_TOOL, CLAUDE_TOOL} <= names(again)
    # The re-issued request is the first plus the search round and its answer.
    search, answer = again["messages"][len(first["messages"]):]
    [call] = [b for b in search["content"] if b["type"] == "tool_use"]
    assert (call["name"], call["input"]) == (SEARCH_TOOL, {"query": SEARCH})
    [result] = answer["content"]
    assert result["tool_use_id"] == call["id"] and "list_issues" in str(result["content"])
    assert CLAUDE_TOOL in names(last)  # called once, so it stays offered


def test_claude_never_saw_the_search(run: McpRun) -> None:
    first, second = [line["body"] for line in run.session.sent]
    assert SEARCH_TOOL not in names(second)
    answered = second["messages"][len(first["messages"]):]
    assert SEARCH_TOOL not in str(answered)
    [call] = [b for b in answered[0]["content"] if b["type"] == "tool_use"]
    assert (call["name"], call["input"]) == (CLAUDE_TOOL, ARGUMENTS)
    [result] = answered[1]["content"]
    assert result["tool_use_id"] == call["id"]
    assert TARGET[1] in str(result["content"])  # the MCP server's answer came back


def test_the_ledger_prices_each_exchange_with_its_detour(run: McpRun) -> None:
    check_detour_ledger(run, lambda c: (c["cache_read_input_tokens"],
                                        c["cache_creation_input_tokens"], c["output_tokens"]),
                        ("cached_tokens", "cache_write_tokens", "output_tokens"))

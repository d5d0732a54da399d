"""`codex exec` with 161 real MCP tools and lazy tools on reaches a withheld tool by searching.

Codex 0.171 sends each MCP server's tools inside one `namespace` tool
(`mcp__github` holds 117 functions), beside its own `multi_agent_v1` namespace.
The sidecar withholds functions inside namespaces too, keyed by namespace and
name: it forwards a few of them and its search tool. The scripted model needs
`list_issues` in `mcp__github`, which preloading missed: it searches, the sidecar
answers the search and asks again with the function back in its namespace, and
Codex gets one answer calling it, runs it on the MCP server and completes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.agents.lazy_tools import (
    ARGUMENTS,
    FINAL,
    LAZY,
    SEARCH,
    SEARCH_TOOL,
    SERVERS,
    TARGET,
    McpRun,
    check_detour_ledger,
    codex_run,
    corpus_size,
)
from tokenopt.sim.scripted import offered

pytestmark = pytest.mark.timeout(300)  # the session runs in the first test's setup
NAMESPACE = f"mcp__{TARGET[0]}"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> McpRun:
    return codex_run(tmp_path_factory.mktemp("codex-mcp-lazy"), LAZY)


def received(run: McpRun) -> list[tuple[dict[str, Any], str]]:
    """What the simulator received, each with how the model answered, in arrival order."""
    lines = run.session.journal
    return [(line["body"], lines[i + 1]["outcome"]) for i, line in enumerate(lines)
            if line["kind"] == "request" and i + 1 < len(lines) and lines[i + 1]["kind"] == "bill"
            and line["path"] == "/v1/responses"]


def namespaced(body: dict[str, Any]) -> dict[str, list[str]]:
    """The functions of each MCP namespace of a request, in order."""
    return {tool["name"]: [fn["name"] for fn in tool["tools"]] for tool in body["tools"]
            if tool.get("type") == "namespace" and tool["name"].startswith("mcp__")}


def functions(body: dict[str, Any]) -> int:
    return len(offered(body))


def test_codex_runs_the_withheld_mcp_tool_and_prints_the_final_text(run: McpRun) -> None:
    assert run.session.result.returncode == 0, run.session.result.stderr
    assert run.session.result.stdout.strip() == FINAL
    assert run.calls == [{"server": TARGET[0], "tool": TARGET[1], "arguments": ARGUMENTS}]


def test_codex_sends_every_mcp_tool_and_the_sidecar_forwards_few(run: McpRun) -> None:
    sent = [line["body"] for line in run.session.sent]
    assert len(sent) == 2
    for body in sent:
        counts = {name: len(inner) for name, inner in namespaced(body).items()}
        assert set(counts) == {f"mcp__{server}" for server in SERVERS}
        assert sum(counts.values()) == corpus_size() >= 150
    [(first, outcome), *_] = received(run)
    assert outcome == "search"
    assert SEARCH_TOOL in offered(first) and TARGET[1] not in offered(first)
    assert functions(first) < functions(sent[0]) // 4
    # No namespace is forwarded empty: one with nothing loaded is left out.
    assert all(inner for inner in namespaced(first).values())


def test_the_model_searched_then_got_the_request_again_with_the_tool(run: McpRun) -> None:
    (first, _), (again, outcome), (last, final) = received(run)
    assert (outcome, final) == ("scripted", "scripted")
    assert SEARCH_TOOL in offered(again) and TARGET[1] in namespaced(again)[NAMESPACE]
    # The re-issued request is the first plus the search round and its answer.
    call, answer = again["input"][len(first["input"]):]
    assert (call["type"], call["name"]) == ("function_call", SEARCH_TOOL)
    assert json.loads(call["arguments"]) == {"query": SEARCH}
    assert answer["call_id"] == call["call_id"]
    assert f"{TARGET[1]} (in namespace {NAMESPACE})" in answer["output"]
    # Called once, so it stays offered; the loaded set only grew, at its end.
    grown = namespaced(last)[NAMESPACE]
    assert grown[:len(namespaced(again)[NAMESPACE])] == namespaced(again)[NAMESPACE]


def test_codex_never_saw_the_search(run: McpRun) -> None:
    first, second = sorted((line["body"] for line in run.session.sent),
                           key=lambda body: len(body["input"]))
    assert SEARCH_TOOL not in offered(second)
    answered = second["input"][len(first["input"]):]
    assert SEARCH_TOOL not in str(answered)
    call, output = answered
    assert (call["type"], call["namespace"], call["name"]) == ("function_call", NAMESPACE,
                                                              TARGET[1])
    assert json.loads(call["arguments"]) == ARGUMENTS
    assert output["call_id"] == call["call_id"]
    assert TARGET[1] in str(output["output"])  # the MCP server's answer came back


def test_the_ledger_prices_each_exchange_with_its_detour(run: McpRun) -> None:
    check_detour_ledger(run, lambda c: (c["input_tokens"],
                                        c["input_tokens_details"]["cached_tokens"],
                                        c["output_tokens"]),
                        ("input_tokens", "cached_tokens", "output_tokens"))

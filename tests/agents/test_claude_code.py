"""`claude -p` (Claude Code from npm) runs a scripted shell task through the sidecar to the simulator.

Each session runs twice: through the default pipeline, and with every plugin
off (the sidecar only relays and measures), so what tokenopt changes shows by
difference; docs/claude-code.md has the figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.agents.support import (
    BUDGET,
    PASSTHROUGH,
    Session,
    agent_binary,
    breakpoints,
    run_session,
    usage_of_bill,
    usage_of_entry,
)
from tokenopt import jsonio

# A session (simulator, sidecar, agent) runs in the first test's setup: more than the
# suite's 120 s per test when the machine is busy.
pytestmark = pytest.mark.timeout(300)

PACKAGE = "@anthropic-ai/claude-code"
SCRIPT = Path(__file__).with_name("claude_code.toml")
FINAL = "Scripted answer: the shell said hi."
PROMPT = "Run echo hi in the shell, then tell me what it printed."
ENV = {
    "ANTHROPIC_BASE_URL": "{url}", "ANTHROPIC_API_KEY": "sk-ant-dummy",
    # No telemetry, update checks or error reports: nothing but the model calls.
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1",
}


CONFIGS = {"tokenopt": "", "passthrough": PASSTHROUGH, "budget": BUDGET}


def claude_session(tmp_path_factory: pytest.TempPathFactory, mode: str) -> Session:
    claude = agent_binary("claude", PACKAGE)
    return run_session(
        tmp_path_factory.mktemp(f"claude-{mode}"), script=SCRIPT, env=ENV, config=CONFIGS[mode],
        agent=[str(claude), "-p", PROMPT, "--allowedTools", "Bash(echo:*)"],
    )


@pytest.fixture(scope="module", params=["tokenopt", "passthrough"])
def session(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Session:
    return claude_session(tmp_path_factory, request.param)


def turns(session: Session) -> list[dict[str, Any]]:
    """The model calls of the task itself (with tools), in conversation order."""
    bodies = [r["body"] for r in session.requests if r["path"] == "/v1/messages"]
    return sorted((b for b in bodies if b.get("tools")), key=lambda b: len(b["messages"]))


def test_claude_runs_the_scripted_shell_call_and_prints_the_final_text(session: Session) -> None:
    assert session.result.returncode == 0, session.result.stderr
    assert session.result.stdout.strip() == FINAL
    assert [bill["outcome"] for bill in session.bills].count("scripted") == 2
    first, second = turns(session)
    [call] = [b for b in second["messages"][-2]["content"] if b["type"] == "tool_use"]
    assert (call["name"], call["input"]["command"]) == ("Bash", "echo hi")
    [result] = second["messages"][-1]["content"]
    # Claude Code ran the command: its output came back as the tool result.
    assert (result["type"], result["tool_use_id"], result["content"]) == ("tool_result", call["id"], "hi")
    assert len(second["messages"]) == len(first["messages"]) + 2


def test_tools_are_byte_stable_between_turns(session: Session) -> None:
    first, second = turns(session)
    assert jsonio.dumps(first["tools"]) == jsonio.dumps(second["tools"])
    assert "Bash" in {tool["name"] for tool in first["tools"]}


def test_at_most_four_breakpoints_and_the_clients_own_kept(session: Session) -> None:
    sent = sorted((line["body"] for line in session.sent if line["body"].get("tools")),
                  key=lambda b: len(b["messages"]))
    received = turns(session)
    assert len(sent) == len(received) == 2
    for client, upstream in zip(sent, received, strict=True):
        ours = breakpoints(upstream)
        assert len(ours) <= 4
        assert set(breakpoints(client)) <= set(ours)
    assert any(mark.startswith("system[") for mark in breakpoints(sent[0]))


def test_beta_headers_and_the_beta_query_are_relayed(session: Session) -> None:
    calls = [r for r in session.requests if r["path"] == "/v1/messages"]
    assert calls and all(r["query"] == "beta=true" for r in calls)
    for call in calls:
        betas = call["headers"]["anthropic-beta"].split(",")
        assert "claude-code-20250219" in betas and "context-management-2025-06-27" in betas
        assert call["headers"]["anthropic-version"] == "2023-06-01"
        assert "x-api-key" not in call["headers"]  # the journal keeps no secrets


def test_the_ledger_has_one_entry_per_model_call_with_the_billed_usage(session: Session) -> None:
    calls = [r for r in session.requests if r["path"] == "/v1/messages"]
    assert len(session.ledger) == len(session.bills) == len(calls)
    assert sorted(map(usage_of_entry, session.ledger)) == sorted(map(usage_of_bill, session.bills))
    assert all(entry.complete and entry.status == 200 for entry in session.ledger)
    # The second turn reads the first one's prefix from the cache.
    assert max(entry.cached_input_tokens for entry in session.ledger) > 0


def test_a_thinking_budget_holds_claude_to_low_effort(tmp_path_factory: pytest.TempPathFactory) -> None:
    session = claude_session(tmp_path_factory, "budget")
    assert session.result.returncode == 0, session.result.stderr
    assert session.result.stdout.strip() == FINAL
    sent = [line["body"] for line in session.sent]
    assert {(b["output_config"]["effort"], b["max_tokens"]) for b in sent} == {("medium", 128000)}
    received = turns(session)
    assert {(b["output_config"]["effort"], b["max_tokens"]) for b in received} == {("low", 32000)}
    assert [bill["counts"]["reasoning_tokens"] for bill in session.bills] == [64, 64]  # low, not medium
    assert sorted(map(usage_of_entry, session.ledger)) == sorted(map(usage_of_bill, session.bills))

"""Lazy tools with a real agent: extra MCP servers serving 161 real tools, and the sidecar's
tools plugin withholding what the request does not need.

The agent starts three stdio MCP servers (`mcp_server.py`) with the corpus tools of
GitHub's own MCP server and two LiveMCPBench captures. The scripted turn calls a GitHub
tool the user's words do not name, so preloading misses it and the simulated model
must search for it through tokenopt's search tool before calling it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.agents import test_claude_code, test_codex
from tests.agents.mcp_server import corpus_tools
from tests.agents.support import (
    Session,
    agent_binary,
    run_session,
    usage_of_bill,
    usage_of_entry,
)

SERVER_SCRIPT = Path(__file__).with_name("mcp_server.py")
SERVERS = ("github", "playwright", "filesystem")  # 117 + 32 + 12 tools
TARGET = ("github", "list_issues")  # what the scripted turn calls
# What the user asks shares no word with the target tool: preloading must miss it.
PROMPT = "How is acme/widgets doing? Tell me briefly."
FINAL = "Scripted answer: acme/widgets has open issues."
ARGUMENTS = {"owner": "acme", "repo": "widgets", "state": "OPEN"}
SEARCH = "list issues in a GitHub repository"
SEARCH_TOOL = "tokenopt_search_tools"
# `mode = "search"`: tokenopt's own detour whatever `auto` would price; the threshold is
# the default, far below 161 tools.
LAZY = '[plugins.tools]\nlazy = true\nmode = "search"\nlazy_threshold_tokens = 4000\n'


CLAUDE_TOOL = f"mcp__{TARGET[0]}__{TARGET[1]}"  # Claude Code's name for the target
# Claude Code's own tool search off: by default it sends MCP tools as names in a system
# message behind its ToolSearch tool, and tokenopt leaves a client-run search alone.
CLAUDE_ENV = {**test_claude_code.ENV, "ENABLE_TOOL_SEARCH": "false"}


@dataclass
class McpRun:
    """An agent session with the MCP servers, and the tool calls they answered."""

    session: Session
    calls: list[dict[str, Any]]


def corpus_size() -> int:
    return sum(len(corpus_tools(server)) for server in SERVERS)


def server_command(server: str, calls: Path) -> list[str]:
    """How the agent starts one MCP server: this Python, the script, its call log."""
    return [sys.executable, str(SERVER_SCRIPT), server, "--calls", str(calls)]


def script(tool: str, path: Path) -> Path:
    """The scripted session, with the target under the agent's name for it (`tool`)."""
    path.write_text(json.dumps({"turns": [
        {"tool": tool, "search": SEARCH, "arguments": ARGUMENTS}, {"text": FINAL}]}))
    return path


def tool_calls(calls: Path) -> list[dict[str, Any]]:
    """The calls the MCP servers answered, in order."""
    if not calls.exists():
        return []
    return [json.loads(line) for line in calls.read_text().splitlines() if line.strip()]


def claude_run(tmp: Path, config: str) -> McpRun:
    """`claude -p` with the servers in `--mcp-config` (and no others), allowed the target."""
    calls, servers = tmp / "calls.jsonl", tmp / "mcp.json"
    servers.write_text(json.dumps({"mcpServers": {
        name: {"type": "stdio", "command": command[0], "args": command[1:]}
        for name in SERVERS for command in [server_command(name, calls)]}}))
    claude = agent_binary("claude", test_claude_code.PACKAGE)
    session = run_session(
        tmp, script=script(CLAUDE_TOOL, tmp / "script.json"), env=CLAUDE_ENV, config=config,
        agent=[str(claude), "-p", PROMPT, "--mcp-config", str(servers), "--strict-mcp-config",
               "--allowedTools", CLAUDE_TOOL])
    return McpRun(session, tool_calls(calls))


def codex_run(tmp: Path, config: str) -> McpRun:
    """`codex exec` with the servers in its config.toml; Codex calls the target by its own
    name inside the server's namespace."""
    calls = tmp / "calls.jsonl"

    def home_files(home: Path, url: str) -> None:
        test_codex.codex_config(home, url)
        with (home / ".codex" / "config.toml").open("a") as file:
            for name in SERVERS:
                command = server_command(name, calls)
                # `required`: wait for the server before the first request (else Codex
                # sends it without the server's tools and adds them later).
                file.write(f"\n[mcp_servers.{name}]\nrequired = true\n"
                           f"command = {json.dumps(command[0])}\nargs = {json.dumps(command[1:])}\n")

    codex = agent_binary("codex", test_codex.PACKAGE)
    session = run_session(
        tmp, script=script(TARGET[1], tmp / "script.json"), env={"OPENAI_API_KEY": "sk-dummy"},
        home_files=home_files, config=config,
        agent=[str(codex), "exec", "--skip-git-repo-check",
               "--dangerously-bypass-approvals-and-sandbox", PROMPT])
    return McpRun(session, tool_calls(calls))


def check_detour_ledger(run: McpRun, call_usage: Callable[[dict[str, Any]], tuple[int, ...]],
                        billed: tuple[str, ...]) -> None:
    """One ledger entry per exchange, the detour's upstream calls summed in the first, each
    call's usage (read by `call_usage` from the dialect's usage) equal to the `billed`
    counts of the simulator's bill; the tools segment cut to under a third."""
    ledger = sorted(run.session.ledger, key=lambda entry: entry.ts)
    bills = run.session.bills
    assert len(ledger) == len(run.session.sent) == 2 and len(bills) == 3
    assert all(entry.complete and entry.status == 200 for entry in ledger)
    assert [entry.search_detours for entry in ledger] == [1, 0]
    # One entry per exchange: the detour's two upstream calls are summed in the first.
    summed = [sum(column) for column in zip(*map(usage_of_entry, ledger), strict=True)]
    assert summed == [sum(column) for column in zip(*map(usage_of_bill, bills), strict=True)]
    assert usage_of_entry(ledger[1]) == usage_of_bill(bills[2])
    # ... and the entry keeps each upstream call's usage, as the simulator billed it.
    calls = ledger[0].plugins["tools"]["calls"]
    assert [call_usage(c) for c in calls] == [
        tuple(b["counts"][field] for field in billed) for b in bills[:2]]
    assert ledger[0].detour_cost_usd > 0
    assert all(entry.tokens_after["tools"] < entry.tokens_before["tools"] // 3
               for entry in ledger)

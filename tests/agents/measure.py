"""Tokens and cost per request for each agent's scripted session, with and without tokenopt.

    python -m tests.agents.measure [--mcp] [DIR]

Runs the sessions of tests/agents (sidecar with the default config, with every plugin
off, and with the thinking budget), then prints one Markdown row per ledger entry.
With `--mcp`, the sessions with 161 MCP tools instead (tests/agents/lazy_tools.py):
the default config (lazy tools off), lazy tools on, and every plugin off. A ledger
entry is one exchange of the agent's: a search detour's calls are summed in it.
The session directories have names of equal length, so the paths in the prompts
tokenise alike. DIR (default: a fresh temporary directory) keeps every file.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.agents import lazy_tools, test_claude_code, test_codex
from tests.agents.support import BUDGET, PASSTHROUGH, Session

RUNS = {"tokenopt": "", "plugoff": PASSTHROUGH, "budget_": BUDGET}  # equal-length names
MCP_RUNS = {"lazyoff": "", "lazyon_": lazy_tools.LAZY, "plugoff": PASSTHROUGH}


def session(agent: str, mode: str, root: Path) -> Session:
    from tests.agents.support import agent_binary, run_session

    tmp = root / f"{agent}-{mode}"
    tmp.mkdir()
    if agent == "claude":
        binary = agent_binary("claude", test_claude_code.PACKAGE)
        return run_session(tmp, script=test_claude_code.SCRIPT, env=test_claude_code.ENV,
                           config=RUNS[mode], agent=[str(binary), "-p", test_claude_code.PROMPT,
                                                     "--allowedTools", "Bash(echo:*)"])
    binary = agent_binary("codex", test_codex.PACKAGE)
    return run_session(tmp, script=test_codex.SCRIPT, env={"OPENAI_API_KEY": "sk-dummy"},
                       home_files=test_codex.codex_config, config=RUNS[mode],
                       agent=[str(binary), "exec", "--skip-git-repo-check",
                              "--dangerously-bypass-approvals-and-sandbox", test_codex.PROMPT])


def mcp_session(agent: str, mode: str, root: Path) -> Session:
    tmp = root / f"{agent}-mcp-{mode}"
    tmp.mkdir()
    run = lazy_tools.claude_run if agent == "claude" else lazy_tools.codex_run
    return run(tmp, MCP_RUNS[mode]).session


def main(argv: list[str]) -> int:
    mcp = "--mcp" in argv
    argv = [arg for arg in argv if arg != "--mcp"]
    root = Path(argv[0]) if argv else Path(tempfile.mkdtemp(prefix="agents-"))
    runs, start = (MCP_RUNS, mcp_session) if mcp else (RUNS, session)
    print("| Agent | Run | Request | Model | Input | Cached | Cache write | Output | Reasoning "
          "| Cost | Cost before (estimate) | Detours | Cache break |")
    print("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
          "| --- |")
    for agent in ("claude", "codex"):
        for mode in runs:
            done = start(agent, mode, root)
            if done.result.returncode != 0:
                print(f"{agent} {mode} failed: {done.result.stderr}", file=sys.stderr)
                return 1
            rows(agent, mode, done)
    print(f"files: {root}", file=sys.stderr)
    return 0


def rows(agent: str, mode: str, done: Session) -> None:
    """One row per ledger entry, then the session's totals."""
    total = [0] * 5
    cost = 0.0
    for index, e in enumerate(sorted(done.ledger, key=lambda e: e.ts), 1):
        cost += e.cost_usd_after
        figures = (e.input_tokens, e.cached_input_tokens, e.cache_write_tokens,
                   e.output_tokens, e.reasoning_tokens)
        total = [a + b for a, b in zip(total, figures, strict=True)]
        print(f"| {agent} | {mode} | {index} | {e.model} | "
              + " | ".join(f"{n:,}" for n in figures)
              + f" | ${e.cost_usd_after:.5f} | ${e.cost_usd_before:.5f} | {e.search_detours} "
              f"| {e.cache_break or ''} |")
    print(f"| {agent} | {mode} | total | | " + " | ".join(f"{n:,}" for n in total)
          + f" | ${cost:.5f} | | | |")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

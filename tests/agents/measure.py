"""Tokens and cost per request for each agent's scripted session, with and without tokenopt.

    python -m tests.agents.measure [DIR]

Runs the sessions of tests/agents (sidecar with the default config, with every plugin
off, and with the thinking budget), then prints one Markdown row per ledger entry.
The session directories have names of equal length, so the paths in the prompts
tokenise alike. DIR (default: a fresh temporary directory) keeps every file.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.agents import test_claude_code, test_codex
from tests.agents.support import BUDGET, PASSTHROUGH, Session

RUNS = {"tokenopt": "", "plugoff": PASSTHROUGH, "budget_": BUDGET}  # equal-length names


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


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path(tempfile.mkdtemp(prefix="agents-"))
    print("| Agent | Run | Request | Model | Input | Cached | Cache write | Output | Reasoning "
          "| Cost | Cost before (estimate) | Cache break |")
    print("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for agent in ("claude", "codex"):
        for mode in RUNS:
            done = session(agent, mode, root)
            if done.result.returncode != 0:
                print(f"{agent} {mode} failed: {done.result.stderr}", file=sys.stderr)
                return 1
            total = 0.0
            for index, e in enumerate(sorted(done.ledger, key=lambda e: e.ts), 1):
                total += e.cost_usd_after
                figures = (e.input_tokens, e.cached_input_tokens, e.cache_write_tokens,
                           e.output_tokens, e.reasoning_tokens)
                print(f"| {agent} | {mode} | {index} | {e.model} | "
                      + " | ".join(f"{n:,}" for n in figures)
                      + f" | ${e.cost_usd_after:.5f} | ${e.cost_usd_before:.5f} | {e.cache_break or ''} |")
            print(f"| {agent} | {mode} | total | | | | | | | ${total:.5f} | | |")
    print(f"files: {root}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

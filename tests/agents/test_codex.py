"""`codex exec` (Codex CLI from npm) runs a scripted shell task through the sidecar to the simulator.

Codex reaches the sidecar through a model provider in its config.toml, on the
Responses wire API. As for Claude Code, each session runs through the default
pipeline and with every plugin off; docs/codex.md has the figures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.agents.support import (
    BUDGET,
    PASSTHROUGH,
    Session,
    agent_binary,
    run_session,
    usage_of_bill,
    usage_of_entry,
)
from tokenopt import jsonio

# A session (simulator, sidecar, agent) runs in the first test's setup: more than the
# suite's 120 s per test when the machine is busy.
pytestmark = pytest.mark.timeout(300)

PACKAGE = "@openai/codex"
SCRIPT = Path(__file__).with_name("codex.toml")
FINAL = "Scripted answer: the shell said hi."
PROMPT = "Run echo hi in the shell, then tell me what it printed."
MODEL = "gpt-5"


def codex_config(home: Path, url: str) -> None:
    """A model provider pointing at the sidecar, on the Responses API; no analytics."""
    (home / ".codex").mkdir()
    (home / ".codex" / "config.toml").write_text(
        f'model = "{MODEL}"\nmodel_provider = "tokenopt"\n\n'
        "[analytics]\nenabled = false\n\n"
        "[model_providers.tokenopt]\n"
        f'name = "tokenopt"\nbase_url = "{url}/v1"\nenv_key = "OPENAI_API_KEY"\n'
        'wire_api = "responses"\n'
    )


CONFIGS = {"tokenopt": "", "passthrough": PASSTHROUGH, "budget": BUDGET}


def codex_session(tmp_path_factory: pytest.TempPathFactory, mode: str) -> Session:
    codex = agent_binary("codex", PACKAGE)
    return run_session(
        tmp_path_factory.mktemp(f"codex-{mode}"), script=SCRIPT, env={"OPENAI_API_KEY": "sk-dummy"},
        home_files=codex_config, config=CONFIGS[mode],
        # The agent's own sandbox needs namespaces a CI container may not give; the
        # scripted command is `echo hi`.
        agent=[str(codex), "exec", "--skip-git-repo-check",
               "--dangerously-bypass-approvals-and-sandbox", PROMPT],
    )


@pytest.fixture(scope="module", params=["tokenopt", "passthrough"])
def session(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Session:
    return codex_session(tmp_path_factory, request.param)


def turns(session: Session) -> list[dict[str, Any]]:
    bodies = [r["body"] for r in session.requests if r["path"] == "/v1/responses"]
    return sorted(bodies, key=lambda b: len(b["input"]))


def test_codex_runs_the_scripted_shell_call_and_prints_the_final_text(session: Session) -> None:
    assert session.result.returncode == 0, session.result.stderr
    assert session.result.stdout.strip() == FINAL
    assert [bill["outcome"] for bill in session.bills] == ["scripted", "scripted"]
    first, second = turns(session)
    call, output = second["input"][len(first["input"]):]
    assert (call["type"], call["name"], json.loads(call["arguments"])) == (
        "function_call", "exec_command", {"cmd": "echo hi"})
    # Codex ran the command: its output came back for the same call id.
    assert (output["type"], output["call_id"]) == ("function_call_output", call["call_id"])
    assert "Process exited with code 0" in output["output"] and "\nhi\n" in output["output"]


def test_tools_are_byte_stable_between_turns(session: Session) -> None:
    first, second = turns(session)
    assert jsonio.dumps(first["tools"]) == jsonio.dumps(second["tools"])
    assert "exec_command" in {tool.get("name") for tool in first["tools"]}


def test_the_clients_prompt_cache_key_is_respected(session: Session) -> None:
    sent = [line["body"]["prompt_cache_key"] for line in session.sent]
    received = [body["prompt_cache_key"] for body in turns(session)]
    assert len(set(sent)) == 1 and received == sent
    # One key for the session, so the second turn reads the first one's prefix.
    assert max(entry.cached_input_tokens for entry in session.ledger) > 0


def test_codex_headers_are_relayed(session: Session) -> None:
    for request in session.requests:
        headers = request["headers"]
        assert headers["originator"] == "codex_exec"
        assert headers["session-id"] == request["body"]["prompt_cache_key"]
        assert "authorization" not in headers  # the journal keeps no secrets


def test_the_ledger_has_one_entry_per_model_call_with_the_billed_usage(session: Session) -> None:
    assert len(session.ledger) == len(session.bills) == len(session.requests) == 2
    assert sorted(map(usage_of_entry, session.ledger)) == sorted(map(usage_of_bill, session.bills))
    assert all(entry.complete and entry.status == 200 and entry.model == MODEL
               for entry in session.ledger)


def test_a_thinking_budget_holds_codex_to_low_effort(tmp_path_factory: pytest.TempPathFactory) -> None:
    session = codex_session(tmp_path_factory, "budget")
    assert session.result.returncode == 0, session.result.stderr
    assert session.result.stdout.strip() == FINAL
    # Codex sends no effort (the model's default) and no output cap; the rule sets both.
    assert all("effort" not in line["body"]["reasoning"] and "max_output_tokens" not in line["body"]
               for line in session.sent)
    received = turns(session)
    assert {(b["reasoning"]["effort"], b["max_output_tokens"]) for b in received} == {("low", 32000)}
    assert [bill["counts"]["reasoning_tokens"] for bill in session.bills] == [64, 64]
    assert sorted(map(usage_of_entry, session.ledger)) == sorted(map(usage_of_bill, session.bills))

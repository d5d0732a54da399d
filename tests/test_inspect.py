"""`tokenopt inspect`: rewritten body on stdout, what each plugin did on stderr, no network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tokenopt.cli import main

CONFIG = """
[[plugins.thinking.rules]]
name = "classify"
match = {task = "classification"}
max_thinking_tokens = 0
max_output_tokens = 512

[[plugins.thinking.rules]]
name = "no-max"
match = {model = "gpt-5*"}
max_effort = "medium"
mode = "reject"
"""
MESSAGES = {"model": "claude-sonnet-4-5", "max_tokens": 4000,
            "messages": [{"role": "user", "content": "Is this spam?"}],
            "thinking": {"type": "enabled", "budget_tokens": 2000}}


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "tokenopt.toml").write_text(CONFIG)
    (tmp_path / "messages.json").write_text(json.dumps(MESSAGES))
    return tmp_path


def test_inspect_prints_the_rewritten_body_and_the_plugins_notes(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["inspect", str(files / "messages.json"), "--config", str(files / "tokenopt.toml"),
                 "--header", "x-tokenopt-task: classification"])
    out, err = capsys.readouterr()
    assert code == 0
    assert json.loads(out) == {**MESSAGES, "max_tokens": 512, "thinking": {"type": "disabled"}}
    assert '"rule": "classify"' in err and "thinking.type 'enabled' -> 'disabled'" in err


def test_inspect_reads_a_traffic_line_and_shows_an_unmatched_request_unchanged(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = {"ts": 1, "path": "/v1/messages", "headers": {"x-tokenopt-task": "coding"},
            "body": MESSAGES}
    (files / "line.json").write_text(json.dumps(line))
    code = main(["inspect", str(files / "line.json"), "--config", str(files / "tokenopt.toml")])
    out, err = capsys.readouterr()
    assert code == 0 and json.loads(out) == MESSAGES
    assert "unchanged" in err


def test_inspect_shows_a_rejection_in_the_clients_dialect(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (files / "chat.json").write_text(json.dumps(
        {"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}],
         "reasoning_effort": "high"}))
    code = main(["inspect", str(files / "chat.json"), "--config", str(files / "tokenopt.toml"),
                 "--path", "/v1/chat/completions"])
    out, err = capsys.readouterr()
    assert code == 1
    error = json.loads(out)["error"]
    assert error["type"] == "invalid_request_error" and "'no-max'" in error["message"]
    assert "rejected (400, rule no-max)" in err

"""Real coding agents through the sidecar to the scripted simulator, each its own process.

    agent (claude -p / codex exec) -> tokenopt serve --record -> tokenopt sim --script --journal

The agents come from npm, pinned in `.ci/node/package.json`, which `.ci/run`
installs into `.ci/node/node_modules/.bin`. Without them a test skips, except in
CI (`CI` or `TOKENOPT_CI=1` set), where a missing agent fails the run.
The agent gets a fresh HOME, a dummy key, and a proxy that goes nowhere, so
whatever it would fetch beyond loopback fails at once instead of leaving the
machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tokenopt.ledger import LedgerEntry

REPO = Path(__file__).resolve().parents[2]
NODE_PREFIX = REPO / ".ci" / "node"
AGENT_TIMEOUT = 120.0
START_TIMEOUT = 30.0
# Every built-in plugin off: the sidecar only relays and measures (the "without tokenopt" run).
PASSTHROUGH = "".join(f"[plugins.{name}]\nenabled = false\n\n"
                      for name in ("normalize", "tools", "thinking"))
# A thinking budget both agents are held to in one extra session each.
BUDGET = '[plugins.thinking]\nrules = [{ max_effort = "low", max_output_tokens = 32000 }]\n'
T = TypeVar("T")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false") or \
        os.environ.get("TOKENOPT_CI") == "1"


def pinned(package: str) -> str:
    """The version `.ci/node/package.json` pins for an npm package."""
    manifest = json.loads((NODE_PREFIX / "package.json").read_text())
    return str(manifest["dependencies"][package])


def agent_binary(name: str, package: str) -> Path:
    """The installed agent: `.ci/node` first, then PATH; skip (or fail in CI) if absent."""
    local = NODE_PREFIX / "node_modules" / ".bin" / name
    found = local if local.exists() else shutil.which(name)
    if found is None:
        message = (f"{name} not installed: npm install --prefix .ci/node "
                   f"(pins {package}@{pinned(package)})")
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return Path(found)


def wait_for(check: Callable[[], T | None], what: str, timeout: float = START_TIMEOUT) -> T:
    """Poll `check` until it returns a value: a port announced, a file line written."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Service:
    """A tokenopt process announcing its URL on stderr."""

    process: subprocess.Popen[bytes]
    log: Path
    url: str


@contextlib.contextmanager
def tokenopt_process(args: list[str], log: Path, announced: str,
                     env: dict[str, str] | None = None) -> Iterator[Service]:
    """Run `tokenopt ARGS` (port 0) until the log line `announced URL` names its address."""
    pattern = re.compile(re.escape(announced) + r" (http://127\.0\.0\.1:\d+)")
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "tokenopt.cli", *args],
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                   env={**os.environ, **(env or {})})
    try:
        def announced_url() -> str | None:
            if process.poll() is not None:
                raise AssertionError(f"tokenopt {args[0]} exited: {log.read_text()}")
            found = pattern.search(log.read_text(errors="replace"))
            return found.group(1) if found else None

        yield Service(process, log, wait_for(announced_url, f"tokenopt {args[0]} to listen"))
    finally:
        process.terminate()
        process.wait(timeout=30)


@dataclass
class Session:
    """One agent run and everything recorded about it."""

    result: subprocess.CompletedProcess[str]
    journal: list[dict[str, Any]]  # what the simulator received and billed
    sent: list[dict[str, Any]]  # the sidecar's record: bodies as the agent sent them
    ledger: list[LedgerEntry]

    @property
    def requests(self) -> list[dict[str, Any]]:
        return [line for line in self.journal if line["kind"] == "request"]

    @property
    def bills(self) -> list[dict[str, Any]]:
        return [line for line in self.journal if line["kind"] == "bill"]


def run_session(tmp: Path, *, script: Path, agent: list[str], env: dict[str, str],
                config: str = "", home_files: Callable[[Path, str], None] | None = None) -> Session:
    """The simulator, the sidecar (settings TOML `config`), then the agent, to completion.

    `home_files(home, sidecar_url)` writes the agent's own configuration into its HOME.
    """
    journal, record, ledger = tmp / "journal.jsonl", tmp / "sent.jsonl", tmp / "ledger.sqlite"
    settings = tmp / "tokenopt.toml"
    settings.write_text(config)
    home, work = tmp / "home", tmp / "work"
    home.mkdir()
    work.mkdir()
    with contextlib.ExitStack() as stack:
        sim = stack.enter_context(tokenopt_process(
            ["sim", "--port", "0", "--script", str(script), "--journal", str(journal)],
            tmp / "sim.log", "provider simulator on"))
        sidecar = stack.enter_context(tokenopt_process(
            ["serve", "--port", "0", "--upstream", sim.url, "--config", str(settings),
             "--record", str(record)],
            tmp / "sidecar.log", "tokenopt sidecar on", env={"TOKENOPT_LEDGER": str(ledger)}))
        if home_files is not None:
            home_files(home, sidecar.url)
        result = subprocess.run(
            agent, cwd=work, env=agent_env(home, {k: v.format(url=sidecar.url) for k, v in env.items()}),
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=AGENT_TIMEOUT,
            check=False)
        lines = _read_lines(journal)
        # A search round is answered inside the sidecar (lazy tools' detour), which asks
        # again in the same exchange: the agent made one call fewer.
        calls = sum(line["kind"] == "bill" and line["outcome"] != "search" for line in lines)
        # The sidecar records and prices after each response: wait for the last one.
        sent = wait_for(lambda: _at_least(_read_lines(record), calls), "the sidecar's record")
        entries = wait_for(lambda: _at_least(_ledger(ledger), calls), "the ledger")
    return Session(result, lines, sent, entries)


def agent_env(home: Path, extra: dict[str, str]) -> dict[str, str]:
    """A clean environment: PATH, a fresh HOME, no proxy to anywhere but loopback."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8",
        "TERM": "dumb", "TMPDIR": str(home),
        "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost", **extra,
    }


def _at_least(items: list[T], count: int) -> list[T] | None:
    return items if len(items) >= count else None


def _read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _ledger(path: Path) -> list[LedgerEntry]:
    if not path.exists():
        return []
    with contextlib.closing(sqlite3.connect(path)) as db:
        try:
            rows = db.execute("SELECT data FROM entries ORDER BY ts").fetchall()
        except sqlite3.OperationalError:  # the sidecar has not created the table yet
            return []
    return [LedgerEntry.from_json(json.loads(data)) for (data,) in rows]


def usage_of_bill(bill: dict[str, Any]) -> tuple[int, ...]:
    counts = bill["counts"]
    return (counts["input_tokens"], counts["cached_tokens"], counts["cache_write_tokens"],
            counts["output_tokens"], counts["reasoning_tokens"])


def usage_of_entry(entry: LedgerEntry) -> tuple[int, ...]:
    return (entry.input_tokens, entry.cached_input_tokens, entry.cache_write_tokens,
            entry.output_tokens, entry.reasoning_tokens)


def breakpoints(body: dict[str, Any]) -> list[str]:
    """Where a Messages body carries `cache_control`: tools[i], system[i], messages[i][j]."""
    marks = [f"tools[{i}]" for i, tool in enumerate(body.get("tools") or [])
             if "cache_control" in tool]
    system = body.get("system")
    if isinstance(system, list):
        marks += [f"system[{i}]" for i, block in enumerate(system) if "cache_control" in block]
    for i, message in enumerate(body.get("messages") or []):
        content = message.get("content")
        if isinstance(content, list):
            marks += [f"messages[{i}][{j}]" for j, block in enumerate(content)
                      if isinstance(block, dict) and "cache_control" in block]
    return marks

"""The recipes in RECIPES run as written, against the simulator.

Every fenced block is checked: Python blocks are executed, each `tokenopt serve` line
is started as a real process, config files are loaded, and the agent blocks are
checked for the variables and commands that point the agent at the sidecar (the
agents themselves run in tests/agents/). Provider URLs are replaced by the
simulator's and the sidecar's fixed ports by live ones; nothing else is edited.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.processes import free_port, stop, wait_ready
from tests.integration.support import QueueSink, Sim, settings_for
from tokenopt.cli import _parser
from tokenopt.engine import Engine
from tokenopt.proxy import create_app
from tokenopt.serving import ServerThread
from tokenopt.settings import Settings
from tokenopt.sim import create_sim_app

RECIPES = Path(__file__).resolve().parents[1] / "docs" / "recipes.md"
# Hosts the recipes name, all answered here by the simulator.
UPSTREAMS = ("https://api.openai.com", "https://api.anthropic.com", "https://openrouter.ai/api",
             "http://127.0.0.1:4000", "http://127.0.0.1:8000")
SIDECAR = re.compile(r"http://127\.0\.0\.1:808\d")
KEY = "sk-recipe-test"
TOKENOPT = str(Path(sys.executable).with_name("tokenopt"))  # the command the recipes run
TOOLS = [{"name": name, "description": f"{name} tool",
          "schema": {"type": "object", "properties": {"b": {"type": "string"},
                                                      "a": {"type": "string"}}}}
         for name in ("zeta", "alpha")]

pytestmark = pytest.mark.timeout(300)


@dataclass
class Block:
    section: str
    lang: str
    code: str
    index: int

    @property
    def id(self) -> str:
        return f"{self.section.lower().replace(' ', '-')}:{self.lang}{self.index}"

    @property
    def filename(self) -> str | None:
        """Config blocks name their file in a first-line comment: `# vllm.toml`."""
        first = self.code.splitlines()[0]
        return first.removeprefix("# ").strip() if first.startswith("# ") else None


def read_blocks(path: Path) -> list[Block]:
    blocks: list[Block] = []
    section = ""
    lines = iter(path.read_text().splitlines())
    for line in lines:
        if line.startswith("## "):
            section = line[3:].strip()
        elif line.startswith("```") and line[3:].strip():
            body = []
            for inner in lines:
                if inner.startswith("```"):
                    break
                body.append(inner)
            blocks.append(Block(section, line[3:].strip(), "\n".join(body) + "\n", len(blocks)))
    return blocks


BLOCKS = read_blocks(RECIPES)
SECTIONS = ("Use with Claude Code", "Use with Codex", "Use with the OpenAI / Anthropic SDKs",
            "Mount in FastAPI / Starlette", "Put in front of LiteLLM / OpenRouter / vLLM")


def of(lang: str, section: str | None = None) -> list[Block]:
    return [b for b in BLOCKS if b.lang == lang and section in (None, b.section)]


@dataclass
class Shell:
    """A shell block read as a person would run it: exports, then commands."""

    env: dict[str, str] = field(default_factory=dict)
    commands: list[list[str]] = field(default_factory=list)

    @classmethod
    def parse(cls, code: str) -> Shell:
        shell = cls()
        for line in code.splitlines():
            words = shlex.split(line, comments=True)
            if words and words[-1] == "&":
                words = words[:-1]
            if words[:1] == ["export"]:
                name, _, value = words[1].partition("=")
                shell.env[name] = value
            elif words:
                shell.commands.append(words)
        return shell

    def serves(self) -> list[list[str]]:
        return [c[2:] for c in self.commands if c[:2] == ["tokenopt", "serve"]]


def _require(module: str) -> None:
    """Skip without `module` (it comes with litellm[proxy]); in CI its absence fails."""
    if importlib.util.find_spec(module) is not None:
        return
    if any(os.environ.get(n, "").lower() not in ("", "0", "false") for n in ("CI", "TOKENOPT_CI")):
        pytest.fail(f"{module} is not installed: .ci/run installs it with litellm[proxy]")
    pytest.skip(f"needs {module} (pip install 'litellm[proxy]' brings it)")


def _to_sim(text: str, sim: str) -> str:
    for host in UPSTREAMS:
        text = text.replace(host, sim)
    return text


@pytest.fixture(scope="module")
def sim() -> Iterator[Sim]:
    app = create_sim_app()
    with ServerThread(app) as url:
        yield Sim(app, url)


@dataclass
class Served:
    """A `tokenopt serve` line from the recipes, running: its arguments and live URL."""

    args: Any
    url: str
    proc: subprocess.Popen[bytes]
    log: Path


@pytest.fixture(scope="module")
def served(sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Served]]:
    """Every serve line of the recipes as a real process, started together."""
    workdir = tmp_path_factory.mktemp("recipes")
    for block in of("toml"):
        if block.filename and "/" not in block.filename:
            (workdir / block.filename).write_text(block.code)
    lines = {shlex.join(words): words for b in of("sh") for words in Shell.parse(b.code).serves()}
    with contextlib.ExitStack() as stack:
        running: dict[str, Served] = {}
        for line, words in lines.items():
            args = _parser().parse_args(["serve", *words])
            port = free_port()
            command = [TOKENOPT, "--log-level", "warning", "serve",
                       "--upstream", _to_sim(args.upstream, sim.url), "--port", str(port),
                       *(["--config", args.config] if args.config else [])]
            log = stack.enter_context(open(workdir / f"serve-{port}.log", "wb"))
            proc = subprocess.Popen(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL,
                                    env={k: v for k, v in os.environ.items()
                                         if not k.startswith("TOKENOPT_")})
            stack.callback(stop, proc, 20)
            running[line] = Served(args, f"http://127.0.0.1:{port}", proc, workdir / f"serve-{port}.log")
        for server in running.values():
            wait_ready(server.url + "/healthz", server.proc, server.log, timeout=120,
                       ready=lambda status: status == 200)
        yield running


def _request(route: str, model: str) -> dict[str, Any]:
    """A request in `route`'s dialect, its tools out of order so a rewrite shows."""
    if route == "/v1/messages":
        return {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}],
                "tools": [{"name": t["name"], "description": t["description"],
                           "input_schema": t["schema"]} for t in TOOLS]}
    return {"model": model, "messages": [{"role": "user", "content": "Hi"}],
            "tools": [{"type": "function", "function": {
                "name": t["name"], "description": t["description"], "parameters": t["schema"]}}
                for t in TOOLS]}


def _headers(route: str) -> dict[str, str]:
    if route == "/v1/messages":
        return {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    return {"authorization": f"Bearer {KEY}"}


def _tool_names(body: bytes) -> list[str]:
    tools = json.loads(body)["tools"]
    return [t.get("name") or t["function"]["name"] for t in tools]


def test_the_recipes_cover_every_section_and_every_block_is_checked() -> None:
    assert {b.section for b in BLOCKS} == set(SECTIONS)
    assert {b.lang for b in BLOCKS} <= {"sh", "python", "toml", "yaml"}
    for block in of("sh"):
        assert Shell.parse(block.code).serves(), f"{block.id} starts no sidecar"
    for block in of("toml") + of("yaml"):
        assert block.filename, f"{block.id}: name the file in a first-line comment"


@pytest.mark.parametrize("line", sorted({shlex.join(w) for b in of("sh")
                                         for w in Shell.parse(b.code).serves()}))
def test_each_serve_line_starts_a_sidecar_that_optimises_and_relays(
    line: str, served: dict[str, Served], sim: Sim
) -> None:
    server = served[line]
    route = "/v1/messages" if "anthropic" in server.args.upstream else "/v1/chat/completions"
    before = len(sim.app.state.received)
    answer = httpx.post(server.url + route, json=_request(route, "claude-sonnet-4-5"
                                                          if route == "/v1/messages"
                                                          else "gpt-4.1"),
                        headers=_headers(route), timeout=60)
    assert answer.status_code == 200, answer.text
    _, path, _, body = list(sim.app.state.received)[before]
    assert path == route and _tool_names(body) == ["alpha", "zeta"]  # tokenopt sorted them


def test_claude_code_is_pointed_at_the_anthropic_sidecar(served: dict[str, Served]) -> None:
    (block,) = of("sh", "Use with Claude Code")
    shell = Shell.parse(block.code)
    (serve,) = shell.serves()
    args = served[shlex.join(serve)].args
    assert args.upstream == "https://api.anthropic.com"
    assert shell.env["ANTHROPIC_BASE_URL"] == f"http://{args.host}:{args.port}"
    assert shell.commands[-1][0] == "claude"


def test_codex_is_pointed_at_the_openai_sidecar_on_the_responses_api(
    served: dict[str, Served], sim: Sim
) -> None:
    (config_block,) = of("toml", "Use with Codex")
    (shell_block,) = of("sh", "Use with Codex")
    assert config_block.filename == "~/.codex/config.toml"
    config = tomllib.loads(config_block.code)
    provider = config["model_providers"][config["model_provider"]]
    shell = Shell.parse(shell_block.code)
    (serve,) = shell.serves()
    server = served[shlex.join(serve)]
    assert server.args.upstream == "https://api.openai.com"
    assert provider["base_url"] == f"http://{server.args.host}:{server.args.port}/v1"
    assert provider["wire_api"] == "responses" and provider["env_key"] == "OPENAI_API_KEY"
    assert shell.commands[-1][:2] == ["codex", "exec"]
    # What Codex then sends, at the provider's base_url (its port made live).
    base = SIDECAR.sub(server.url, provider["base_url"])
    answer = httpx.post(base + "/responses", headers=_headers("/v1/responses"),
                        json={"model": "gpt-5", "input": "Hi", "prompt_cache_key": "codex-session"})
    assert answer.status_code == 200, answer.text
    assert json.loads(sim.app.state.received[-1][3])["prompt_cache_key"] == "codex-session"


@contextlib.contextmanager
def _sidecar(upstream: str) -> Iterator[tuple[str, QueueSink]]:
    settings = settings_for(upstream)
    sink = QueueSink()
    with ServerThread(create_app(settings, engine=Engine.from_settings(settings, sinks=[sink]))) \
            as url:
        yield url, sink


@pytest.mark.parametrize("block", of("python"), ids=lambda b: b.id)
def test_python_recipes_run_against_the_simulator(
    block: Block, sim: Sim, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if "from fastapi" in block.code:
        _require("fastapi")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    for name in [n for n in os.environ if n.startswith("TOKENOPT_")]:
        monkeypatch.delenv(name)
    before = len(sim.app.state.received)
    with _sidecar(sim.url) as (url, sink):
        namespace: dict[str, Any] = {"__name__": "recipe"}
        code = compile(SIDECAR.sub(url, _to_sim(block.code, sim.url)), block.id, "exec")
        exec(code, namespace)  # noqa: S102 -- running the documented snippet is the test
        if "app" in namespace:
            _call_the_mounted_app(namespace["app"], block.code, sim)
        else:
            printed = capsys.readouterr().out
            calls = len(sim.app.state.received) - before
            assert calls >= 1 and printed.strip()
            for _ in range(calls):  # each call went through the sidecar, usage read
                record = sink.next()
                assert record.usage is not None and record.usage.output_tokens > 0


def _call_the_mounted_app(app: Any, code: str, sim: Sim) -> None:
    """Serve the recipe's app; a request through it reaches the simulator rewritten."""
    found = re.search(r'"(/v1/(?:chat/completions|messages|responses))"', code)
    assert found is not None, "the mounted app names the route it forwards"
    route = found.group(1)
    body = _request(route, "claude-sonnet-4-5" if route == "/v1/messages" else "gpt-4.1")
    with ServerThread(app) as url:
        before = len(sim.app.state.received)
        with httpx.stream("POST", url + route, json={**body, "stream": True},
                          headers=_headers(route), timeout=60) as answer:
            text = answer.read().decode()
        assert answer.status_code == 200, text
        assert "data: " in text  # streamed back as server-sent events
        assert httpx.get(url + "/not-an-llm-route").status_code == 404  # passed through
    _, path, _, sent = list(sim.app.state.received)[before]
    assert path == route and _tool_names(sent) == ["alpha", "zeta"]


@pytest.mark.parametrize("block", [b for b in of("toml") if b.filename and "/" not in b.filename],
                         ids=lambda b: b.id)
def test_tokenopt_config_files_in_the_recipes_load(block: Block, tmp_path: Path) -> None:
    assert block.filename is not None
    path = tmp_path / block.filename
    path.write_text(block.code)
    settings = Settings.load(path, environ={})
    assert settings.plugins, "the file configures a plugin"


def test_the_litellm_config_adds_breakpoints_for_claude() -> None:
    _require("yaml")
    import yaml  # type: ignore[import-untyped]
    (block,) = of("yaml")
    (model,) = yaml.safe_load(block.code)["model_list"]
    params = model["litellm_params"]
    assert params["model"].startswith("anthropic/")
    assert {"location": "message", "role": "system"} in params["cache_control_injection_points"]

"""tokenopt in front of a real LiteLLM proxy in front of the simulator: what survives LiteLLM.

    client -> tokenopt sidecar -> LiteLLM proxy (subprocess) -> tokenopt sim

A reference sidecar sends the same requests straight to the simulator, so each test
compares what the simulator received both ways. The findings, and what cannot be fixed
from tokenopt's side, are in docs/routers.md; a LiteLLM upgrade that changes one of
them fails here first.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.processes import free_port, running
from tests.integration.support import QueueSink, Sim, settings_for
from tokenopt.engine import Engine
from tokenopt.proxy import create_app
from tokenopt.records import ExchangeRecord
from tokenopt.serving import ServerThread
from tokenopt.sim import create_sim_app
from tokenopt.types import Receive, Scope, Send

LITELLM_PIN = "1.108.7"  # the version .ci/run installs
MASTER_KEY = "sk-0123456789abcdef0123456789abcdef"
OPENAI = {"authorization": f"Bearer {MASTER_KEY}"}
ANTHROPIC = {"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01",
             "anthropic-beta": "context-management-2025-06-27"}
# Budgets the sidecars enforce, to see whether LiteLLM's translation keeps them.
RULES = [{"match": {"model": "gpt-5*"}, "max_effort": "low"},
         {"match": {"model": "claude-*"}, "max_thinking_tokens": 1500}]
# Long enough to be cached by every provider's rules (>= 2048 tokens).
SYSTEM = "You are a careful assistant who answers in one short sentence. " * 220
SCHEMA = {"type": "object", "properties": {"zone": {"type": "string"}, "city": {"type": "string"}}}
OPENAI_TOOLS = [{"type": "function", "function": {"name": name, "description": f"{name} tool",
                                                  "parameters": SCHEMA}}
                for name in ("zeta", "alpha")]
ANTHROPIC_TOOLS = [{"name": name, "description": f"{name} tool", "input_schema": SCHEMA}
                   for name in ("zeta", "alpha")]

pytestmark = pytest.mark.timeout(600)  # LiteLLM's import alone is ~12 s of CPU


def _config(sim: str) -> str:
    def route(name: str, model: str, base: str, extra: str = "") -> str:
        return (f"  - model_name: {name}\n    litellm_params:\n      model: {model}\n"
                f"      api_base: {base}\n      api_key: sk-sim-upstream\n{extra}")

    # LiteLLM's own fix for Claude behind an OpenAI-format route: it adds the breakpoints.
    inject = ("      cache_control_injection_points:\n"
              "        - {location: message, role: system}\n")
    return "model_list:\n" + "".join([
        route("gpt-5", "openai/gpt-5", f"{sim}/v1"),
        route("claude-opus-4-6", "anthropic/claude-opus-4-6", sim),
        route("claude-sonnet-4-5", "anthropic/claude-sonnet-4-5", sim),
        route("claude-cached", "anthropic/claude-sonnet-4-5", sim, inject),
    ]) + f"general_settings:\n  master_key: {MASTER_KEY}\n"


def _in_ci() -> bool:
    return any(os.environ.get(name, "").lower() not in ("", "0", "false")
               for name in ("CI", "TOKENOPT_CI"))


@contextlib.contextmanager
def running_litellm(sim_url: str, workdir: Path) -> Iterator[str]:
    """A LiteLLM proxy subprocess routing to the simulator; its URL once /health answers."""
    config = workdir / "litellm.yaml"
    config.write_text(_config(sim_url))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no cost-map download
           "LITELLM_MASTER_KEY": MASTER_KEY, "NO_DOCS": "True"}
    with running([sys.executable, "-m", "litellm.proxy.proxy_cli", "--config", str(config),
                  "--host", "127.0.0.1", "--port", str(port)], url + "/health/liveliness",
                 workdir / "litellm.log", env=env, timeout=300,
                 ready=lambda status: status == 200):
        yield url


class QueryTap:
    """Keeps each request's query string: the simulator's log has paths only."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.queries: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.queries.append(scope.get("query_string", b""))
        await self.app(scope, receive, send)


@dataclass
class Got:
    """One request's round trip: the client's answer and what the simulator received."""

    status: int
    text: str
    path: str
    query: bytes
    headers: dict[str, str]
    body: dict[str, Any]
    record: ExchangeRecord
    billed: Any


@dataclass
class Front:
    url: str
    sink: QueueSink


class Chain:
    """The two fronts over one simulator: `via` LiteLLM, and `direct` for reference."""

    def __init__(self, sim: Sim, tap: QueryTap, via: Front, direct: Front) -> None:
        self.sim, self.tap, self.via, self.direct = sim, tap, via, direct

    def send(self, path: str, body: dict[str, Any], headers: dict[str, str], *,
             direct: bool = False) -> Got:
        front = self.direct if direct else self.via
        before = len(self.sim.app.state.received)
        answer = httpx.post(front.url + path, json=body, headers=headers, timeout=120)
        record = front.sink.next(timeout=60)
        new = list(self.sim.app.state.received)[before:]
        assert len(new) == 1, f"{path}: {answer.status_code} {answer.text[:500]}"
        _, got_path, raw_headers, raw = new[0]
        return Got(answer.status_code, answer.text, got_path, self.tap.queries[-1],
                   {k.lower(): v for k, v in raw_headers}, json.loads(raw), record,
                   self.sim.app.state.bills[-1].counts)

    def both(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[Got, Got]:
        return self.send(path, body, headers), self.send(path, body, headers, direct=True)


@contextlib.contextmanager
def _front(upstream: str) -> Iterator[Front]:
    settings = settings_for(upstream, plugins={"thinking": {"rules": RULES}})
    sink = QueueSink()
    engine = Engine.from_settings(settings, sinks=[sink])  # the pipeline `tokenopt serve` runs
    with ServerThread(create_app(settings, engine=engine)) as url:
        yield Front(url, sink)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    if importlib.util.find_spec("litellm") is None:
        if _in_ci():
            pytest.fail("litellm is not installed: .ci/run installs "
                        f"'litellm[proxy]=={LITELLM_PIN}' before the tests")
        pytest.skip(f"needs pip install 'litellm[proxy]=={LITELLM_PIN}'")
    sim_app = create_sim_app()
    tap = QueryTap(sim_app)
    with contextlib.ExitStack() as stack:
        sim_url = stack.enter_context(ServerThread(tap))
        litellm = stack.enter_context(running_litellm(sim_url, tmp_path_factory.mktemp("litellm")))
        via = stack.enter_context(_front(litellm))
        direct = stack.enter_context(_front(sim_url))
        yield Chain(Sim(sim_app, sim_url), tap, via, direct)


def _usage(got: Got) -> tuple[int, int, int, int]:
    usage = got.record.usage
    assert usage is not None, got.text[:300]
    return (usage.input_tokens, usage.cached_input_tokens, usage.cache_write_tokens,
            usage.output_tokens)


def _billed(got: Got) -> tuple[int, int, int, int]:
    counts = got.billed
    return (counts.input_tokens, counts.cached_tokens,
            counts.cache_write_tokens + counts.cache_write_1h_tokens, counts.output_tokens)


def _names(tools: list[dict[str, Any]]) -> list[str]:
    return [tool.get("name") or tool["function"]["name"] for tool in tools]


def _markers(body: dict[str, Any]) -> list[str]:
    """Where the Anthropic body carries `cache_control`, in prompt order."""
    found = ["top-level"] if "cache_control" in body else []
    found += [f"tool:{t['name']}" for t in body.get("tools", []) if "cache_control" in t]
    system = body.get("system")
    found += [f"system[{i}]" for i, b in enumerate(system if isinstance(system, list) else [])
              if "cache_control" in b]
    for i, message in enumerate(body["messages"]):
        content = message["content"]
        found += [f"messages[{i}][{j}]" for j, b in enumerate(content if isinstance(content, list)
                                                            else []) if "cache_control" in b]
    return found


def test_openai_chat_to_an_openai_model_keeps_every_change(chain: Chain) -> None:
    body = {"model": "gpt-5", "stream": True, "stream_options": {"include_usage": True},
            "reasoning_effort": "high", "tools": OPENAI_TOOLS,
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hi"}]}
    first, reference = chain.both("/v1/chat/completions", body, OPENAI)
    again = chain.send("/v1/chat/completions", body, OPENAI)

    assert first.status == 200 and first.path == "/v1/chat/completions"
    # Tools sorted and canonical, effort clamped, cache key derived: all as sent directly.
    for key in ("tools", "reasoning_effort", "prompt_cache_key", "messages"):
        assert first.body[key] == reference.body[key], key
    assert _names(first.body["tools"]) == ["alpha", "zeta"]
    assert first.body["reasoning_effort"] == "low"
    assert first.body["prompt_cache_key"].startswith("tko_")
    assert again.body["prompt_cache_key"] == first.body["prompt_cache_key"]
    # The prefix cache works through LiteLLM, and the ledger has what was billed.
    assert _usage(again)[1] > 0
    assert _usage(first) == _billed(first) and _usage(again) == _billed(again)


def test_openai_chat_keeps_the_clients_own_cache_key(chain: Chain) -> None:
    body = {"model": "gpt-5", "prompt_cache_key": "client-key",
            "messages": [{"role": "user", "content": "Hi"}]}
    assert chain.send("/v1/chat/completions", body, OPENAI).body["prompt_cache_key"] == "client-key"


def test_anthropic_messages_to_claude_pass_through_with_tokenopts_breakpoints(chain: Chain) -> None:
    body = {  # the shape of a current Claude Code turn
        "model": "claude-opus-4-6", "max_tokens": 4000, "stream": True,
        "system": [{"type": "text", "text": "You are Claude Code."},
                   {"type": "text", "text": SYSTEM * 2, "cache_control": {"type": "ephemeral"}}],
        "tools": ANTHROPIC_TOOLS, "thinking": {"type": "adaptive"},
        "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                     {"role": "system", "content": "Answer briefly."},
                     {"role": "assistant", "content": "Hello."},
                     {"role": "user", "content": [{"type": "text", "text": "Again"}]}]}
    chain.both("/v1/messages?beta=true", body, ANTHROPIC)
    via, reference = chain.both("/v1/messages?beta=true", body, ANTHROPIC)

    assert via.status == 200 and via.path == "/v1/messages"
    for key in ("system", "tools", "messages", "thinking", "output_config", "context_management"):
        assert via.body[key] == reference.body[key], key
    markers = _markers(via.body)
    assert markers == _markers(reference.body) and "system[1]" in markers and len(markers) <= 4
    assert any(m.startswith("messages[") for m in markers)  # tokenopt's history breakpoint
    assert via.body["output_config"] == {"effort": "low"}  # clamped by the 1500-token rule
    assert _names(via.body["tools"]) == ["alpha", "zeta"]
    assert via.headers["anthropic-beta"] == ANTHROPIC["anthropic-beta"]
    assert _usage(via)[1] > 0 and _usage(via) == _billed(via)
    # Lost in LiteLLM (docs/routers.md): the query string; the bytes are LiteLLM's own JSON.
    assert reference.query == b"beta=true" and via.query == b""


def test_openai_chat_to_claude_gets_no_cache_key_and_keeps_the_budget(chain: Chain) -> None:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 2000, "reasoning_effort": "high",
            "tools": OPENAI_TOOLS,
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hi"}]}
    first = chain.send("/v1/chat/completions", body, OPENAI)
    again = chain.send("/v1/chat/completions", body, OPENAI)

    # A derived prompt_cache_key here was a 400 (UnsupportedParamsError) from LiteLLM.
    assert first.status == 200, first.text[:300]
    assert first.path == "/v1/messages" and "prompt_cache_key" not in first.body
    assert first.body["thinking"] == {"type": "enabled", "budget_tokens": 1024}  # effort 'low'
    assert _names(first.body["tools"]) == ["alpha", "zeta"]
    # Lost: an OpenAI-format request carries no breakpoints, so Claude caches nothing.
    assert _markers(again.body) == [] and _usage(again)[1] == 0
    assert _usage(again) == _billed(again)


def test_litellms_injection_points_make_claude_cache_behind_the_openai_route(chain: Chain) -> None:
    body = {"model": "claude-cached", "max_tokens": 500, "stream": True,
            "stream_options": {"include_usage": True}, "tools": OPENAI_TOOLS,
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Hi"}]}
    first = chain.send("/v1/chat/completions", body, OPENAI)
    again = chain.send("/v1/chat/completions", body, OPENAI)

    assert _markers(again.body) == ["system[0]"]
    assert _usage(first)[2] > 0 and _usage(again)[1] > 0  # written, then read
    assert _usage(first) == _billed(first) and _usage(again) == _billed(again)


def test_responses_to_an_openai_model_keep_every_change(chain: Chain) -> None:
    tools = [{"type": "function", "name": name, "parameters": SCHEMA} for name in ("zeta", "alpha")]
    body = {"model": "gpt-5", "instructions": SYSTEM, "input": "Hi", "tools": tools,
            "reasoning": {"effort": "high", "summary": "auto"}}
    via, reference = chain.both("/v1/responses", body, OPENAI)

    assert via.status == 200 and via.path == "/v1/responses"
    for key in ("tools", "reasoning", "prompt_cache_key", "instructions"):
        assert via.body[key] == reference.body[key], key
    assert via.body["reasoning"]["effort"] == "low" and _names(via.body["tools"]) == ["alpha", "zeta"]
    assert _usage(via) == _billed(via)


def test_anthropic_messages_to_an_openai_model_become_a_responses_call(chain: Chain) -> None:
    body = {"model": "gpt-5", "max_tokens": 2000, "tools": ANTHROPIC_TOOLS,
            "system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
            "thinking": {"type": "enabled", "budget_tokens": 8000},
            "messages": [{"role": "user", "content": "Hi"}]}
    got = chain.send("/v1/messages", body, ANTHROPIC)

    assert got.status == 200 and got.path == "/v1/responses"
    assert _names(got.body["tools"]) == ["alpha", "zeta"]
    assert got.body["reasoning"] == {"effort": "low"}  # 1500 thinking tokens -> 'low'
    # No prompt_cache_key: the Anthropic dialect has none to carry (docs/routers.md).
    assert "prompt_cache_key" not in got.body and "cache_control" not in json.dumps(got.body)
    assert _usage(got) == _billed(got)

"""Replays of agent conversations built from ../shared/data, on the providers' cache rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from benchmarks.workload import conversation, load_jsonl, tool_set
from tokenopt.cli import main
from tokenopt.replay import TrafficLine, run
from tokenopt.sim.anthropic_messages import MessagesRoute
from tokenopt.sim.openai_chat import ChatRoute
from tokenopt.tokens import TokenCounter

pytestmark = pytest.mark.anyio
START = 1_750_000_000.0


def agent_lines(route: str, *, turns: int = 5) -> list[dict[str, Any]]:
    """One agent conversation over 30 GitHub MCP tools, asked real tau-bench user tasks."""
    tools = tool_set(load_jsonl("tools.jsonl"), {"github-mcp-server"}, 30)
    queries = [q["query"] for q in load_jsonl("queries.jsonl") if q["source"].startswith("tau-bench")]
    return list(conversation(route, "c1", tools, queries[:turns], start=START, gap_s=30))


def clock_in_first_system_line(line: dict[str, Any]) -> dict[str, Any]:
    """What many clients do: the current time at the top of the system prompt."""
    stamp = "Current time: " + datetime.fromtimestamp(line["ts"], UTC).isoformat() + "\n"
    body = dict(line["body"])
    if "system" in body:
        body["system"] = stamp + body["system"]
    else:
        system, *rest = body["messages"]
        body["messages"] = [{**system, "content": stamp + system["content"]}, *rest]
    return {**line, "body": body}


def with_breakpoints(line: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic client marking the end of the system prompt and of the conversation."""
    body = dict(line["body"])
    body["system"] = [{"type": "text", "text": body["system"],
                       "cache_control": {"type": "ephemeral"}}]
    *history, last = body["messages"]
    content = last["content"]
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    blocks[-1] = {**blocks[-1], "cache_control": {"type": "ephemeral"}}
    body["messages"] = [*history, {**last, "content": blocks}]
    return {**line, "body": body}


def traffic(lines: list[dict[str, Any]]) -> list[TrafficLine]:
    return [TrafficLine.model_validate(line) for line in lines]


async def cached_per_turn(lines: list[dict[str, Any]]) -> list[int]:
    result = await run(traffic(lines))
    assert result.failed == 0 and len(result.bills) == len(lines)
    return [bill.counts.cached_tokens for bill in result.bills]


def prompt_tokens(route: str, body: dict[str, Any], kind: str | None = None) -> int:
    wire = ChatRoute() if route == "/v1/chat/completions" else MessagesRoute()
    prompt = wire.prompt(body, TokenCounter())
    return sum(s.tokens for s in prompt.segments if kind is None or s.kind == kind)


async def test_openai_hits_the_stable_prefix_of_each_previous_turn() -> None:
    lines = agent_lines("/v1/chat/completions")

    cached = await cached_per_turn(lines)

    assert cached[0] == 0
    for previous, hit in zip(lines, cached[1:], strict=False):
        # Each turn repeats the whole previous prompt: the hit is that prompt,
        # rounded down to OpenAI's 128-token steps above the 1,024 minimum.
        whole = prompt_tokens("/v1/chat/completions", previous["body"])
        assert hit == 1024 + (whole - 1024) // 128 * 128


async def test_openai_keeps_only_the_tools_when_the_first_system_line_changes() -> None:
    lines = [clock_in_first_system_line(line) for line in agent_lines("/v1/chat/completions")]

    cached = await cached_per_turn(lines)

    # Tools come before the system prompt, so only they still match.
    tools = prompt_tokens("/v1/chat/completions", lines[0]["body"], "tool")
    assert tools > 1024
    assert cached == [0] + [1024 + (tools - 1024) // 128 * 128] * (len(lines) - 1)


async def test_anthropic_reads_its_breakpoints_and_misses_when_the_system_line_changes() -> None:
    stable = [with_breakpoints(line) for line in agent_lines("/v1/messages")]
    volatile = [with_breakpoints(clock_in_first_system_line(line))
                for line in agent_lines("/v1/messages")]

    assert (await cached_per_turn(stable))[1:] == [
        # Read up to the previous turn's last breakpoint: its whole prompt.
        prompt_tokens("/v1/messages", previous["body"]) for previous in stable[:-1]
    ]
    assert await cached_per_turn(volatile) == [0] * len(volatile)


def test_the_cli_reports_baseline_and_optimized_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "traffic.jsonl"
    lines = agent_lines("/v1/chat/completions", turns=3)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))

    assert main(["--log-level", "error", "replay", str(path), "--json"]) == 0

    report = json.loads(capsys.readouterr().out)
    fields = {"requests", "input_tokens", "cached_input_tokens", "cache_write_tokens",
              "output_tokens", "reasoning_tokens", "input_cost_usd", "output_cost_usd",
              "cost_usd", "tool_misses", "search_detours"}
    for side in ("baseline", "optimized"):
        assert fields <= set(report[side])
        assert report[side]["requests"] == 3
        assert report[side]["by_model"]["gpt-4.1"]["requests"] == 3
        assert report[side]["cost_usd"] == pytest.approx(
            report[side]["input_cost_usd"] + report[side]["output_cost_usd"])
    assert report["baseline"]["cached_input_tokens"] > 0
    assert report["baseline"]["cost_usd"] > 0 and report["baseline"]["unpriced_requests"] == 0

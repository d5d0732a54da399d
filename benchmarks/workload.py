"""Agent traffic built from the real tool corpora in ../shared/data, in the replay format.

Each conversation offers a set of real tools (MCP servers or benchmark APIs),
asks real user queries from the same corpus, and grows turn by turn the way an
agent loop does: user text, an assistant tool call, the tool result, a reply.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tools"
ROUTES = ("/v1/chat/completions", "/v1/responses", "/v1/messages")
MODELS = {
    "/v1/chat/completions": "gpt-4.1",
    "/v1/responses": "gpt-5",
    "/v1/messages": "claude-sonnet-4-5",
}
SYSTEM = (
    "You are a careful operations agent. Use the tools to look things up before answering. "
    "Prefer read-only tools, confirm before any change, and answer concisely."
)


def load_jsonl(name: str) -> list[dict[str, Any]]:
    with (DATA / name).open() as file:
        return [json.loads(line) for line in file]


def tool_set(tools: list[dict[str, Any]], sources: set[str], limit: int) -> list[dict[str, Any]]:
    picked: dict[str, dict[str, Any]] = {}
    for t in tools:
        if t["source"].split("/")[0] in sources and len(picked) < limit:
            picked.setdefault(t["name"].replace("/", "__")[:64], t)
    return [
        {"name": name, "description": t.get("description") or "",
         "input_schema": t.get("input_schema") or {"type": "object", "properties": {}}}
        for name, t in picked.items()
    ]


def as_route_tools(route: str, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if route == "/v1/messages":
        return tools
    if route == "/v1/responses":
        return [{"type": "function", "name": t["name"], "description": t["description"],
                 "parameters": t["input_schema"]} for t in tools]
    return [{"type": "function", "function": {"name": t["name"], "description": t["description"],
                                              "parameters": t["input_schema"]}} for t in tools]


def conversation(
    route: str, conv_id: str, tools: list[dict[str, Any]], queries: list[str], *, start: float,
    gap_s: float = 20.0, stream_every: int = 2,
) -> Iterator[dict[str, Any]]:
    """One agent conversation, a traffic line per model call."""
    history: list[dict[str, Any]] = []
    for turn, query in enumerate(queries):
        history.append({"role": "user", "content": query})
        tool = tools[(turn * 7) % len(tools)]["name"]
        call_id = f"call_{conv_id}_{turn}"
        body = _body(route, tools, history)
        body["stream"] = turn % stream_every == 1
        yield {"ts": start + turn * gap_s, "path": route,
               "headers": {"x-tokenopt-conversation": conv_id}, "body": body}
        history += _tool_round(route, tool, call_id, query)


def _body(route: str, tools: list[dict[str, Any]], history: list[dict[str, Any]]) -> dict[str, Any]:
    model = MODELS[route]
    if route == "/v1/messages":
        return {"model": model, "max_tokens": 1024, "system": SYSTEM,
                "tools": as_route_tools(route, tools), "messages": list(history)}
    if route == "/v1/responses":
        return {"model": model, "instructions": SYSTEM, "tools": as_route_tools(route, tools),
                "input": list(history)}
    return {"model": model, "tools": as_route_tools(route, tools),
            "messages": [{"role": "system", "content": SYSTEM}, *history]}


def _tool_round(route: str, tool: str, call_id: str, query: str) -> list[dict[str, Any]]:
    result = json.dumps({"ok": True, "items": [query[:60]]})
    if route == "/v1/messages":
        return [
            {"role": "assistant", "content": [{"type": "tool_use", "id": call_id, "name": tool, "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id, "content": result}]},
            {"role": "assistant", "content": "Done: " + query[:80]},
        ]
    if route == "/v1/responses":
        return [
            {"type": "function_call", "call_id": call_id, "name": tool, "arguments": "{}"},
            {"type": "function_call_output", "call_id": call_id, "output": result},
            {"role": "assistant", "content": "Done: " + query[:80]},
        ]
    return [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": tool, "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": call_id, "content": result},
        {"role": "assistant", "content": "Done: " + query[:80]},
    ]


def traffic(
    *, conversations_per_route: int = 2, turns: int = 4, tools_per_request: int = 30,
    sources: frozenset[str] = frozenset({"tau-bench", "github-mcp-server"}), seed: int = 7,
) -> list[dict[str, Any]]:
    """A reproducible mix of agent conversations over the three routes."""
    rng = random.Random(seed)
    tools = tool_set(load_jsonl("tools.jsonl"), set(sources), 10_000)
    queries = [
        q["query"] for q in load_jsonl("queries.jsonl") if q["source"].split("/")[0] in sources
    ]
    lines: list[dict[str, Any]] = []
    for route in ROUTES:
        for n in range(conversations_per_route):
            offered = rng.sample(tools, min(tools_per_request, len(tools)))
            asked = rng.sample(queries, turns)
            conv = f"{route.strip('/').replace('/', '-')}-{n}"
            lines += conversation(route, conv, offered, asked, start=1_700_000_000.0 + n * 3600)
    return sorted(lines, key=lambda line: line["ts"])


if __name__ == "__main__":
    import sys

    for line in traffic():
        sys.stdout.write(json.dumps(line) + "\n")

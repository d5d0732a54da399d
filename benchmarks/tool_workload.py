"""Lazy tools on agent traffic with hundreds of real MCP tools, replayed on the providers' rules.

Each conversation offers whole real MCP servers from ../shared/data (GitHub,
Docker catalog, LiveMCPBench captures; server-prefixed names, as MCP clients
send them) — at least 200 tools a request — plus the tools a real query needs.
The recorded model calls each needed tool in turn (one model call per tool,
the tool result coming back as the next turn), then answers in text. Three
runs per provider on the same lines:

- baseline: every tool on every call, as sent;
- normalize: the default stable-prefix plugin alone (every tool, cached);
- tools: normalize + `tools` with `lazy = true` (mode auto: chosen by price);
- tools_semantic: the same with `semantic = true` (when the `semantic` extra is
  installed; embeddings awaited, so every request sees the fused ranking).

Tool misses are turns where a tool the recorded model called was never made
available: the simulated model (tokenopt/sim/script.py), finding its tool not
offered, calls tokenopt's search tool with the latest user text, up to
`search_rounds` times, and misses when the tool is still not there. Each miss is
listed (`misses`: the conversation, the tool, the user text searched). Detours are
the extra search rounds, and their tokens are in the totals (they are what the
provider bills).

    python -m benchmarks.tool_workload [--out FILE]
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from typing import Any

from benchmarks.results import run_benchmark
from benchmarks.workload import SYSTEM, as_route_tools, load_jsonl
from tokenopt.dialects.base import Usage
from tokenopt.pricing import PriceBook
from tokenopt.replay import TrafficLine, run
from tokenopt.replay.summary import RunSummary
from tokenopt.settings import Settings
from tokenopt.sim.script import latest_user_text, read_recorded
from tokenopt.tokens import TokenCounter
from tokenopt.tools.semantic import available as semantic_available

ROUTES = {"openai": ("/v1/chat/completions", "/v1/responses"), "anthropic": ("/v1/messages",)}
MODELS = {"/v1/chat/completions": "gpt-4.1", "/v1/responses": "gpt-5",
          "/v1/messages": "claude-sonnet-4-5"}
MCP_SOURCES = ("github-mcp-server", "docker-mcp-registry", "livemcpbench")
QUERY_SOURCES = ("livemcpbench", "tau-bench", "stabletoolbench", "bfcl_v4")
MIN_TOOLS = 200
MAX_CALLS = 4  # tool calls per conversation (a query's first groups)
CONFIGS: dict[str, dict[str, Any]] = {
    "normalize": {"tools": {"enabled": False}},
    "tools": {"tools": {"lazy": True}},
}
if semantic_available():  # the optional extra: embeddings fused with the lexical ranking
    CONFIGS["tools_semantic"] = {"tools": {"lazy": True, "semantic": True, "semantic_wait": True}}


def server_of(tool: dict[str, Any]) -> str:
    server = tool.get("server") or tool["source"].split("/")[-1]
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in str(server))


def named(tool: dict[str, Any]) -> dict[str, Any]:
    """The tool as an MCP client sends it: `server__tool`, within providers' 64 characters."""
    name = f"{server_of(tool)}__{tool['name']}".replace("/", "_")[:64]
    return {"name": name, "description": tool.get("description") or "",
            "input_schema": tool.get("input_schema") or {"type": "object", "properties": {}}}


def mcp_servers(tools: list[dict[str, Any]], sources: tuple[str, ...] = MCP_SOURCES
                ) -> dict[str, list[dict[str, Any]]]:
    """The tools of each MCP server of `sources`, by server."""
    servers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for tool in tools:
        if tool["source"].startswith(sources):
            servers[server_of(tool)].append(tool)
    return servers


def offered_tools(needed: list[dict[str, Any]], servers: dict[str, list[dict[str, Any]]],
                  rng: random.Random) -> list[dict[str, Any]]:
    """The needed tools plus whole random servers to `MIN_TOOLS` or more, shuffled, as sent."""
    offered = {named(t)["name"]: named(t) for t in needed}
    for server in rng.sample(sorted(servers), len(servers)):
        if len(offered) >= MIN_TOOLS:
            break
        offered.update({named(t)["name"]: named(t) for t in servers[server]})
    tool_list = list(offered.values())
    rng.shuffle(tool_list)
    return tool_list


def conversations(per_route: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    tools = load_jsonl("tools.jsonl")
    by_id = {t["id"]: t for t in tools}
    servers = mcp_servers(tools)
    queries = [q for q in load_jsonl("queries.jsonl") if q["source"].startswith(QUERY_SOURCES)
               and all(g and g[0] in by_id for g in q["relevant_groups"])]
    by_source: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for query in queries:
        by_source[query["source"].split("/")[0]].append(query)
    lines: list[dict[str, Any]] = []
    start = 1_760_000_000.0
    for route_index, route in enumerate(r for routes in ROUTES.values() for r in routes):
        for n in range(per_route):
            source = QUERY_SOURCES[n % len(QUERY_SOURCES)]
            query = rng.choice(by_source[source])
            needed = [by_id[g[0]] for g in query["relevant_groups"][:MAX_CALLS]]
            tool_list = offered_tools(needed, servers, rng)
            conv = f"{route.strip('/').replace('/', '-')}-{n}"
            lines += agent_loop(route, conv, tool_list, query["query"],
                                [named(t)["name"] for t in needed],
                                start=start + route_index * 100_000 + n * 600, rng=rng)
    return sorted(lines, key=lambda line: line["ts"])


def choice_conversations(per_route: int, seed: int) -> list[dict[str, Any]]:
    """The `auto` test: half the conversations as above, half with few tools and a long context.

    With ~40 tools and a 20K-token document in the history, every tool loaded later
    rewrites the document into the cache, so keeping every tool is the cheaper choice;
    with 200+ tools and a short history, withholding them is. `auto` must pick each.
    """
    rng = random.Random(seed)
    big = conversations(per_route, seed)
    tools = load_jsonl("tools.jsonl")
    by_id = {t["id"]: t for t in tools}
    document = "\n\n".join(f"{t['name']}: {t.get('description') or ''}"
                            for t in rng.sample(tools, 400))
    servers = mcp_servers(tools, ("livemcpbench",))
    tasks = [q for q in load_jsonl("queries.jsonl") if q["source"] == "livemcpbench"
             and all(g and g[0] in by_id for g in q["relevant_groups"])]
    small: list[dict[str, Any]] = []
    routes = [r for rs in ROUTES.values() for r in rs]
    for route_index, route in enumerate(routes):
        for n in range(per_route):
            query = rng.choice(tasks)
            needed = [by_id[g[0]] for g in query["relevant_groups"][:MAX_CALLS]]
            offered = {named(t)["name"]: named(t) for t in needed}
            for server in rng.sample(sorted(servers), len(servers)):
                if len(offered) >= 40:
                    break
                offered.update({named(t)["name"]: named(t) for t in servers[server]})
            conv = f"small-{route.strip('/').replace('/', '-')}-{n}"
            small += agent_loop(route, conv, list(offered.values()), query["query"],
                                [named(t)["name"] for t in needed], context=document,
                                start=1_770_000_000.0 + route_index * 100_000 + n * 600, rng=rng)
    return sorted([*big, *small], key=lambda line: line["ts"])


def agent_loop(route: str, conv: str, tools: list[dict[str, Any]], query: str,
               calls: list[str], *, start: float, rng: random.Random,
               context: str = "") -> list[dict[str, Any]]:
    """One task: a model call per needed tool, then the answer; history grows as an agent's.

    `context` is material the client put before the task (a long document, earlier work).
    """
    history: list[dict[str, Any]] = [{"role": "user", "content": query}]
    if context:
        history = [{"role": "user", "content": context},
                   {"role": "assistant", "content": "Noted. What should I do with it?"}, *history]
    lines = []
    ts = start
    for turn, name in enumerate([*calls, None]):
        call_id = f"call_{conv}_{turn}"
        lines.append({"ts": ts, "path": route, "headers": {"x-tokenopt-conversation": conv},
                      "body": {**body_for(route, tools, history), "stream": turn % 2 == 1},
                      "response": answer(route, name, call_id)})
        if name is not None:
            history += tool_turn(route, name, call_id)
        ts += rng.uniform(3, 25)
    return lines


def body_for(route: str, tools: list[dict[str, Any]], history: list[dict[str, Any]]
             ) -> dict[str, Any]:
    model = MODELS[route]
    offered = as_route_tools(route, tools)
    if route == "/v1/messages":
        return {"model": model, "max_tokens": 2048, "system": SYSTEM, "tools": offered,
                "messages": list(history)}
    if route == "/v1/responses":
        return {"model": model, "instructions": SYSTEM, "tools": offered, "input": list(history)}
    return {"model": model, "tools": offered,
            "messages": [{"role": "system", "content": SYSTEM}, *history]}


def answer(route: str, tool: str | None, call_id: str) -> dict[str, Any]:
    """The recorded response: a call to `tool`, or the final text."""
    text = "Here is what I found, step by step, with the results of each tool."
    if route == "/v1/messages":
        block = ({"type": "tool_use", "id": call_id, "name": tool, "input": {}} if tool
                 else {"type": "text", "text": text})
        return {"content": [block], "usage": {"output_tokens": 60}}
    if route == "/v1/responses":
        item = ({"type": "function_call", "call_id": call_id, "name": tool, "arguments": "{}"}
                if tool else {"type": "message", "role": "assistant",
                              "content": [{"type": "output_text", "text": text}]})
        return {"output": [item], "usage": {"output_tokens": 60}}
    message: dict[str, Any] = {"role": "assistant", "content": None if tool else text}
    if tool:
        message["tool_calls"] = [{"id": call_id, "type": "function",
                                  "function": {"name": tool, "arguments": "{}"}}]
    return {"choices": [{"message": message}], "usage": {"completion_tokens": 60}}


def tool_turn(route: str, tool: str, call_id: str) -> list[dict[str, Any]]:
    result = json.dumps({"ok": True, "tool": tool, "items": [f"{tool} result {i}" for i in range(5)]})
    if route == "/v1/messages":
        return [{"role": "assistant", "content": [{"type": "tool_use", "id": call_id, "name": tool,
                                                   "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id,
                                              "content": result}]}]
    if route == "/v1/responses":
        return [{"type": "function_call", "call_id": call_id, "name": tool, "arguments": "{}"},
                {"type": "function_call_output", "call_id": call_id, "output": result}]
    return [{"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": tool, "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": call_id, "content": result}]


FIGURES = ("requests", "input_tokens", "cached_input_tokens", "cache_write_tokens",
           "output_tokens", "cost_usd", "tool_misses", "search_detours")


async def measure(per_route: int = 12, seed: int = 23) -> dict[str, Any]:
    lines = conversations(per_route, seed)
    counter = TokenCounter()
    prices = PriceBook.load()
    tools_per_request = [len(line["body"]["tools"]) for line in lines]
    result: dict[str, Any] = {
        "benchmark": "tool_workload", "configs": CONFIGS, "lines": len(lines),
        "conversations": per_route * 3, "tools_per_request_min": min(tools_per_request),
        "tools_per_request_mean": round(sum(tools_per_request) / len(lines), 1), "providers": {},
    }
    for provider, routes in ROUTES.items():
        picked = [TrafficLine.model_validate(line) for line in lines if line["path"] in routes]
        runs: dict[str, Any] = {}
        misses: dict[str, list[dict[str, str]]] = {}
        baseline = await run(picked, counter=counter)
        runs["baseline"] = RunSummary.of(baseline.bills, prices).as_json()
        detail: dict[str, Any] = {}
        for name, config in CONFIGS.items():
            settings = Settings.load(environ={}, plugins=config)
            optimized = await run(picked, settings=settings, counter=counter)
            runs[name] = RunSummary.of(optimized.bills, prices).as_json()
            if name == "tools":
                detail = _detours(optimized, prices)
            if name.startswith("tools"):
                misses[name] = _misses(picked, optimized)
        turns = len(picked)
        base, norm, lazy = runs["baseline"], runs["normalize"], runs["tools"]
        result["providers"][provider] = {
            "turns": turns,
            **{name: {k: r[k] for k in FIGURES} for name, r in runs.items()},
            "input_tokens_vs_baseline": round(1 - lazy["input_tokens"] / base["input_tokens"], 4),
            "cost_vs_normalize": round(lazy["cost_usd"] / norm["cost_usd"], 4),
            "cost_vs_baseline": round(lazy["cost_usd"] / base["cost_usd"], 4),
            "tool_miss_share": round(lazy["tool_misses"] / turns, 4),
            **detail,
            "misses": misses,
        }
        if "tools_semantic" in runs:
            dense = runs["tools_semantic"]
            result["providers"][provider]["semantic"] = {
                "input_tokens_vs_baseline": round(1 - dense["input_tokens"] / base["input_tokens"], 4),
                "cost_vs_normalize": round(dense["cost_usd"] / norm["cost_usd"], 4),
                "tool_miss_share": round(dense["tool_misses"] / turns, 4),
            }
    result["auto_choice"] = await _choice(per_route, seed, counter, prices)
    return result


CHOICES: dict[str, dict[str, Any]] = {
    "keep": {"tools": {"lazy": False}},
    "search": {"tools": {"lazy": True, "mode": "search"}},
    "auto": {"tools": {"lazy": True, "mode": "auto"}},
}


async def _choice(per_route: int, seed: int, counter: TokenCounter,
                  prices: PriceBook) -> dict[str, Any]:
    """Every strategy forced on the mixed traffic, against `auto` choosing per conversation."""
    lines = [TrafficLine.model_validate(line) for line in choice_conversations(per_route, seed)]
    out: dict[str, Any] = {"lines": len(lines)}
    for name, config in CHOICES.items():
        optimized = await run(lines, settings=Settings.load(environ={}, plugins=config),
                              counter=counter)
        summary = RunSummary.of(optimized.bills, prices).as_json()
        out[name] = {k: summary[k] for k in FIGURES}
        if name == "auto":
            out["auto"]["strategies"] = _detours(optimized, prices)["strategies"]
    return out


def _detours(optimized: Any, prices: PriceBook) -> dict[str, Any]:
    """What the search detours cost, and which strategies the conversations were given."""
    strategies: dict[str, int] = defaultdict(int)
    seen: set[str] = set()
    detour_tokens = 0
    detour_cost = 0.0
    for record in optimized.records:
        notes = record.plugin_notes.get("tools", {})
        lazy = notes.get("lazy", {})
        if record.conversation not in seen and lazy:
            seen.add(record.conversation or "")
            strategies[lazy.get("strategy", "?")] += 1
        for usage in notes.get("calls", [])[:-1]:  # every call but the one the client got
            if not isinstance(usage, dict):
                continue
            tokens = _input_tokens(usage)
            detour_tokens += tokens
            provider = "anthropic" if record.route == "/v1/messages" else "openai"
            detour_cost += prices.cost(record.model, Usage(
                input_tokens=tokens, output_tokens=int(usage.get("output_tokens")
                                                       or usage.get("completion_tokens") or 0)),
                provider=provider).total_usd
    return {"strategies": dict(strategies), "detour_input_tokens": detour_tokens,
            "detour_cost_usd_uncached_upper_bound": round(detour_cost, 6)}


def _misses(lines: list[TrafficLine], optimized: Any) -> list[dict[str, str]]:
    """Each missed turn: its conversation, the tool the model needed, what it searched for.

    A line's upstream calls are its detours plus the one the client got, in order, so
    each line's last bill tells how its turn ended.
    """
    bills = iter(optimized.bills)
    found: list[dict[str, str]] = []
    for line, record in zip(lines, optimized.records, strict=True):
        calls = 1 + int(record.plugin_notes.get("tools", {}).get("search_detours", 0))
        last = [next(bills) for _ in range(calls)][-1]
        if last.outcome == "tool_miss":
            done = read_recorded(line.path, line.response or {})
            found.append({"conversation": record.conversation or "",
                          "tool": done.tool_calls[0].name if done.tool_calls else "",
                          "searched": latest_user_text(line.path, line.body)[:200]})
    return found


def _input_tokens(usage: dict[str, Any]) -> int:
    if "prompt_tokens" in usage:
        return int(usage["prompt_tokens"])
    base = int(usage.get("input_tokens") or 0)
    return base + int(usage.get("cache_read_input_tokens") or 0) + int(
        usage.get("cache_creation_input_tokens") or 0)


if __name__ == "__main__":
    run_benchmark(measure, "tool_workload", __doc__)

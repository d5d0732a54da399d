"""Stable prefixes on traffic from clients that break them, replayed on the providers' rules.

Agent conversations from ../shared/data, sent the way real clients often do:
(a) the current time in the first system line, (b) tools shuffled per request,
(c) schemas re-serialised with other key orders. Three runs per provider:

- ideal: the same conversations from a client that never breaks its prefix
  (on Anthropic it also uses the automatic top-level `cache_control`);
- baseline: the breaking client, as sent;
- tokenopt: the breaking client through the `normalize` plugin with
  `relocate_volatile = true`.

    python -m benchmarks.prefix_cache [--out FILE]
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from benchmarks.results import run_benchmark
from benchmarks.workload import conversation, load_jsonl, tool_set
from tokenopt.pricing import PriceBook
from tokenopt.replay import TrafficLine, run
from tokenopt.replay.summary import RunSummary
from tokenopt.settings import Settings
from tokenopt.tokens import TokenCounter

PROVIDERS = {"openai": ("/v1/chat/completions", "/v1/responses"), "anthropic": ("/v1/messages",)}
CONFIG = {"normalize": {"relocate_volatile": True}}


def clean_traffic(conversations: int = 4, turns: int = 10, seed: int = 11) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    tools = tool_set(load_jsonl("tools.jsonl"), {"github-mcp-server"}, 10_000)
    queries = [q["query"] for q in load_jsonl("queries.jsonl") if q["source"].startswith("livemcpbench")]
    lines: list[dict[str, Any]] = []
    for routes in PROVIDERS.values():
        for route in routes:
            for n in range(conversations):
                offered = rng.sample(tools, 30)
                asked = rng.sample(queries, turns)
                conv = f"{route.strip('/').replace('/', '-')}-{n}"
                lines += conversation(route, conv, offered, asked, start=1_750_000_000.0 + n * 7,
                                      gap_s=45)
    return sorted(lines, key=lambda line: line["ts"])


def shuffled_keys(value: Any, rng: random.Random) -> Any:
    """The same JSON with every object's keys in a random order (as some clients re-serialise)."""
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {key: shuffled_keys(value[key], rng) for key in keys}
    if isinstance(value, list):
        return [shuffled_keys(item, rng) for item in value]
    return value


def breaking_client(line: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    body = dict(line["body"])
    tools = [shuffled_keys(tool, rng) for tool in body.get("tools", [])]
    rng.shuffle(tools)
    body["tools"] = tools
    stamp = f"Current time: {datetime.fromtimestamp(line['ts'], UTC).isoformat()}\n"
    if "system" in body:
        body["system"] = stamp + body["system"]
    elif "instructions" in body:
        body["instructions"] = stamp + body["instructions"]
    else:
        system, *rest = body["messages"]
        body["messages"] = [{**system, "content": stamp + system["content"]}, *rest]
    return {**line, "body": body}


def ideal_client(line: dict[str, Any]) -> dict[str, Any]:
    if line["path"] != "/v1/messages":
        return line
    return {**line, "body": {**line["body"], "cache_control": {"type": "ephemeral"}}}


def figures(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("requests", "input_tokens", "cached_input_tokens", "cache_write_tokens",
            "cached_share", "input_cost_usd")
    return {k: summary[k] for k in keys}


async def measure() -> dict[str, Any]:
    rng = random.Random(5)
    clean = clean_traffic()
    broken = [breaking_client(line, rng) for line in clean]
    counter = TokenCounter()
    prices = PriceBook.load()
    settings = Settings.load(environ={}, plugins=CONFIG)
    result: dict[str, Any] = {"benchmark": "prefix_cache", "config": CONFIG, "lines": len(clean),
                              "providers": {}}
    for provider, routes in PROVIDERS.items():
        def pick(lines: list[dict[str, Any]], routes: tuple[str, ...] = routes) -> list[TrafficLine]:
            return [TrafficLine.model_validate(line) for line in lines if line["path"] in routes]

        ideal = await run(pick([ideal_client(line) for line in clean]), counter=counter)
        baseline = await run(pick(broken), counter=counter)
        optimized = await run(pick(broken), settings=settings, counter=counter)
        runs = {name: figures(RunSummary.of(r.bills, prices).as_json())
                for name, r in (("ideal", ideal), ("baseline", baseline), ("tokenopt", optimized))}
        breaks: dict[str, int] = {}
        for record in optimized.records:
            cause = record.plugin_notes.get("normalize", {}).get("cache_break", {}).get("cause")
            if cause:
                kind = cause.split(":")[0].split(" at ")[0]
                breaks[kind] = breaks.get(kind, 0) + 1
        base_cost = runs["baseline"]["input_cost_usd"]
        result["providers"][provider] = {
            **runs,
            "cached_share_gap_to_ideal_points": round(
                100 * (runs["ideal"]["cached_share"] - runs["tokenopt"]["cached_share"]), 2),
            "input_cost_reduction": round(1 - runs["tokenopt"]["input_cost_usd"] / base_cost, 4),
            "top_cache_break_causes": dict(sorted(breaks.items(), key=lambda kv: -kv[1])),
            "failed": {"baseline": baseline.failed, "tokenopt": optimized.failed},
        }
    return result


if __name__ == "__main__":
    run_benchmark(measure, "prefix_cache", __doc__)

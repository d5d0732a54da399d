"""What a thinking-budget policy saves on reasoning traffic, and how many answers it cuts short.

Agent turns over real tools and tau-bench user tasks, sent to reasoning models
the way careless clients do (Anthropic thinking with a 16k budget, gpt-5 at
`high` effort). Half the turns are tagged `x-tokenopt-task: classification`.
Two policies govern those turns: `budget` caps thinking at 1,024 tokens and
output at 1,536; `tight` also caps output at 64 tokens, so answers get cut and
the share at the cap shows. Other turns keep their settings. Every run goes
through `tokenopt replay`'s runner on the simulator, which spends reasoning by
effort (or a quarter of an Anthropic budget) and answers 24 visible tokens.

    python -m benchmarks.thinking_policy [--out FILE]
"""

from __future__ import annotations

from typing import Any

from benchmarks.results import run_benchmark
from benchmarks.workload import conversation, load_jsonl, tool_set
from tokenopt.pricing import PriceBook
from tokenopt.replay import TrafficLine, run
from tokenopt.replay.summary import RunSummary
from tokenopt.settings import Settings
from tokenopt.tokens import TokenCounter

POLICIES = {
    name: {"rules": [{"name": name, "match": {"task": "classification"}, "max_thinking_tokens": 1024,
                      "max_output_tokens": output, "mode": "clamp"}]}
    for name, output in (("budget", 1536), ("tight", 64))
}
REASONING = {
    "/v1/messages": ("claude-sonnet-4-5",
                     {"max_tokens": 20_000, "thinking": {"type": "enabled", "budget_tokens": 16_000}}),
    "/v1/chat/completions": ("gpt-5", {"reasoning_effort": "high"}),
    "/v1/responses": ("gpt-5", {"reasoning": {"effort": "high"}}),
}


def reasoning_traffic(conversations: int = 4, turns: int = 6) -> list[dict[str, Any]]:
    tools = tool_set(load_jsonl("tools.jsonl"), {"tau-bench"}, 20)
    queries = [q["query"] for q in load_jsonl("queries.jsonl") if q["source"].startswith("tau-bench")]
    lines: list[dict[str, Any]] = []
    for route, (model, knobs) in REASONING.items():
        for n in range(conversations):
            asked = queries[(n * turns) % len(queries):][:turns]
            conv = f"{route.strip('/').replace('/', '-')}-{n}"
            for turn, line in enumerate(conversation(route, conv, tools, asked,
                                                     start=1_750_000_000.0 + n * 3600)):
                task = "classification" if turn % 2 == 0 else "reasoning"
                body = {**line["body"], "model": model, **knobs}
                lines.append({**line, "body": body,
                              "headers": {**line["headers"], "x-tokenopt-task": task}})
    return lines


async def measure() -> dict[str, Any]:
    lines = [TrafficLine.model_validate(line) for line in reasoning_traffic()]
    counter = TokenCounter()
    prices = PriceBook.load()
    baseline = await run(lines, counter=counter)
    before = RunSummary.of(baseline.bills, prices).as_json()
    keys = ("requests", "output_tokens", "reasoning_tokens", "output_cost_usd", "cost_usd")
    result: dict[str, Any] = {"benchmark": "thinking_policy", "lines": len(lines),
                              "baseline": {k: before[k] for k in keys}, "policies": {}}
    for name, policy in POLICIES.items():
        settings = Settings.load(environ={}, plugins={"thinking": policy})
        optimized = await run(lines, settings=settings, counter=counter)
        after = RunSummary.of(optimized.bills, prices).as_json()
        governed = [r.plugin_notes.get("thinking", {}) for r in optimized.records
                    if r.plugin_notes.get("thinking", {}).get("rule") == name]
        at_cap = sum(bool(n.get("hit_cap")) for n in governed)
        result["policies"][name] = {
            "rule": policy["rules"][0],
            **{k: after[k] for k in keys},
            "output_cost_saved_share": round(1 - after["output_cost_usd"] / before["output_cost_usd"], 4),
            "governed_requests": len(governed),
            "answers_at_cap": at_cap,
            "share_at_cap": round(at_cap / len(governed), 4) if governed else 0.0,
            "output_cost_usd_by_model": {
                m: {"baseline": before["by_model"][m]["output_cost_usd"],
                    "optimized": after["by_model"][m]["output_cost_usd"]}
                for m in before["by_model"]},
            "failed": optimized.failed,
        }
    return result


if __name__ == "__main__":
    run_benchmark(measure, "thinking_policy", __doc__)

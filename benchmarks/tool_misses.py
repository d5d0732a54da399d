"""Tool misses of lazy loading on one conversation per real query: the selection rules alone.

The replay (benchmarks/tool_workload.py) runs 36 conversations through the proxy;
too few to tell 1% of turns from 2%. This model runs every real query of the same
sources (about 2,300) through the same selection (`tokenopt.plugins.tools.selection`)
without the proxy: each query becomes a conversation built as tool_workload builds
them (the tools the query needs plus whole MCP servers to 200+), the model calls
each needed tool in turn, and when that tool is not loaded it searches with the
user's text up to `search_rounds` times, as the simulated model does
(tokenopt/sim/script.py). A turn whose tool is still not there is a miss. Turns
count the final answer too, as the replay's do. Reported per half (dev: crc32 of
the query id even, where settings are chosen; held_out: the rest) with the tools
loaded, for each settings variant given (default: the plugin's defaults).

    python -m benchmarks.tool_misses [--variant JSON ...] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.results import RESULTS
from benchmarks.tool_workload import MAX_CALLS, QUERY_SOURCES, mcp_servers, named, offered_tools
from benchmarks.workload import load_jsonl
from tokenopt.plugins.tools import ToolsSettings
from tokenopt.plugins.tools.selection import find
from tokenopt.tools import ToolIndex

SEED = 23


def conversations(seed: int = SEED) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]], list[str]]]:
    """(query, tools offered, tools the model calls in turn), one per usable real query."""
    rng = random.Random(seed)
    tools = load_jsonl("tools.jsonl")
    by_id = {t["id"]: t for t in tools}
    servers = mcp_servers(tools)
    for query in load_jsonl("queries.jsonl"):
        groups = query["relevant_groups"]
        if not query["source"].startswith(QUERY_SOURCES) or \
                not all(g and g[0] in by_id for g in groups):
            continue
        needed = [by_id[g[0]] for g in groups[:MAX_CALLS]]
        yield query, offered_tools(needed, servers, rng), [named(t)["name"] for t in needed]


def misses(settings: ToolsSettings, seed: int = SEED) -> dict[str, Any]:
    """Turns, misses and tools loaded per half, under `settings`' selection."""
    halves: dict[str, dict[str, float]] = {half: {"conversations": 0, "turns": 0, "tool_turns": 0, "misses": 0,
                     "tools_loaded": 0} for half in ("dev", "held_out")}
    missed: list[dict[str, str]] = []
    for query, tools, calls in conversations(seed):
        index = ToolIndex(tools)
        text = query["query"]
        loaded: list[str] = []
        called: list[str] = []
        half = halves["dev" if zlib.crc32(query["id"].encode()) % 2 == 0 else "held_out"]
        for name in calls:
            preload = find(index, text, settings.preload_k, siblings=settings.siblings,
                           near=called)
            loaded += [n for n in dict.fromkeys([*called, *preload]) if n not in loaded]
            for _ in range(settings.search_rounds):
                if name in loaded:
                    break
                loaded += find(index, text, settings.search_k, siblings=settings.siblings,
                               exclude=frozenset(loaded))
            if name in loaded:
                called.append(name)
            else:
                half["misses"] += 1
                missed.append({"query": query["id"], "tool": name})
        half["conversations"] += 1
        half["tool_turns"] += len(calls)
        half["turns"] += len(calls) + 1  # and the answer
        half["tools_loaded"] += len(loaded)
    for half in halves.values():
        half["miss_share"] = round(half["misses"] / half["turns"], 4)
        half["tools_loaded_per_conversation"] = round(
            half["tools_loaded"] / half["conversations"], 2)
    return {**halves, "missed": missed}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--variant", action="append", type=json.loads, default=None,
                        help='settings over the defaults, e.g. \'{"siblings": 3}\'')
    parser.add_argument("--out", type=Path, default=RESULTS / "tool_misses.json")
    args = parser.parse_args()
    variants = args.variant or [{}]
    result: dict[str, Any] = {"benchmark": "tool_misses", "seed": SEED, "variants": []}
    for variant in variants:
        settings = ToolsSettings(lazy=True, **variant)
        found = misses(settings)
        row = {"settings": variant, **{k: found[k] for k in ("dev", "held_out")}}
        result["variants"].append({**row, "missed": found["missed"]})
        print(json.dumps(row))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

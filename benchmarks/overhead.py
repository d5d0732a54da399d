"""What it costs to have the sidecar in the path: throughput and added latency.

The simulator and the sidecar (no plugins) run as their own processes, as in
production; this process is the client. Each scenario is measured direct and
through the sidecar in alternating rounds of the same run, so the machine's
noise hits both sides alike, and the JSON reports both absolute figures and
the sidecar/direct ratios.

    python -m benchmarks.overhead [--requests 300] [--concurrency 16] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from benchmarks.workload import SYSTEM, _tool_round, as_route_tools, load_jsonl, tool_set
from tokenopt.serving import bind

RESULTS = Path(__file__).parent / "results" / "overhead.json"
HEADERS = {"authorization": "Bearer bench-key", "content-type": "application/json"}


def chat_request(*, stream: bool) -> bytes:
    """A 30-tool, 20-message agent turn: GitHub MCP server tools, LiveMCPBench user tasks."""
    tools = tool_set(load_jsonl("tools.jsonl"), {"github-mcp-server"}, 30)
    queries = [q["query"] for q in load_jsonl("queries.jsonl")
               if q["source"].startswith("livemcpbench")]
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]
    turn = 0
    while len(messages) < 20:
        messages.append({"role": "user", "content": queries[turn % len(queries)]})
        call = _tool_round("/v1/chat/completions", tools[turn]["name"], f"call_{turn}", queries[turn])
        messages += call[: 20 - len(messages)]
        turn += 1
    body = {"model": "gpt-4.1", "tools": as_route_tools("/v1/chat/completions", tools),
            "messages": messages, "stream": stream}
    assert len(tools) == 30 and len(messages) == 20
    return json.dumps(body).encode()


@contextmanager
def process(*args: str, ready_path: str) -> Iterator[str]:
    """Run `tokenopt ARGS --port P` and yield its URL once it answers."""
    sock = bind()
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokenopt.cli", "--log-level", "warning", *args, "--port", str(port)],
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + ready_path, timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{args[0]} did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def one(client: httpx.AsyncClient, url: str, body: bytes) -> float:
    started = time.perf_counter()
    async with client.stream("POST", url, content=body, headers=HEADERS) as response:
        async for _ in response.aiter_raw():
            pass
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
    return time.perf_counter() - started


async def latencies(url: str, body: bytes, n: int) -> list[float]:
    """Sequential requests: latency without queueing."""
    async with httpx.AsyncClient(timeout=60) as client:
        return [await one(client, url, body) for _ in range(n)]


async def throughput(url: str, body: bytes, n: int, concurrency: int) -> float:
    """Requests per second with `concurrency` requests in flight."""
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        queue = iter(range(n))

        async def worker() -> None:
            for _ in queue:
                await one(client, url, body)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return n / (time.perf_counter() - started)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def summarise(samples: list[float], rates: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples]
    return {"p50_ms": round(percentile(ms, 50), 3), "p99_ms": round(percentile(ms, 99), 3),
            "mean_ms": round(statistics.fmean(ms), 3), "req_per_s": round(statistics.median(rates), 1)}


def measure(direct: str, sidecar: str, *, stream: bool, n: int, concurrency: int,
            rounds: int) -> dict[str, Any]:
    url_path = "/v1/chat/completions"
    body = chat_request(stream=stream)
    samples: dict[str, list[float]] = {"direct": [], "sidecar": []}
    rates: dict[str, list[float]] = {"direct": [], "sidecar": []}
    for base in (direct, sidecar):  # warm-up: pools, memo caches
        asyncio.run(latencies(base + url_path, body, 30))
    for _ in range(rounds):
        for name, base in (("direct", direct), ("sidecar", sidecar)):
            samples[name] += asyncio.run(latencies(base + url_path, body, n // rounds))
            rates[name].append(asyncio.run(throughput(base + url_path, body, n, concurrency)))
    direct_stats = summarise(samples["direct"], rates["direct"])
    sidecar_stats = summarise(samples["sidecar"], rates["sidecar"])
    return {
        "stream": stream,
        "request_bytes": len(body),
        "direct": direct_stats,
        "sidecar": sidecar_stats,
        "added_p50_ms": round(sidecar_stats["p50_ms"] - direct_stats["p50_ms"], 3),
        "added_p99_ms": round(sidecar_stats["p99_ms"] - direct_stats["p99_ms"], 3),
        "throughput_ratio": round(sidecar_stats["req_per_s"] / direct_stats["req_per_s"], 3),
    }


PIPELINES = {
    "no_plugins": "[plugins.normalize]\nenabled = false\n[plugins.thinking]\nenabled = false\n",
    "default_pipeline": "",  # normalize (canonical tools, cache key) and thinking (no rules)
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    pipelines: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp, process("sim", ready_path="/v1/models") as sim:
        for name, toml in PIPELINES.items():
            config = Path(tmp) / f"{name}.toml"
            config.write_text(toml + f'[ledger]\npath = "{Path(tmp) / name}.sqlite"\n')
            with process("serve", "--upstream", sim, "--config", str(config),
                         ready_path="/healthz") as sidecar:
                pipelines[name] = [
                    measure(sim, sidecar, stream=stream, n=args.requests,
                            concurrency=args.concurrency, rounds=args.rounds)
                    for stream in (False, True)
                ]
    result = {
        "benchmark": "overhead",
        "workload": "chat completions, 30 tools (github-mcp-server) + 20 messages (livemcpbench)",
        "requests_per_scenario_and_side": args.requests,
        "concurrency": args.concurrency,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "pipelines": pipelines,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

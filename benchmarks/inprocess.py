"""What the mounted middleware adds per request, in process, at three request sizes.

The middleware wraps an ASGI app that answers at once, so the time measured is
tokenopt's own: reading the body, the pipeline, writing the body back, relaying the
answer. Work tokenopt defers past the response (token counting, pricing, the ledger)
is timed on its own as `after_response`, since it still costs CPU. Workloads are built
from ../shared/data (MCP tools, real user queries), Chat Completions and Messages:

- small: 5 tools, 4 messages;  agent: 100 tools, 50 messages;  huge: 500 tools, 200 messages.

Warm: the same tool set and conversation again (what an agent sends turn after turn);
cold: a tool set never seen before (each request's descriptions differ), so nothing
memoised by content helps. Pipelines: `default` (what `tokenopt serve` runs) and
`tools` (the default plus lazy tool loading). `per_plugin` times each plugin's
`on_request` on the warm agent request.

    python -m benchmarks.inprocess [--requests 300] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks.results import RESULTS
from benchmarks.workload import SYSTEM, _tool_round, as_route_tools, load_jsonl
from tokenopt import jsonio
from tokenopt.asgi import TokenOptMiddleware
from tokenopt.engine import Engine
from tokenopt.settings import Settings
from tokenopt.types import Message, Receive, Scope, Send

SIZES = {"small": (5, 4), "agent": (100, 50), "huge": (500, 200)}
ROUTES = {"/v1/chat/completions": "gpt-4.1", "/v1/messages": "claude-sonnet-4-5"}
PIPELINES: dict[str, dict[str, Any]] = {
    "default": {},
    "tools": {"plugins": {"tools": {"lazy": True, "mode": "search"}}},
}
ANSWER = {
    "/v1/chat/completions": {
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4.1",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Done."}}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 2, "total_tokens": 1002},
    },
    "/v1/messages": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Done."}], "stop_reason": "end_turn",
        "usage": {"input_tokens": 1000, "output_tokens": 2},
    },
}


def mcp_tools(count: int) -> list[dict[str, Any]]:
    """The first `count` MCP-server tools of the corpus, named `server__tool` as MCP clients do."""
    tools: dict[str, dict[str, Any]] = {}
    for t in load_jsonl("tools.jsonl"):
        if t.get("server") and len(tools) < count:
            name = f"{t['server']}__{t['name']}".replace("/", "_").replace(".", "_")[:64]
            tools.setdefault(name, {
                "name": name, "description": t.get("description") or "",
                "input_schema": t.get("input_schema") or {"type": "object", "properties": {}},
            })
    return list(tools.values())


def request(route: str, tools: list[dict[str, Any]], messages: int) -> dict[str, Any]:
    """An agent turn: system, then rounds of user query, tool call, tool result, reply."""
    queries = [q["query"] for q in load_jsonl("queries.jsonl")]
    history: list[dict[str, Any]] = []
    turn = 0
    while len(history) < messages - 1:
        history.append({"role": "user", "content": queries[turn % len(queries)]})
        history += _tool_round(route, tools[(turn * 7) % len(tools)]["name"], f"call_{turn}",
                               queries[turn % len(queries)])
        turn += 1
    history = history[: messages - 1]
    if history[-1]["role"] != "user":
        history.append({"role": "user", "content": queries[turn % len(queries)]})
    model = ROUTES[route]
    if route == "/v1/messages":
        return {"model": model, "max_tokens": 1024, "system": SYSTEM,
                "tools": as_route_tools(route, tools), "messages": history}
    return {"model": model, "tools": as_route_tools(route, tools),
            "messages": [{"role": "system", "content": SYSTEM}, *history]}


def fresh_tools(body: dict[str, Any], serial: int) -> dict[str, Any]:
    """The same request with every tool description changed: a tool set never seen."""
    body = copy.deepcopy(body)
    for tool in body["tools"]:
        target = tool.get("function", tool)
        target["description"] = f"{target['description']} (v{serial})"
    return body


def answering_app(route: str) -> Callable[[Scope, Receive, Send], Any]:
    payload = json.dumps(ANSWER[route]).encode()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})

    return app


async def call(app: Any, route: str, body: bytes, conversation: str) -> None:
    scope = {"type": "http", "method": "POST", "path": route, "raw_path": route.encode(),
             "query_string": b"", "headers": [
                 (b"content-type", b"application/json"), (b"authorization", b"Bearer bench"),
                 (b"x-tokenopt-conversation", conversation.encode()),
                 (b"content-length", str(len(body)).encode())]}
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        pass

    await app(scope, receive, send)


async def timed(work: Awaitable[None]) -> tuple[float, float]:
    """(CPU ms of this thread, wall ms) spent on `work`.

    CPU time is the headline: the middleware does no I/O here, so on a quiet machine
    the two agree, and on a shared one CPU time leaves out the time others took the core.
    """
    cpu, start = time.thread_time(), time.perf_counter()
    await work
    return (time.thread_time() - cpu) * 1000, (time.perf_counter() - start) * 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def summary(samples: list[float]) -> dict[str, float]:
    return {"p50_ms": percentile(samples, 0.5), "p99_ms": percentile(samples, 0.99),
            "mean_ms": round(statistics.fmean(samples), 3)}


async def measure(pipeline: str, route: str, size: str, n: int) -> dict[str, Any]:
    tools, messages = SIZES[size]
    body = request(route, mcp_tools(tools), messages)
    raw = json.dumps(body).encode()
    ledger = {"path": str(Path(tempfile.mkdtemp()) / "ledger.sqlite")}
    engine = Engine.from_settings(Settings.load(ledger=ledger, **PIPELINES[pipeline]))
    wrapped = TokenOptMiddleware(answering_app(route), engine=engine)
    bare = answering_app(route)
    result: dict[str, Any] = {"request_bytes": len(raw), "tools": tools, "messages": messages}
    for phase in ("cold", "warm"):
        runs = n if phase == "warm" or size != "huge" else max(10, n // 10)
        bodies = [json.dumps(fresh_tools(body, i)).encode() for i in range(runs)] \
            if phase == "cold" else [raw] * runs
        await call(wrapped, route, raw, f"{phase}-warmup")
        await engine.drain()
        added, wall, after = [], [], []
        for i, data in enumerate(bodies):
            conv = f"{phase}-{i}" if phase == "cold" else "warm"
            direct = await timed(call(bare, route, data, conv))
            through = await timed(call(wrapped, route, data, conv))
            after.append((await timed(engine.drain()))[0])
            added.append(through[0] - direct[0])
            wall.append(through[1] - direct[1])
        result[phase] = {**summary(added), "wall": summary(wall), "after_response": summary(after)}
    if size == "agent":
        result["per_plugin"] = await per_plugin(engine, route, raw)
    await engine.aclose()
    return result


async def per_plugin(engine: Engine, route: str, raw: bytes) -> dict[str, dict[str, float]]:
    """The body's parse and each plugin's `on_request` on the warm request, CPU ms p50/p99."""
    dialect = engine.dialect_for({"type": "http", "method": "POST", "path": route})
    assert dialect is not None
    context = engine.context_for("bench")
    timings: dict[str, list[float]] = {p.name: [] for p in engine.pipeline.plugins}
    for _ in range(100):
        # As the middleware reads it: tool entries shared with the turns before.
        view = dialect.parse(jsonio.loads_request(raw), tenant="bench",
                             headers={"x-tokenopt-conversation": "warm"})
        for plugin in engine.pipeline.plugins:
            start = time.thread_time()
            view = await plugin.on_request(view, context(plugin.name))
            timings[plugin.name].append((time.thread_time() - start) * 1000)
    parse_times = []
    for _ in range(100):
        start = time.thread_time()
        dialect.parse(jsonio.loads_request(raw), tenant="bench", headers={})
        parse_times.append((time.thread_time() - start) * 1000)
    return {"parse": summary(parse_times), **{name: summary(t) for name, t in timings.items()}}


def table(results: dict[str, Any]) -> str:
    lines = [f"{'pipeline':8} {'route':22} {'size':6} {'bytes':>9} "
             f"{'cold p50':>9} {'cold p99':>9} {'warm p50':>9} {'warm p99':>9} {'after p50':>9}"]
    for pipeline, routes in results["pipelines"].items():
        for route, sizes in routes.items():
            for size, r in sizes.items():
                lines.append(
                    f"{pipeline:8} {route:22} {size:6} {r['request_bytes']:>9} "
                    f"{r['cold']['p50_ms']:>9} {r['cold']['p99_ms']:>9} "
                    f"{r['warm']['p50_ms']:>9} {r['warm']['p99_ms']:>9} "
                    f"{r['warm']['after_response']['p50_ms']:>9}")
    return "\n".join(lines)


async def run(n: int, sizes: list[str]) -> dict[str, Any]:
    pipelines: dict[str, Any] = {}
    for pipeline in PIPELINES:
        for route in ROUTES:
            for size in sizes:
                pipelines.setdefault(pipeline, {}).setdefault(route, {})[size] = \
                    await measure(pipeline, route, size, n)
    return {"benchmark": "inprocess", "requests": n,
            "unit": "ms added per request: CPU time of the serving thread; `wall` beside it",
            "machine": {"python": platform.python_version(), "platform": platform.platform()},
            "pipelines": pipelines}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--sizes", default="small,agent,huge")
    parser.add_argument("--out", type=Path, default=RESULTS / "inprocess.json")
    args = parser.parse_args()
    results = asyncio.run(run(args.requests, args.sizes.split(",")))
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))
    for pipeline, routes in results["pipelines"].items():
        for route, sizes in routes.items():
            if "agent" in sizes:
                print(pipeline, route, "per plugin (warm agent):",
                      {k: v["p50_ms"] for k, v in sizes["agent"]["per_plugin"].items()})


if __name__ == "__main__":
    main()

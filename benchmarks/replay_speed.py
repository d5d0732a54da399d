"""How long `tokenopt replay` takes on a 1,000-request file (issue: under 30 s here).

The file is agent traffic built from ../shared/data (benchmarks/workload.py);
the run is the real CLI code path: read, baseline run, optimised run, report.

    python -m benchmarks.replay_speed [--lines 1000] [--config FILE] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from benchmarks.workload import traffic
from tokenopt.replay import compare, load_lines
from tokenopt.settings import Settings

RESULTS = Path(__file__).parent / "results" / "replay_speed.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--config")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    turns = 12
    per_route = -(-args.lines // (3 * turns))
    lines = traffic(conversations_per_route=per_route, turns=turns)[: args.lines]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "traffic.jsonl"
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        started = time.perf_counter()
        report = asyncio.run(compare(load_lines(path), Settings.load(args.config, environ={})))
        seconds = time.perf_counter() - started
    result = {
        "benchmark": "replay_speed",
        "lines": len(lines),
        "file_mb": round(sum(len(json.dumps(line)) for line in lines) / 1e6, 1),
        "seconds": round(seconds, 2),
        "lines_per_second": round(len(lines) / seconds, 1),
        "upstream_calls": report["baseline"]["requests"] + report["optimized"]["requests"],
        "baseline_cached_share": report["baseline"]["cached_share"],
        "optimized_cached_share": report["optimized"]["cached_share"],
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""The shared tail of every benchmark script: `--out FILE`, JSON written and printed."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def run_benchmark(measure: Callable[[], Coroutine[Any, Any, dict[str, Any]]], name: str,
                  doc: str | None) -> None:
    """Parse `--out`, run `measure`, write its result as JSON and print it."""
    parser = argparse.ArgumentParser(description=(doc or name).splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS / f"{name}.json")
    args = parser.parse_args()
    result = asyncio.run(measure())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))

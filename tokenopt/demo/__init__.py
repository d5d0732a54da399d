"""`tokenopt demo`: the sidecar in front of the simulator, sample agent traffic, a report.

Everything runs on loopback with embedded defaults: no Redis, no network, no account.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from importlib.resources import files
from typing import Any, TextIO

import httpx

from tokenopt.proxy import create_app
from tokenopt.records import ExchangeRecord
from tokenopt.replay import TrafficLine, compare, render_table
from tokenopt.serving import ServerThread
from tokenopt.settings import Settings
from tokenopt.sim import create_sim_app


def sample_traffic() -> list[dict[str, Any]]:
    """The bundled traffic file, one request a line, in the replay format."""
    text = files("tokenopt.demo").joinpath("sample_traffic.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def run_demo(settings: Settings, *, out: TextIO) -> int:
    """Send the sample traffic through a sidecar and print what tokenopt saw."""
    lines = sample_traffic()
    with ServerThread(create_sim_app()) as upstream:
        settings = settings.model_copy(
            update={"upstream": settings.upstream.model_copy(update={"url": upstream})}
        )
        app = create_app(settings)
        with ServerThread(app) as sidecar:
            out.write(f"simulator {upstream}  <-  tokenopt sidecar {sidecar}\n")
            failures = _send_all(sidecar, lines)
        records = list(app.state.engine.recent.records)
    _report(records, out)
    if failures:
        out.write(f"{failures} request(s) failed\n")
        return 1
    out.write("\nBefore/after: the same traffic replayed on the providers' cache and price rules\n")
    traffic = [TrafficLine.model_validate(line) for line in lines]
    render_table(asyncio.run(compare(traffic, settings)), out, per_model=False)
    return 0


def _send_all(base_url: str, lines: list[dict[str, Any]]) -> int:
    failures = 0
    headers = {"authorization": "Bearer demo-key", "x-api-key": "demo-key"}
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for line in lines:
            request = client.build_request(
                "POST", line["path"], json=line["body"], headers={**headers, **line["headers"]}
            )
            response = client.send(request, stream=True)
            response.read()
            failures += response.status_code != 200
    return failures


def _report(records: list[ExchangeRecord], out: TextIO) -> None:
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for record in records:
        row = totals[record.route]
        row["requests"] += 1
        row["streamed"] += record.stream
        row["bytes_before"] += record.body_bytes_before
        row["bytes_after"] += record.body_bytes_after
        if record.usage is not None:
            row["input"] += record.usage.input_tokens
            row["cached"] += record.usage.cached_input_tokens
            row["output"] += record.usage.output_tokens
    columns = ("requests", "streamed", "bytes_before", "bytes_after", "input", "cached", "output")
    out.write(f"{'route':<22}" + "".join(f"{c:>14}" for c in columns) + "\n")
    for route, row in sorted(totals.items()):
        out.write(f"{route:<22}" + "".join(f"{row[c]:>14,}" for c in columns) + "\n")

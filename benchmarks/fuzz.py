"""Fuzz: hostile request bodies through the sidecar (every plugin on) and to the simulator.

The whole fixed corpus of `tests/reliability/corpus.py` (every class of bad input on
every route, the multi-megabyte ones included) and then `--examples` bodies generated
by hypothesis (valid bodies with fields replaced by random JSON, extra members, bytes
truncated, flipped or inserted). Each goes through the in-process sidecar over the
in-process simulator, and straight to the simulator. Reported: cases tried, broken
promises (a 5xx or exception, an error not in the client's dialect, an outcome other
than the documented one), statuses, fail-opens, requests vs records, the slowest
cases, and RSS at start and end.

    python -m benchmarks.fuzz [--examples 10000] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio.from_thread
import anyio.to_thread
from hypothesis import HealthCheck, given, settings

from benchmarks.results import RESULTS
from tests.reliability.corpus import Case, Expect, mutated_bodies, nasty_cases
from tests.reliability.rig import Rig, Sent, problems, running_rig


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


class Tally:
    def __init__(self) -> None:
        self.cases: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.sim_statuses: Counter[int] = Counter()
        self.broken: list[dict[str, Any]] = []
        self.slowest: list[tuple[float, str]] = []
        self.sent = 0

    def add(self, name: str, sent: Sent, direct: Sent, found: list[str], seconds: float) -> None:
        self.cases[name.split("/")[0]] += 1
        self.sent += 1
        self.statuses[sent.status] += 1
        self.sim_statuses[direct.status] += 1
        if direct.status not in (200, 400):
            found = [*found, f"simulator answered {direct.status}"]
        if found:
            self.broken.append({"case": name, "route": sent.route, "problems": found,
                                "body_head": sent.body[:120].decode("utf-8", "replace")})
        self.slowest = sorted([*self.slowest, (round(seconds, 3), f"{sent.route} {name}")],
                              reverse=True)[:10]


def expected_problems(case: Case, sent: Sent) -> list[str]:
    found = problems(sent)
    if case.expect is Expect.FORWARDED and sent.forwarded != [case.body]:
        found.append("not forwarded as sent")
    if case.expect is Expect.PASSED and not sent.forwarded:
        found.append("did not reach the upstream")
    if case.expect is Expect.REFUSED and (sent.forwarded or not 400 <= sent.status < 500):
        found.append("not refused")
    return found


async def run_case(rig: Rig, tally: Tally, name: str, route: str, body: bytes,
                   case: Case | None) -> None:
    started = time.perf_counter()
    sent = await rig.send(route, body)
    seconds = time.perf_counter() - started
    direct = await rig.direct(route, body)
    found = expected_problems(case, sent) if case is not None else problems(sent)
    if case is None and not sent.forwarded and not 400 <= sent.status < 500:
        found.append("neither forwarded nor refused")
    tally.add(name, sent, direct, found, seconds)


def generated(rig: Rig, tally: Tally, examples: int) -> None:
    """Runs in a worker thread: hypothesis drives, the event loop sends."""

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(mutated_bodies())
    def one(pair: tuple[str, bytes]) -> None:
        route, body = pair
        anyio.from_thread.run(run_case, rig, tally, "generated/", route, body, None)

    one()


async def measure(examples: int) -> dict[str, Any]:
    rss_start = rss_mib()
    started = time.perf_counter()
    tally = Tally()
    async with running_rig() as rig:
        for case in nasty_cases():
            await run_case(rig, tally, case.name, case.route, case.body, case)
        corpus_seconds = time.perf_counter() - started
        await anyio.to_thread.run_sync(generated, rig, tally, examples)
        await rig.engine.drain()
        records = len(rig.sink.records)
        fail_opens = Counter(str(r.fail_open) for r in rig.sink.records if r.fail_open)
        refused = Counter(str(r.error) for r in rig.sink.records if r.error)
        alive = (await rig.send("/v1/messages", nasty_cases()[0].body)).status != 0
    return {
        "command": f"python -m benchmarks.fuzz --examples {examples}",
        "cases": sum(tally.cases.values()), "by_class": dict(tally.cases),
        "corpus_cases": len(nasty_cases()), "generated_cases": tally.cases["generated"],
        "broken_promises": len(tally.broken), "broken": tally.broken[:50],
        "sidecar_statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "simulator_statuses": {str(k): v for k, v in sorted(tally.sim_statuses.items())},
        "requests_sent": tally.sent, "records": records, "fail_opens": dict(fail_opens),
        "refusals": dict(refused), "still_serving": alive,
        "slowest_seconds": [{"seconds": s, "case": n} for s, n in tally.slowest],
        "corpus_seconds": round(corpus_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "rss_mib": {"start": rss_start, "end": rss_mib()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=RESULTS / "fuzz.json")
    args = parser.parse_args()
    result = asyncio.run(measure(args.examples))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "broken"}, indent=2))


if __name__ == "__main__":
    main()

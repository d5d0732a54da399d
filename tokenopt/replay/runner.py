"""Replaying traffic against a fresh simulator, as recorded or through tokenopt's pipeline.

Both runs drive the same in-process simulator code over ASGI, with its clock
set from each line's `ts`, so cache expiry follows the recorded timing. The
optimised run puts `TokenOptMiddleware` in front of the simulator: whatever
the pipeline does, search detours included, reaches the simulator and is billed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx

from tokenopt.asgi import TokenOptMiddleware
from tokenopt.engine import Engine
from tokenopt.pipeline import Plugin
from tokenopt.records import ExchangeRecord
from tokenopt.replay.traffic import TrafficLine
from tokenopt.settings import Settings
from tokenopt.sim import create_sim_app
from tokenopt.sim.bills import Bill
from tokenopt.sim.script import RECORDED_HEADER
from tokenopt.store import MemoryStore
from tokenopt.tokens import TokenCounter
from tokenopt.types import ASGIApp

# Replayed traffic carries no secrets; one synthetic key keeps it one tenant, one cache scope.
REPLAY_KEY = "tokenopt-replay"


class ReplayClock:
    """The simulated time: the `ts` of the line being replayed."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class RunResult:
    """What one run cost: the simulator's bills, and what went wrong on the way."""

    bills: list[Bill]
    lines: int
    failed: int = 0
    records: list[ExchangeRecord] = field(default_factory=list)


class _Collect:
    def __init__(self) -> None:
        self.records: list[ExchangeRecord] = []

    async def write(self, record: ExchangeRecord) -> None:
        self.records.append(record)


async def run(
    lines: Iterable[TrafficLine],
    *,
    settings: Settings | None = None,
    plugins: Iterable[Plugin] | None = None,
    counter: TokenCounter | None = None,
) -> RunResult:
    """Replay `lines` in order against a fresh simulator.

    Args:
        settings: None for the baseline (requests exactly as recorded); otherwise
            the pipeline these settings enable sits in front of the simulator.
        plugins: explicit plugins instead of those the settings enable (tests).
        counter: a shared token counter, so both runs reuse one memo.
    """
    counter = counter or TokenCounter()
    clock = ReplayClock()
    sim = create_sim_app(counter=counter, clock=clock)
    app: ASGIApp = sim
    engine: Engine | None = None
    sink = _Collect()
    if settings is not None:
        # A what-if run: nothing goes to the real ledger or the traffic recording.
        settings = settings.model_copy(update={
            "ledger": settings.ledger.model_copy(update={"enabled": False}),
            "record": settings.record.model_copy(update={"path": None}),
        })
        if plugins is None:
            engine = Engine.from_settings(settings, store=MemoryStore(clock=clock), counter=counter,
                                          sinks=[sink], clock=clock)
        else:
            engine = Engine(settings, plugins=plugins, store=MemoryStore(clock=clock), counter=counter,
                            sinks=[sink], clock=clock)
        app = TokenOptMiddleware(sim, engine=engine)
    result = RunResult(bills=[], lines=0)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://replay",
                                     timeout=None) as client:
            for number, line in enumerate(lines, start=1):
                clock.now = line.ts
                key = f"line-{number}"
                if line.response is not None:
                    sim.state.script.add(key, line.response)
                response = await client.post(line.path, content=json.dumps(line.body).encode(),
                                             headers=_headers(line, key))
                result.lines += 1
                result.failed += response.status_code != 200
                sim.state.script.discard(key)
                while sim.state.bills:  # taken as they come: the simulator keeps a bounded log
                    result.bills.append(sim.state.bills.popleft())
    finally:
        if engine is not None:
            await engine.aclose()
    result.records = sink.records
    return result


def _headers(line: TrafficLine, key: str) -> dict[str, str]:
    return {
        **line.headers,
        "content-type": "application/json",
        "authorization": f"Bearer {REPLAY_KEY}",
        "x-api-key": REPLAY_KEY,
        RECORDED_HEADER: key,
    }

"""Totals and groups over ledger entries: the numbers every report format shows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from tokenopt.ledger.entry import LedgerEntry

GROUPINGS: dict[str, Callable[[LedgerEntry], list[str]]] = {
    "model": lambda e: [e.model or "(unknown)"],
    "route": lambda e: [e.route],
    "tenant": lambda e: [e.tenant],
    # An exchange counts once for each plugin that acted on it.
    "plugin": lambda e: sorted(e.plugins) or ["(none)"],
}


@dataclass
class Totals:
    requests: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    tokens_saved: int = 0
    cost_usd_before: float = 0.0
    cost_usd_after: float = 0.0
    reasoning_cost_usd: float = 0.0
    fail_opens: int = 0
    errors: int = 0
    search_detours: int = 0
    detour_cost_usd: float = 0.0
    unpriced_requests: int = 0
    added_latency_ms_total: float = 0.0

    def add(self, entry: LedgerEntry) -> None:
        self.requests += 1
        self.input_tokens += entry.input_tokens
        self.cached_input_tokens += entry.cached_input_tokens
        self.cache_write_tokens += entry.cache_write_tokens
        self.output_tokens += entry.output_tokens
        self.reasoning_tokens += entry.reasoning_tokens
        self.tokens_saved += entry.tokens_saved
        self.cost_usd_before += entry.cost_usd_before
        self.cost_usd_after += entry.cost_usd_after
        self.reasoning_cost_usd += entry.reasoning_cost_usd
        self.fail_opens += entry.fail_open is not None
        self.errors += entry.error is not None
        self.search_detours += entry.search_detours
        self.detour_cost_usd += entry.detour_cost_usd
        self.unpriced_requests += not entry.priced and entry.usage_reported
        self.added_latency_ms_total += entry.added_latency_ms

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        latency = data.pop("added_latency_ms_total")
        for key in ("cost_usd_before", "cost_usd_after", "reasoning_cost_usd", "detour_cost_usd"):
            data[key] = round(data[key], 6)
        data["cost_usd_saved"] = round(self.cost_usd_before - self.cost_usd_after, 6)
        data["cached_share"] = (round(self.cached_input_tokens / self.input_tokens, 4)
                                if self.input_tokens else 0.0)
        data["added_latency_ms_mean"] = round(latency / self.requests, 3) if self.requests else 0.0
        return data


@dataclass
class Report:
    """What `tokenopt report` shows: totals, groups, causes, and savings over time."""

    since: float | None
    until: float | None
    group_by: str
    totals: Totals = field(default_factory=Totals)
    groups: dict[str, Totals] = field(default_factory=dict)
    cache_breaks: Counter[str] = field(default_factory=Counter)
    daily: dict[str, Totals] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since, "until": self.until, "group_by": self.group_by,
            "totals": self.totals.as_json(),
            "groups": [{"key": key, **totals.as_json()}
                       for key, totals in sorted(self.groups.items(),
                                                 key=lambda kv: -kv[1].cost_usd_before)],
            "top_cache_break_causes": [{"cause": c, "requests": n}
                                       for c, n in self.cache_breaks.most_common(10)],
            "daily": [{"day": day, **totals.as_json()} for day, totals in sorted(self.daily.items())],
        }


def build_report(entries: Iterable[LedgerEntry], *, group_by: str = "model",
                 since: float | None = None, until: float | None = None) -> Report:
    from datetime import UTC, datetime

    if group_by not in GROUPINGS:
        raise ValueError(f"cannot group by '{group_by}' (choose from {', '.join(GROUPINGS)})")
    report = Report(since, until, group_by)
    keys_of = GROUPINGS[group_by]
    for entry in entries:
        report.totals.add(entry)
        for key in keys_of(entry):
            report.groups.setdefault(key, Totals()).add(entry)
        day = datetime.fromtimestamp(entry.ts, UTC).date().isoformat()
        report.daily.setdefault(day, Totals()).add(entry)
        if entry.cache_break:
            cause = entry.cache_break.split(":")[0].split(" at character")[0]
            report.cache_breaks[f"{entry.route} {entry.model}: {cause}"] += 1
    return report

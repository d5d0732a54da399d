"""One record per exchange, and the sinks that receive them off the request path.

The ledger (prices, durable storage, reports) builds on these records; the
core only guarantees that each LLM exchange produces exactly one.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from tokenopt.dialects.base import Usage

logger = logging.getLogger("tokenopt.records")


@dataclass(slots=True)
class ExchangeRecord:
    """What happened to one LLM request: its identity, what tokenopt did, what it cost."""

    ts: float
    tenant: str
    route: str
    dialect: str
    model: str | None
    conversation: str | None
    stream: bool
    status: int = 0
    usage: Usage | None = None
    complete: bool = False
    changed: bool = False
    body_bytes_before: int = 0
    body_bytes_after: int = 0
    plugin_notes: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_open: str | None = None
    error: str | None = None
    added_latency_ms: float = 0.0
    duration_ms: float = 0.0
    # Tokens per segment (tools, system, messages) as the client sent the request
    # and as it was forwarded; counted off the request path.
    tokens_before: dict[str, int] = field(default_factory=dict)
    tokens_after: dict[str, int] = field(default_factory=dict)


class RecordSink(Protocol):
    async def write(self, record: ExchangeRecord) -> None: ...


class RecentRecords:
    """The latest records in memory, plus running counters: the default sink."""

    def __init__(self, maxlen: int = 1000) -> None:
        self.records: deque[ExchangeRecord] = deque(maxlen=maxlen)
        self.counters: Counter[str] = Counter()

    def forget(self, tenant: str) -> int:
        """Drop `tenant`'s records (an erase); return how many. Counters are totals, kept."""
        kept = [record for record in self.records if record.tenant != tenant]
        dropped = len(self.records) - len(kept)
        self.records = deque(kept, maxlen=self.records.maxlen)
        return dropped

    async def write(self, record: ExchangeRecord) -> None:
        self.records.append(record)
        self.counters["requests"] += 1
        if record.fail_open:
            self.counters["fail_opens"] += 1
        if record.error:
            self.counters["errors"] += 1
        if record.usage is not None:
            self.counters["input_tokens"] += record.usage.input_tokens
            self.counters["cached_input_tokens"] += record.usage.cached_input_tokens
            self.counters["output_tokens"] += record.usage.output_tokens

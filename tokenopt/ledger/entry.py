"""One ledger entry per LLM exchange: flat, priced, and free of secrets."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from tokenopt.dialects import dialect_for
from tokenopt.dialects.base import Usage
from tokenopt.pricing import PriceBook
from tokenopt.records import ExchangeRecord

SEGMENTS = ("tools", "system", "messages")


@dataclass(slots=True)
class LedgerEntry:
    """What one request cost, before and after tokenopt.

    Token figures are what the upstream reported for the forwarded request
    (`input_tokens` is the whole prompt). `tokens_before`/`tokens_after` are
    tokenopt's own counts per segment. `cost_usd_before` prices the request as
    the client sent it: its token count, and the cache reads it would have had,
    which are the reported ones minus what the client's own cache break cost
    (the `normalize` detector's finding), or none on Anthropic when the client
    set no breakpoint and tokenopt placed them. `tokenopt replay` gives the exact
    counterfactual on recorded traffic; this is the live estimate.
    """

    ts: float
    tenant: str
    route: str
    model: str | None
    conversation: str | None
    stream: bool
    status: int
    complete: bool
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    tokens_before: dict[str, int] = field(default_factory=dict)
    tokens_after: dict[str, int] = field(default_factory=dict)
    tokens_saved: int = 0
    cached_tokens_predicted: int | None = None
    cost_usd_before: float = 0.0
    cost_usd_after: float = 0.0
    reasoning_cost_usd: float = 0.0
    priced: bool = False
    added_latency_ms: float = 0.0
    fail_open: str | None = None
    error: str | None = None
    cache_break: str | None = None
    search_detours: int = 0
    detour_cost_usd: float = 0.0
    plugins: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Made once per exchange and kept through spooling and re-delivery, so every
    # store of entries can refuse a second copy: one exchange, one entry.
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def usage_reported(self) -> bool:
        return self.input_tokens > 0 or self.output_tokens > 0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LedgerEntry:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


def entry_from(record: ExchangeRecord, prices: PriceBook) -> LedgerEntry:
    """Price a record; `usage` absent (errors, unknown shapes) means zero tokens billed."""
    usage = record.usage or Usage()
    provider = "anthropic" if record.route == "/v1/messages" else "openai"
    # A search detour's extra calls are the feature's cost: priced on their own, and kept
    # out of what the client's request would have cost without tokenopt.
    detour = detour_usage(record)
    billed = calls_usage(record)
    if billed is not None and not _covers(usage, billed):
        # The detour's answer, which sums every call, never reached the client (a later call
        # failed, or the client left): what the upstream billed is the calls the detour read,
        # all of them detour calls. What the client got holds at most part of the first.
        usage = detour = billed
    after = prices.cost(record.model, usage, provider=provider)
    detour_cost = prices.cost(record.model, detour, provider=provider).total_usd if detour else 0.0
    usage_sent = _minus(usage, detour) if detour else usage
    before_total = sum(record.tokens_before.values())
    after_total = sum(record.tokens_after.values())
    cache_break = record.plugin_notes.get("normalize", {}).get("cache_break", {})
    lost = int(cache_break.get("tokens_lost", 0)) if isinstance(cache_break, dict) else 0
    scale = before_total / after_total if after_total else 1.0
    before_input = round(usage_sent.input_tokens * scale)
    before_cached = usage_sent.cached_input_tokens - lost
    if after_total and usage_sent.cached_input_tokens > 0:  # the conversation's cache is warm
        per_token = usage_sent.input_tokens / after_total  # the upstream's tokens a counted one
        before_cached = max(
            before_cached + _withheld_cached(record, usage_sent, per_token, cache_break),
            _client_prefix_cached(record, before_total, per_token))
    before_cached = max(0, min(before_cached, before_input))
    placed = record.plugin_notes.get("normalize", {}).get("breakpoints", {})
    if isinstance(placed, dict) and placed.get("placed") and not placed.get("client_breakpoints"):
        before_cached = 0  # without any cache_control, Anthropic caches nothing
    before_usage = Usage(
        input_tokens=before_input, cached_input_tokens=before_cached,
        cache_write_tokens=0, output_tokens=usage_sent.output_tokens,
        reasoning_tokens=usage_sent.reasoning_tokens,
    )
    before = prices.cost(record.model, before_usage, provider=provider)
    reasoning = prices.cost(record.model, Usage(output_tokens=usage.reasoning_tokens),
                            provider=provider)
    return LedgerEntry(
        ts=record.ts, tenant=record.tenant, route=record.route, model=record.model,
        conversation=record.conversation, stream=record.stream, status=record.status,
        complete=record.complete,
        input_tokens=usage.input_tokens, cached_input_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cache_write_1h_tokens=usage.cache_write_1h_tokens, output_tokens=usage.output_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        tokens_before=dict(record.tokens_before), tokens_after=dict(record.tokens_after),
        tokens_saved=max(0, before_total - after_total),
        cost_usd_before=round(before.total_usd, 8), cost_usd_after=round(after.total_usd, 8),
        reasoning_cost_usd=round(reasoning.output_usd, 8), priced=after.priced,
        added_latency_ms=round(record.added_latency_ms, 3),
        fail_open=record.fail_open, error=record.error,
        cache_break=cache_break.get("cause") if isinstance(cache_break, dict) else None,
        search_detours=int(record.plugin_notes.get("tools", {}).get("search_detours", 0)),
        detour_cost_usd=round(detour_cost, 8),
        plugins=record.plugin_notes,
    )


def _client_prefix_cached(record: ExchangeRecord, before_total: int, per_token: float) -> int:
    """What the client's own request would have read from a warm cache, in the upstream's
    tokens: all but what it added since its previous request, when normalize saw its prefix
    hold (0 when it did not)."""
    prefix = record.plugin_notes.get("normalize", {}).get("client_prefix")
    new_tokens = prefix.get("new_tokens") if isinstance(prefix, dict) else None
    if not isinstance(new_tokens, int):
        return 0
    return round(max(before_total - new_tokens, 0) * per_token)


def _withheld_cached(record: ExchangeRecord, usage: Usage, per_token: float,
                     cache_break: Any) -> int:
    """Tool tokens tokenopt did not send that the client's own request would have read from
    a warm cache, in the upstream's tokens.

    Tools open the prompt on every provider, and a client sends the same ones every
    turn. When this request read at least its whole tools segment from the cache and the
    client's own prefix held through its tools, the client's longer tool list would have
    been read from the cache too. Without this, a lazy-tools turn after the first priced
    the withheld tools as uncached: ~10x what the client would have paid.
    """
    withheld = record.tokens_before.get("tools", 0) - record.tokens_after.get("tools", 0)
    if withheld <= 0:
        return 0
    if cache_break and (not isinstance(cache_break, dict)
                        or cache_break.get("segment") not in ("system", "messages")):
        return 0  # the client's own cache broke in (or before) its tools
    if usage.cached_input_tokens < record.tokens_after.get("tools", 0) * per_token:
        return 0
    return round(withheld * per_token)


def detour_usage(record: ExchangeRecord) -> Usage | None:
    """The usage of a search detour's extra upstream calls, as the `tools` plugin noted it."""
    raw = record.plugin_notes.get("tools", {}).get("detour_usage")
    if not isinstance(raw, dict):
        return None
    dialect = dialect_for("POST", record.route)
    return dialect.usage_from_json({"usage": raw}) if dialect is not None else None


def calls_usage(record: ExchangeRecord) -> Usage | None:
    """The summed usage of every upstream call whose answer the search detour read.

    Noted per call by the `tools` plugin as each answer came (`calls`), so it holds
    the calls made before one that failed as well.
    """
    calls = record.plugin_notes.get("tools", {}).get("calls")
    dialect = dialect_for("POST", record.route)
    if not isinstance(calls, list) or dialect is None:
        return None
    read = [dialect.usage_from_json({"usage": call}) for call in calls if isinstance(call, dict)]
    found = [usage for usage in read if usage is not None]
    if not found:
        return None
    return Usage(*(sum(getattr(u, f) for u in found) for f in Usage.__dataclass_fields__))


def _covers(a: Usage, b: Usage) -> bool:
    return all(getattr(a, f) >= getattr(b, f) for f in Usage.__dataclass_fields__)


def _minus(a: Usage, b: Usage) -> Usage:
    return Usage(*(max(getattr(a, f) - getattr(b, f), 0) for f in Usage.__dataclass_fields__))

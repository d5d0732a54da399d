"""The `[plugins.tools]` table."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ToolsSettings(BaseModel):
    """Settings of the `tools` plugin.

    Dedupe is always on with the plugin. `slim` removes schema annotations
    that repeat what is already there (lossless). `lazy` withholds tools when a
    request's function tools exceed `lazy_threshold_tokens`: `mode` picks
    between tokenopt's own search detour (`search`), the provider's tool search
    (`native`, only where `native_upstream` says the upstream serves it) or,
    per conversation by price, any of those or keeping every tool (`auto`).
    When the model is still searching after `search_rounds`, the last round
    offers up to `widen_last_round` more tools, the best-ranked rest of the
    catalog (within `max_tools`), once, rather than leave the model without the
    tool it looks for.
    `semantic` fuses embeddings with the lexical ranking (the `semantic`
    extra); a tool set's embeddings are built off the request path, so its
    first requests rank lexically, unless `semantic_wait` (replays, benchmarks).
    `expected_turns` and `loads_per_turn` are what `auto` assumes of a
    conversation it has just met.

    `search_rounds` is 3: a third search finds what the first two pages missed,
    and costs a round only when it is needed. On the workload model
    (benchmarks/tool_workload.py's conversations, one per real query; chosen on the
    dev half, crc32 of the query id even, among 2 / 3 / 4 and larger pages for a
    repeated search) misses fell 25 -> 21 of 2,910 dev turns and 46 -> 39 of 3,013
    held-out ones, with 0.2 more tools loaded a conversation. With the third round,
    `preload_k` 6 instead of 8 misses 22 dev turns (38 held-out) and loads 10% fewer
    tools; the replay (benchmarks/tool_workload.py) then sends 86.3% fewer input tokens
    than all tools on OpenAI instead of 85.0%, with the same 1 miss in 76 turns.

    `siblings` 4 and `preload_k` 5 (were 3 and 6), chosen on the dev half of
    benchmarks/tool_misses.py (every real query a conversation; it counts more misses than
    the earlier script the figures above came from, which was not kept) among siblings 3 / 4 / 5,
    preload_k 5 / 6 and search_k 6 / 8: misses 29 -> 26 of 2,910 dev turns, 40 -> 38 of
    3,013 held-out, with 4-5% more tools loaded. A server's fifth tool is often the
    first step of a task and shares no word with it (KOSPI's `load_all_tickers` for
    "investment in the Korean market"). Replay (benchmarks/tool_workload.py): OpenAI
    misses 1/76 -> 0/76 and input tokens -11%, Anthropic +2.5% input tokens, 0/34 either way.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    lazy: bool = False
    lazy_threshold_tokens: int = Field(default=4000, ge=0)
    preload_k: int = Field(default=5, ge=0, le=64)
    search_k: int = Field(default=8, ge=1, le=32)
    siblings: int = Field(default=4, ge=0, le=16)
    search_rounds: int = Field(default=3, ge=0, le=8)
    widen_last_round: int = Field(default=0, ge=0)
    pinned: list[str] = Field(default_factory=list)
    slim: bool = False
    hoist_defs: bool = False
    mode: Literal["auto", "search", "native"] = "auto"
    semantic: bool = False
    semantic_wait: bool = False
    native_upstream: bool = False
    max_tools: int = Field(default=128, ge=2)
    expected_turns: int = Field(default=10, ge=1)
    loads_per_turn: float = Field(default=0.3, ge=0)
    conversation_ttl_seconds: int = Field(default=86400, ge=60)

"""Anthropic's breakpoint cache, against hand-computed expectations.

Prompts are built from segments with set token counts, so every figure below
is plain arithmetic on those counts.
"""

from __future__ import annotations

import httpx
import pytest

from tokenopt.sim import create_sim_app
from tokenopt.sim.cache import CacheResult
from tokenopt.sim.cache_anthropic import AnthropicPromptCache, min_cacheable_tokens
from tokenopt.sim.prompt import Prompt, Segment

MODEL = "claude-sonnet-4-5"  # minimum cacheable prefix: 1,024 tokens


def seg(name: str, tokens: int, ttl: str | None = None, kind: str = "message") -> Segment:
    return Segment(kind, name, tokens, ttl)  # type: ignore[arg-type]


def prompt(*segments: Segment, model: str = MODEL, salt: str = "") -> Prompt:
    return Prompt("/v1/messages", model, segments, salt=salt)


TOOLS = seg("tools", 800, kind="tool")
SYSTEM = seg("system", 700, "5m", kind="system")


def test_no_breakpoint_no_cache() -> None:
    cache = AnthropicPromptCache()
    same = prompt(TOOLS, seg("system", 700, kind="system"), seg("hi", 50))
    assert cache.lookup(same, scope="k", now=0) == cache.lookup(same, scope="k", now=1) == CacheResult()


def test_write_then_read_at_the_breakpoint() -> None:
    cache = AnthropicPromptCache()
    first = prompt(TOOLS, SYSTEM, seg("q1", 50))
    # 800 + 700 = 1,500 tokens up to the breakpoint: written, then read; 50 stay plain input.
    assert cache.lookup(first, scope="k", now=0) == CacheResult(0, 1500, 0)
    assert cache.lookup(first, scope="k", now=10) == CacheResult(1500, 0, 0)


def test_below_the_models_minimum_nothing_is_cached() -> None:
    cache = AnthropicPromptCache()
    short = prompt(seg("tools", 300, kind="tool"), seg("system", 700, "5m", kind="system"))
    assert [cache.lookup(short, scope="k", now=t) for t in (0, 1)] == [CacheResult()] * 2
    # The same 1,000 tokens are enough where the minimum is 512.
    assert min_cacheable_tokens("claude-opus-5") == 512
    opus = prompt(seg("tools", 300, kind="tool"), seg("system", 700, "5m", kind="system"),
                  model="claude-opus-5")
    assert cache.lookup(opus, scope="k", now=0) == CacheResult(0, 1000, 0)


@pytest.mark.parametrize(("model", "minimum"), [
    ("claude-sonnet-4-5-20250929", 1024), ("claude-opus-4-1", 1024), ("claude-sonnet-4-6", 2048),
    ("claude-haiku-4-5", 4096), ("claude-opus-4-7", 2048), ("claude-opus-5-5", 512),
])
def test_minimums_per_model_family(model: str, minimum: int) -> None:
    assert min_cacheable_tokens(model) == minimum


def test_five_minute_entries_expire_on_the_simulated_clock_and_hits_refresh_them() -> None:
    cache = AnthropicPromptCache()
    first = prompt(TOOLS, SYSTEM, seg("q1", 50))
    cache.lookup(first, scope="k", now=0)
    assert cache.lookup(first, scope="k", now=299).cached_tokens == 1500  # refreshed: now 599
    assert cache.lookup(first, scope="k", now=598).cached_tokens == 1500  # refreshed: now 898
    assert cache.lookup(first, scope="k", now=899) == CacheResult(0, 1500, 0)  # expired: rewritten


def test_one_hour_entries_survive_thirty_idle_minutes_five_minute_ones_do_not() -> None:
    cache = AnthropicPromptCache()
    hour = prompt(TOOLS, seg("system", 700, "1h", kind="system"), seg("q", 10))
    five = prompt(TOOLS, seg("other system", 700, "5m", kind="system"), seg("q", 10))
    assert cache.lookup(hour, scope="k", now=0) == CacheResult(0, 1500, 1500)
    cache.lookup(five, scope="k", now=0)
    assert cache.lookup(hour, scope="k", now=1800).cached_tokens == 1500
    assert cache.lookup(five, scope="k", now=1800).cached_tokens == 0
    assert cache.lookup(hour, scope="k", now=1800 + 3601).cached_tokens == 0


def test_mixed_ttls_split_the_write_at_the_last_one_hour_breakpoint() -> None:
    cache = AnthropicPromptCache()
    mixed = prompt(seg("tools", 1200, "1h", kind="tool"), seg("system", 300, "1h", kind="system"),
                   seg("history", 2000, "5m"), seg("newest", 40))
    # A = 0 (nothing cached); B = 1,500 (end of system, 1h); C = 3,500 (end of history, 5m).
    # 1h write: 1,500; 5m write: 2,000; total written 3,500; 40 plain input.
    assert cache.lookup(mixed, scope="k", now=0) == CacheResult(0, 3500, 1500)
    # Next turn: history grew. Read to C = 3,500; write the new 5m part only.
    grown = prompt(seg("tools", 1200, "1h", kind="tool"), seg("system", 300, "1h", kind="system"),
                   seg("history", 2000), seg("newest", 40), seg("reply+next", 500, "5m"))
    assert cache.lookup(grown, scope="k", now=60) == CacheResult(3500, 540, 0)


def test_a_changed_system_misses_everything_after_the_tools() -> None:
    cache = AnthropicPromptCache()
    tools = seg("tools", 1100, "5m", kind="tool")
    cache.lookup(prompt(tools, seg("system at 10:00", 700, "5m", kind="system")), scope="k", now=0)
    changed = prompt(tools, seg("system at 10:01", 700, "5m", kind="system"))
    # The tools entry (1,100) is read; the new system part (700) is written.
    assert cache.lookup(changed, scope="k", now=60) == CacheResult(1100, 700, 0)


def test_lookback_reaches_twenty_blocks_not_twenty_one() -> None:
    history = [seg(f"m{i}", 100) for i in range(30)]
    base = [seg("tools", 1100, "5m", kind="tool")]
    for extra, expected in ((19, 1100), (20, 0)):
        cache = AnthropicPromptCache()
        cache.lookup(prompt(*base), scope="k", now=0)  # entry at block 0
        # The only breakpoint sits `extra` blocks after the cached edge; the block at
        # the breakpoint is the first of the 20 checked.
        unmarked = seg("tools", 1100, kind="tool")
        blocks = [unmarked, *history[: extra - 1], seg("last", 100, "5m")]
        assert len(blocks) - 1 == extra
        assert cache.lookup(prompt(*blocks), scope="k", now=1).cached_tokens == expected


def test_tool_choice_or_thinking_changes_bust_only_the_messages() -> None:
    cache = AnthropicPromptCache()
    blocks = (seg("tools", 1100, "5m", kind="tool"), seg("history", 500, "5m"))
    cache.lookup(prompt(*blocks, salt="auto"), scope="k", now=0)
    assert cache.lookup(prompt(*blocks, salt="auto"), scope="k", now=1).cached_tokens == 1600
    assert cache.lookup(prompt(*blocks, salt="any"), scope="k", now=2).cached_tokens == 1100


def test_scopes_and_models_do_not_share_entries() -> None:
    cache = AnthropicPromptCache()
    first = prompt(TOOLS, SYSTEM)
    cache.lookup(first, scope="k", now=0)
    assert cache.lookup(first, scope="other-key", now=1).cached_tokens == 0
    assert cache.lookup(prompt(TOOLS, SYSTEM, model="claude-opus-4-1"), scope="k",
                        now=1).cached_tokens == 0


@pytest.mark.anyio
async def test_the_route_reports_cache_usage_and_refuses_a_fifth_breakpoint() -> None:
    app = create_sim_app()
    long_system = " ".join(["alpha beta gamma delta"] * 400)  # ~1,600 tokens
    body = {"model": MODEL, "max_tokens": 50,
            "system": [{"type": "text", "text": long_system, "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "Hi"}]}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
        first = (await client.post("/v1/messages", json=body, headers={"x-api-key": "k"})).json()
        second = (await client.post("/v1/messages", json=body, headers={"x-api-key": "k"})).json()
        marked = {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}
        five = {**body, "messages": [{"role": "user", "content": [marked] * 4}]}
        refused = await client.post("/v1/messages", json=five, headers={"x-api-key": "k"})

    written = first["usage"]["cache_creation_input_tokens"]
    assert written > 1024 and first["usage"]["cache_read_input_tokens"] == 0
    assert first["usage"]["cache_creation"] == {"ephemeral_5m_input_tokens": written,
                                                "ephemeral_1h_input_tokens": 0}
    assert second["usage"]["cache_read_input_tokens"] == written
    assert second["usage"]["cache_creation_input_tokens"] == 0
    # input_tokens is only the uncached tail, the same both times.
    assert second["usage"]["input_tokens"] == first["usage"]["input_tokens"] > 0
    assert refused.status_code == 400
    assert "A maximum of 4 blocks with cache_control may be provided. Found 5." in refused.text

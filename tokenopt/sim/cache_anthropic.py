"""Anthropic's prompt caching with `cache_control` breakpoints, as documented.

- Prefix order tools → system → messages, one block at a time; a breakpoint
  marks the end of a cacheable prefix. At most 4 (the route refuses more).
- Nothing is cached below the model's minimum prefix length (no error).
- Reads: the longest prefix ending at a block edge that has a live entry,
  searched from each breakpoint at most 20 blocks back.
- Writes happen at breakpoints past the hit. Billing with mixed TTLs: read up
  to the hit A; 1-hour rate from A to the last 1-hour breakpoint B; 5-minute
  rate from B to the last breakpoint C; the tail after C is plain input.
- Entries live 5 minutes or 1 hour on the simulated clock, refreshed on a hit.
- A model switch busts everything (the model seeds the chain); `tool_choice`
  and thinking settings bust the messages part (mixed in before the first
  message, `Prompt.salt`).
- Not modelled: an entry is only readable once the first response started
  (parallel identical requests all miss); replay sends requests one by one.
"""

from __future__ import annotations

from collections import OrderedDict

import xxhash

from tokenopt.provider_rules import ANTHROPIC_MAX_BREAKPOINTS, min_cacheable_tokens
from tokenopt.sim.cache import CacheResult
from tokenopt.sim.prompt import Prompt

LOOKBACK_BLOCKS = 20
MAX_BREAKPOINTS = ANTHROPIC_MAX_BREAKPOINTS
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}


class AnthropicPromptCache:
    """Entries at breakpoint edges, keyed by the digest chain of the blocks before them."""

    def __init__(self, *, max_entries: int = 1_000_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, int], tuple[float, float]] = OrderedDict()

    def lookup(self, prompt: Prompt, *, scope: str, now: float) -> CacheResult:
        segments = prompt.segments
        breakpoints = [i for i, s in enumerate(segments) if s.breakpoint is not None]
        if not breakpoints:
            return CacheResult()
        digests, ends = self._chain(prompt)
        minimum = min_cacheable_tokens(prompt.model)
        hit, hit_tokens = -1, 0
        for point in breakpoints:
            for edge in range(point, max(point - LOOKBACK_BLOCKS, -1), -1):
                if edge <= hit:
                    break
                entry = self._entries.get((scope, digests[edge]))
                if entry is not None and entry[0] > now:
                    hit, hit_tokens = edge, ends[edge]
                    break
        if hit >= 0:  # a read refreshes the entry's lifetime
            key = (scope, digests[hit])
            ttl = self._entries[key][1]
            self._entries[key] = (now + ttl, ttl)
            self._entries.move_to_end(key)
        writes = [p for p in breakpoints if p > hit and ends[p] >= minimum]
        for point in writes:
            ttl = TTL_SECONDS.get(segments[point].breakpoint or "5m", TTL_SECONDS["5m"])
            key = (scope, digests[point])
            self._entries[key] = (now + ttl, ttl)
            self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        if not writes:
            return CacheResult(cached_tokens=hit_tokens)
        last = writes[-1]
        hour = [p for p in writes if segments[p].breakpoint == "1h"]
        written = ends[last] - hit_tokens
        written_1h = ends[hour[-1]] - hit_tokens if hour else 0
        return CacheResult(hit_tokens, written, written_1h)

    def _chain(self, prompt: Prompt) -> tuple[list[int], list[int]]:
        """Digest and cumulative tokens of the prefix ending at each block."""
        hasher = xxhash.xxh3_64(prompt.model.encode())
        digests: list[int] = []
        ends: list[int] = []
        total = 0
        salted = False
        for segment in prompt.segments:
            if segment.kind == "message" and not salted:
                hasher.update(b"\0salt\0" + prompt.salt.encode())
                salted = True
            hasher.update(b"\0" + segment.kind.encode() + b"\0" + segment.text.encode())
            digests.append(hasher.intdigest())
            total += segment.tokens
            ends.append(total)
        return digests, ends

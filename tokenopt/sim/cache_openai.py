"""OpenAI's automatic prompt caching (gpt-4o and newer), as documented.

- Exact-prefix match over the tokenised prompt (tools, then instructions, then
  messages), from 1,024 tokens, in 128-token steps: a hit is 1024 + 128k tokens.
- Scope: the API key (`scope`) and `prompt_cache_key`; requests with another
  key route to other machines, so they do not share entries here.
- Expiry is idle time on the simulated clock, refreshed on every hit:
  `prompt_cache_retention: "in_memory"` keeps entries 10 minutes (the guide
  says 5–10 minutes, always within an hour: we take the upper bound) and
  "24h" a day. PROVIDER_SEMANTICS says the SDK defaults older models to 24h
  (in_memory for ZDR organisations); we follow that default.
- Not modelled: the ~15 RPM per prefix spill-over to other machines, and the
  explicit breakpoints with paid writes of GPT-5.6 and later.

Positions: each segment (tool, instruction, message) is tokenised on its own
and the ids concatenated. Chat formats wrap every message in special tokens,
so segment edges are token edges, and per-segment memoising keeps a long
replay fast (earlier turns are re-sent and re-used verbatim).
"""

from __future__ import annotations

from array import array
from collections import OrderedDict

import xxhash

from tokenopt.sim.cache import CacheResult
from tokenopt.sim.prompt import Prompt
from tokenopt.tokens import TokenCounter

MIN_TOKENS = 1024
STEP = 128
RETENTION_SECONDS = {"in_memory": 600.0, "24h": 86_400.0}
DEFAULT_RETENTION = "24h"


class OpenAIPromptCache:
    """Prefix entries at every 128-token step of each prompt seen, with idle expiry."""

    def __init__(self, counter: TokenCounter, *, max_entries: int = 2_000_000) -> None:
        self.counter = counter
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, int], float] = OrderedDict()  # → expires at
        self._ids: OrderedDict[tuple[str, bytes], bytes] = OrderedDict()  # segment → packed ids

    def lookup(self, prompt: Prompt, *, scope: str, now: float) -> CacheResult:
        ids = self._token_ids(prompt)
        tokens = len(ids) // 4
        if tokens < MIN_TOKENS:
            return CacheResult()
        ttl = RETENTION_SECONDS.get(prompt.retention or DEFAULT_RETENTION,
                                    RETENTION_SECONDS[DEFAULT_RETENTION])
        pool = f"{scope}\0{prompt.cache_key or ''}\0{prompt.model}"
        hasher = xxhash.xxh3_64(pool.encode())
        cached, previous, missed = 0, 0, False
        for boundary in range(MIN_TOKENS, tokens + 1, STEP):
            hasher.update(ids[previous * 4 : boundary * 4])
            previous = boundary
            key = (pool, hasher.intdigest())
            if not missed:
                expires = self._entries.get(key)
                if expires is not None and expires > now:
                    cached = boundary
                else:
                    missed = True
            # The whole prompt is cached now (a hit refreshes its entries).
            self._entries[key] = now + ttl
            self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return CacheResult(cached_tokens=cached)

    def _token_ids(self, prompt: Prompt) -> bytes:
        return b"".join(self._segment_ids(prompt.model, s.text) for s in prompt.segments)

    def _segment_ids(self, model: str, text: str) -> bytes:
        key = (model, xxhash.xxh3_128_digest(text.encode()))
        packed = self._ids.get(key)
        if packed is None:
            packed = array("I", self.counter.encode(text, model)).tobytes()
            self._ids[key] = packed
            if len(self._ids) > 50_000:
                self._ids.popitem(last=False)
        return packed

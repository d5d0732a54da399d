"""The seam where a provider's prompt-cache rules plug into the simulator.

The simulator asks a `CacheModel` how much of each prompt was read from or
written to cache, then reports that in the provider's own usage fields.
`NoCache` is the default; models of OpenAI's and Anthropic's documented rules
implement the same protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from tokenopt.sim.prompt import Prompt

if TYPE_CHECKING:
    from tokenopt.tokens import TokenCounter


@dataclass(frozen=True, slots=True)
class CacheResult:
    """Tokens of one prompt read from cache, and written to it (the 1h part separately).

    `cache_write_tokens` includes `cache_write_1h_tokens`.
    """

    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0


class CacheModel(Protocol):
    """A provider's prompt cache: decides hits and writes for each prompt it sees."""

    def lookup(self, prompt: Prompt, *, scope: str, now: float) -> CacheResult:
        """Account for `prompt`, sent by tenant `scope` at time `now` (seconds).

        `scope` is the tenant digest of the request's API key: caches never
        cross tenants. Implementations may remember the prompt for later calls.
        """
        ...


class NoCache:
    """A provider without a prompt cache: nothing is ever read or written."""

    def lookup(self, prompt: Prompt, *, scope: str, now: float) -> CacheResult:
        return CacheResult()


class ProviderCache:
    """Each provider's documented rules, chosen by the prompt's route (the default)."""

    def __init__(self, counter: TokenCounter) -> None:
        from tokenopt.sim.cache_anthropic import AnthropicPromptCache
        from tokenopt.sim.cache_openai import OpenAIPromptCache

        self.openai = OpenAIPromptCache(counter)
        self.anthropic = AnthropicPromptCache()

    def lookup(self, prompt: Prompt, *, scope: str, now: float) -> CacheResult:
        model = self.anthropic if prompt.route == "/v1/messages" else self.openai
        return model.lookup(prompt, scope=scope, now=now)

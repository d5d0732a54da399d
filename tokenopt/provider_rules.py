"""Provider facts both the simulator and the plugins rely on (PROVIDER_SEMANTICS.md §1)."""

from __future__ import annotations

import fnmatch

# Anthropic's minimum cacheable prefix per model family. Where PROVIDER_SEMANTICS
# has both a verified (early-2026 docs) and a second-hand later value, the
# verified one wins: Sonnet 4.6 2048 (later reports say 1024), Opus 4.8 4096.
ANTHROPIC_MIN_CACHEABLE = (
    ("claude-opus-5*", 512), ("claude-fable-5*", 512), ("claude-mythos-5*", 512),
    ("claude-opus-4-8*", 4096), ("claude-sonnet-5*", 1024), ("claude-opus-4-7*", 2048),
    ("claude-opus-4-6*", 4096), ("claude-opus-4-5*", 4096), ("claude-haiku-4-5*", 4096),
    ("claude-sonnet-4-6*", 2048), ("claude-3-5-haiku*", 2048), ("claude-3-haiku*", 2048),
)
ANTHROPIC_DEFAULT_MIN_CACHEABLE = 1024  # Sonnet 4.5/4, Opus 4.1/4 and anything unknown
ANTHROPIC_MAX_BREAKPOINTS = 4


def min_cacheable_tokens(model: str) -> int:
    """The shortest prefix Anthropic caches for `model`; below it nothing is cached."""
    for pattern, tokens in ANTHROPIC_MIN_CACHEABLE:
        if fnmatch.fnmatchcase(model, pattern):
            return tokens
    return ANTHROPIC_DEFAULT_MIN_CACHEABLE


# OpenAI's own models, the only ones `prompt_cache_key` is for. Routers refuse the field for
# every other provider: LiteLLM answers 400 (UnsupportedParamsError) unless `drop_params`.
# gpt-oss is open-weights, served by others (Groq, vLLM...) that need not take it.
OPENAI_MODEL_PREFIXES = ("gpt-", "chatgpt-", "o1", "o3", "o4", "codex-", "computer-use-")
OPENAI_ROUTER_PREFIXES = ("openai", "azure")  # LiteLLM's provider/model names for OpenAI


def takes_prompt_cache_key(model: str | None) -> bool:
    """True when `model` is OpenAI's, so adding `prompt_cache_key` cannot get a 400."""
    provider, _, name = (model or "").lower().rpartition("/")
    if provider and provider not in OPENAI_ROUTER_PREFIXES:
        return False
    name = name.removeprefix("ft:")
    return name.startswith(OPENAI_MODEL_PREFIXES) and not name.startswith("gpt-oss")

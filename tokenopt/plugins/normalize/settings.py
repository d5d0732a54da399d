"""The `[plugins.normalize]` table."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tokenopt.plugins.normalize.volatile import DEFAULT_PATTERNS


class NormalizeSettings(BaseModel):
    """Settings of the `normalize` plugin (every part can be switched off on its own).

    `relocate_volatile` moves dates, times and ids out of the system prompt
    (off by default: it edits what the model reads, if only by a labelled move).
    `expect_tool_loop` counts a first request that offers tools as one that
    will be followed (by the tool result), so its breakpoints pay off.
    `cache_key` derives OpenAI's `prompt_cache_key` when the client sent none;
    turn it off for OpenAI-compatible servers that refuse unknown fields.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    canonical_tools: bool = True
    sort_tools: bool = True
    relocate_volatile: bool = False
    volatile_patterns: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_PATTERNS))
    breakpoints: bool = True
    expect_tool_loop: bool = True
    ttl: Literal["auto", "5m", "1h"] = "auto"
    cache_key: bool = True
    detect_breaks: bool = True
    conversation_ttl_seconds: int = Field(default=3600, ge=60)

    @field_validator("volatile_patterns")
    @classmethod
    def _compiles(cls, patterns: dict[str, str]) -> dict[str, str]:
        for name, pattern in patterns.items():
            if not name.isidentifier():
                raise ValueError(f"pattern name '{name}' must be an identifier")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern '{name}' does not compile: {exc}") from exc
        return patterns

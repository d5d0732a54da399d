"""Provider-side tool search: defer the withheld tools and offer the provider's search tool.

Anthropic serves it on the Messages API (not on Haiku), OpenAI on Responses
from gpt-5.4 (PROVIDER_SEMANTICS §2). Deferred tools cost nothing until the
provider's search references them, and loaded schemas are appended, so the
prefix survives a load.
"""

from __future__ import annotations

import fnmatch
import re

from tokenopt.dialects.base import Tool

ANTHROPIC_SEARCH = {"type": "tool_search_tool_bm25_20251119", "name": "tool_search_tool_bm25"}
OPENAI_SEARCH = {"type": "tool_search"}
_ANTHROPIC_MODELS = ("claude-opus-4-5*", "claude-opus-4-6*", "claude-opus-4-7*", "claude-opus-4-8*",
                     "claude-opus-5*", "claude-sonnet-4-5*", "claude-sonnet-4-6*", "claude-sonnet-5*",
                     "claude-fable*")
_GPT = re.compile(r"^gpt-(\d+)\.(\d+)")


def supports_native(dialect: str, model: str | None) -> bool:
    """Whether the provider's own tool search exists for this API and model."""
    model = (model or "").lower().rpartition("/")[2]
    if dialect == "anthropic-messages":
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in _ANTHROPIC_MODELS)
    if dialect == "openai-responses":
        found = _GPT.match(model)
        return found is not None and (int(found[1]), int(found[2])) >= (5, 4)
    return False


def search_tool(dialect: str) -> Tool:
    raw = dict(ANTHROPIC_SEARCH if dialect == "anthropic-messages" else OPENAI_SEARCH)
    return Tool(raw.get("name", raw["type"]), None, None, raw)


def deferred(tool: Tool) -> Tool:
    return Tool(tool.name, tool.description, tool.parameters, {**tool.raw, "defer_loading": True})

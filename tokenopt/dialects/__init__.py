"""Wire dialects: one module per LLM HTTP API."""

from __future__ import annotations

from tokenopt.dialects.anthropic_messages import AnthropicMessagesDialect
from tokenopt.dialects.base import Dialect, Reasoning, RequestView, TextPart, Tool, Usage, UsageTap
from tokenopt.dialects.openai_chat import OpenAIChatDialect
from tokenopt.dialects.openai_responses import OpenAIResponsesDialect

DIALECTS: tuple[Dialect, ...] = (
    OpenAIChatDialect(),
    OpenAIResponsesDialect(),
    AnthropicMessagesDialect(),
)


def dialect_for(method: str, path: str) -> Dialect | None:
    """The dialect serving `POST path`, if tokenopt understands that route.

    Paths are matched on their ending, so a router mounted under a prefix
    (`/openai/v1/chat/completions`, `/anthropic/v1/messages`) is understood too.
    """
    if method != "POST":
        return None
    path = path.rstrip("/")
    for dialect in DIALECTS:
        if path == dialect.path or path.endswith(dialect.path):
            return dialect
    return None


__all__ = [
    "DIALECTS",
    "AnthropicMessagesDialect",
    "Dialect",
    "OpenAIChatDialect",
    "OpenAIResponsesDialect",
    "Reasoning",
    "RequestView",
    "TextPart",
    "Tool",
    "Usage",
    "UsageTap",
    "dialect_for",
]

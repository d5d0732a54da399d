"""What a conversation tells the tools plugin, read from each dialect's messages.

The latest user text is what preloading searches for (with the turn before it when
it says too little on its own: "yes, go ahead", "do the same for Paris"); tools already called
and tools named by `tool_choice` must stay offered; client-side tool search
(deferred tools, a provider search tool) means the client manages its tools,
and tokenopt then leaves them alone. A Responses `namespace` alone is no search:
Codex sends every MCP server as one, and its functions are withheld like any other.
"""

from __future__ import annotations

from typing import Any

from tokenopt.dialects.base import JSON, RequestView, as_dict, dicts
from tokenopt.plugins.tools.namespaces import client_defers, key_of
from tokenopt.tools.text import tokens

CLIENT_SEARCH_TYPES = frozenset({
    "tool_search", "tool_search_tool_regex_20251119", "tool_search_tool_bm25_20251119",
    "mcp_toolset",
})

# A latest user turn with fewer content words than this is read with the one before it.
SHORT_TURN_TERMS = 4


def latest_user_text(view: RequestView) -> str:
    """The text of the newest user turn that has text (tool results are not what was asked)."""
    texts = user_texts(view)
    return texts[-1] if texts else ""


def preload_query(view: RequestView) -> str:
    """What preloading searches for: the latest user text, and the user turn before it
    when the latest says too little to rank tools by ("yes, please", "and for Paris?")."""
    texts = user_texts(view)
    if not texts:
        return ""
    if len(texts) > 1 and len(tokens(texts[-1])) < SHORT_TURN_TERMS:
        return f"{texts[-2]}\n{texts[-1]}"
    return texts[-1]


def user_texts(view: RequestView) -> list[str]:
    """The text of each user turn that has text, oldest first."""
    found: list[str] = []
    for message in dicts(view.messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            found.append(content)
            continue
        texts = [str(p["text"]) for p in dicts(content) if isinstance(p.get("text"), str)
                 and p.get("type") in ("text", "input_text")]
        if texts:
            found.append("\n".join(texts))
    return found


def called_tools(view: RequestView) -> list[str]:
    """Names of the tools the conversation has called so far, in order, each once."""
    names: list[str] = []
    for message in dicts(view.messages):
        if view.dialect == "anthropic-messages":
            found = [str(b.get("name")) for b in dicts(message.get("content"))
                     if b.get("type") == "tool_use"]
        elif view.dialect == "openai-responses":
            found = [_called(message)] if message.get("type") == "function_call" else []
        else:
            found = [str(as_dict(c.get("function")).get("name"))
                     for c in dicts(message.get("tool_calls"))]
        names += [name for name in found if name not in names]
    return names


def _called(item: JSON) -> str:
    """A Responses call's catalog name: keyed by its namespace when it names one."""
    name, namespace = str(item.get("name")), item.get("namespace")
    return key_of(namespace, name) if isinstance(namespace, str) and namespace else name


def chosen_tools(choice: Any) -> list[str]:
    """Tools a `tool_choice` names (a forced tool, or Responses' allowed tools)."""
    if not isinstance(choice, dict):
        return []
    if choice.get("type") == "allowed_tools":
        return [str(t.get("name") or as_dict(t.get("function")).get("name"))
                for t in dicts(choice.get("tools"))]
    name = choice.get("name") or as_dict(choice.get("function")).get("name")
    return [name] if isinstance(name, str) else []


def client_searches(view: RequestView) -> bool:
    """True when the client runs tool search itself: its deferred tools are its own business."""
    # A `type` that is not a string names no client search (and is unhashable if a list).
    return any(tool.raw.get("defer_loading") is True or (
        isinstance(kind := tool.raw.get("type"), str) and kind in CLIENT_SEARCH_TYPES)
        or client_defers(tool) for tool in view.tools)

"""Scripted turns: the simulated model answers a real agent's session from a small file.

`tokenopt sim --script FILE` reads one answer per model turn, in order::

    # session.toml
    [[turns]]
    tool = "Bash"                                   # call this tool ...
    arguments = { command = "echo hi" }             # ... with these arguments

    [[turns]]
    tool = "mcp__github__list_issues"               # a tool the request may not carry:
    search = "list the issues of a repository"      # what the model searches for it with
    arguments = { owner = "acme", repo = "widgets" }

    [[turns]]
    text = "The command printed hi."                # then answer with this text

(or the same as JSON: `{"turns": [{"tool": ..., "arguments": {...}}, {"text": ...}]}`).

A request is matched to a turn by how many answers the model already gave in
its conversation: assistant messages on Messages and Chat, runs of output items
(reasoning, function calls, assistant messages) on Responses. So an agent that
sends the whole history each time gets turn 1, then 2, and a retried request
gets the same turn again.

When a turn's tool is not offered but a function search tool is (tokenopt's
`tokenopt_search_tools` with lazy tools), the model searches first, as a real
model would: it calls the search tool with the turn's `search` words (default:
the latest user text), and answers with the turn once the tool is offered. A
model turn that only searched is not an answer, so the re-issued request gets
the same turn. Requests the script does not speak to get what the
simulator says without a script: an agent's side requests (a title request with
no tools, a structured output) and anything past the last turn. A structured
output gets the smallest JSON its schema allows, so the agent can parse it.

Only what the model says comes from the script; the prompt is counted, cached
and billed as usual, and reasoning is spent as the request's effort asks.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from tokenopt import jsonio
from tokenopt.dialects.base import as_dict, dicts
from tokenopt.exceptions import ConfigError
from tokenopt.sim.reply import Ask, Reply, ToolCall, minimal_value, plan_reply, seed_of, words
from tokenopt.sim.script import SEARCH_TOOL_NAMES, latest_user_text, search_tool
from tokenopt.sim.wire import tool_name
from tokenopt.tokens import TokenCounter

JSON = dict[str, Any]
Outcome = Literal["scripted", "search", "structured", "generated"]
# Responses input items the model wrote (everything else is the client's).
_MODEL_ITEMS: Final = frozenset({
    "reasoning", "function_call", "custom_tool_call", "local_shell_call", "web_search_call",
    "tool_search_call", "file_search_call", "computer_call", "code_interpreter_call",
    "image_generation_call", "mcp_call",
})


@dataclass(frozen=True, slots=True)
class Turn:
    """One model answer: `text`, or a call of the tool named `tool` with `arguments`.

    `search`: the words the model searches with when `tool` is not offered.
    """

    text: str | None = None
    tool: str | None = None
    arguments: JSON = field(default_factory=dict)
    search: str | None = None


@dataclass(frozen=True, slots=True)
class TurnScript:
    """The turns of a scripted session, answered in conversation order."""

    turns: tuple[Turn, ...]

    @classmethod
    def load(cls, path: str | Path) -> TurnScript:
        """Read a `.toml` or `.json` script; a bad file is a `ConfigError` naming it."""
        path = Path(path)
        try:
            raw = path.read_bytes()
            data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else jsonio.loads(raw)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, jsonio.JSONError) as exc:
            raise ConfigError(f"cannot read script '{path}': {exc}") from exc
        try:
            return cls.parse(data)
        except ConfigError as exc:
            raise ConfigError(f"script '{path}': {exc}") from exc

    @classmethod
    def parse(cls, data: Any) -> TurnScript:
        """Turns from `{"turns": [...]}`; raises ConfigError naming the first bad turn."""
        turns = data.get("turns") if isinstance(data, dict) else None
        if not isinstance(turns, list) or not turns:
            raise ConfigError("expected a non-empty list 'turns'")
        return cls(tuple(_turn(index, entry) for index, entry in enumerate(turns)))

    def reply(self, route: str, body: JSON, ask: Ask, counter: TokenCounter,
              reply_tokens: int) -> tuple[Reply, Outcome]:
        """The answer to one request, and whether the script, a schema or the generator chose it."""
        schema = output_schema(route, body)
        if schema is not None:
            text = jsonio.dumps(minimal_value(schema)).decode()
            return _spoken(ask, seed_of(body), counter, text, None), "structured"
        index = answers_given(route, body)
        turn = self.turns[index] if index < len(self.turns) else None
        if turn is not None and turn.tool is not None and turn.tool not in offered(body):
            function = search_tool(route, body)
            if function is not None:  # the model looks for the tool first, as a real one would
                query = turn.search or latest_user_text(route, body)
                call = ToolCall(function, jsonio.dumps({"query": query}).decode())
                return _spoken(ask, seed_of(body), counter, "", call), "search"
            turn = None
        if turn is None:
            return plan_reply(ask, seed_of(body), counter, reply_tokens), "generated"
        if turn.tool is not None:
            call = ToolCall(turn.tool, jsonio.dumps(turn.arguments).decode())
            return _spoken(ask, seed_of(body), counter, "", call), "scripted"
        return _spoken(ask, seed_of(body), counter, turn.text or "", None), "scripted"


def _turn(index: int, entry: Any) -> Turn:
    if not isinstance(entry, dict):
        raise ConfigError(f"turn {index}: expected a table")
    text, tool, arguments = entry.get("text"), entry.get("tool"), entry.get("arguments", {})
    search = entry.get("search")
    unknown = set(entry) - {"text", "tool", "arguments", "search"}
    if unknown:
        raise ConfigError(f"turn {index}: unknown key {min(unknown)!r}")
    if (text is None) == (tool is None):
        raise ConfigError(f"turn {index}: give either 'text' or 'tool'")
    if text is not None and not isinstance(text, str):
        raise ConfigError(f"turn {index}: 'text' must be a string")
    if tool is not None and not (isinstance(tool, str) and tool):
        raise ConfigError(f"turn {index}: 'tool' must be a tool name")
    if not isinstance(arguments, dict):
        raise ConfigError(f"turn {index}: 'arguments' must be a table")
    if search is not None and not (tool is not None and isinstance(search, str) and search):
        raise ConfigError(f"turn {index}: 'search' must be words, on a tool turn")
    return Turn(text, tool, arguments, search)


def _spoken(ask: Ask, seed: bytes, counter: TokenCounter, text: str,
            call: ToolCall | None) -> Reply:
    """The scripted words, after the reasoning the request asked for (cut to fit the cap).

    A script longer than the cap is the script's fault: it is sent whole, marked truncated.
    """
    visible = counter.count(call.arguments if call else text, ask.model)
    cap = ask.cap if ask.cap is not None else visible + ask.reasoning_tokens
    reasoning = max(min(ask.reasoning_tokens, cap - visible), 0)
    return Reply(text, visible, words(seed + b"reasoning", reasoning), reasoning, call,
                 visible > cap)


def answers_given(route: str, body: JSON) -> int:
    """How many answers the model already gave in this conversation (runs of its turns).

    A run that only searched for tools is no answer: it is a search detour's round,
    which the client never sees, and the turn it searched for is still to come.
    """
    if route == "/v1/responses":
        items = body.get("input")
        return _answers(map(_item_kind, dicts(items))) if isinstance(items, list) else 0
    return _answers(map(_message_kind, dicts(body.get("messages"))))


# What a message or input item is: the client's (None), or the model's: a search call,
# reasoning, or anything else it said.
Kind = Literal["search", "aside", "said"] | None


def _message_kind(message: JSON) -> Kind:
    if message.get("role") != "assistant":
        return None
    content = message.get("content")
    if not isinstance(content, list):  # Chat: its text (or null) beside its tool calls
        calls = {as_dict(call.get("function")).get("name")
                 for call in dicts(message.get("tool_calls"))}
        return "search" if calls and calls <= SEARCH_TOOL_NAMES and not content else "said"
    kinds = {_block_kind(block) for block in dicts(content)}
    return "search" if kinds == {"search"} or kinds == {"search", "aside"} else "said"


def _block_kind(block: JSON) -> Kind:
    kind = block.get("type")
    if kind == "tool_use" and block.get("name") in SEARCH_TOOL_NAMES:
        return "search"
    if kind in ("thinking", "redacted_thinking") or (kind == "text" and not block.get("text")):
        return "aside"
    return "said"


def _item_kind(item: JSON) -> Kind:
    kind = item.get("type", "message")
    if kind == "function_call" and item.get("name") in SEARCH_TOOL_NAMES:
        return "search"
    if kind == "reasoning":
        return "aside"
    if kind in _MODEL_ITEMS or (kind == "message" and item.get("role") == "assistant"):
        return "said"
    return None


def _answers(kinds: Iterable[Kind]) -> int:
    """Runs of the model's items, less those that only searched (reasoning aside)."""
    count, run = 0, set[Kind]()
    for kind in [*kinds, None]:
        if kind is not None:
            run.add(kind)
            continue
        count += bool(run) and not ("search" in run and "said" not in run)
        run = set()
    return count


def offered(body: JSON) -> set[str]:
    """The tools a request offers by name: Chat's nested and the flat layouts, and the
    functions inside a Responses `namespace` (Codex's `multi_agent_v1`)."""
    tools = dicts(body.get("tools"))
    tools += [inner for tool in tools if tool.get("type") == "namespace"
              for inner in dicts(tool.get("tools"))]
    return {name for tool in tools if (name := tool_name(tool))}


def output_schema(route: str, body: JSON) -> JSON | None:
    """The JSON schema a request asks the answer to follow, if it asks for one."""
    if route == "/v1/messages":
        found = as_dict(as_dict(body.get("output_config")).get("format"))
        schema = found.get("schema")
    elif route == "/v1/responses":
        found = as_dict(as_dict(body.get("text")).get("format"))
        schema = found.get("schema")
    else:
        found = as_dict(body.get("response_format"))
        schema = as_dict(found.get("json_schema")).get("schema")
    if found.get("type") != "json_schema":
        return None
    return schema if isinstance(schema, dict) else {}

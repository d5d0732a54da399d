"""Scripted turns: the simulated model answers a real agent's session from a small file.

`tokenopt sim --script FILE` reads one answer per model turn, in order::

    # session.toml
    [[turns]]
    tool = "Bash"                                   # call this tool ...
    arguments = { command = "echo hi" }             # ... with these arguments

    [[turns]]
    text = "The command printed hi."                # then answer with this text

(or the same as JSON: `{"turns": [{"tool": ..., "arguments": {...}}, {"text": ...}]}`).

A request is matched to a turn by how many answers the model already gave in
its conversation: assistant messages on Messages and Chat, runs of output items
(reasoning, function calls, assistant messages) on Responses. So an agent that
sends the whole history each time gets turn 1, then 2, and a retried request
gets the same turn again. Requests the script does not speak to get what the
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
from tokenopt.sim.wire import tool_name
from tokenopt.tokens import TokenCounter

JSON = dict[str, Any]
Outcome = Literal["scripted", "structured", "generated"]
# Responses input items the model wrote (everything else is the client's).
_MODEL_ITEMS: Final = frozenset({
    "reasoning", "function_call", "custom_tool_call", "local_shell_call", "web_search_call",
    "tool_search_call", "file_search_call", "computer_call", "code_interpreter_call",
    "image_generation_call", "mcp_call",
})


@dataclass(frozen=True, slots=True)
class Turn:
    """One model answer: `text`, or a call of the tool named `tool` with `arguments`."""

    text: str | None = None
    tool: str | None = None
    arguments: JSON = field(default_factory=dict)


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
        if turn is None or (turn.tool is not None and turn.tool not in offered(body)):
            return plan_reply(ask, seed_of(body), counter, reply_tokens), "generated"
        if turn.tool is not None:
            call = ToolCall(turn.tool, jsonio.dumps(turn.arguments).decode())
            return _spoken(ask, seed_of(body), counter, "", call), "scripted"
        return _spoken(ask, seed_of(body), counter, turn.text or "", None), "scripted"


def _turn(index: int, entry: Any) -> Turn:
    if not isinstance(entry, dict):
        raise ConfigError(f"turn {index}: expected a table")
    text, tool, arguments = entry.get("text"), entry.get("tool"), entry.get("arguments", {})
    unknown = set(entry) - {"text", "tool", "arguments"}
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
    return Turn(text, tool, arguments)


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
    """How many answers the model already gave in this conversation (runs of its turns)."""
    if route == "/v1/responses":
        items = body.get("input")
        return _runs(_is_model_item(item) for item in dicts(items)) if isinstance(items, list) else 0
    return _runs(message.get("role") == "assistant" for message in dicts(body.get("messages")))


def _is_model_item(item: JSON) -> bool:
    kind = item.get("type", "message")
    return kind in _MODEL_ITEMS or (kind == "message" and item.get("role") == "assistant")


def _runs(flags: Iterable[bool]) -> int:
    count, previous = 0, False
    for flag in flags:
        count += flag and not previous
        previous = flag
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

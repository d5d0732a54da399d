"""What the simulated model says: deterministic text, tool arguments and reasoning spend.

The same request always gets the same reply, so tests and replays compare
like with like; only ids and timestamps differ between calls.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final, Literal

from tokenopt.tokens import TokenCounter

# Each is one token, with or without a leading space, in cl100k and o200k.
VOCABULARY: Final = [
    "alpha", "beta", "gamma", "delta", "model", "token", "cache", "prefix", "stream", "reply",
    "quick", "brown", "fox", "lazy", "dog", "river", "stone", "cloud", "light", "green", "blue",
    "water", "fire", "earth", "wind", "paper", "glass", "bright", "steady", "simple", "clear",
    "small", "large", "early", "late", "north", "south", "east", "west", "time", "place",
    "field", "house", "road", "tree", "star", "moon", "sun", "rain", "snow", "sand"
]

# Reasoning tokens spent per effort level; thinking budgets spend a quarter, capped.
EFFORT_TOKENS: Final[dict[str, int]] = {
    "none": 0, "minimal": 16, "low": 64, "medium": 128, "high": 256, "xhigh": 384, "max": 512,
}
THINKING_SHARE: Final = 4
THINKING_CAP: Final = 2048

# The request fields that don't change what the model says.
_TRANSPORT_FIELDS: Final = frozenset({"stream", "stream_options"})


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A forced call: the tool's name and its arguments as a JSON string."""

    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolSearch:
    """A provider-native tool search the model called before answering.

    `tool` is the name it was called by, `execution` who runs it: the provider
    (`server`, within the same response) or the client (`client`, the response
    ends at the call). A server search carries the names it found and the
    definitions it loaded; the model reads those when it samples again, so
    `loaded_tokens` are billed as input of the same call.
    """

    tool: str
    query: str
    execution: Literal["server", "client"]
    call_tokens: int
    found: tuple[str, ...] = ()
    loaded: tuple[dict[str, Any], ...] = ()
    loaded_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Ask:
    """What a request asks of the model, read from any of the three wire shapes.

    `cap` is the output limit covering reasoning and visible tokens (None: no limit);
    `tool` is the tool the model must call, with its JSON schema.
    """

    model: str
    stream: bool
    cap: int | None
    reasoning_tokens: int
    tool: tuple[str, dict[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """The model's answer: visible text or a tool call, plus reasoning spent first."""

    text: str
    text_tokens: int
    reasoning_text: str
    reasoning_tokens: int
    tool_call: ToolCall | None
    truncated: bool
    search: ToolSearch | None = None

    @property
    def output_tokens(self) -> int:
        """Everything billed as output: reasoning, a search call, text and tool-call arguments."""
        searched = self.search.call_tokens if self.search else 0
        return self.reasoning_tokens + searched + self.text_tokens

    @property
    def search_input_tokens(self) -> int:
        """Input beyond the prompt: definitions a server-side search loaded mid-call."""
        return self.search.loaded_tokens if self.search else 0


def seed_of(body: dict[str, Any]) -> bytes:
    """A digest of what was asked, ignoring whether it is streamed."""
    asked = {k: v for k, v in body.items() if k not in _TRANSPORT_FIELDS}
    return hashlib.blake2b(json.dumps(asked, sort_keys=True, default=str).encode(), digest_size=16).digest()


def words(seed: bytes, count: int) -> str:
    """`count` pseudo-random words from `seed`: about one token each."""
    out: list[str] = []
    block = 0
    while len(out) < count:
        digest = hashlib.blake2b(seed + block.to_bytes(4, "big"), digest_size=32).digest()
        out += [VOCABULARY[byte % len(VOCABULARY)] for byte in digest]
        block += 1
    return " ".join(out[:count])


def reasoning_for_effort(effort: str | None) -> int:
    """Reasoning tokens a given effort spends (unknown efforts spend like `medium`)."""
    if effort is None:
        return 0
    return EFFORT_TOKENS.get(effort, EFFORT_TOKENS["medium"])


def reasoning_for_budget(budget_tokens: int) -> int:
    """Thinking tokens spent under an Anthropic budget: a share of it, so clamps show."""
    return min(budget_tokens // THINKING_SHARE, THINKING_CAP)


def plan_reply(ask: Ask, seed: bytes, counter: TokenCounter, reply_tokens: int) -> Reply:
    """The reply to `ask`, truncated when reasoning plus answer would exceed its cap."""
    cap = ask.cap if ask.cap is not None else reply_tokens + ask.reasoning_tokens
    reasoning = min(ask.reasoning_tokens, cap)
    reasoning_text = words(seed + b"reasoning", reasoning)
    room = cap - reasoning
    if ask.tool is not None:
        name, schema = ask.tool
        arguments = json.dumps(minimal_value(schema), separators=(",", ":"))
        tokens = counter.count(arguments, ask.model)
        if tokens <= room:
            return Reply("", tokens, reasoning_text, reasoning, ToolCall(name, arguments), False)
    visible = min(reply_tokens, room)
    text = words(seed, visible)
    truncated = reasoning + reply_tokens > cap or ask.tool is not None
    return Reply(text, counter.count(text, ask.model), reasoning_text, reasoning, None, truncated)


def minimal_value(schema: Any) -> Any:
    """The smallest value valid for a JSON schema: only required properties, first options."""
    if not isinstance(schema, dict):
        return {}
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return minimal_value(options[0])
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    return _minimal_of_type(kind, schema)


def _minimal_of_type(kind: Any, schema: dict[str, Any]) -> Any:
    if kind == "object":
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        required = schema.get("required")
        names = required if isinstance(required, list) else []
        return {name: minimal_value(properties.get(name, {})) for name in names if isinstance(name, str)}
    if kind == "array":
        count = schema.get("minItems", 0)
        return [minimal_value(schema.get("items", {}))] * (count if isinstance(count, int) else 0)
    if kind == "string":
        length = schema.get("minLength", 1)
        return "x" * (length if isinstance(length, int) and length > 0 else 1)
    if kind in {"integer", "number"}:
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        low = low if isinstance(low, int | float) and not isinstance(low, bool) else 0
        return int(low) + (1 if "exclusiveMinimum" in schema else 0) if kind == "integer" else low
    if kind == "boolean":
        return False
    return None

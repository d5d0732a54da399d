"""Pieces every simulated wire API shares: request checks, usage counts, SSE framing."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]
# One SSE event: its `event:` name (None for OpenAI Chat's bare `data:` lines) and payload.
Event = tuple[str | None, JSON | str]

_KINDS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "string": (str, "a string"),
    "integer": (int, "an integer"),
    "boolean": (bool, "a boolean"),
    "array": (list, "an array"),
    "object": (dict, "an object"),
}


class Invalid(Exception):
    """A request the provider would refuse with 400; each route words it its own way."""

    def __init__(self, param: str, problem: str, expected: str | None = None) -> None:
        super().__init__(f"{param}: {problem}")
        self.param = param
        self.problem = problem  # "missing", "type", "unknown", or a free-text reason
        self.expected = expected


def take(body: JSON, name: str, kind: str, *, required: bool = False, alt: str | None = None) -> Any:
    """Read one top-level field, raising `Invalid` as the provider would.

    `kind` may list alternatives ("string|array"); bools never pass as integers.
    """
    value = body.get(name)
    if value is None:
        if required:
            raise Invalid(name, "missing")
        return None
    kinds = kind.split("|")
    for option in kinds:
        py_type, _ = _KINDS[option]
        if isinstance(value, py_type) and not (option == "integer" and isinstance(value, bool)):
            return value
    raise Invalid(name, "type", " or ".join(_KINDS[option][1] for option in kinds))


@dataclass(frozen=True, slots=True)
class Counts:
    """Usage in neutral terms; `input_tokens` is the whole prompt, cached parts included."""

    input_tokens: int
    output_tokens: int
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0


def new_id(prefix: str, length: int = 24) -> str:
    """A fresh id in the provider's style: ids are unique, only the text is deterministic."""
    return prefix + secrets.token_hex(length // 2)


def frame(event: Event) -> bytes:
    """Serialise one SSE event the way the provider's servers write it."""
    name, payload = event
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    head = f"event: {name}\n" if name is not None else ""
    return f"{head}data: {data}\n\n".encode()


def text_deltas(text: str) -> list[str]:
    """Text deltas of one word each, spaces kept, so joining them gives the text back."""
    if not text:
        return []
    parts = text.split(" ")
    return [parts[0]] + [" " + part for part in parts[1:]]


def pieces(text: str, size: int = 8) -> list[str]:
    """Fixed-size slices, for streaming tool arguments the way providers split them."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def tool_name(tool: JSON) -> str | None:
    """A tool entry's name, in the Chat (`function.name`) or flat layout."""
    function = tool.get("function")
    name = function.get("name") if isinstance(function, dict) else tool.get("name")
    return name if isinstance(name, str) else None

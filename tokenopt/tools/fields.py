"""The text fields of one tool that the index weighs separately.

A word in a tool's name says more than the same word deep in a parameter's
description, so each field is kept apart and weighted by the index (BM25F).
The schema walk is bounded in depth and items and each field's text in length,
so a pathological tool costs little more than an ordinary one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokenopt.tools.forms import ToolDoc
from tokenopt.tools.text import tokens

FIELDS = ("name", "server", "description", "params", "param_text")
MAX_DEPTH = 4
MAX_ITEMS = 256  # parameter names and texts read from one schema
MAX_CHARS = 8192  # of each field's text
_NESTED = ("items", "additionalProperties")
_ALTERNATIVES = ("anyOf", "oneOf", "allOf")


def split_server(name: str) -> tuple[str, str]:
    """`server__tool` -> (`server`, `tool`), as MCP clients prefix; `mcp__` is dropped."""
    server, sep, tool = name.removeprefix("mcp__").partition("__")
    return (server, tool) if sep and server and tool else ("", name.removeprefix("mcp__"))


def field_terms(doc: ToolDoc) -> tuple[list[str], ...]:
    """The terms of each field in `FIELDS`, in that order."""
    server, bare = split_server(doc.name)
    params: list[str] = []
    texts: list[str] = []
    _walk_schema(doc.schema, 0, params, texts)
    return (
        tokens(bare[:MAX_CHARS]),
        tokens(f"{doc.server} {server}"[:MAX_CHARS]),
        tokens(doc.description[:MAX_CHARS]),
        tokens(" ".join(params)[:MAX_CHARS]),
        tokens(" ".join(texts)[:MAX_CHARS]),
    )


def _walk_schema(schema: Mapping[str, Any], depth: int, params: list[str],
                 texts: list[str]) -> None:
    if depth > MAX_DEPTH or len(params) + len(texts) > MAX_ITEMS:
        return
    props = schema.get("properties")
    if isinstance(props, Mapping):
        for key, sub in props.items():
            params.append(str(key))
            if isinstance(sub, Mapping):
                _describe(sub, texts)
                _walk_schema(sub, depth + 1, params, texts)
    for key in _NESTED:
        sub = schema.get(key)
        if isinstance(sub, Mapping):
            _describe(sub, texts)
            _walk_schema(sub, depth + 1, params, texts)
    for key in _ALTERNATIVES:
        subs = schema.get(key)
        if isinstance(subs, list):
            for sub in subs[:8]:
                if isinstance(sub, Mapping):
                    _describe(sub, texts)
                    _walk_schema(sub, depth + 1, params, texts)


def _describe(schema: Mapping[str, Any], texts: list[str]) -> None:
    """A parameter's own words: its description, title and enum values."""
    for key in ("description", "title"):
        value = schema.get(key)
        if isinstance(value, str):
            texts.append(value)
    enum = schema.get("enum")
    if isinstance(enum, list):
        texts.extend(v for v in enum[:32] if isinstance(v, str))

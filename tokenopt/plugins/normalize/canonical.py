"""Canonical tools: the same tool set gives the same bytes, whoever sent it and in what order.

JSON objects are unordered, so sorting keys never changes what a schema means;
the dialect then writes the tools compactly, without insignificant whitespace.
List order is kept inside schemas (`required`, `enum` and `anyOf` order may
matter to a reader), and the tools themselves are sorted by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import xxhash

from tokenopt import jsonio
from tokenopt.dialects.base import Tool
from tokenopt.memo import CONTENT_BUDGET, LRU, ByIdentity

# Cache markers are placement, not content: normalize decides where they go.
MARKERS = ("cache_control",)


def canonical(value: Any) -> Any:
    """`value` with every object's keys sorted, recursively; lists keep their order."""
    return jsonio.loads(jsonio.dumps_sorted(value))


def canonical_text(value: Any) -> str:
    """The canonical serialisation: sorted keys, no insignificant whitespace."""
    return jsonio.dumps_sorted(value).decode()


@dataclass(frozen=True, slots=True)
class ToolForms:
    """One tool as sent (its text and digest) and canonical (text, digest and value).

    Shared between requests that send the same tool: plugins replace view containers,
    never edit them, so sharing the canonical value is safe.
    """

    sent_text: str
    sent_digest: str
    text: str
    digest: str
    value: dict[str, Any]


def _digest(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


# Forms by the digest of the tool's bytes as sent: MCP clients resend the same tools on
# every call, so the sort and parse run once per distinct tool, and a request pays one
# serialisation and one hash per tool.
_BY_CONTENT: LRU[ToolForms] = LRU(8192, CONTENT_BUDGET)
# Forms by the identity of the entry they were read from: request entries shared by
# `jsonio.loads_request` and the canonical entries above live on across requests, so
# reading them again (the next turn, or the `tools` plugin) is a lookup.
_BY_IDENTITY: ByIdentity[ToolForms] = ByIdentity(4096, CONTENT_BUDGET)
# Canonical tool lists by tool-set digest and sort flag; tool-set token counts by model.
_CANONICAL: LRU[list[Tool]] = LRU(256, CONTENT_BUDGET)
_TOKENS: LRU[int] = LRU(256)


def tool_forms(tools: list[Tool]) -> list[ToolForms]:
    forms = []
    for tool in tools:
        form = _BY_IDENTITY.get(tool.raw)
        if form is None:  # entries live on when `jsonio.loads_request` shares them
            sent = jsonio.dumps(tool.raw)
            form = _BY_IDENTITY.put(tool.raw, _forms_of(sent), size=len(sent))
        forms.append(form)
    return forms


def _forms_of(sent: bytes) -> ToolForms:
    key = _digest(sent)
    form = _BY_CONTENT.get(key)
    if form is not None:
        return form
    value = {k: v for k, v in jsonio.loads(sent).items() if k not in MARKERS}
    text = jsonio.dumps_sorted(value)
    canonical, digest = text.decode(), _digest(text)
    form = ToolForms(sent.decode(), key, canonical, digest, jsonio.loads(text))
    # The canonical entry, as sent, is its own canonical form.
    _BY_IDENTITY.put(form.value, ToolForms(canonical, digest, canonical, digest, form.value),
                     size=len(text))
    return _BY_CONTENT.put(key, form, 3 * len(sent))  # the text as sent, canonical, parsed


def set_bytes(forms: list[ToolForms]) -> int:
    """The bytes of a tool set's canonical texts: what a memo of the set keeps alive."""
    return sum(len(form.text) for form in forms)


def set_digest(forms: list[ToolForms]) -> str:
    """One digest for a tool set as sent, in order: what memos of tool-set work key on."""
    return _digest("\n".join(form.sent_digest for form in forms).encode())


@dataclass(frozen=True, slots=True)
class ToolSet:
    """A request's tools as a set: the digest of their canonical forms, whatever the order."""

    forms: list[ToolForms]
    digest: str

    @classmethod
    def of(cls, forms: list[ToolForms]) -> ToolSet:
        return cls(forms, _digest("\n".join(sorted(form.digest for form in forms)).encode()))

    def tokens(self, model: str, count: Callable[[str, str], int]) -> int:
        """Tokens of the canonical texts, memoised by digest and model."""
        key = (self.digest, model)
        found = _TOKENS.get(key)
        if found is None:
            found = _TOKENS.put(key, sum(count(form.text, model) for form in self.forms))
        return found


def canonical_tools(tools: list[Tool], forms: list[ToolForms] | None = None, *,
                    sort: bool = True) -> list[Tool]:
    """Each tool canonical; sorted by name (then by content, for duplicate names).

    Memoised by the tool set's digest: an agent sends the same set on every turn, and
    the same list back lets later plugins memoise their own tool-set work by identity.
    """
    forms = forms if forms is not None else tool_forms(tools)
    key = (set_digest(forms), sort)
    found = _CANONICAL.get(key)
    if found is not None:
        return found
    # `parameters` keeps the parsed schema: equal to the canonical one (only key order
    # differs), so the dialect writes the canonical `raw` back as it is.
    out = [(Tool(tool.name, tool.description, tool.parameters, form.value), form.text)
           for tool, form in zip(tools, forms, strict=True)]
    if sort:
        out.sort(key=lambda pair: (pair[0].name, pair[1]))
    return _CANONICAL.put(key, [tool for tool, _ in out], set_bytes(forms))

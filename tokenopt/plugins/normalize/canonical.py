"""Canonical tools: the same tool set gives the same bytes, whoever sent it and in what order.

JSON objects are unordered, so sorting keys never changes what a schema means;
the dialect then writes the tools compactly, without insignificant whitespace.
List order is kept inside schemas (`required`, `enum` and `anyOf` order may
matter to a reader), and the tools themselves are sorted by name.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from tokenopt import jsonio
from tokenopt.dialects.base import Tool

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
    """One tool as sent (its text) and canonical (text and value), computed once a request."""

    sent_text: str
    text: str
    value: dict[str, Any]


@functools.lru_cache(maxsize=8192)
def _forms_of(sent_text: str) -> tuple[str, dict[str, Any]]:
    # Keyed by the tool's text as sent: MCP clients resend the same tools on every call, so
    # the sort and parse run once per distinct tool. The value is shared: plugins replace
    # view containers, never edit them, so sharing is safe.
    value = {k: v for k, v in jsonio.loads(sent_text).items() if k not in MARKERS}
    text = jsonio.dumps_sorted(value)
    return text.decode(), jsonio.loads(text)


# Forms by the identity of the entry they were read from. Canonical entries are the
# shared values `_forms_of` returns, so a later plugin reading them (`tools`) pays a
# lookup, not a serialisation. The entry is kept beside its forms: an id is only
# trusted while that very object is alive and matches.
_BY_IDENTITY: OrderedDict[int, tuple[Any, ToolForms]] = OrderedDict()
IDENTITY_KEPT = 4096


def tool_forms(tools: list[Tool]) -> list[ToolForms]:
    forms = []
    for tool in tools:
        hit = _BY_IDENTITY.get(id(tool.raw))
        if hit is not None and hit[0] is tool.raw:
            _BY_IDENTITY.move_to_end(id(tool.raw))
            forms.append(hit[1])
            continue
        sent = jsonio.dumps(tool.raw).decode()
        text, value = _forms_of(sent)
        form = ToolForms(sent, text, value)
        forms.append(form)
        _BY_IDENTITY[id(tool.raw)] = (tool.raw, form)
        if len(_BY_IDENTITY) > IDENTITY_KEPT:
            _BY_IDENTITY.popitem(last=False)
    return forms


def canonical_tools(tools: list[Tool], forms: list[ToolForms] | None = None, *,
                    sort: bool = True) -> list[Tool]:
    """Each tool canonical; sorted by name (then by content, for duplicate names)."""
    forms = forms if forms is not None else tool_forms(tools)
    # `parameters` keeps the parsed schema: equal to the canonical one (only key order
    # differs), so the dialect writes the canonical `raw` back as it is.
    out = [(Tool(tool.name, tool.description, tool.parameters, form.value), form.text)
           for tool, form in zip(tools, forms, strict=True)]
    if sort:
        out.sort(key=lambda pair: (pair[0].name, pair[1]))
    return [tool for tool, _ in out]

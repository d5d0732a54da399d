"""The neutral request view every plugin sees, and the protocol each wire dialect implements.

A dialect reads a request body into a `RequestView`, writes the view back into
the same wire format, and reads usage from a JSON or SSE response. Plugins
treat the view's containers as immutable: they replace a list or an item
rather than edit it in place, so the original body stays intact for fail-open.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from tokenopt import jsonio
from tokenopt._sse import SSEEvent
from tokenopt.identity import TASK_HEADER, TENANT_HEADER, conversation_of
from tokenopt.memo import CONTENT_BUDGET, ByIdentity

JSON = dict[str, Any]


@dataclass(slots=True)
class Usage:
    """Token usage as the upstream reported it, in one shape for every provider.

    `input_tokens` is the whole prompt: cached and cache-written parts included.
    """

    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(slots=True)
class Tool:
    """One tool definition: the neutral fields, and the native entry they came from.

    `raw` keeps every field the neutral view does not model (cache_control,
    defer_loading, strict, built-in tool types); a tool whose neutral fields are
    unchanged is written back as `raw`, byte for byte.
    """

    name: str
    description: str | None
    parameters: JSON | None
    raw: JSON


@dataclass(slots=True)
class TextPart:
    """One piece of system text; `raw` is the native node it came from (block, message or str)."""

    text: str
    raw: Any


@dataclass(slots=True)
class Reasoning:
    """Reasoning knobs: OpenAI effort, Anthropic thinking mode and budget."""

    effort: str | None = None
    thinking: str | None = None
    budget_tokens: int | None = None


@dataclass(slots=True)
class RequestView:
    """What the pipeline sees of one LLM request.

    `messages` are the dialect's native message objects (after any leading
    system messages); `body` is the parsed client body and must not be mutated.
    `body_overrides` holds top-level body members the view does not model
    (`chat_template_kwargs`, `enable_thinking`, `extra_body`, ...) that a plugin
    sets, or removes with None; every dialect writes them last.
    """

    dialect: str
    route: str
    body: JSON
    model: str | None
    stream: bool
    tenant: str
    conversation: str
    task: str | None
    system: list[TextPart]
    messages: list[JSON]
    tools: list[Tool]
    tool_choice: Any
    reasoning: Reasoning
    max_output_tokens: int | None
    extras: dict[str, Any] = field(default_factory=dict)
    tenant_label: str | None = None
    body_overrides: dict[str, Any] = field(default_factory=dict)
    # The fields as the dialect first read them from `body`: rendering compares against
    # these instead of reading the body again (plugins never replace `body`).
    parsed: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


class UsageTap(Protocol):
    """Watches a response's SSE events; keeps the latest usage it saw."""

    usage: Usage | None
    complete: bool

    def feed(self, event: SSEEvent) -> SSEEvent | None:
        """Take one event; return what the client sees of it (None: nothing)."""
        ...


class StreamEditor(Protocol):
    """Rewrites a streamed response event by event (a plugin's optional `stream_editor` hook).

    Used where tokenopt must enforce something the upstream does not, such as a
    reasoning cap. Once `ended` is True the editor has closed the stream in the
    dialect's own terms: later upstream events are dropped and the app serving
    the request is told the client left, so it stops the upstream generation.
    """

    ended: bool
    notes: dict[str, Any]

    def feed(self, event: SSEEvent) -> list[SSEEvent]:
        """The events to relay in place of this one (`[event]` keeps it, `[]` drops it)."""
        ...


class Dialect(Protocol):
    """One wire API: recognise, view, write back, read usage, speak errors."""

    name: ClassVar[str]
    path: ClassVar[str]

    def parse(self, body: JSON, *, tenant: str, headers: Mapping[str, str]) -> RequestView:
        """Build the neutral view of a parsed request body; raise DialectError if it isn't one."""
        ...

    def render(self, view: RequestView) -> JSON | None:
        """Return the body with the view's changes written back, or None if nothing changed."""
        ...

    def wants_usage_injection(self, body: JSON) -> bool:
        """True when a streamed request will not report usage unless tokenopt asks for it."""
        ...

    def usage_from_json(self, body: JSON) -> Usage | None:
        """Read usage from a non-streamed response body."""
        ...

    def usage_tap(self, *, strip_usage_event: bool) -> UsageTap:
        """A fresh watcher for one streamed response."""
        ...

    def error_body(self, status: int, message: str) -> JSON:
        """An error in this dialect's own shape."""
        ...


def as_int(value: Any) -> int:
    """An int usage field, or 0 when absent, not a number or negative (never a real count)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def as_dict(value: Any) -> JSON:
    """A nested object, or an empty one when absent or not an object."""
    return value if isinstance(value, dict) else {}


def dicts(value: Any) -> list[JSON]:
    """The objects of a list (anything else, or a missing list, reads as empty)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


VIEW_FIELDS: tuple[str, ...] = (
    "system",
    "messages",
    "tools",
    "tool_choice",
    "reasoning",
    "max_output_tokens",
)


def sse_event(data: str, event: str | None = None) -> SSEEvent:
    """An event made by tokenopt, with its wire bytes (`event:` line only when named)."""
    head = f"event: {event}\n" if event else ""
    return SSEEvent(event=event or "message", data=data, raw=f"{head}data: {data}\n\n".encode())


def pending_overrides(view: RequestView) -> dict[str, Any]:
    """The `body_overrides` that would change the body (a no-op override is not a change)."""
    missing = object()
    return {
        key: value for key, value in view.body_overrides.items()
        if differs(view.body.get(key, missing), value) and not (value is None and key not in view.body)
    }


def changed_fields(view: RequestView, read: Callable[[JSON], Mapping[str, Any]]) -> list[str]:
    """The view fields whose value differs from the one parsed from the original body.

    `read` is the dialect's field reader, used only for a view built without `parsed`.
    """
    original = view.parsed or read(view.body)
    return [name for name in VIEW_FIELDS if differs(getattr(view, name), original[name])]


def differs(a: Any, b: Any) -> bool:
    """Unequal, or equal with members in another order: key order is bytes on the wire.

    `==` ignores dict order, so a plugin that only re-orders keys (canonical
    tool schemas) would otherwise never be written back. Lists and view
    dataclasses are compared member by member, so what a plugin left alone
    (the same objects) costs an identity check, not a serialisation.
    """
    if a is b:
        return False
    if isinstance(a, list) and isinstance(b, list):
        return len(a) != len(b) or any(differs(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (Tool, TextPart)) and type(a) is type(b):
        return any(differs(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return a != b or repr(a) != repr(b)


def tool_unchanged(tool: Tool, parsed: Tool) -> bool:
    """True when a tool's neutral fields still match those read from its raw entry."""
    return (tool.name, tool.description, tool.parameters) == (
        parsed.name,
        parsed.description,
        parsed.parameters,
    )


def written_tools(tools: list[Tool], write: Callable[[Tool], JSON]) -> list[JSON]:
    """Each tool's entry as the dialect writes it back, memoised by the list's identity.

    Plugins hand on the same list for the same tool set (normalize's canonical list),
    and replace containers rather than edit them, so a list seen before is written alike.
    """
    found = _WRITTEN.get(tools, write)
    if found is None:
        found = [write(t) for t in tools]
        _WRITTEN.put(tools, found, write, size=jsonio.size_of(found))
    return found


_WRITTEN: ByIdentity[list[JSON]] = ByIdentity(256, CONTENT_BUDGET)


def set_or_drop(target: JSON, key: str, value: Any) -> None:
    """Set a field, or remove it when the new value is None."""
    if value is None:
        target.pop(key, None)
    else:
        target[key] = value


def loads_object(data: str) -> JSON:
    """Parse one SSE data payload; anything but a JSON object reads as empty."""
    try:
        parsed = jsonio.loads(data)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def build_view(
    dialect: str, route: str, body: JSON, fields: dict[str, Any], *, tenant: str,
    headers: Mapping[str, str],
) -> RequestView:
    """Assemble a view from the fields a dialect read, plus what every dialect shares."""
    system_text = "\n".join(part.text for part in fields["system"])
    first = fields["messages"][0] if fields["messages"] else None
    return RequestView(
        dialect=dialect,
        route=route,
        body=body,
        model=str_or_none(body.get("model")),
        stream=body.get("stream") is True,
        tenant=tenant,
        conversation=conversation_of(headers, tenant, system_text, first),
        task=headers.get(TASK_HEADER),
        tenant_label=headers.get(TENANT_HEADER),
        parsed=fields,
        **fields,
    )

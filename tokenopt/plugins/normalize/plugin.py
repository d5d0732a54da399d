"""The `normalize` plugin: stable cacheable prefixes, and what broke them."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, ClassVar

from tokenopt import jsonio
from tokenopt.dialects.base import RequestView, TextPart, Tool
from tokenopt.memo import CONTENT_BUDGET, ByIdentity
from tokenopt.pipeline import PluginContext, ResponseView
from tokenopt.plugins.normalize.breakpoints import (
    MAX_BREAKPOINTS,
    Plan,
    choose_ttl,
    count_markers,
    mark_message,
    marker,
)
from tokenopt.plugins.normalize.breaks import Fingerprint, first_break
from tokenopt.plugins.normalize.canonical import (
    MARKERS,
    ToolForms,
    ToolSet,
    canonical_tools,
    tool_forms,
)
from tokenopt.plugins.normalize.messages import MessageBytes
from tokenopt.plugins.normalize.settings import NormalizeSettings
from tokenopt.plugins.normalize.volatile import VolatileSpans, note_for
from tokenopt.provider_rules import min_cacheable_tokens, takes_prompt_cache_key

ANTHROPIC = "anthropic-messages"
# A history breakpoint further back than this is out of reach of the next one's lookback.
LOOKBACK_MESSAGES = 20


class NormalizePlugin:
    """Canonical tools, relocated volatile spans, Anthropic breakpoints, OpenAI cache keys.

    Apart from the labelled move of volatile spans (off by default), the model
    receives the same tools and the same text: only key order, tool order,
    whitespace and cache markers change.
    """

    name: ClassVar[str] = "normalize"
    Settings: ClassVar[type[NormalizeSettings]] = NormalizeSettings
    enabled_by_default: ClassVar[bool] = True

    def __init__(self, settings: NormalizeSettings) -> None:
        self.settings = settings
        self.volatile = VolatileSpans(settings.volatile_patterns)

    async def on_request(self, view: RequestView, ctx: PluginContext) -> RequestView:
        settings = self.settings
        state = await self._conversation(view, ctx)
        forms = tool_forms(view.tools)
        encoded = MessageBytes()
        if settings.detect_breaks:
            await self._detect_break(view, ctx, forms, encoded)
        client_marked_tools = any(key in t.raw for t in view.tools for key in MARKERS)
        if settings.canonical_tools and view.tools:
            view = dataclasses.replace(view, tools=canonical_tools(view.tools, forms,
                                                                   sort=settings.sort_tools))
        # The tool set whatever its order: what cache keys and prefix digests are made of.
        tool_set = ToolSet.of(forms)
        if settings.relocate_volatile and view.system:
            view = self._relocate(view, ctx)
        if view.dialect == ANTHROPIC:
            if client_marked_tools and settings.canonical_tools:
                view = _mark_last_tool(view, "5m")  # the client's tools breakpoint, kept at the end
            if settings.breakpoints:
                view = await self._place_breakpoints(view, ctx, state, tool_set, encoded)
        elif (settings.cache_key and "prompt_cache_key" not in view.body
              and takes_prompt_cache_key(view.model)):  # a router 400s it for other models
            view = self._with_cache_key(view, ctx, tool_set)
        await self._remember(view, ctx, state)
        return view

    async def on_response(self, response: ResponseView, ctx: PluginContext) -> None:
        """Count what the client's request added since its previous one, off the request path:
        the ledger prices the rest as what the client alone would have read from the cache."""
        prefix = ctx.notes.get("client_prefix")
        if not isinstance(prefix, dict):
            return
        view = response.request
        added = view.messages[int(prefix.get("messages", 0)):]
        prefix["new_tokens"] = sum(ctx.counter.count(_text(m), view.model) for m in added)

    # conversation state -------------------------------------------------------------

    async def _conversation(self, view: RequestView, ctx: PluginContext) -> dict[str, Any]:
        raw = await ctx.store.get(f"conv:{view.conversation}")
        try:
            state = jsonio.loads(raw) if raw else {}
        except ValueError:
            state = {}
        return state if isinstance(state, dict) else {}

    async def _remember(self, view: RequestView, ctx: PluginContext, state: dict[str, Any]) -> None:
        now = ctx.clock()
        state = {**state, "turns": int(state.get("turns", 0)) + 1, "last_ts": now}
        await ctx.store.set(f"conv:{view.conversation}", jsonio.dumps(state),
                            ttl=self.settings.conversation_ttl_seconds)

    # cache-break detector -----------------------------------------------------------

    async def _detect_break(self, view: RequestView, ctx: PluginContext,
                            forms: list[ToolForms], encoded: MessageBytes) -> None:
        now = Fingerprint.of(view, forms, encoded)
        key = f"fp:{view.conversation}"
        previous = await ctx.store.get(key)
        await ctx.store.set(key, now.dumps(), ttl=self.settings.conversation_ttl_seconds)
        before = Fingerprint.loads(previous) if previous else None
        if before is None:
            return
        found = first_break(before, now)
        if found is None:
            # The client's own prompt held up to where its previous request ended: what it
            # alone would have read from the cache (counted after the response).
            ctx.notes["client_prefix"] = {"messages": len(before.messages)}
            return
        ctx.notes["cache_break"] = {**found.as_note(),
                                    "tokens_lost": _tokens_from(view, found.segment, found.at,
                                                                len(before.messages), ctx)}

    # volatile spans -----------------------------------------------------------------

    def _relocate(self, view: RequestView, ctx: PluginContext) -> RequestView:
        texts, spans = self.volatile.relocate([part.text for part in view.system])
        if not spans:
            return view
        messages = _append_to_newest_user_turn(view.messages, note_for(spans), view.dialect)
        if messages is None:
            return view  # no user turn to carry the values: leave the prompt as it is
        system = [TextPart(text, part.raw) for text, part in zip(texts, view.system, strict=True)]
        ctx.notes["volatile_moved"] = [{"label": s.label, "kind": s.kind} for s in spans]
        return dataclasses.replace(view, system=system, messages=messages)

    # OpenAI: prompt_cache_key -------------------------------------------------------

    def _with_cache_key(self, view: RequestView, ctx: PluginContext, tool_set: ToolSet
                        ) -> RequestView:
        prefix = jsonio.dumps([view.tenant, view.model, tool_set.digest,
                               [part.text for part in view.system]])
        key = "tko_" + hashlib.blake2b(prefix, digest_size=12).hexdigest()
        ctx.notes["prompt_cache_key"] = key
        return dataclasses.replace(view, body_overrides={**view.body_overrides,
                                                         "prompt_cache_key": key})

    # Anthropic: breakpoints ---------------------------------------------------------

    async def _place_breakpoints(self, view: RequestView, ctx: PluginContext,
                                 state: dict[str, Any], tool_set: ToolSet,
                                 encoded: MessageBytes) -> RequestView:
        model = view.model or ""
        count = ctx.counter.count
        tools = tool_set.tokens(model, count)
        system = tools + sum(count(part.text, model) for part in view.system)
        # The conversation so far, newest turn included: the next request repeats it.
        # Relocated values sit in their own last block, which the breakpoint skips.
        newest_moved = "volatile_moved" in ctx.notes
        history_messages = view.messages
        history = system + sum(encoded.tokens(m, model, count) for m in history_messages)
        minimum = min_cacheable_tokens(model)
        prefix_key = "prefix:" + hashlib.blake2b(
            jsonio.dumps([model, tool_set.digest, [p.text for p in view.system]]),
            digest_size=12).hexdigest()
        seen = await ctx.store.get(prefix_key) is not None
        await ctx.store.set(prefix_key, b"1", ttl=self.settings.conversation_ttl_seconds)
        # Reuse is expected when the conversation already has turns, or when it
        # offers tools: a tool call is answered by another request on this prefix.
        continuing = int(state.get("turns", 0)) >= 1 or (
            self.settings.expect_tool_loop and bool(view.tools))
        existing = count_markers(view.body)
        room = MAX_BREAKPOINTS - existing
        # The gap just observed predicts the next one: it decides how long an entry must live.
        gap = ctx.clock() - state["last_ts"] if isinstance(state.get("last_ts"), (int, float)) else None
        ttl = self.settings.ttl if self.settings.ttl != "auto" else (
            "5m" if existing else choose_ttl(gap))
        wants = Plan(
            history=continuing and bool(history_messages) and history >= minimum,
            system=(seen or continuing) and bool(view.system) and system >= minimum,
            tools=(seen or continuing) and bool(view.tools) and tools >= minimum,
            ttl=ttl,
        )
        placed: list[str] = []
        if wants.history and room > 0:
            marked = _mark_history(view.messages, ttl, state.get("history_at"), room,
                                   skip_note=newest_moved)
            if marked is not None:
                messages, used, at = marked
                state["history_at"] = at
                if used:
                    view = dataclasses.replace(view, messages=messages)
                    room -= used
                    placed.append("history")
        # A segment the client's own breakpoint already ends takes none of ours.
        if wants.system and room > 0 and (with_system := _mark_last_system(view, ttl)) is not view:
            view = with_system
            room -= 1
            placed.append("system")
        if wants.tools and room > 0 and (with_tools := _mark_last_tool(view, ttl)) is not view:
            view = with_tools
            placed.append("tools")
        if placed:
            ctx.notes["breakpoints"] = {
                "placed": placed, "ttl": ttl, "client_breakpoints": existing,
                "ttl_reason": "client breakpoints present" if existing and self.settings.ttl == "auto"
                else f"request gap {gap:.0f}s" if isinstance(gap, float) else "first request",
            }
        elif minimum > history:
            ctx.notes["breakpoints"] = {"placed": [], "reason": f"prefix below {minimum} tokens"}
        return view


def _tokens_from(view: RequestView, segment: str, at: int, previous_messages: int,
                 ctx: PluginContext) -> int:
    """Tokens from the break to the end of what the previous request had: now uncached."""
    count = ctx.counter.count
    messages = view.messages[:previous_messages]
    history = sum(count(_text(m), view.model) for m in messages)
    system = "\n".join(part.text for part in view.system)
    if segment == "messages":
        return sum(count(_text(m), view.model) for m in messages[at:])
    if segment == "system":
        return count(system[at:], view.model) + history
    tools = sum(count(_text(t.raw), view.model) for t in view.tools)
    return tools + count(system, view.model) + history


def _mark_last_tool(view: RequestView, ttl: str) -> RequestView:
    if not view.tools or "cache_control" in view.tools[-1].raw:
        return view
    # The same marked list for the same canonical list, so later plugins' memos hit.
    tools = _MARKED.get(view.tools, ttl)
    if tools is None:
        *head, last = view.tools
        marked = [*head, Tool(last.name, last.description, last.parameters,
                              {**last.raw, "cache_control": marker(ttl)})]
        tools = _MARKED.put(view.tools, marked, ttl,
                            size=jsonio.size_of([tool.raw for tool in marked]))
    return dataclasses.replace(view, tools=tools)


_MARKED: ByIdentity[list[Tool]] = ByIdentity(256, CONTENT_BUDGET)


def _mark_last_system(view: RequestView, ttl: str) -> RequestView:
    *head, last = view.system
    raw = last.raw if isinstance(last.raw, dict) else {"type": "text", "text": last.text}
    if "cache_control" in raw:
        return view
    part = TextPart(last.text, {**raw, "cache_control": marker(ttl)})
    return dataclasses.replace(view, system=[*head, part])


def _mark_history(messages: list[Any], ttl: str, previous_at: Any, room: int, *,
                  skip_note: bool) -> tuple[list[Any], int, int] | None:
    """Messages with a breakpoint on the conversation's last markable block.

    When the previous turn's breakpoint would fall out of the new one's
    lookback, it is kept too, so what the provider cached stays readable.
    """
    end = len(messages) - 1
    while end >= 0:
        skip = 1 if skip_note and end == len(messages) - 1 else 0
        marked = mark_message(messages[end], ttl, skip=skip)
        if marked is not None:
            break
        end -= 1
    else:
        return None
    out = list(messages)
    used = 0
    if marked is not messages[end]:  # else the client's own breakpoint already ends there
        out[end] = marked
        used = 1
    if (isinstance(previous_at, int) and 0 <= previous_at < end and room > used
            and end - previous_at >= LOOKBACK_MESSAGES):
        kept = mark_message(out[previous_at], ttl)
        if kept is not None and kept is not out[previous_at]:
            out[previous_at] = kept
            used += 1
    return out, used, end


def _append_to_newest_user_turn(messages: list[Any], note: str, dialect: str) -> list[Any] | None:
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        # The note is a block of its own, after the client's: the client's text is
        # kept as sent and the prefix can end right before the note.
        kind = "input_text" if dialect == "openai-responses" else "text"
        if isinstance(content, str):
            content = [{"type": kind, "text": content}]
        elif not isinstance(content, list):
            continue
        updated = {**message, "content": [*content, {"type": kind, "text": note.strip()}]}
        out = list(messages)
        out[index] = updated
        return out
    return None


def _text(value: Any) -> str:
    """A message or tool as the JSON text its tokens are counted on."""
    return jsonio.dumps(value).decode()

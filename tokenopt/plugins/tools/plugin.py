"""The `tools` plugin: fewer tool tokens — dedupe, slimming, and tools loaded only when searched.

Runs after `normalize` (which has put the tools in canonical order and, on
Anthropic, perhaps a breakpoint on the last one). Dedupe is always on;
slimming with `slim`; with `lazy`, a request whose function tools exceed the
threshold forwards only the pinned tools, the loaded set and one search tool,
and the `detour` hook answers the model's searches (see `detour.py`). Tools
the client manages itself (built-ins, MCP toolsets, deferred tools, a provider
search tool) are never withheld, deferred or dropped. Functions inside a
Responses `namespace` (Codex's MCP servers) are withheld and loaded one by one,
inside their namespace (see `namespaces.py`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar

from tokenopt.dialects.base import RequestView, Tool, Usage
from tokenopt.exceptions import ConfigError
from tokenopt.pipeline import PluginContext
from tokenopt.plugins.normalize.canonical import tool_forms
from tokenopt.plugins.tools import native
from tokenopt.plugins.tools.catalog import (
    ANTHROPIC,
    Catalog,
    index_for,
    is_function,
    sent_text,
)
from tokenopt.plugins.tools.conversation import (
    called_tools,
    chosen_tools,
    client_searches,
    preload_query,
)
from tokenopt.plugins.tools.dedupe import dedupe
from tokenopt.plugins.tools.detour import SearchDetour
from tokenopt.plugins.tools.marks import mark_last_like
from tokenopt.plugins.tools.namespaces import (
    deferred_inside,
    extended,
    is_namespace,
    kept_part,
    members,
    size,
)
from tokenopt.plugins.tools.search_tool import search_tool
from tokenopt.plugins.tools.selection import find, server_of
from tokenopt.plugins.tools.settings import ToolsSettings
from tokenopt.plugins.tools.slim import slim_tool
from tokenopt.plugins.tools.state import ConversationTools
from tokenopt.plugins.tools.strategy import Shape, choose, estimates
from tokenopt.pricing import PriceBook
from tokenopt.rounds import Detour
from tokenopt.tools.semantic import DenseIndexes
from tokenopt.tools.semantic import available as semantic_available

EXTRA = "tools.search"  # view.extras: what the detour hook needs of this request


class ToolsPlugin:
    """Dedupe and slim tool schemas; load large tool sets lazily, by search."""

    name: ClassVar[str] = "tools"
    Settings: ClassVar[type[ToolsSettings]] = ToolsSettings
    enabled_by_default: ClassVar[bool] = True

    def __init__(self, settings: ToolsSettings) -> None:
        self.settings = settings
        self.prices = PriceBook()
        self.dense: DenseIndexes | None = None
        if settings.semantic:
            if not semantic_available():
                raise ConfigError("[plugins.tools] semantic = true needs the semantic extra: "
                                  "pip install 'tokenopt[semantic]'")
            self.dense = DenseIndexes()

    async def on_request(self, view: RequestView, ctx: PluginContext) -> RequestView:
        if not view.tools:
            return view
        called = called_tools(view)
        pinned = list(dict.fromkeys([*self.settings.pinned, *chosen_tools(view.tool_choice),
                                     *called]))
        # Each tool serialised once (memoised by normalize's forms): the digest, the token
        # count and dedupe all read these texts.
        sent = SentTexts(view.tools)
        view = self._dedupe_and_slim(view, ctx, pinned, sent)
        if not self.settings.lazy or client_searches(view):
            return view
        functions = [tool for tool in view.tools if is_function(tool, view.dialect)]
        spaces = [tool for tool in view.tools if is_namespace(tool, view.dialect)]
        count = ctx.counter.count
        total = count(sent.joined([*functions, *spaces]), view.model) if functions or spaces else 0
        if total <= self.settings.lazy_threshold_tokens:
            ctx.notes["lazy"] = {"strategy": "keep", "reason": "below threshold",
                                 "tool_tokens": total}
            return view
        conversation = self._conversation(view, ctx)
        state = await conversation.load()
        inner, homes = members(spaces, {tool.name for tool in functions})
        catalog = Catalog.of([*functions, *inner], sent.of, homes)
        if self.dense is not None:
            catalog.index = self.dense.get(catalog.key, index_for(catalog.key, catalog.tools),
                                           [tool.raw for tool in catalog.tools],
                                           wait=self.settings.semantic_wait)
        if state.strategy is None:
            state.strategy, state.reason = self._choose(view, ctx, catalog, total, pinned)
        strategy = state.strategy
        if strategy == "native" and not native.supports_native(view.dialect, view.model):
            strategy = "search"
        if strategy == "keep":
            await conversation.save(state)
            ctx.notes["lazy"] = {"strategy": "keep", **state.reason, "tool_tokens": total}
            return view
        present = [name for name in pinned if name in catalog]
        preload = find(catalog.index, preload_query(view), self.settings.preload_k,
                       siblings=self.settings.siblings, near=called)
        new = [name for name in dict.fromkeys([*present, *preload]) if name not in state.loaded]
        state.loaded += new
        await conversation.save(state)
        notes = {"strategy": strategy, **state.reason, "tool_tokens": total,
                 "tools_offered": len(catalog.by_name), "preloaded": new,
                 "loaded": len(state.loaded)}
        if strategy == "native":
            return self._native(view, ctx, catalog, state.loaded, notes)
        return self._search(view, ctx, catalog, present, state.loaded, notes)

    def detour(self, view: RequestView, ctx: PluginContext) -> Detour | None:
        """The search rounds of a request this plugin gave its search tool."""
        found = view.extras.get(EXTRA)
        if found is None:
            return None
        catalog, search = found
        conversation = self._conversation(view, ctx)
        return SearchDetour(view, catalog, search=search, rounds=self.settings.search_rounds,
                            k=self.settings.search_k, siblings=self.settings.siblings,
                            max_tools=self.settings.max_tools,
                            widen=self.settings.widen_last_round, remember=conversation.append)

    def _conversation(self, view: RequestView, ctx: PluginContext) -> ConversationTools:
        return ConversationTools(ctx.store, view.conversation,
                                 self.settings.conversation_ttl_seconds)

    # dedupe and slimming ------------------------------------------------------------

    def _dedupe_and_slim(self, view: RequestView, ctx: PluginContext,
                         pinned: list[str], sent: SentTexts) -> RequestView:
        tools, dropped = dedupe(view.tools, keep=frozenset(pinned), forms=sent.forms)
        if dropped:
            gone = {id(tool) for tool in tools}
            removed = [tool for tool in view.tools if id(tool) not in gone]
            ctx.notes["deduped"] = [{"name": d.name, "kept": d.kept, "reason": d.reason}
                                    for d in dropped]
            ctx.notes["dedupe_tokens_saved"] = ctx.counter.count(sent.joined(removed), view.model)
        if self.settings.slim:
            slimmed = [slim_tool(tool, view.dialect, hoist=self.settings.hoist_defs)
                       for tool in tools]
            changed = [(a, b) for a, b in zip(tools, slimmed, strict=True) if a is not b]
            if changed:
                count = ctx.counter.count
                before = count(_neutral([a for a, _ in changed]), view.model)
                after = count(_neutral([b for _, b in changed]), view.model)
                ctx.notes["slimmed"] = {"tools": len(changed), "tokens_saved": before - after}
                tools = slimmed
        if len(tools) == len(view.tools) and all(a is b for a, b in zip(tools, view.tools,
                                                                          strict=True)):
            return view
        return dataclasses.replace(view, tools=tools)

    # choosing a strategy --------------------------------------------------------------

    def _choose(self, view: RequestView, ctx: PluginContext, catalog: Catalog, total: int,
                pinned: list[str]) -> tuple[str, dict[str, Any]]:
        mode = self.settings.mode
        eligible = self.settings.native_upstream and native.supports_native(view.dialect,
                                                                            view.model)
        if mode == "search":
            return "search", {"reason": "mode = search"}
        if mode == "native":
            return ("native" if eligible else "search"), {
                "reason": "mode = native" if eligible else "mode = native, not served: search"}
        count = ctx.counter.count
        per_tool = total // max(len(catalog.tools), 1)
        kept = len(pinned) + self.settings.preload_k
        rest = sum(count(part.text, view.model) for part in view.system) + sum(
            count(json.dumps(m, ensure_ascii=False), view.model) for m in view.messages)
        shown = 0  # a deferred Responses function still shows its name and description
        if eligible and view.dialect == "openai-responses":
            shown = count(json.dumps([[t.name, t.description] for t in catalog.tools],
                                     ensure_ascii=False), view.model)
        shape = Shape(all_tools=total, lazy_tools=per_tool * kept + 120,
                      native_tools=per_tool * len(pinned) + 60 + shown, per_tool=per_tool,
                      rest=rest,
                      turns=self.settings.expected_turns,
                      loads=self.settings.loads_per_turn * self.settings.expected_turns,
                      k=self.settings.search_k)
        provider = "anthropic" if view.dialect == ANTHROPIC else "openai"
        costs = estimates(shape, view.model, provider, self.prices, native=eligible)
        priced = self.prices.cost(view.model, _probe(), provider=provider).priced
        strategy, why = choose(costs, priced)
        return strategy, {"reason": why, "estimates_usd": {k: round(v, 6) for k, v in costs.items()}}

    # the strategies -------------------------------------------------------------------

    def _search(self, view: RequestView, ctx: PluginContext, catalog: Catalog,
                present: list[str], loaded: list[str], notes: dict[str, Any]) -> RequestView:
        """The loaded set and tokenopt's search tool in place of the catalog."""
        others = _unwithheld(view, catalog)
        room = self.settings.max_tools - size(others) - 1
        selected = [name for name in _within(loaded, room, keep=present) if name in catalog]
        ctx.notes["lazy"] = {**notes, "tools_forwarded": len(selected)}
        if self.settings.search_rounds == 0:  # nothing could answer a search: preload only
            return dataclasses.replace(view, tools=mark_last_like(
                view.tools, extended(others, catalog, selected), view.dialect))
        servers = sorted({s for name in catalog.by_name if (s := server_of(name)) is not None})
        search = search_tool(view.dialect, len(catalog.by_name), servers)
        tools = mark_last_like(view.tools, extended([*others, search], catalog, selected),
                               view.dialect)
        extras = {**view.extras, EXTRA: (catalog, search)}
        return dataclasses.replace(view, tools=tools, extras=extras)

    def _native(self, view: RequestView, ctx: PluginContext, catalog: Catalog,
                loaded: list[str], notes: dict[str, Any]) -> RequestView:
        """Every tool still sent, those not loaded deferred, and the provider's search tool."""
        keep = set(loaded)
        tools = [native.deferred(tool) if is_function(tool, view.dialect) and tool.name not in keep
                 else deferred_inside(tool, catalog, keep) if is_namespace(tool, view.dialect)
                 else tool for tool in view.tools]
        tools = mark_last_like(view.tools, [*tools, native.search_tool(view.dialect)], view.dialect)
        entries = [fn for t in tools for fn in (t.raw["tools"] if is_namespace(t, view.dialect)
                                                 else [t.raw])]
        ctx.notes["lazy"] = {**notes, "deferred": sum(fn.get("defer_loading") is True
                                                      for fn in entries if isinstance(fn, dict))}
        return dataclasses.replace(view, tools=tools)


class SentTexts:
    """Each tool of a request as sent, serialised once (`normalize`'s memoised forms)."""

    def __init__(self, tools: list[Tool]) -> None:
        self.forms = tool_forms(tools)
        self._by_id = {id(tool): form.sent_text for tool, form in zip(tools, self.forms,
                                                                      strict=True)}

    def of(self, tool: Tool) -> str:
        found = self._by_id.get(id(tool))
        return found if found is not None else sent_text(tool)

    def joined(self, tools: list[Tool]) -> str:
        """The tools as one JSON array: the same text as `json.dumps` of their entries."""
        return "[" + ", ".join(self.of(tool) for tool in tools) + "]"


def _unwithheld(view: RequestView, catalog: Catalog) -> list[Tool]:
    """What is forwarded whatever is loaded: the client's own tools, in order, and each
    namespace's tools that are not catalogued (a namespace with none is left out)."""
    kept: list[Tool] = []
    for tool in view.tools:
        if is_namespace(tool, view.dialect):
            part = kept_part(tool, catalog)
            kept += [part] if part is not None else []
        elif not is_function(tool, view.dialect):
            kept.append(tool)
    return kept


def _neutral(tools: list[Tool]) -> str:
    # What the model reads of a tool; a slimmed tool's `raw` is rewritten only on render.
    return json.dumps([[t.name, t.description, t.parameters] for t in tools], ensure_ascii=False)


def _probe() -> Usage:
    return Usage(input_tokens=1_000_000)


def _within(loaded: list[str], room: int, *, keep: list[str]) -> list[str]:
    """The loaded set, cut to `room` (OpenAI takes at most 128 tools): pinned, then the newest."""
    if len(loaded) <= room:
        return loaded
    must = [name for name in loaded if name in keep][:room]
    rest = [name for name in loaded if name not in must]
    allowed = set(must) | set(rest[len(rest) - (room - len(must)):] if room > len(must) else [])
    return [name for name in loaded if name in allowed]

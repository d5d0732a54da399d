"""tokenopt's own tool search: answer the model's search call, add the tools found, ask again.

One `SearchDetour` lives for one exchange (see `tokenopt.rounds.Detour`). It
reads each round's answer; when the model called only the search tool, it
runs the search over the request's whole catalog, appends the tools found to
the conversation's loaded set and re-issues the request with them and with
the search answered. The last round allowed is sent without the search tool,
so the model must answer with what it has. What the client gets is merged by
`answers` (JSON) and `streams` (SSE).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from tokenopt._sse import SSEEvent
from tokenopt.dialects import dialect_for
from tokenopt.dialects.base import JSON, RequestView, Tool
from tokenopt.plugins.tools.answers import ANSWERS, SearchCall, total_usage
from tokenopt.plugins.tools.catalog import Catalog
from tokenopt.plugins.tools.marks import mark_last_like
from tokenopt.plugins.tools.namespaces import extended, offered, shown_name, size
from tokenopt.plugins.tools.selection import find
from tokenopt.plugins.tools.streams import merger_for
from tokenopt.stream_assembly import assembler_for

Loader = Callable[[list[str]], Awaitable[None]]


class SearchDetour:
    """The rounds of one exchange whose request carries tokenopt's search tool."""

    def __init__(self, view: RequestView, catalog: Catalog, *, search: Tool, rounds: int,
                 k: int, siblings: int, remember: Loader, max_tools: int = 128,
                 widen: int = 0) -> None:
        self.view = view
        self.catalog = catalog
        self.search = search
        self.rounds_left = rounds
        self.k = k
        self.siblings = siblings
        self.remember = remember
        self.max_tools = max_tools  # OpenAI refuses more than 128 tools
        self.widen = widen
        self.answers = ANSWERS[view.dialect]
        dialect = dialect_for("POST", view.route)
        assert dialect is not None  # the view was read by this route's dialect
        self.dialect = dialect
        self.merger = merger_for(view.dialect, search.name)
        self.assembler = assembler_for(view.route)
        self.earlier: list[JSON] = []
        self.pending: tuple[SearchCall, ...] = ()
        self.last: JSON | None = None
        self.notes: dict[str, Any] = {}

    # what the middleware calls ------------------------------------------------------

    def feed(self, event: SSEEvent) -> list[SSEEvent]:
        self.assembler.feed(event)
        return self.merger.feed(event)

    def stream_end(self) -> bool:
        answer = self.assembler.result()
        return answer is not None and self._searching(answer)

    def json_end(self, body: JSON) -> JSON | None:
        if self._searching(body):
            return None
        return self._merged(body)

    async def next_request(self) -> JSON | None:
        if self.last is None or not self.pending:
            return None
        found: list[str] = []
        results: dict[str, str] = {}
        have = offered(self.view.tools)
        # Room for what is found; the last round, sent without the search tool, has one more.
        room = self.max_tools - size(self.view.tools) + (self.rounds_left <= 1)
        for call in self.pending:
            names = find(self.catalog.index, call.query, self.k, siblings=self.siblings,
                         exclude=frozenset(have) | frozenset(found))
            names = names[:max(room - len(found), 0)]
            found += names
            results[call.call_id] = self._result_text(call.query, names)
        self.earlier.append(self.last)
        self.rounds_left -= 1
        self._note_round(found)
        if found:
            await self.remember(found)
        # Found functions of a namespace go into it (the namespace added if it was left out).
        tools = extended(self.view.tools, self.catalog, found)
        if self.rounds_left <= 0:  # the last round: the model answers with what it has
            # By name: the request's copy may not be `self.search` (a breakpoint put on it).
            tools = [tool for tool in tools if tool.name != self.search.name]
            if self.widen:
                tools = extended(tools, self.catalog, self._widened(tools))
        tools = mark_last_like(self.view.tools, tools, self.view.dialect)
        messages = [*self.view.messages, *self.answers.follow_up(self.last, results)]
        self.view = dataclasses.replace(self.view, tools=tools, messages=messages)
        self.assembler = assembler_for(self.view.route)
        self.merger.next_round()
        return self.dialect.render(self.view)

    def closing(self) -> list[SSEEvent]:
        merged = self._merged(self.last) if self.last is not None else None
        return self.merger.closing(merged)

    def last_json(self) -> JSON:
        assert self.last is not None
        self.notes["unfinished"] = True
        return self._merged(self.last)

    def stream_error(self, status: int, body: bytes) -> list[SSEEvent]:
        self.notes["failed"] = f"upstream status {status} in round {len(self.earlier) + 1}"
        return self.merger.error(status, body)

    # inside -------------------------------------------------------------------------

    def _searching(self, answer: JSON) -> bool:
        """Record the round's answer; True when only the search tool was called."""
        self.last = answer
        calls = self.answers.calls(answer, self.search.name)
        usage = answer.get("usage")
        self.notes.setdefault("calls", []).append(usage if isinstance(usage, dict) else None)
        if not calls.searches:
            return False
        if calls.real:
            # Real calls go to the client; the search beside them is dropped, not answered.
            self.notes["searches_dropped"] = self.notes.get("searches_dropped", 0) + 1
            return False
        if self.rounds_left <= 0:
            self.notes["unfinished"] = True
            return False
        self.pending = calls.searches
        return True

    def _merged(self, final: JSON) -> JSON:
        """What the client gets; with one round, only a search beside real calls is dropped."""
        detour_usage = total_usage(self.earlier)
        if detour_usage is not None:
            self.notes["detour_usage"] = detour_usage
        return self.answers.merge(self.earlier, final, self.search.name)

    def _note_round(self, found: list[str]) -> None:
        self.notes["search_detours"] = self.notes.get("search_detours", 0) + 1
        self.notes.setdefault("found", []).extend(found)

    def _widened(self, tools: list[Tool]) -> list[str]:
        """For a model still searching after every round: up to `widen` more, best-ranked first.

        Sent once, in the last round only, and not remembered: the next turn is back to
        the loaded set (plus whatever the model then called, which is pinned).
        """
        have = offered(tools)
        queries = [call.query for call in self.pending]
        ranked = [name for query in queries for name in self.catalog.index.search(
            query, len(self.catalog.by_name), exclude=frozenset(have))]
        rest = [n for n in dict.fromkeys([*ranked, *self.catalog.by_name]) if n not in have]
        room = max(min(self.max_tools - size(tools), self.widen), 0)
        widened = rest[:room]
        self.notes["widened"] = len(widened)
        return widened

    def _result_text(self, query: str, names: list[str]) -> str:
        if not names:
            return (f"No further tools match {query!r}. Answer with the tools you have, or "
                    "search again with other words.")
        lines = [f"- {shown_name(self.catalog, name)}: {self.catalog.summary(name)}"
                 for name in names]
        return ("These tools are now available; call them directly:\n" + "\n".join(lines))

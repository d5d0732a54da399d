"""Real tool sets for the tools-plugin tests, in each route's own form.

Tools come from ../shared/data/tools/tools.jsonl, named as MCP clients name
them when several servers are mixed (`server__tool`), so no test uses toy tools.
"""

from __future__ import annotations

import copy
import functools
import json
import random
import re
from typing import Any

from benchmarks.workload import load_jsonl
from tokenopt.dialects import dialect_for
from tokenopt.engine import Engine
from tokenopt.identity import CONVERSATION_HEADER, tenant_of
from tokenopt.settings import Settings
from tokenopt.store import MemoryStore
from tokenopt.tools import ToolIndex

JSON = dict[str, Any]
ROUTES = ("/v1/chat/completions", "/v1/responses", "/v1/messages")
MODELS = {"/v1/chat/completions": "gpt-4.1", "/v1/responses": "gpt-5",
          "/v1/messages": "claude-sonnet-4-5"}
MCP_SOURCES = ("github-mcp-server", "livemcpbench", "docker-mcp-registry")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def _name(row: JSON) -> str:
    server = row.get("server") or row["source"].rpartition("/")[2]
    return _UNSAFE.sub("_", f"{server}__{row['name']}")[:64]


@functools.cache
def _rows(mcp_only: bool) -> tuple[JSON, ...]:
    """Every tool with a server, as {name, description, input_schema}; names unique."""
    seen: dict[str, JSON] = {}
    for row in load_jsonl("tools.jsonl"):
        if not row.get("server") or (mcp_only and not row["source"].startswith(MCP_SOURCES)):
            continue
        schema = row.get("input_schema") or {}
        if schema.get("type") != "object":
            schema = {"type": "object", "properties": {}, **schema}
        seen.setdefault(_name(row), {"name": _name(row), "description": row.get("description")
                                     or "", "input_schema": schema})
    return tuple(seen.values())


def mcp_tools(n: int, *, seed: int = 7, include: tuple[str, ...] = (),
              mcp_only: bool = True) -> list[JSON]:
    """`n` real tools (MCP servers only unless `mcp_only=False`), `include` among them."""
    rows = _rows(mcp_only)
    by_name = {row["name"]: row for row in rows}
    picked = [by_name[name] for name in include]
    rest = [row for row in rows if row["name"] not in include]
    picked += random.Random(seed).sample(rest, n - len(picked))
    random.Random(seed + 1).shuffle(picked)
    return [dict(row) for row in picked]


def in_form(route: str, tools: list[JSON]) -> list[JSON]:
    """Tools as `route` declares function tools."""
    if route == "/v1/messages":
        return [dict(tool) for tool in tools]
    if route == "/v1/responses":
        return [{"type": "function", "name": t["name"], "description": t["description"],
                 "parameters": t["input_schema"]} for t in tools]
    return [{"type": "function", "function": {"name": t["name"], "description": t["description"],
                                              "parameters": t["input_schema"]}} for t in tools]


def name_of(tool: JSON) -> str | None:
    """A tool's name in any form (nested Chat function, flat, built-in)."""
    function = tool.get("function")
    name = function.get("name") if isinstance(function, dict) else tool.get("name")
    return name if isinstance(name, str) else None


def ranked(tools: list[JSON], query: str, k: int) -> list[str]:
    """What tokenopt's own index returns for `query` over `tools` (to pick targets by rank)."""
    return ToolIndex(tools).search(query, k)


def request(route: str, tools: list[JSON], user: str, *, stream: bool = False,
            history: list[JSON] | None = None) -> JSON:
    """A request body in `route`'s form offering `tools` (already in that form)."""
    messages = [*(history or []), {"role": "user", "content": user}]
    body: JSON = {"model": MODELS[route], "tools": tools, "stream": stream}
    if route == "/v1/messages":
        return {**body, "max_tokens": 1024, "messages": messages}
    if route == "/v1/responses":
        return {**body, "input": messages}
    return {**body, "messages": messages}


def recorded_call(route: str, name: str, arguments: JSON, *, call_id: str = "call_rec_1",
                  output_tokens: int = 20) -> JSON:
    """A recorded response whose model called `name` with `arguments` (the sim replays it)."""
    if route == "/v1/messages":
        return {"content": [{"type": "tool_use", "id": call_id, "name": name, "input": arguments}],
                "usage": {"output_tokens": output_tokens}}
    if route == "/v1/responses":
        return {"output": [{"type": "function_call", "call_id": call_id, "name": name,
                            "arguments": json.dumps(arguments)}],
                "usage": {"output_tokens": output_tokens}}
    return {"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [
        {"id": call_id, "type": "function",
         "function": {"name": name, "arguments": json.dumps(arguments)}}]}}],
        "usage": {"completion_tokens": output_tokens}}


class Forwarder:
    """The engine's real pipeline (normalize, tools, thinking) over one store: what it forwards.

    Conversations and tenants carry over between `send` calls, as in the proxy.
    """

    def __init__(self, **tools: Any) -> None:
        settings = Settings.load(environ={}, plugins={"tools": tools}, ledger={"enabled": False},
                                 pipeline={"strict": True})
        self.engine = Engine.from_settings(settings, store=MemoryStore())

    async def send(self, route: str, body: JSON, *, key: str = "sk-tenant-a",
                   conversation: str | None = "conv-1") -> tuple[JSON, JSON]:
        """The body tokenopt would forward, and the tools plugin's notes."""
        dialect = dialect_for("POST", route)
        assert dialect is not None
        headers = {"x-api-key": key}
        if conversation is not None:
            headers[CONVERSATION_HEADER] = conversation
        tenant = tenant_of(headers)
        original = copy.deepcopy(body)
        view = dialect.parse(body, tenant=tenant, headers=headers)
        result = await self.engine.pipeline.run(view, self.engine.context_for(tenant))
        assert body == original  # the client's body is never edited in place
        rendered = dialect.render(result.view)
        return (rendered if rendered is not None else body), result.notes.get("tools", {})


def names(body: JSON) -> list[str | None]:
    return [name_of(tool) for tool in body.get("tools", [])]

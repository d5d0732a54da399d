"""A stdio MCP server for the agent tests: real tools from ../shared/data, canned results.

    python tests/agents/mcp_server.py SERVER --calls FILE

Serves every tool of tools.jsonl whose `server` field is SERVER, under its own name,
description and input schema (the agent prefixes the server's name itself). A call
appends one JSON line `{"server", "tool", "arguments"}` to FILE, so a test can see
that the agent really ran the tool, and returns a small JSON result that depends only
on the call. Standalone (the `mcp` SDK and the standard library): the agent starts it
with the test's Python, outside the repository's import path.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "tools" / "tools.jsonl"


def corpus_tools(server: str, data: Path = DATA) -> list[dict[str, Any]]:
    """The tools of one MCP server of the corpus, in the corpus's order."""
    with data.open() as file:
        rows = [json.loads(line) for line in file if line.strip()]
    return [row for row in rows if row.get("server") == server]


def result_of(server: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """A call's canned result: the same call always gets the same answer."""
    call = json.dumps([server, tool, arguments], sort_keys=True)
    return {"ok": True, "tool": tool, "result_id": hashlib.sha256(call.encode()).hexdigest()[:12]}


def build(server: str, calls: Path) -> Server[Any]:
    tools = [types.Tool(name=row["name"], description=row["description"],
                        input_schema=row["input_schema"]) for row in corpus_tools(server)]
    if not tools:
        raise SystemExit(f"no tools of server {server!r} in {DATA}")
    names = {tool.name for tool in tools}

    async def list_tools(ctx: ServerRequestContext[Any],
                         params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: ServerRequestContext[Any],
                        params: types.CallToolRequestParams) -> types.CallToolResult:
        arguments = dict(params.arguments or {})
        if params.name not in names:
            text = json.dumps({"ok": False, "error": f"unknown tool {params.name!r}"})
            return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                        is_error=True)
        with calls.open("a") as log:  # written before answering: the agent waits on the answer
            log.write(json.dumps({"server": server, "tool": params.name,
                                  "arguments": arguments}) + "\n")
        text = json.dumps(result_of(server, params.name, arguments))
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

    return Server(server, version="1.0", on_list_tools=list_tools, on_call_tool=call_tool)


async def serve(server: Server[Any]) -> None:
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", help="the `server` field of tools.jsonl to serve")
    parser.add_argument("--calls", type=Path, required=True, help="JSON Lines log of tool calls")
    args = parser.parse_args(argv)
    anyio.run(serve, build(args.server, args.calls))


if __name__ == "__main__":
    main()

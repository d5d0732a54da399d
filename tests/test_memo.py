from tokenopt.memo import LRU, ByIdentity, short_key_cache


def test_lru_drops_the_least_recently_used() -> None:
    table: LRU[int] = LRU(2)
    table.put("a", 1)
    table.put("b", 2)
    assert table.get("a") == 1  # "a" is now the most recent
    table.put("c", 3)
    assert (table.get("a"), table.get("b"), table.get("c")) == (1, None, 3)


def test_by_identity_needs_the_very_object_and_the_same_extra_key() -> None:
    memo: ByIdentity[str] = ByIdentity(8)
    tools = [{"name": "a"}]
    memo.put(tools, "marked 5m", "5m")
    assert memo.get(tools, "5m") == "marked 5m"
    assert memo.get(tools, "1h") is None
    assert memo.get([{"name": "a"}], "5m") is None  # equal, but another object


def test_lru_keeps_its_values_within_the_byte_budget() -> None:
    table: LRU[str] = LRU(100, max_bytes=10)
    table.put("a", "aaaa", 4)
    table.put("b", "bbbb", 4)
    table.put("c", "cccc", 4)  # 12 bytes: "a" goes
    assert (table.get("a"), table.get("b"), table.get("c")) == (None, "bbbb", "cccc")
    assert table.size == 8
    table.put("b", "bb", 2)  # replacing a value counts its new size only
    assert table.size == 6
    assert table.put("huge", "x" * 11, 11) == "x" * 11  # returned, but not kept
    assert table.get("huge") is None and table.size == 6
    assert table.put("c", "y" * 11, 11) == "y" * 11  # nor is the older value under its key
    assert table.get("c") is None and table.size == 2
    table.clear()
    assert table.size == 0 and len(table) == 0


def test_by_identity_counts_the_size_of_what_it_keeps_alive() -> None:
    memo: ByIdentity[int] = ByIdentity(100, max_bytes=10)
    first, second = [1], [2]
    memo.put(first, 1, size=6)
    memo.put(second, 2, size=6)
    assert memo.get(first) is None and memo.get(second) == 2
    assert memo.size == 6


def test_a_short_key_cache_keeps_short_keys_and_computes_long_ones_each_time() -> None:
    calls: list[str] = []

    @short_key_cache(8, max_chars=4)
    def upper(text: str, suffix: str = "") -> str:
        calls.append(text)
        return text.upper() + suffix

    assert upper("abc") == upper("abc") == "ABC" and calls == ["abc"]  # kept
    assert upper("abc", "!") == "ABC!" and calls == ["abc", "abc"]  # another key
    assert upper("abcdef") == upper("abcdef") == "ABCDEF"  # computed each time, never kept
    assert calls[2:] == ["abcdef", "abcdef"] and upper.cache_info().currsize == 2
    upper.cache_clear()
    assert upper.cache_info().currsize == 0

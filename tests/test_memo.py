from tokenopt.memo import LRU, ByIdentity


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

"""`tokenopt erase-tenant`: one tenant's state and ledger entries go, every other tenant's stay.

The data is what a real sidecar wrote (every plugin's state, the ledger) for two
tenants; the CLI then runs against the same configuration, as an operator would.
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from redis.asyncio import Redis

from tests.integration.support import Sim
from tests.plugins.tools.corpus import in_form, mcp_tools
from tests.redis_server import RedisCluster, RedisServer
from tests.security.support import chat_body, redis_dump, shipped_sidecar
from tokenopt.cli import main
from tokenopt.identity import tenant_of
from tokenopt.ledger import SqliteLedger, open_ledger
from tokenopt.ledger.redis import RedisLedger
from tokenopt.settings import Settings
from tokenopt.store import RedisStore, open_store

KEYS = {"a": "sk-erase-tenant-a-41d0", "b": "sk-erase-tenant-b-8e2b"}
TENANTS = {name: tenant_of({"x-api-key": key}) for name, key in KEYS.items()}
TOOLS = in_form("/v1/messages", mcp_tools(40))
LAZY = {"lazy": True, "mode": "search", "preload_k": 3, "siblings": 0, "lazy_threshold_tokens": 0}


def write_config(tmp_path: Path, redis_url: str | None, prefix: str) -> Path:
    store = f'[store]\nredis_url = "{redis_url}"\nkey_prefix = "{prefix}"\n' if redis_url else ""
    path = tmp_path / "tokenopt.toml"
    path.write_text(f'[ledger]\npath = "{tmp_path / "ledger.sqlite"}"\n{store}')
    return path


def populate(sim: Sim, config: Path) -> None:
    """Two turns of one conversation per tenant through a sidecar with lazy tools."""
    settings = Settings.load(config, environ={})
    overrides: dict[str, Any] = {"ledger": settings.ledger.model_dump(),
                                 "store": settings.store.model_dump(), "plugins": {"tools": LAZY}}
    with shipped_sidecar(sim.url, **overrides) as sidecar:
        for key in KEYS.values():
            history: list[dict[str, Any]] = []
            for text in ("Open a pull request on GitHub", "List the pods in staging"):
                answer = httpx.post(sidecar.url + "/v1/messages", timeout=30,
                                    json=chat_body("/v1/messages", text, tools=TOOLS,
                                                   history=history),
                                    headers={"x-api-key": key, "x-tokenopt-conversation": "c-1"})
                assert answer.status_code == 200
                sidecar.sink.next()
                history += [{"role": "user", "content": text},
                            {"role": "assistant", "content": "Done."}]


def ledger_tenants(config: Path) -> Counter[str]:
    settings = Settings.load(config, environ={})

    async def read() -> Counter[str]:
        store = open_store(settings.store.redis_url, key_prefix=settings.store.key_prefix)
        ledger = open_ledger(settings, store)
        try:
            return Counter(entry.tenant for entry in await ledger.query())
        finally:
            await ledger.aclose()
            await store.aclose()

    return asyncio.run(read())


def erase(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["erase-tenant", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_erasing_a_tenant_from_the_sqlite_ledger_keeps_the_others(
    sim: Sim, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, None, "tokenopt:")
    populate(sim, config)
    assert ledger_tenants(config) == {TENANTS["a"]: 2, TENANTS["b"]: 2}

    code, out, _ = erase(capsys, TENANTS["a"], "--config", str(config))

    assert code == 0
    assert f"tenant {TENANTS['a']}" in out and "2 entries erased from sqlite at" in out
    assert ledger_tenants(config) == {TENANTS["b"]: 2}
    # Gone from the files too (zeroed pages, emptied WAL), not only from queries.
    files = b"".join(p.read_bytes() for p in tmp_path.glob("ledger.sqlite*"))
    assert TENANTS["a"].encode() not in files and TENANTS["b"].encode() in files


def test_erasing_a_tenant_from_redis_keeps_the_others(
    sim: Sim, tmp_path: Path, redis_url: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefix = f"erase-{uuid.uuid4().hex[:8]}:"
    config = write_config(tmp_path, redis_url, prefix)
    populate(sim, config)
    before = redis_dump(redis.Redis.from_url(redis_url), prefix + "*")
    assert TENANTS["a"].encode() in before and TENANTS["b"].encode() in before

    monkeypatch.setattr("sys.stdin", io.StringIO(KEYS["a"] + "\n"))  # the key, not the id
    code, out, _ = erase(capsys, "-", "--config", str(config), "--json")

    result = json.loads(out)
    assert code == 0 and result["tenant"] == TENANTS["a"]
    assert result["store_keys"] >= 3 and result["ledger_entries"] == 2  # tools, conv, fp, ...
    assert KEYS["a"] not in out and "redis at" in result["store"]
    after = redis_dump(redis.Redis.from_url(redis_url), prefix + "*")
    assert TENANTS["a"].encode() not in after
    assert after.count(TENANTS["b"].encode()) == before.count(TENANTS["b"].encode())
    assert ledger_tenants(config) == {TENANTS["b"]: 2}
    # Again: nothing left to erase, and saying so is not an error.
    code, out, _ = erase(capsys, TENANTS["a"], "--config", str(config), "--json")
    assert code == 0 and json.loads(out)["store_keys"] == json.loads(out)["ledger_entries"] == 0


def test_a_value_that_is_not_a_tenant_id_is_refused_and_never_echoed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, None, "tokenopt:")
    code, out, err = erase(capsys, KEYS["a"], "--config", str(config))
    assert code == 2 and out == "" and "not a tenant id" in err and KEYS["a"] not in err


def test_an_unreachable_redis_is_an_error_not_a_silent_success(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
    make_redis_server: Callable[..., RedisServer],
) -> None:
    server = make_redis_server(password="pw-erase-down")
    config = write_config(tmp_path, server.url, "tokenopt:")
    server.stop()
    code, out, err = erase(capsys, TENANTS["a"], "--config", str(config))
    assert code == 2 and out == "" and "unavailable" in err and "pw-erase-down" not in err


@pytest.mark.anyio
async def test_on_redis_cluster_the_tenants_keys_are_found_on_every_node() -> None:
    with RedisCluster() as cluster:
        store = RedisStore(cluster.url)
        try:
            for name, tenant in TENANTS.items():
                for plugin in ("tools", "normalize"):
                    space = store.namespace(tenant).namespace(plugin)
                    for i in range(30):  # subjects spread over the three masters' slots
                        await space.set(f"conv:{name}-{i}", b"state")
            erased = await store.erase_namespace(TENANTS["a"])
            left_b = [await store.namespace(TENANTS["b"]).namespace("tools").get(f"conv:b-{i}")
                      for i in range(30)]
            left_a = [await store.namespace(TENANTS["a"]).namespace("tools").get(f"conv:a-{i}")
                      for i in range(30)]
        finally:
            await store.aclose()
    assert erased == 60 and left_a == [None] * 30 and left_b == [b"state"] * 30



@pytest.mark.anyio
async def test_day_lists_left_by_earlier_versions_are_erased_too(
    redis_url: str, tmp_path: Path
) -> None:
    prefix = f"legacy-{uuid.uuid4().hex[:8]}:"
    rows = [json.dumps({"ts": 1.0, "tenant": TENANTS[name], "id": f"{name}{i}"})
            for name in ("a", "b") for i in range(2)]
    client = Redis.from_url(redis_url)
    await client.rpush(f"{prefix}ledger:2026-01-01", *rows)
    ledger = RedisLedger(client, key_prefix=prefix, retention_days=90,
                         local=SqliteLedger(tmp_path / "spool.sqlite"))
    try:
        erased = await ledger.erase_tenant(TENANTS["a"])
        left = await client.lrange(f"{prefix}ledger:2026-01-01", 0, -1)
    finally:
        await ledger.aclose()
        await client.aclose()
    assert erased == 2 and [json.loads(raw)["tenant"] for raw in left] == [TENANTS["b"]] * 2


def test_the_erase_endpoint_answers_503_when_redis_is_down(
    sim: Sim, make_redis_server: Callable[..., RedisServer]
) -> None:
    server = make_redis_server()
    with shipped_sidecar(sim.url, store={"redis_url": server.url},
                         admin={"token": "admin-503"}) as sidecar:
        server.stop()
        answer = httpx.delete(f"{sidecar.url}/tokenopt/tenants/{TENANTS['a']}",
                              headers={"authorization": "Bearer admin-503"}, timeout=30)
    assert answer.status_code == 503 and "not erased" in answer.json()["error"]["message"]

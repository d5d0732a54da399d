"""The store contract, run once more on a real 3-master Redis Cluster."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from tests.redis_server import RedisCluster
from tests.store.test_contract import *  # (the contract's tests, collected here too)
from tests.store.test_contract import Backend
from tokenopt.store import RedisStore


@pytest.fixture  # type: ignore[no-redef]  # overrides the imported one
async def backend(redis_cluster: RedisCluster, anyio_backend: str) -> AsyncIterator[Backend]:
    prefix = f"tokenopt-test:{uuid.uuid4().hex}:"
    store = RedisStore(redis_cluster.url, key_prefix=prefix)
    assert store.cluster
    try:
        yield Backend(store)
    finally:
        keys = [key async for key in store.client.scan_iter(match=prefix + "*")]
        for key in keys:
            await store.client.delete(key)
        await store.aclose()

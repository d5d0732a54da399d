from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.redis_server import RedisCluster


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A real 3-master Redis Cluster on loopback for the session. Never skips."""
    try:
        cluster = RedisCluster()
        cluster.start()
    except (OSError, RuntimeError, ValueError) as exc:
        pytest.fail(f"no Redis Cluster: {exc}")
    try:
        yield cluster
    finally:
        cluster.close()

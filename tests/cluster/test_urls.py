"""Which URL selects Redis Cluster, and the key scheme that keeps a conversation on one slot."""

from __future__ import annotations

import pytest

from tests.redis_server import free_port
from tokenopt.exceptions import ConfigError
from tokenopt.store import FallbackStore, RedisStore, StoreUnavailable, open_store
from tokenopt.store.base import hash_tag

pytestmark = pytest.mark.anyio


def test_a_cluster_url_selects_the_cluster_client_and_a_plain_one_does_not() -> None:
    from redis.asyncio import Redis
    from redis.asyncio import RedisCluster as ClusterClient

    cluster = RedisStore("redis+cluster://10.0.0.1:7000,10.0.0.2:7001")
    plain = RedisStore("redis://10.0.0.1:6379/0")
    assert cluster.cluster and isinstance(cluster.client, ClusterClient)
    assert not plain.cluster and isinstance(plain.client, Redis)
    assert [(n.host, n.port) for n in cluster.client.nodes_manager.startup_nodes.values()] == [
        ("10.0.0.1", 7000), ("10.0.0.2", 7001)]
    store = open_store("rediss+cluster://:pw@h:7000")
    assert isinstance(store, FallbackStore) and isinstance(store.primary, RedisStore)
    assert store.primary.cluster


@pytest.mark.parametrize(("url", "message"), [
    ("redis+cluster://:pw@h:7000/3", "only database 0"),
    ("redis+cluster://:pw@h", "is not host:port"),
    ("redis+cluster://:pw@/0", "no cluster node"),
])
def test_a_malformed_cluster_url_is_a_config_error_without_the_password(
    url: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        RedisStore(url)
    assert "pw" not in str(caught.value)


def test_braces_in_the_key_prefix_are_refused_on_a_cluster() -> None:
    with pytest.raises(ConfigError, match="braces"):
        RedisStore("redis+cluster://h:7000", key_prefix="app{1}:")


def test_the_hash_tag_is_tenant_and_subject_and_names_cannot_break_out_of_it() -> None:
    assert hash_tag(("t_a", "normalize"), "conv:c1") == hash_tag(("t_a", "tools"), "tools:c1")
    assert hash_tag(("t_a", "normalize"), "conv:c1") == "{t_a:c1}"
    assert hash_tag(("t_a",), "conv:c1") != hash_tag(("t_b",), "conv:c1")
    assert hash_tag(("t_a",), "conv:}x{") == "{t_a:%7Dx%7B}"  # one `}`: the tag's own
    assert hash_tag((), "plain") == "{plain}"


async def test_an_unreachable_cluster_is_unavailable_and_its_password_stays_out() -> None:
    store = RedisStore(f"redis+cluster://:s3cret@127.0.0.1:{free_port()},127.0.0.1:{free_port()}")
    with pytest.raises(StoreUnavailable) as caught:
        await store.ping()
    assert "s3cret" not in str(caught.value) and "***" in str(caught.value)
    await store.aclose()

"""Three sidecar replicas on one real Redis Cluster: a conversation may move between them.

Each turn of a conversation goes to the next replica. What one replica learned
(the tools it loaded, the request fingerprint the cache-break detector compares
with) must be what the next one finds, and the ledger, read through any
replica, must hold every request exactly once.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.integration.support import QueueSink, Sidecar, Sim, settings_for
from tests.plugins.tools.corpus import JSON, ROUTES, in_form, mcp_tools, names, ranked, request
from tests.redis_server import RedisCluster
from tokenopt.engine import Engine
from tokenopt.identity import CONVERSATION_HEADER
from tokenopt.proxy import create_app
from tokenopt.serving import ServerThread
from tokenopt.store import open_store

SEARCH = "tokenopt_search_tools"
TOOLS = mcp_tools(240)
Q1 = "Open a pull request on GitHub that merges my feature branch into main"
Q2 = "List the pods running in the staging Kubernetes namespace"
Q3 = "Restart the deployment that serves the checkout page"
LAZY: dict[str, Any] = {"lazy": True, "mode": "search", "preload_k": 3, "siblings": 0}
ADMIN = "admin-token-cluster"
KEY = {"x-api-key": "sk-cluster-tenant"}


@contextlib.contextmanager
def replicas(sim: Sim, cluster: RedisCluster, tmp_path: Path, prefix: str,
             n: int = 3) -> Iterator[list[Sidecar]]:
    """`n` sidecars with every default plugin, sharing `cluster` under `prefix`."""
    with contextlib.ExitStack() as stack:
        started = []
        for i in range(n):
            settings = settings_for(
                sim.url, store={"redis_url": cluster.url, "key_prefix": prefix},
                ledger={"path": str(tmp_path / f"replica{i}.sqlite")}, admin={"token": ADMIN},
                plugins={"tools": LAZY}, pipeline={"strict": True})
            sink = QueueSink()
            # A generous call timeout: this is about state carried between replicas, and on a
            # loaded machine a cluster call can outlast the default 0.5 s (the outage path).
            store = open_store(cluster.url, key_prefix=prefix, timeout=10.0)
            engine = Engine.from_settings(settings, sinks=[sink], store=store)
            url = stack.enter_context(ServerThread(create_app(settings, engine=engine)))
            started.append(Sidecar(url, engine, sink))
        yield started


def send(sidecar: Sidecar, route: str, body: JSON, conversation: str) -> tuple[JSON, Any]:
    """Post one turn; return the body the simulator received and the exchange record."""
    response = httpx.post(sidecar.url + route, json=body, timeout=30,
                          headers={**KEY, CONVERSATION_HEADER: conversation})
    assert response.status_code == 200, response.text
    return response.json(), sidecar.sink.next()


def turn(route: str, tools: list[JSON], history: list[JSON], user: str,
         system: str | None = None) -> JSON:
    body = request(route, in_form(route, tools), user, history=history)
    if system is not None:
        if route == "/v1/messages":
            body["system"] = system
        else:
            key = "input" if route == "/v1/responses" else "messages"
            body[key] = [{"role": "system", "content": system}, *body[key]]
    return body


def forwarded(sim: Sim) -> JSON:
    parsed: JSON = json.loads(sim.bodies[-1])
    return parsed


@pytest.fixture
def prefix() -> str:
    return f"replicas{uuid.uuid4().hex[:8]}:"


@pytest.mark.parametrize("route", ROUTES, ids=[r.rsplit("/", 1)[1] for r in ROUTES])
def test_tools_loaded_on_one_replica_are_carried_by_the_next(
    sim: Sim, redis_cluster: RedisCluster, tmp_path: Path, prefix: str, route: str
) -> None:
    with replicas(sim, redis_cluster, tmp_path, prefix) as (a, b, c):
        send(a, route, turn(route, TOOLS, [], Q1), "conv-tools")
        first = names(forwarded(sim))
        loaded = [n for n in first if n != SEARCH]
        assert loaded and not set(loaded) & set(ranked(TOOLS, Q2, 3))

        history = [{"role": "user", "content": Q1}, {"role": "assistant", "content": "Done."}]
        send(b, route, turn(route, TOOLS, history, Q2), "conv-tools")
        second = names(forwarded(sim))
        history += [{"role": "user", "content": Q2}, {"role": "assistant", "content": "Done."}]
        send(c, route, turn(route, TOOLS, history, Q3), "conv-tools")
        third = names(forwarded(sim))

        # B found A's loaded set and appended to it; C found both.
        assert second[:len(first)] == first and len(second) > len(first)
        assert third[:len(second)] == second
        # A conversation no replica has seen starts from nothing.
        send(c, route, turn(route, TOOLS, history, Q3), "conv-other")
        assert not set(loaded) & set(names(forwarded(sim)))


def test_cache_break_history_and_ledger_are_shared_by_every_replica(
    sim: Sim, redis_cluster: RedisCluster, tmp_path: Path, prefix: str
) -> None:
    few = mcp_tools(4)
    sent: list[str] = []
    with replicas(sim, redis_cluster, tmp_path, prefix) as sidecars:
        records = {}
        for route in ROUTES:
            conversation = f"conv-break-{route}"
            history: list[JSON] = []
            systems = ["You are a helpful assistant.", "You are a terse assistant.",
                       "You are a terse assistant."]
            for i, system in enumerate(systems):
                body = turn(route, few, history, f"step {i}", system)
                _, record = send(sidecars[i], route, body, conversation)
                sent.append(record.ts)
                records[(route, i)] = record
                history += [{"role": "user", "content": f"step {i}"},
                            {"role": "assistant", "content": "ok"}]
        for route in ROUTES:
            breaks = [records[(route, i)].plugin_notes.get("normalize", {}).get("cache_break")
                      for i in range(3)]
            # Turn 2 ran on another replica than turn 1, yet compared with it: the system
            # prompt changed. Turn 3 (a third replica) kept turn 2's prefix: no break.
            assert breaks[0] is None and breaks[2] is None, breaks
            # (Responses carries an input system message as message 0.)
            where = "messages" if route == "/v1/responses" else "system"
            assert breaks[1] is not None and breaks[1]["segment"] == where, breaks

        # Every replica's live report shows all requests once: the ledger is one.
        for sidecar in sidecars:
            report = httpx.get(sidecar.url + "/tokenopt/report?group_by=route",
                               headers={"authorization": f"Bearer {ADMIN}"}, timeout=30).json()
            assert report["totals"]["requests"] == len(sent) == 9
            assert {g["key"]: g["requests"] for g in report["groups"]} == dict.fromkeys(ROUTES, 3)
        for sidecar in sidecars:
            ledger = sidecar.engine.ledger
            assert ledger is not None and getattr(ledger, "spooled", None) == 0


def test_one_conversations_keys_share_a_slot_and_conversations_spread_over_the_masters(
    sim: Sim, redis_cluster: RedisCluster, tmp_path: Path, prefix: str
) -> None:
    route = "/v1/messages"
    with replicas(sim, redis_cluster, tmp_path, prefix) as sidecars:
        for i in range(12):
            send(sidecars[i % 3], route, turn(route, TOOLS, [], Q1), f"conv-{i}")
    client = redis.RedisCluster(host="127.0.0.1", port=redis_cluster.nodes[0].port)
    try:
        keys = [k.decode() for k in client.scan_iter(match=prefix + "{*")]
        by_conversation: dict[str, set[str]] = {}
        for key in keys:
            tag = key[len(prefix):key.index("}") + 1]
            by_conversation.setdefault(tag, set()).add(key)
        conversations = {t: ks for t, ks in by_conversation.items() if ":conv-" in t}
        assert len(conversations) == 12
        nodes = set()
        for tag, group in conversations.items():
            kinds = {k.rpartition(":")[2].split("%3A")[0] for k in group}
            assert {"conv", "fp", "tools"} <= kinds, (tag, group)  # normalize's and tools' keys
            slots = {client.keyslot(k) for k in group}  # type: ignore[no-untyped-call]
            assert len(slots) == 1
            node = client.get_node_from_key(next(iter(group)))  # type: ignore[no-untyped-call]
            nodes.add(node.name)
            # A multi-key transaction over the conversation is legal on the cluster.
            with client.pipeline(transaction=True) as pipe:  # type: ignore[no-untyped-call]
                for key in sorted(group):
                    pipe.pttl(key)
                assert all(ttl > 0 for ttl in pipe.execute())
        assert len(nodes) >= 2  # 12 conversations do not all hash to one master
    finally:
        client.close()

"""One tenant never meets another's state: loaded tools, conversation state, cache breaks, rows.

Two API keys (two tenants) use the same conversation id through one sidecar, on
the in-process store and on a real Redis. Tenant B's turn must behave as if A had
never been there: no tools A's conversation loaded, no cache break measured
against A's prompt, no share of A's conversation state. Report rows are grouped
by tenant and readable only with the admin token, and erasing A leaves B whole.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from tests.integration.support import Sidecar, Sim
from tests.plugins.tools.corpus import in_form, mcp_tools, name_of, ranked
from tests.security.support import ADMIN, admin, chat_body, redis_dump, report, shipped_sidecar
from tokenopt.identity import tenant_of
from tokenopt.records import ExchangeRecord
from tokenopt.store import RedisStore

KEY_A, KEY_B = "sk-tenant-a-5e1f", "sk-tenant-b-9c22"
TENANT_A, TENANT_B = tenant_of({"x-api-key": KEY_A}), tenant_of({"x-api-key": KEY_B})
CONVERSATION = "shared-conversation-id"  # the same id from both tenants, on purpose
TOOLS = mcp_tools(240)
Q1 = "Open a pull request on GitHub that merges my feature branch into main"
Q2 = "List the pods running in the staging Kubernetes namespace"
SYSTEM_1, SYSTEM_2 = "You are a careful DevOps agent.", "You are a careful DevOps agent. Be brief."
LAZY = {"lazy": True, "mode": "search", "preload_k": 3, "siblings": 0, "lazy_threshold_tokens": 0}


class Client:
    """Sends one tenant's turns and returns what the upstream received for each."""

    def __init__(self, sidecar: Sidecar, sim: Sim, route: str) -> None:
        self.sidecar, self.sim, self.route = sidecar, sim, route

    def turn(self, key: str, text: str, system: str, history: list[dict[str, Any]] | None = None
             ) -> tuple[list[str], ExchangeRecord]:
        seen = len(self.sim.app.state.received)
        body = chat_body(self.route, text, system=system, tools=in_form(self.route, TOOLS),
                         history=history)
        answer = httpx.post(self.sidecar.url + self.route, json=body, timeout=30, headers={
            "x-api-key": key, "anthropic-version": "2023-06-01",
            "x-tokenopt-conversation": CONVERSATION})
        assert answer.status_code == 200, answer.text
        record = self.sidecar.sink.next()
        forwarded = json.loads(self.sim.app.state.received[seen][3])
        return [n for t in forwarded.get("tools", []) if (n := name_of(t))], record


class Stored:
    """Reads one tenant's plugin state where the sidecar keeps it."""

    def __init__(self, sidecar: Sidecar, redis_url: str | None, prefix: str) -> None:
        self.sidecar, self.redis_url, self.prefix = sidecar, redis_url, prefix

    def get(self, tenant: str, plugin: str, key: str) -> Any:
        if self.redis_url is None:  # the in-process store: plain dict operations, any loop
            store = self.sidecar.engine.store.namespace(tenant).namespace(plugin)
            raw = asyncio.run(store.get(key))
        else:
            full = RedisStore(self.redis_url, key_prefix=self.prefix).namespace(
                tenant).namespace(plugin).full_key(key)
            with redis.Redis.from_url(self.redis_url) as client:
                raw = client.get(full)
        return json.loads(raw) if raw else None

    def mentions(self, tenant: str) -> bool:
        """Whether any Redis key or value names `tenant` (False on the in-process store)."""
        if self.redis_url is None:
            return False
        client = redis.Redis.from_url(self.redis_url)
        return tenant.encode() in redis_dump(client, self.prefix + "*")


@pytest.fixture(params=["memory", "redis"])
def setup(request: pytest.FixtureRequest, sim: Sim, tmp_path: Any
          ) -> Iterator[tuple[Client, Stored]]:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    prefix = f"tenants-{uuid.uuid4().hex[:8]}:"
    store = {"redis_url": url, "key_prefix": prefix} if url else {}
    route = "/v1/messages" if url is None else "/v1/chat/completions"
    with shipped_sidecar(sim.url, store=store, admin={"token": ADMIN},
                         ledger={"path": str(tmp_path / "ledger.sqlite")},
                         plugins={"tools": LAZY}) as sidecar:
        yield Client(sidecar, sim, route), Stored(sidecar, url, prefix)


def test_a_tenant_never_sees_another_tenants_conversation(setup: tuple[Client, Stored]) -> None:
    client, stored = setup
    history = [{"role": "user", "content": Q1}, {"role": "assistant", "content": "Sure."}]

    a_first, _ = client.turn(KEY_A, Q1, SYSTEM_1)
    b_second, b_record = client.turn(KEY_B, Q2, SYSTEM_2, history)
    a_second, a_record = client.turn(KEY_A, Q2, SYSTEM_2, history)

    loaded_by_a = [n for n in a_first if n in {t["name"] for t in TOOLS}]
    assert loaded_by_a and not set(loaded_by_a) & set(ranked(TOOLS, Q2, 3))
    # A's conversation keeps the tools it loaded; B's turn, on the same id, has none of them.
    assert a_second[:len(a_first)] == a_first
    assert not set(loaded_by_a) & set(b_second)
    # The system prompt changed between A's turns: a break for A, nothing to compare for B.
    assert a_record.plugin_notes["normalize"]["cache_break"]["segment"] == "system"
    assert "cache_break" not in b_record.plugin_notes.get("normalize", {})
    # Each tenant's state is its own: A counted two turns, B one; B's loaded set is not A's.
    assert stored.get(TENANT_A, "normalize", f"conv:{CONVERSATION}")["turns"] == 2
    assert stored.get(TENANT_B, "normalize", f"conv:{CONVERSATION}")["turns"] == 1
    a_tools = stored.get(TENANT_A, "tools", f"tools:{CONVERSATION}")["loaded"]
    b_tools = stored.get(TENANT_B, "tools", f"tools:{CONVERSATION}")["loaded"]
    assert set(loaded_by_a) <= set(a_tools) and not set(loaded_by_a) & set(b_tools)


def test_report_rows_are_per_tenant_and_for_the_admin_only(setup: tuple[Client, Stored]) -> None:
    client, stored = setup
    url = client.sidecar.url
    client.turn(KEY_A, Q1, SYSTEM_1)
    client.turn(KEY_A, Q2, SYSTEM_1)
    client.turn(KEY_B, Q1, SYSTEM_1)
    assert stored.redis_url is None or stored.mentions(TENANT_A)

    for key in (KEY_A, KEY_B):  # a tenant's own API key opens no report
        as_tenant = httpx.get(url + "/tokenopt/report", headers={"authorization": f"Bearer {key}",
                                                                   "x-api-key": key})
        assert as_tenant.status_code == 403
    groups = {g["key"]: g["requests"] for g in report(url, group_by="tenant").json()["groups"]}
    assert groups == {TENANT_A: 2, TENANT_B: 1}

    erased = httpx.delete(f"{url}/tokenopt/tenants/{TENANT_A}", headers=admin())
    assert erased.status_code == 200 and erased.json()["ledger_entries"] == 2
    assert erased.json()["store_keys"] > 0
    groups = {g["key"]: g["requests"] for g in report(url, group_by="tenant").json()["groups"]}
    assert groups == {TENANT_B: 1}
    assert stored.get(TENANT_A, "normalize", f"conv:{CONVERSATION}") is None
    assert not stored.mentions(TENANT_A)
    assert stored.get(TENANT_B, "normalize", f"conv:{CONVERSATION}")["turns"] == 1

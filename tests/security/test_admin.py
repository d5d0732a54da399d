"""Admin endpoints answer only to the admin token, and the token is compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

import tokenopt.proxy
from tests.integration.support import Sidecar, Sim, running_sidecar
from tests.security.support import ADMIN, chat_body
from tokenopt.identity import tenant_of

KEY = "sk-admin-test-tenant"
TENANT = tenant_of({"x-api-key": KEY})
# Wrong in every way a sloppy check lets through: prefix, extension, case, same length.
WRONG = [ADMIN[:-1], ADMIN + "x", ADMIN.upper(), ADMIN[:-1] + "?", " " + ADMIN + "x"]
Call = Callable[[httpx.Client, dict[str, str]], httpx.Response]
ENDPOINTS: dict[str, Call] = {
    "report": lambda c, h: c.get("/tokenopt/report", headers=h),
    "erase": lambda c, h: c.delete(f"/tokenopt/tenants/{TENANT}", headers=h),
}


@pytest.fixture
def sidecar(sim: Sim, tmp_path: Path) -> Iterator[Sidecar]:
    with running_sidecar(sim.url, admin={"token": ADMIN},
                         ledger={"path": str(tmp_path / "ledger.sqlite")}) as server:
        answer = httpx.post(server.url + "/v1/chat/completions", headers={"x-api-key": KEY},
                            json=chat_body("/v1/chat/completions", "Hi"))
        assert answer.status_code == 200
        server.sink.next()
        yield server


def requests_in_ledger(sidecar: Sidecar) -> int:
    answer = httpx.get(sidecar.url + "/tokenopt/report",
                       headers={"authorization": f"Bearer {ADMIN}"})
    return int(answer.json()["totals"]["requests"])


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_admin_endpoints_refuse_without_the_right_token(sidecar: Sidecar, endpoint: str) -> None:
    call = ENDPOINTS[endpoint]
    with httpx.Client(base_url=sidecar.url) as client:
        absent = [call(client, headers).status_code for headers in (
            {}, {"x-api-key": ADMIN}, {"authorization": f"Basic {ADMIN}"},
            {"authorization": ADMIN}, {"cookie": f"token={ADMIN}"})]
        in_query = client.get(f"/tokenopt/report?token={ADMIN}").status_code
        wrong = [call(client, {"authorization": f"Bearer {token}"}).status_code for token in WRONG]

    assert absent == [401] * 5 and in_query == 401
    assert wrong == [403] * len(WRONG)
    assert requests_in_ledger(sidecar) == 1  # nothing was erased by the refused calls


def test_the_right_token_opens_both(sidecar: Sidecar) -> None:
    assert any(record.tenant == TENANT for record in sidecar.engine.recent.records)
    with httpx.Client(base_url=sidecar.url) as client:
        shown = ENDPOINTS["report"](client, {"authorization": f"bearer {ADMIN}"})
        erased = ENDPOINTS["erase"](client, {"authorization": f"Bearer {ADMIN}"})
        bad_id = client.delete("/tokenopt/tenants/sk-not-an-id",
                               headers={"authorization": f"Bearer {ADMIN}"})

    assert shown.status_code == 200 and shown.json()["totals"]["requests"] == 1
    assert erased.status_code == 200 and erased.json()["ledger_entries"] == 1
    assert requests_in_ledger(sidecar) == 0
    assert all(record.tenant != TENANT for record in sidecar.engine.recent.records)
    assert bad_id.status_code == 400 and "sk-not-an-id" not in bad_id.text  # never echoed


def test_the_token_is_decided_by_a_constant_time_comparison(
    sidecar: Sidecar, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    verdict = {"value": False}

    def compare_digest(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return verdict["value"] and hmac.compare_digest(a, b)

    monkeypatch.setattr(tokenopt.proxy, "hmac", SimpleNamespace(compare_digest=compare_digest))
    right = {"authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=sidecar.url) as client:
        refused = [call(client, right).status_code for call in ENDPOINTS.values()]
        verdict["value"] = True
        accepted = ENDPOINTS["report"](client, right).status_code

    # With compare_digest saying no, even the right token is refused: nothing else decides.
    assert refused == [403, 403] and accepted == 200
    assert calls == [(ADMIN.encode(), ADMIN.encode())] * 3


def test_without_an_admin_token_the_endpoints_do_not_exist(sim: Sim, tmp_path: Path) -> None:
    ledger = {"path": str(tmp_path / "l.sqlite")}
    with running_sidecar(sim.url, ledger=ledger) as sidecar, \
            httpx.Client(base_url=sidecar.url) as client:
        statuses = [call(client, {"authorization": "Bearer anything"}).status_code
                    for call in ENDPOINTS.values()]
    assert statuses == [404, 404]

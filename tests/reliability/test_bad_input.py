"""Hostile bodies through the sidecar (every plugin on) and straight to the simulator.

For each: never a 500, errors in the client's dialect, one record per request, the
documented outcome (forwarded as sent, optimised, or refused with a 4xx), and the
sidecar keeps serving. A fast hypothesis slice here; `benchmarks/fuzz.py` runs 10,000+.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings

from tests.integration.support import running_sim, settings_for
from tests.redis_server import RedisServer
from tests.reliability.corpus import VALID, Case, Expect, encode, mutated_bodies, nasty_cases
from tests.reliability.rig import PLUGINS, Rig, Sent, is_dialect_error, problems, running_rig
from tokenopt.engine import Engine
from tokenopt.proxy import create_app
from tokenopt.serving import ServerThread

# benchmarks/fuzz.py runs the whole corpus. Here: the multi-megabyte cases on no route,
# 10,000 tools on one, and every field of every dialect with 2 of its 14 wrong values.
SLOW = {"size/huge_text", "size/huge_tool_description", "size/huge_number", "tools/10000"}
READER = "wrong_type/tools_reader/"  # every one of these: they once failed the tools plugin open


def in_suite(index: int, case: Case) -> bool:
    if case.name.startswith("wrong_type/") and not case.name.startswith(READER):
        return index % 7 == 0
    return case.name not in SLOW or (case.name, case.route) == ("tools/10000", "/v1/messages")


CORPUS = [case for index, case in enumerate(nasty_cases()) if in_suite(index, case)]


@pytest.fixture(scope="module")
def rig() -> Iterator[tuple[BlockingPortal, Rig]]:
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(
            running_rig()) as started:
        yield portal, started


def outcome_problems(case: Case, sent: Sent) -> list[str]:
    found = problems(sent)
    if case.expect is Expect.FORWARDED and sent.forwarded != [case.body]:
        found.append("not forwarded as sent")
    if case.expect is Expect.PASSED and not sent.forwarded:
        found.append(f"did not reach the upstream ({sent.status} {sent.payload[:120]!r})")
    if case.expect is Expect.REFUSED and (sent.forwarded or not 400 <= sent.status < 500):
        found.append(f"not refused ({sent.status})")
    return found


def test_every_nasty_case_gets_its_documented_outcome(rig: tuple[BlockingPortal, Rig]) -> None:
    portal, started = rig
    failures: dict[str, list[str]] = {}
    records = len(started.sink.records)
    for case in CORPUS:
        sent = portal.call(started.send, case.route, case.body)
        direct = portal.call(started.direct, case.route, case.body)
        found = outcome_problems(case, sent)
        if direct.status not in (200, 400) or (direct.status == 400 and not is_dialect_error(
                case.route, direct.payload)):
            found.append(f"simulator answered {direct.status}: {direct.payload[:120]!r}")
        if found:
            failures[f"{case.route} {case.name}"] = found
    portal.call(started.engine.drain)
    assert failures == {}
    assert len(started.sink.records) - records == len(CORPUS)  # one record each, none lost
    ok = portal.call(started.send, "/v1/messages", encode(VALID["/v1/messages"]))
    assert ok.status == 200  # and the sidecar still serves


def test_wrong_typed_fields_the_tools_plugin_reads_do_not_fail_it_open(
        rig: tuple[BlockingPortal, Rig]) -> None:
    # A wrong-typed field reads as the dialect defines (no known type, no tool named),
    # and lazy tools still run: no `TypeError: unhashable type`, no AttributeError.
    portal, started = rig
    cases = [case for case in nasty_cases() if case.name.startswith(READER)]
    assert len(cases) == 3 * 6 + 4
    outcomes: dict[str, tuple[str | None, bool]] = {}
    for case in cases:
        sent = portal.call(started.send, case.route, case.body)
        assert outcome_problems(case, sent) == []
        portal.call(started.engine.drain)
        record = started.sink.records[-1]
        outcomes[f"{case.route} {case.name}"] = (
            record.fail_open, "lazy" in record.plugin_notes.get("tools", {}))
    assert outcomes == {name: (None, True) for name in outcomes}


def test_the_corpus_covers_every_class_of_bad_input() -> None:
    names = {case.name.split("/")[0] for case in nasty_cases()}
    assert names == {"syntax", "truncated", "deep", "utf8", "wrong_type", "tools", "size", "unknown"}
    assert {case.route for case in nasty_cases()} == set(VALID)


@pytest.mark.parametrize("route", sorted(VALID))
def test_more_tools_than_the_limit_are_refused_in_the_clients_dialect(
        rig: tuple[BlockingPortal, Rig], route: str) -> None:
    portal, started = rig
    case = next(c for c in nasty_cases() if c.name == "tools/10001" and c.route == route)
    sent = portal.call(started.send, route, case.body)
    assert sent.status == 400 and sent.forwarded == []
    error = json.loads(sent.payload)["error"]
    assert error["type"] == "invalid_request_error" and "10001 tools" in error["message"]
    if route == "/v1/messages":
        assert json.loads(sent.payload)["type"] == "error"
    portal.call(started.engine.drain)
    assert started.sink.records[-1].error == "policy:max_tools"


def test_a_body_nested_5000_deep_is_forwarded_and_the_upstream_answers_400(
        rig: tuple[BlockingPortal, Rig]) -> None:
    # The reported bug: RecursionError in `_prepare`, a 500 on every route.
    portal, started = rig
    body = b'{"model": "gpt-4.1", "messages": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    for route in VALID:
        sent = portal.call(started.send, route, body)
        assert sent.status == 400 and sent.forwarded == [body]
        assert is_dialect_error(route, sent.payload)
    portal.call(started.engine.drain)
    assert [r.fail_open for r in started.sink.records[-3:]] == ["unreadable_body"] * 3


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated_bodies())
def test_generated_bodies_never_get_a_500(
        rig: tuple[BlockingPortal, Rig], generated: tuple[str, bytes]) -> None:
    portal, started = rig
    route, body = generated
    sent = portal.call(started.send, route, body)
    assert problems(sent) == []
    assert sent.forwarded or 400 <= sent.status < 500  # reached the upstream, or refused
    direct = portal.call(started.direct, route, body)
    assert direct.status in (200, 400), direct.payload[:200]


def test_invalid_utf8_to_a_redis_backed_sidecar_gets_an_answer(
        make_redis_server: Callable[..., RedisServer]) -> None:
    # The reported bug: the connection was reset. Real sockets, real Redis, every plugin.
    server = make_redis_server()
    raw = (b'{"model":"claude-sonnet-4-6","max_tokens":64,'
           b'"messages":[{"role":"user","content":"\xff\xfe\xfd"}]}')
    bodies = (raw, raw.replace(b"\xff\xfe\xfd", b"\\ud800\\udfff\\udc00"),
              raw.replace(b"claude-sonnet-4-6", b"\xff"))
    with running_sim() as sim:
        settings_ = settings_for(sim.url, store={"redis_url": server.url}, plugins=PLUGINS)
        engine = Engine.from_settings(settings_)
        with ServerThread(create_app(settings_, engine=engine)) as url:
            for body in bodies:
                response = httpx.post(url + "/v1/messages", content=body, timeout=30, headers={
                    "x-api-key": "sk-utf8", "content-type": "application/json"})
                assert response.status_code == 400  # the simulator's, relayed
                assert response.json()["type"] == "error"
            assert httpx.get(url + "/healthz").status_code == 200

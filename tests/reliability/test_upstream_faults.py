"""A misbehaving upstream behind the sidecar, over real sockets: what the client gets, what the ledger keeps.

The simulator makes each fault (its `x-sim-*` headers); a thin wrapper in front of it
adds those headers to one numbered call only (a search detour's second round), can
hold a stream in lock-step with the client, and says when the simulator's side of a
call has ended. The sidecar runs every default plugin, the tools plugin lazy, and a
real SQLite ledger.

Behaviour proved here, per fault:

- 429 / 5xx: status, body and `retry-after` relayed unchanged; recorded with that status.
- refused, or reset before answering: 502 JSON in the client's dialect; no answer read,
  so `error` names the cause. Read timeout before the answer: 504 likewise.
- reset, or silence past the read timeout, mid-stream or mid-body: the status is out, so
  the connection is aborted (the client sees the break, as it would from the upstream)
  and the record is incomplete with the cause as `error`.
- a trickling stream: each chunk relayed before the upstream sends the next.
- a stream that never ends: relayed until the client leaves (the read timeout bounds
  silence, not length); then the upstream call is closed and the record is incomplete.
- an answer larger than the JSON tap limit: relayed byte for byte, recorded with usage unknown.
- a search detour whose second call fails: the client gets the upstream's error (or a
  clean 502/504; a stream is ended with the dialect's error event), the record notes
  every call and the failure, the detour metrics count it, and the ledger entry counts
  and prices the first call as the simulator billed it, all of it the detour's cost.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import queue
import sqlite3
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest

from tests.integration.support import QueueSink, settings_for
from tests.plugins.tools.corpus import in_form, mcp_tools, ranked, recorded_call, request
from tests.reliability.rig import is_dialect_error
from tokenopt._sse import SSEParser
from tokenopt.asgi import MAX_JSON_TAP_BYTES
from tokenopt.dialects.base import Usage, loads_object
from tokenopt.engine import Engine
from tokenopt.identity import CONVERSATION_HEADER
from tokenopt.ledger import LedgerEntry
from tokenopt.pricing import PriceBook
from tokenopt.proxy import create_app
from tokenopt.records import ExchangeRecord
from tokenopt.serving import ServerThread, bind
from tokenopt.sim import create_sim_app
from tokenopt.sim.app import route_for
from tokenopt.sim.bills import Bill
from tokenopt.sim.script import RECORDED_HEADER
from tokenopt.types import Message, Receive, Scope, Send

ROUTES = ("/v1/chat/completions", "/v1/responses", "/v1/messages")
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-faults",
           "x-api-key": "sk-faults", "anthropic-version": "2023-06-01"}
PLAIN: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]},
    "/v1/responses": {"model": "gpt-4.1", "input": "hi"},
    "/v1/messages": {"model": "claude-sonnet-4-6", "max_tokens": 64,
                     "messages": [{"role": "user", "content": "hi"}]},
}
READ_TIMEOUT_S = 0.5  # the impatient sidecar's; every stall asked of the simulator is far longer
STALL_MS = "60000"
WAIT_S = 10.0  # how long a test waits for an event before it fails (never a sleep)
# The search detour: a scripted model calls a tool the request only offers through search.
QUERY = "Open a pull request on GitHub that merges my feature branch into main"
TOOLS = mcp_tools(60)
TARGET = ranked(TOOLS, QUERY, 10)[3]  # not preloaded; the first search finds it
LAZY = {"lazy": True, "mode": "search", "preload_k": 3, "siblings": 0, "search_k": 5}
ARGS = {"owner": "acme", "repo": "web", "pullNumber": 7, "event": "APPROVE"}


def body_for(route: str, *, stream: bool) -> dict[str, Any]:
    body = {**PLAIN[route], "stream": stream}
    if stream and route == "/v1/chat/completions":  # the client's own: the stream is relayed as is
        body["stream_options"] = {"include_usage": True}
    return body


CASES = [pytest.param(r, s, id=f"{r.rsplit('/', 1)[1]}-{'sse' if s else 'json'}")
         for r in ROUTES for s in (False, True)]


# the upstream ----------------------------------------------------------------------------------


class LockStep:
    """The upstream sends a chunk only once the client has read every byte sent before it.

    A proxy that buffered any part of a stream would stall it: `stalled` says so.
    """

    def __init__(self) -> None:
        self.ready = threading.Condition()
        self.sent = 0
        self.read = 0
        self.stalled = False

    def got(self, size: int) -> None:
        with self.ready:
            self.read += size
            self.ready.notify_all()

    def wait_read(self) -> bool:
        with self.ready:
            return self.ready.wait_for(lambda: self.read >= self.sent, WAIT_S)


@dataclass
class Upstream:
    """The simulator behind a wrapper: fault headers for numbered calls (1-based), lock-step, tap."""

    sim: Any = field(default_factory=create_sim_app)
    url: str = ""
    faults: dict[int, dict[str, str]] = field(default_factory=dict)
    lockstep: LockStep | None = None
    calls: int = 0
    ended: defaultdict[int, threading.Event] = field(
        default_factory=lambda: defaultdict(threading.Event))
    digest: Any = field(default_factory=hashlib.sha256)  # of the last answer's body bytes
    size: int = 0

    def reset(self) -> None:
        self.faults, self.lockstep, self.calls = {}, None, 0
        self.ended.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.sim(scope, receive, send)
            return
        self.calls += 1
        number = self.calls
        added = [(k.encode(), v.encode()) for k, v in self.faults.get(number, {}).items()]
        self.digest, self.size = hashlib.sha256(), 0
        try:
            await self.sim({**scope, "headers": [*scope["headers"], *added]}, receive,
                           self._tapped(send))
        finally:
            self.ended[number].set()

    def _tapped(self, send: Send) -> Send:
        async def tapped(message: Message) -> None:
            chunk = message.get("body", b"") if message["type"] == "http.response.body" else b""
            self.digest.update(chunk)
            self.size += len(chunk)
            await send(message)
            lockstep = self.lockstep
            if chunk and lockstep is not None:
                lockstep.sent += len(chunk)
                if not await anyio.to_thread.run_sync(lockstep.wait_read):
                    lockstep.stalled = True

        return tapped


@dataclass
class Car:
    """One running sidecar: its URL, engine, the records it writes and its ledger file."""

    url: str
    engine: Engine
    sink: QueueSink
    ledger: Path

    def record(self) -> ExchangeRecord:
        return self.sink.next(WAIT_S)

    def records(self, count: int) -> list[ExchangeRecord]:
        return [self.record() for _ in range(count)]

    def entry(self, record: ExchangeRecord) -> LedgerEntry:
        """The ledger's entry for `record` (written before the record reaches the queue)."""
        with contextlib.closing(sqlite3.connect(self.ledger)) as db:
            [(data,)] = db.execute("SELECT data FROM entries WHERE ts = ?", (record.ts,)).fetchall()
        return LedgerEntry.from_json(json.loads(data))

    def unfinished_detours(self, route: str, model: str) -> float:
        value = self.engine.metrics.registry.get_sample_value(
            "tokenopt_search_detours_unfinished_total", {"route": route, "model": model})
        return value or 0.0

    def drain(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self.sink.records.get_nowait()


@contextlib.contextmanager
def running_car(url: str, ledger: Path, **upstream: Any) -> Iterator[Car]:
    settings = settings_for(url, upstream=upstream, ledger={"path": str(ledger)},
                            plugins={"tools": LAZY})
    sink = QueueSink()
    engine = Engine.from_settings(settings, sinks=[sink])
    with ServerThread(create_app(settings, engine=engine)) as sidecar:
        yield Car(sidecar, engine, sink, ledger)


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    wrapper = Upstream()
    for route in ROUTES:
        wrapper.sim.state.script.add(route, recorded_call(route, TARGET, ARGS))
    with ServerThread(wrapper) as wrapper.url:
        yield wrapper


@pytest.fixture(scope="module")
def patient(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Car]:
    path = tmp_path_factory.mktemp("patient") / "ledger.sqlite"
    with running_car(upstream.url, path) as car:
        yield car


@pytest.fixture(scope="module")
def impatient(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Car]:
    path = tmp_path_factory.mktemp("impatient") / "ledger.sqlite"
    with running_car(upstream.url, path, read_timeout=READ_TIMEOUT_S) as car:
        yield car


@pytest.fixture(autouse=True)
def fresh(upstream: Upstream) -> None:
    upstream.reset()


def post(url: str, route: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(url + route, json=body, headers={**HEADERS, **headers}, timeout=WAIT_S * 3)


def events(raw: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    return [(e.event, loads_object(e.data) or {}) for e in SSEParser().feed(raw)]


# plain forwarding --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize(("route", "stream"), CASES)
def test_429_and_5xx_with_retry_after_are_relayed_unchanged(
        upstream: Upstream, patient: Car, route: str, stream: bool, status: int) -> None:
    patient.drain()
    fault = {"x-sim-status": str(status), "x-sim-retry-after": "17"}
    direct = post(upstream.url, route, body_for(route, stream=stream), **fault)
    relayed = post(patient.url, route, body_for(route, stream=stream), **fault)

    assert (relayed.status_code, relayed.content) == (direct.status_code, direct.content) == (
        status, direct.content)
    assert relayed.headers["retry-after"] == direct.headers["retry-after"] == "17"
    assert relayed.headers["content-type"] == direct.headers["content-type"]
    record = patient.record()
    assert (record.status, record.complete, record.usage, record.error) == (status, True, None, None)
    entry = patient.entry(record)
    assert (entry.status, entry.stream, entry.input_tokens, entry.output_tokens) == (
        status, stream, 0, 0)


@pytest.mark.parametrize("route", ROUTES)
def test_a_trickling_stream_is_relayed_chunk_by_chunk(
        upstream: Upstream, patient: Car, route: str) -> None:
    patient.drain()
    upstream.lockstep = lockstep = LockStep()
    received = bytearray()
    with httpx.stream("POST", patient.url + route, json=body_for(route, stream=True),
                      headers={**HEADERS, "x-sim-stream-delay-ms": "5"}, timeout=WAIT_S) as response:
        for chunk in response.iter_raw():
            received += chunk
            lockstep.got(len(chunk))

    assert not lockstep.stalled  # every chunk reached the client before the next was sent
    assert hashlib.sha256(received).digest() == upstream.digest.digest()
    assert len(events(bytes(received))) > 5
    record = patient.record()
    assert record.complete and record.usage is not None and record.usage.output_tokens > 0
    assert patient.entry(record).output_tokens == record.usage.output_tokens


@pytest.mark.parametrize("route", ROUTES)
def test_a_stream_that_never_ends_is_relayed_until_the_client_leaves(
        upstream: Upstream, patient: Car, route: str) -> None:
    patient.drain()
    seen: list[tuple[str | None, dict[str, Any]]] = []
    parser = SSEParser()
    with httpx.stream("POST", patient.url + route, json=body_for(route, stream=True),
                      headers={**HEADERS, "x-sim-fail": "endless-stream"}, timeout=WAIT_S) as response:
        assert response.status_code == 200
        for chunk in response.iter_raw():
            seen += [(e.event, loads_object(e.data) or {}) for e in parser.feed(chunk)]
            if len(seen) >= 12:  # past any finite answer's opening: it goes on
                break
    # Leaving the block closed the client's connection: the sidecar closes the upstream call.
    assert upstream.ended[1].wait(WAIT_S)
    assert upstream.sim.state.cancelled >= 1
    record = patient.record()
    assert (record.status, record.complete, record.stream) == (200, False, True)
    entry = patient.entry(record)
    assert (entry.status, entry.complete) == (200, False)


def test_an_answer_larger_than_the_json_tap_limit_is_relayed_byte_for_byte(
        upstream: Upstream, patient: Car) -> None:
    patient.drain()
    route = "/v1/messages"
    size = MAX_JSON_TAP_BYTES + 1024 * 1024
    response = post(patient.url, route, body_for(route, stream=False),
                    **{"x-sim-reply-bytes": str(size)})

    assert response.status_code == 200 and len(response.content) == upstream.size > size
    assert hashlib.sha256(response.content).digest() == upstream.digest.digest()
    record = patient.record()
    assert (record.status, record.complete, record.usage, record.error) == (200, True, None, None)
    entry = patient.entry(record)
    assert not entry.usage_reported and entry.cost_usd_after == 0
    assert post(patient.url, route, body_for(route, stream=False)).status_code == 200  # still serving
    patient.record()


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Car]:
    closed = bind()
    url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()  # nothing listens there now
    with running_car(url, tmp_path_factory.mktemp("refused") / "ledger.sqlite") as car:
        yield car


@pytest.mark.parametrize(("route", "stream"), CASES)
def test_a_refused_connection_gets_502_in_the_clients_dialect(
        refused: Car, route: str, stream: bool) -> None:
    refused.drain()
    response = post(refused.url, route, body_for(route, stream=stream))
    record = refused.record()
    entry = refused.entry(record)

    assert response.status_code == 502 and is_dialect_error(route, response.content)
    assert "could not be reached" in response.json()["error"]["message"]
    assert (record.status, record.error) == (502, "UpstreamUnavailable")
    assert (entry.status, entry.error) == (502, "UpstreamUnavailable")


def test_no_answer_in_time_gets_504_and_a_reset_before_answering_502(
        upstream: Upstream, impatient: Car) -> None:
    impatient.drain()
    sent = [(route, stream, fault) for route in ROUTES for stream in (False, True)
            for fault in ({"x-sim-delay-ms": STALL_MS}, {"x-sim-fail": "reset-before"})]
    with ThreadPoolExecutor(len(sent)) as pool:  # one read timeout for all the cases, not one each
        answers = list(pool.map(lambda c: post(impatient.url, c[0], body_for(c[0], stream=c[1]),
                                               **c[2]), sent))
    records = {(r.route, r.stream, r.status): r for r in impatient.records(len(sent))}

    for (route, stream, fault), response in zip(sent, answers, strict=True):
        status, error = (504, "UpstreamTimeout") if "x-sim-delay-ms" in fault else (
            502, "UpstreamUnavailable")
        assert response.status_code == status, (route, stream, fault)
        assert is_dialect_error(route, response.content), (route, stream, fault)
        record = records[(route, stream, status)]
        assert (record.error, impatient.entry(record).error) == (error, error)


BROKEN = [pytest.param(r, s, {"x-sim-fail": fault}, id=f"{r.rsplit('/', 1)[1]}-{fault}")
          for r in ROUTES for s, fault in ((True, "reset-mid-stream"), (False, "reset-mid-body"))]


def broken_answer(car: Car, route: str, stream: bool, fault: dict[str, str]) -> bytes:
    """What the client read of an answer that began (200) and then broke off."""
    received = bytearray()
    with httpx.stream("POST", car.url + route, json=body_for(route, stream=stream),
                      headers={**HEADERS, **fault}, timeout=WAIT_S) as response:
        assert response.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            for chunk in response.iter_raw():
                received += chunk
    return bytes(received)


@pytest.mark.parametrize(("route", "stream", "fault"), BROKEN)
def test_an_answer_reset_after_its_status_is_broken_for_the_client_and_recorded(
        impatient: Car, route: str, stream: bool, fault: dict[str, str]) -> None:
    impatient.drain()
    assert broken_answer(impatient, route, stream, fault)  # part came through before the break
    record = impatient.record()
    assert (record.status, record.complete, record.error) == (200, False, "UpstreamUnavailable")
    entry = impatient.entry(record)
    assert (entry.complete, entry.error) == (False, "UpstreamUnavailable")


def test_a_stream_silent_past_the_read_timeout_is_ended_and_recorded_as_a_timeout(
        upstream: Upstream, impatient: Car) -> None:
    impatient.drain()
    stall = {"x-sim-stream-delay-ms": STALL_MS}  # the first event, then nothing for a minute
    with ThreadPoolExecutor(len(ROUTES)) as pool:  # one read timeout for all three routes
        received = list(pool.map(lambda r: broken_answer(impatient, r, True, stall), ROUTES))
    records = impatient.records(len(ROUTES))

    assert all(received)
    assert sorted(r.route for r in records) == sorted(ROUTES)
    for record in records:
        assert (record.status, record.complete, record.error) == (200, False, "UpstreamTimeout")
        assert impatient.entry(record).error == "UpstreamTimeout"
    # The sidecar gave up on each call: the simulator saw it leave.
    assert all(upstream.ended[n].wait(WAIT_S) for n in range(1, len(ROUTES) + 1))


# search detours ----------------------------------------------------------------------------------


@dataclass
class Detoured:
    response: httpx.Response
    record: ExchangeRecord
    entry: LedgerEntry
    counted: float  # the rise of tokenopt_search_detours_unfinished_total
    first_bill: Bill  # what the simulator billed for the first (searching) call

    @property
    def notes(self) -> dict[str, Any]:
        return self.record.plugin_notes.get("tools", {})


def assert_priced_as_billed(entry: LedgerEntry, bill: Bill) -> None:
    """The entry counts and prices the call the upstream billed, as the feature's cost."""
    counts = bill.counts
    assert (entry.input_tokens, entry.cached_input_tokens, entry.cache_write_tokens,
            entry.output_tokens) == (counts.input_tokens, counts.cached_tokens,
                                     counts.cache_write_tokens, counts.output_tokens)
    provider = "anthropic" if bill.route == "/v1/messages" else "openai"
    cost = PriceBook().cost(bill.model, Usage(
        input_tokens=counts.input_tokens, cached_input_tokens=counts.cached_tokens,
        cache_write_tokens=counts.cache_write_tokens,
        cache_write_1h_tokens=counts.cache_write_1h_tokens, output_tokens=counts.output_tokens,
        reasoning_tokens=counts.reasoning_tokens), provider=provider).total_usd
    assert cost > 0 and entry.cost_usd_after == entry.detour_cost_usd == round(cost, 8)
    assert entry.search_detours == 1


def searching(route: str, *, stream: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """A request the scripted model answers with a search, in a conversation of its own
    (else the tools loaded by an earlier test would spare it the search)."""
    headers = {**HEADERS, RECORDED_HEADER: route, CONVERSATION_HEADER: uuid.uuid4().hex}
    return request(route, in_form(route, TOOLS), QUERY, stream=stream), headers


def detour(upstream: Upstream, car: Car, route: str, *, stream: bool,
           fault: dict[str, str]) -> Detoured:
    """One client request whose first call searches; the second (re-issued) call fails."""
    car.drain()
    upstream.faults = {2: fault}
    body, headers = searching(route, stream=stream)
    before = car.unfinished_detours(route, body["model"])
    bills = len(upstream.sim.state.bills)
    response = httpx.post(car.url + route, json=body, timeout=WAIT_S * 3, headers=headers)
    record = car.record()
    assert upstream.calls == 2 and record.plugin_notes["tools"]["search_detours"] == 1
    counted = car.unfinished_detours(route, body["model"]) - before
    return Detoured(response, record, car.entry(record), counted, upstream.sim.state.bills[bills])


def ends_with_error_event(route: str, raw: bytes) -> dict[str, Any]:
    """The stream's last payload, after checking it is the dialect's error and nothing followed."""
    seen = events(raw)
    name, payload = seen[-1]
    names = [n or p.get("type") for n, p in seen]
    assert "tokenopt_search_tools" not in raw.decode()
    if route == "/v1/messages":
        assert name == "error" and "message_stop" not in names
    elif route == "/v1/responses":
        assert name == "error" and "response.completed" not in names
    else:
        assert "error" in payload and b"[DONE]" not in raw
    return payload


@pytest.mark.parametrize(("route", "stream"), CASES)
def test_a_429_in_the_detours_second_call_reaches_the_client(
        upstream: Upstream, patient: Car, route: str, stream: bool) -> None:
    fault = {"x-sim-status": "429", "x-sim-retry-after": "9"}
    got = detour(upstream, patient, route, stream=stream, fault=fault)

    error = route_for(route).error(429, "simulated upstream error (x-sim-status: 429)")
    if stream:  # the stream had begun: it is ended with the dialect's error event
        assert got.response.status_code == 200
        payload = ends_with_error_event(route, got.response.content)
        assert error["error"]["message"] in json.dumps(payload)
    else:
        assert (got.response.status_code, got.response.json()) == (429, error)
        assert got.response.headers["retry-after"] == "9"
    assert "429" in got.notes["failed"] and got.counted == 1
    assert len(got.notes["calls"]) == 1 and got.notes["calls"][0]  # the first call's usage kept
    assert got.entry.plugins["tools"]["failed"] == got.notes["failed"]
    assert got.entry.status == got.response.status_code
    assert_priced_as_billed(got.entry, got.first_bill)


@pytest.mark.parametrize(("route", "stream"), CASES)
def test_a_5xx_in_the_detours_second_call_leaves_the_first_call_priced(
        upstream: Upstream, patient: Car, route: str, stream: bool) -> None:
    got = detour(upstream, patient, route, stream=stream, fault={"x-sim-status": "503"})
    assert "503" in got.notes["failed"] and got.counted == 1
    assert got.entry.cost_usd_before == 0.0  # the client's own call was never answered
    assert_priced_as_billed(got.entry, got.first_bill)


@pytest.mark.parametrize(("route", "stream", "fault", "status"), [
    ("/v1/messages", False, {"x-sim-delay-ms": STALL_MS}, 504),
    ("/v1/chat/completions", True, {"x-sim-delay-ms": STALL_MS}, 504),
    ("/v1/responses", False, {"x-sim-fail": "reset-before"}, 502),
    ("/v1/messages", True, {"x-sim-fail": "reset-before"}, 502),
    *((r, False, {"x-sim-fail": "reset-mid-body"}, 502) for r in ROUTES),
])
def test_a_transport_failure_in_the_detours_second_call_gets_a_clean_502_or_504(
        upstream: Upstream, impatient: Car, route: str, stream: bool, fault: dict[str, str],
        status: int) -> None:
    got = detour(upstream, impatient, route, stream=stream, fault=fault)

    if stream:
        assert got.response.status_code == 200
        payload = ends_with_error_event(route, got.response.content)
        assert "upstream" in json.dumps(payload)
    else:  # nothing was sent yet: the client gets tokenopt's error in its dialect
        assert got.response.status_code == status
        assert is_dialect_error(route, got.response.content)
    assert "round" in got.notes["failed"] and got.counted == 1  # a later round failed
    assert got.entry.plugins["tools"]["failed"] == got.notes["failed"]
    assert got.entry.status == got.response.status_code
    assert_priced_as_billed(got.entry, got.first_bill)


@pytest.mark.parametrize("route", ROUTES)
def test_a_detours_second_stream_broken_midway_is_broken_for_the_client_and_counted(
        upstream: Upstream, impatient: Car, route: str) -> None:
    impatient.drain()
    upstream.faults = {2: {"x-sim-fail": "reset-mid-stream"}}
    body, headers = searching(route, stream=True)
    before = impatient.unfinished_detours(route, body["model"])
    bills = len(upstream.sim.state.bills)
    with httpx.stream("POST", impatient.url + route, json=body, timeout=WAIT_S,
                      headers=headers) as response:
        assert response.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            for _ in response.iter_raw():
                pass
    record = impatient.record()

    assert upstream.calls == 2
    assert (record.complete, record.error) == (False, "UpstreamUnavailable")
    assert "round 2" in record.plugin_notes["tools"]["failed"]
    assert impatient.unfinished_detours(route, body["model"]) - before == 1
    assert impatient.entry(record).error == "UpstreamUnavailable"
    # The second call was billed too, but its usage never came: the first call's is counted.
    assert_priced_as_billed(impatient.entry(record), upstream.sim.state.bills[bills])

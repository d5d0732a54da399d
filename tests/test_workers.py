"""`tokenopt serve --workers N`: processes sharing one port, one ledger between them."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from benchmarks.processes import free_port
from tokenopt.ledger import open_ledger
from tokenopt.report import report_from
from tokenopt.settings import Settings
from tokenopt.store import open_store

CLI = [sys.executable, "-m", "tokenopt.cli", "--log-level", "warning"]
BODY = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "Say hi."}]}
REQUESTS = 24


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def running(*args: str, ready: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([*CLI, *args])
    try:
        wait_for(lambda: answers(ready) or proc.poll() is not None, ready)
        assert proc.poll() is None, f"{args[0]} exited with {proc.returncode}"
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    port = free_port()
    with running("sim", "--port", str(port), ready=f"http://127.0.0.1:{port}/v1/models"):
        yield f"http://127.0.0.1:{port}"


def report_requests(config: Path) -> int:
    """`requests` in the totals `tokenopt report` shows for this configuration."""
    settings = Settings.load(config)

    async def count() -> int:
        store = open_store(settings.store.redis_url, key_prefix=settings.store.key_prefix)
        ledger = open_ledger(settings, store)
        try:
            requests: int = (await report_from(ledger)).as_json()["totals"]["requests"]
            return requests
        finally:
            await ledger.aclose()
            await store.aclose()

    return asyncio.run(count())


def scraped_requests(url: str) -> tuple[str, float]:
    """(the worker that answered, `tokenopt_requests_total` summed over its labels)."""
    with httpx.Client(timeout=30) as client:  # a new connection: any worker may answer
        response = client.get(url + "/metrics")
    assert response.status_code == 200
    total = sum(float(line.rsplit(" ", 1)[1]) for line in response.text.splitlines()
                if line.startswith("tokenopt_requests_total{"))
    return response.headers["x-tokenopt-worker"], total


def exercise(sim: str, config: Path) -> set[str]:
    """REQUESTS chat requests, each on its own connection; the workers that answered."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running("serve", "--workers", "2", "--upstream", sim, "--port", str(port),
                 "--config", str(config), ready=url + "/healthz") as sidecar:
        workers = set()
        for _ in range(REQUESTS):
            # A new connection each time: the kernel picks a worker per connection.
            with httpx.Client(timeout=30) as client:
                response = client.post(url + "/v1/chat/completions", json=BODY,
                                       headers={"authorization": "Bearer sk-test"})
            assert response.status_code == 200
            assert response.json()["choices"][0]["message"]["role"] == "assistant"
            workers.add(response.headers["x-tokenopt-worker"])
        # Ledger writes follow the response: wait until they have all landed.
        wait_for(lambda: report_requests(config) >= REQUESTS, "the ledger entries")
        # Each worker's scrape counts every worker's requests (multiprocess mode).
        scrapes: dict[str, float] = {}

        def scraped_each_worker() -> bool:
            worker, total = scraped_requests(url)
            scrapes[worker] = total
            return scrapes.keys() == workers and min(scrapes.values()) >= REQUESTS

        wait_for(scraped_each_worker, "a full count from each worker's /metrics")
        assert set(scrapes.values()) == {REQUESTS}, scrapes
        sidecar.send_signal(signal.SIGTERM)
        assert sidecar.wait(timeout=60) == 0
    return workers


def test_two_workers_share_the_port_and_the_ledger_counts_each_request_once(
        sim: str, tmp_path: Path) -> None:
    config = tmp_path / "tokenopt.toml"
    config.write_text(f'[ledger]\npath = "{tmp_path / "ledger.sqlite"}"\n')
    workers = exercise(sim, config)
    assert len(workers) == 2, workers
    assert report_requests(config) == REQUESTS  # after shutdown too: nothing counted twice


def test_with_redis_the_workers_share_the_redis_ledger(sim: str, tmp_path: Path,
                                                       redis_url: str) -> None:
    config = tmp_path / "tokenopt.toml"
    config.write_text(f'[store]\nredis_url = "{redis_url}"\nkey_prefix = "w{uuid.uuid4().hex[:8]}:"\n'
                      f'[ledger]\npath = "{tmp_path / "ledger.sqlite"}"\n'
                      "[plugins.tools]\nlazy = true\n")  # allowed: the loaded sets are in Redis
    assert len(exercise(sim, config)) == 2
    assert report_requests(config) == REQUESTS


def test_lazy_tools_without_a_shared_store_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "tokenopt.toml"
    config.write_text("[plugins.tools]\nlazy = true\n")
    done = subprocess.run([*CLI, "serve", "--workers", "2", "--upstream", "http://127.0.0.1:9",
                           "--port", str(free_port()), "--config", str(config)],
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "set [store] redis_url" in done.stderr

"""Real servers on loopback for integration tests: the simulator, the sidecar, a mounted app.

Records reach the test through a queue, so a test waits for the exact event it
needs instead of sleeping.
"""

from __future__ import annotations

import contextlib
import queue
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette

from tokenopt.engine import Engine
from tokenopt.pipeline import Plugin
from tokenopt.proxy import create_app
from tokenopt.records import ExchangeRecord
from tokenopt.serving import ServerThread
from tokenopt.settings import Settings
from tokenopt.sim import create_sim_app


class QueueSink:
    """Hands each exchange record to the test thread as soon as it is written."""

    def __init__(self) -> None:
        self.records: queue.Queue[ExchangeRecord] = queue.Queue()

    async def write(self, record: ExchangeRecord) -> None:
        self.records.put(record)

    def next(self, timeout: float = 10.0) -> ExchangeRecord:
        return self.records.get(timeout=timeout)


@dataclass
class Sim:
    app: Starlette
    url: str

    @property
    def bodies(self) -> list[bytes]:
        return [body for _, _, _, body in self.app.state.received]

    def last_headers(self) -> dict[str, str]:
        _, _, headers, _ = self.app.state.received[-1]
        return {k.lower(): v for k, v in headers}


@dataclass
class Sidecar:
    url: str
    engine: Engine
    sink: QueueSink = field(repr=False)


@contextlib.contextmanager
def running_sim(**kwargs: Any) -> Iterator[Sim]:
    app = create_sim_app(**kwargs)
    with ServerThread(app) as url:
        yield Sim(app, url)


def settings_for(url: str, /, **overrides: Any) -> Settings:
    """Hermetic settings (no environment) forwarding to `url`, with section overrides."""
    upstream = {"url": url, **overrides.pop("upstream", {})}
    return Settings.load(environ={}, upstream=upstream, **overrides)


@contextlib.contextmanager
def running_sidecar(
    url: str, /, *, plugins: Iterable[Plugin] = (), **overrides: Any
) -> Iterator[Sidecar]:
    settings = settings_for(url, **overrides)
    sink = QueueSink()
    engine = Engine(settings, plugins=plugins, sinks=[sink])
    with ServerThread(create_app(settings, engine=engine)) as url:
        yield Sidecar(url, engine, sink)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a condition another thread will make true; fail loudly if it never does."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)

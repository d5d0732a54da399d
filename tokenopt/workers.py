"""`tokenopt serve --workers N`: N sidecar processes sharing one port.

Each worker is a whole sidecar (its own event loop, engine and upstream pool) that
binds the port with `SO_REUSEPORT`, so the kernel spreads new connections across the
workers evenly and no process hands sockets to another. A supervisor holds the port,
restarts a worker that dies, and stops them all on SIGTERM or SIGINT. Every answer
carries `x-tokenopt-worker: <pid>`, so it shows which worker served it.

What the workers share:
- the ledger: the same SQLite file (WAL: concurrent writers are safe), or Redis when
  `[store] redis_url` is set, so `tokenopt report` counts every request once;
- with `[store] redis_url`, the store too: loaded tool sets, conversation state and
  prefix fingerprints, as separate replicas do;
- `/metrics`: prometheus_client's multiprocess mode, in a directory the supervisor
  makes (or `PROMETHEUS_MULTIPROC_DIR` if set, emptied at start), so a scrape of any
  worker counts every worker's requests.

Without Redis the store is each worker's own memory. That is only refused where it
changes what is forwarded: lazy tool loading keeps each conversation's loaded set
append-only, and two workers each growing their own would send different tools on
consecutive turns. Otherwise each worker keeps its own cache-break history (a
conversation's turns may be compared on different workers) and memoised counts.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

from tokenopt.exceptions import ConfigError
from tokenopt.metrics import MULTIPROCESS_DIR
from tokenopt.serving import ServerThread, bind, run, server_for
from tokenopt.settings import Settings
from tokenopt.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("tokenopt.workers")

WORKER_HEADER = b"x-tokenopt-worker"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # as the CLI's own
# A worker that dies this soon after starting failed to start (bad config, port
# taken): restarting it would only loop.
STARTUP_S = 5.0


def check_shared_state(settings: Settings, workers: int) -> None:
    """Refuse N > 1 workers where per-process state would change what is forwarded."""
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {workers}")
    tools = settings.plugins.get("tools", {})
    if workers > 1 and not settings.store.redis_url and tools.get("lazy") and tools.get(
            "enabled", True):
        raise ConfigError(
            f"--workers {workers} with lazy tool loading needs a shared store: set [store] "
            "redis_url (or TOKENOPT_REDIS_URL); each worker would otherwise keep its own "
            "loaded tools and a conversation's turns would see different tool lists")


class WorkerHeader:
    """Adds `x-tokenopt-worker: <pid>` to every answer of this worker."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.pid = str(os.getpid()).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []),
                                                  (WORKER_HEADER, self.pid)]}
            await send(message)

        await self.app(scope, receive, tagged)


def serve_workers(settings: Settings, host: str, port: int, workers: int, server_options: dict[str, Any],
                  log_level: str) -> int:
    """Run `workers` sidecar processes on `host:port` until SIGTERM or SIGINT."""
    check_shared_state(settings, workers)
    with _bundled_upstream(settings) as served, _shared_metrics():
        holder = bind(host, port, reuse_port=True, listen=False)  # port 0 resolved once, for all
        port = holder.getsockname()[1]
        supervisor = Supervisor(served, host, port, workers, server_options, log_level)
        logger.info("tokenopt sidecar on http://%s:%s -> %s, %d workers", host, port,
                    served.upstream.url, workers)
        try:
            return supervisor.run()
        finally:
            holder.close()


@contextlib.contextmanager
def _bundled_upstream(settings: Settings) -> Iterator[Settings]:
    """The bundled simulator, served from the supervisor, when no upstream is set."""
    if settings.upstream.url:
        yield settings
        return
    from tokenopt.sim import create_sim_app

    with ServerThread(create_sim_app()) as url:
        logger.info("no --upstream given: serving in front of the bundled simulator at %s", url)
        yield settings.model_copy(
            update={"upstream": settings.upstream.model_copy(update={"url": url})})


@contextlib.contextmanager
def _shared_metrics() -> Iterator[None]:
    """A multiprocess-mode directory for the workers' metrics, set before they spawn."""
    given = os.environ.get(MULTIPROCESS_DIR)
    if given:  # the operator's: values left by an earlier run would be counted again
        for stale in Path(given).glob("*.db"):
            stale.unlink()
        yield
        return
    with tempfile.TemporaryDirectory(prefix="tokenopt-metrics-") as path:
        os.environ[MULTIPROCESS_DIR] = path
        try:
            yield
        finally:
            del os.environ[MULTIPROCESS_DIR]


class Supervisor:
    """Starts the workers, restarts one that dies, stops them all on a signal."""

    def __init__(self, settings: Settings, host: str, port: int, workers: int,
                 server_options: dict[str, Any], log_level: str) -> None:
        self.args = (settings, host, port, server_options, log_level)
        self.context = multiprocessing.get_context("spawn")  # no loop or thread state inherited
        self.procs: list[BaseProcess] = []
        self.started: list[float] = []
        self.workers = workers
        self.stopping = False

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for _ in range(self.workers):
                self._start(None)
            return self._watch()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._terminate()

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _start(self, index: int | None) -> None:
        proc = self.context.Process(target=worker_main, args=self.args, daemon=False)
        proc.start()
        if index is None:
            self.procs.append(proc)
            self.started.append(time.monotonic())
        else:
            self.procs[index], self.started[index] = proc, time.monotonic()

    def _watch(self) -> int:
        while not self.stopping:
            # Wakes on a worker's exit; the timeout only lets a signal be noticed.
            multiprocessing.connection.wait([p.sentinel for p in self.procs], timeout=0.5)
            for index, proc in enumerate(self.procs):
                if proc.is_alive() or self.stopping:
                    continue
                if time.monotonic() - self.started[index] < STARTUP_S:
                    logger.error("worker %s exited with %s at startup: stopping", proc.pid,
                                 proc.exitcode)
                    return 1
                logger.warning("worker %s exited with %s: starting another", proc.pid, proc.exitcode)
                self._start(index)
        return 0

    def _terminate(self) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: uvicorn finishes in-flight requests and the lifespan
        deadline = time.monotonic() + 30
        for proc in self.procs:
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()


def worker_main(settings: Settings, host: str, port: int, server_options: dict[str, Any],
                log_level: str) -> None:
    """One worker process: a whole sidecar on its own `SO_REUSEPORT` socket."""
    from tokenopt.proxy import create_app

    logging.basicConfig(level=getattr(logging, log_level.upper()), format=LOG_FORMAT)
    if log_level != "debug":
        logging.getLogger("httpx").setLevel(logging.WARNING)
    sock = bind(host, port, reuse_port=True)
    server = server_for(WorkerHeader(create_app(settings)), **server_options)
    run(server.serve(sockets=[sock]))

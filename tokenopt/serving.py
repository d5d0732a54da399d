"""Running ASGI apps on loopback: the CLI, the demo, tests and benchmarks share this."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

import uvicorn
import uvloop

from tokenopt import redaction
from tokenopt.types import ASGIApp

T = TypeVar("T")


def bind(host: str = "127.0.0.1", port: int = 0, *, reuse_port: bool = False,
         listen: bool = True) -> socket.socket:
    """A listening socket; port 0 picks a free one, so the URL is known before serving.

    `reuse_port` lets several processes each listen on the same port, the kernel
    spreading new connections across them (`tokenopt serve --workers N`); a socket
    bound with it but not listening only holds the port.
    """
    # proto must say TCP: asyncio disables Nagle only on sockets that do, and a
    # response written as headers then body otherwise waits ~40 ms for the
    # client's delayed ACK on every keep-alive request.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a server's coroutine to completion on uvloop, the loop the sidecar ships with.

    uvloop's libuv loop spent ~5% less CPU per forwarded request than asyncio's
    (`benchmarks/sidecar.py --stacks`), the servers' sockets and timers being its work.
    """
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


def server_for(app: ASGIApp, *, log_level: str = "warning", access_log: bool = False) -> uvicorn.Server:
    config = uvicorn.Config(
        app, log_level=log_level, access_log=access_log, lifespan="on", timeout_keep_alive=30
    )
    redaction.install()  # after Config: it (re)configures uvicorn's loggers
    return uvicorn.Server(config)


class ServerThread:
    """An app served by uvicorn in a background thread, for tests, the demo and benchmarks.

    `with ServerThread(app) as url:` returns once the server accepts connections
    and stops it (running the app's shutdown) on exit.
    """

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = bind(host, port)
        self.url = url_of(self.sock)
        self.server = server_for(app)
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            run(self._serve())
        except BaseException as exc:  # surfaced to the starting thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        server = self.server
        config = server.config
        if not config.loaded:
            config.load()
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[self.sock])
        self._ready.set()
        if server.should_exit:
            return
        await server.main_loop()
        await server.shutdown(sockets=[self.sock])

    def __enter__(self) -> str:
        self._thread.start()
        if not self._ready.wait(timeout=30) or self._error is not None:
            raise RuntimeError(f"server did not start: {self._error!r}")
        return self.url

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)
        self.sock.close()

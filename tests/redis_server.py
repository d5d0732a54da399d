"""A real `redis-server` for tests: on a free port, in a temp dir, stoppable mid-test.

Also a real 3-master Redis Cluster on loopback (`RedisCluster`). Readiness is
polled (PING, `CLUSTER INFO`) under a deadline, never waited out with a sleep.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import redis

from benchmarks.processes import free_port

READY_TIMEOUT = 10.0


class RedisServer:
    """One `redis-server` process; `stop()` then `start()` restarts it on the same port."""

    def __init__(self, *, password: str | None = None, port: int | None = None,
                 persist: bool = False, extra: tuple[str, ...] = ()) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server is not on PATH")
        self.executable = executable
        self.password = password
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="tokenopt-redis-"))
        self.persist = persist  # append-only file: data survives stop() and start()
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            self.executable,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes" if self.persist else "no",
            "--appendfsync", "always",
            "--dir", str(self.dir),
            "--logfile", str(self.dir / "redis.log"),
            *self.extra,
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + READY_TIMEOUT
        with redis.Redis(port=self.port, password=self.password, socket_timeout=1) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited early: {self.log()}")
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError(f"redis-server not ready in {READY_TIMEOUT}s") from None
                    time.sleep(0.01)  # poll interval, not synchronisation

    def log(self) -> str:
        path = self.dir / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Terminate the server and wait until it has exited (its port is then free)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too, as Redis Cluster needs."""
    while True:
        port = free_port()
        if port > 55535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class RedisCluster:
    """Three `redis-server --cluster-enabled yes` masters on loopback, joined by `redis-cli`."""

    def __init__(self, masters: int = 3) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not on PATH")
        self.cli = cli
        self.nodes = [
            RedisServer(port=cluster_port(), extra=("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                               "--cluster-node-timeout", "2000"))
            for _ in range(masters)
        ]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        created = subprocess.run(
            [self.cli, "--cluster", "create", *addresses, "--cluster-replicas", "0",
             "--cluster-yes"], capture_output=True, text=True, timeout=60, check=False)
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout}{created.stderr}")
        self._wait_ok()

    def _wait_ok(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT * 3
        clients = [redis.Redis(port=n.port, socket_timeout=1) for n in self.nodes]
        try:
            while True:
                infos = [c.cluster("info") for c in clients]  # parsed into a dict of str
                if all(i.get("cluster_state") == "ok"
                       and i.get("cluster_known_nodes") == str(len(clients)) for i in infos):
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cluster not ok in time: {infos}")
                time.sleep(0.05)  # poll interval, not synchronisation
        finally:
            for client in clients:
                client.close()

    def close(self) -> None:
        for node in self.nodes:
            node.close()

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

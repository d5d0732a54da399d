from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from tests.integration.support import Sidecar, Sim, running_sidecar, running_sim
from tests.redis_server import RedisServer

# --- store: async backend and Redis servers ---------------------------------


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A shared Redis: `REDIS_URL` if set, else a `redis-server` started for the session.

    Never skips: a Redis test that does not run is a failed gate in CI.
    """
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    try:
        server = RedisServer()
        server.start()
    except (OSError, RuntimeError) as exc:
        pytest.fail(f"no Redis: REDIS_URL is unset and redis-server cannot start: {exc}")
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture
def make_redis_server() -> Iterator[Callable[..., RedisServer]]:
    """Factory of dedicated, started `redis-server`s that a test may stop and restart."""
    servers: list[RedisServer] = []

    def make(*, password: str | None = None) -> RedisServer:
        try:
            server = RedisServer(password=password)
            servers.append(server)
            server.start()
        except (OSError, RuntimeError) as exc:
            pytest.fail(f"redis-server cannot start: {exc}")
        return server

    yield make
    for server in servers:
        server.close()


# --- end store ----------------------------------------------------------------


@pytest.fixture(autouse=True, scope="session")
def _ledger_in_a_temporary_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The default ledger lives in the user's data dir: keep tests out of the real one."""
    previous = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg-data"))
    yield
    if previous is None:
        os.environ.pop("XDG_DATA_HOME", None)
    else:
        os.environ["XDG_DATA_HOME"] = previous


# --- servers on loopback: the simulator as upstream, a sidecar in front of it -----------------


@pytest.fixture
def sim() -> Iterator[Sim]:
    with running_sim() as server:
        yield server


@pytest.fixture
def sidecar(sim: Sim) -> Iterator[Sidecar]:
    with running_sidecar(sim.url) as server:
        yield server

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.support import Sidecar, Sim, running_sidecar, running_sim


@pytest.fixture
def sim() -> Iterator[Sim]:
    with running_sim() as server:
        yield server


@pytest.fixture
def sidecar(sim: Sim) -> Iterator[Sidecar]:
    with running_sidecar(sim.url) as server:
        yield server

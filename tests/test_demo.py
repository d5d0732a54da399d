"""`tokenopt demo`, the README's first command: sidecar, sample traffic, before/after report."""

from __future__ import annotations

import io

from tokenopt.demo import run_demo, sample_traffic
from tokenopt.settings import Settings


def test_the_demo_sends_the_sample_traffic_and_ends_in_a_before_after_report() -> None:
    out = io.StringIO()

    assert run_demo(Settings.load(environ={}), out=out) == 0

    text = out.getvalue()
    routes = {line["path"] for line in sample_traffic()}
    assert routes == {"/v1/chat/completions", "/v1/responses", "/v1/messages"}
    for route in routes:
        row = next(line for line in text.splitlines() if line.startswith(route))
        assert int(row.split()[1]) == sum(line["path"] == route for line in sample_traffic())
    assert "Before/after" in text and "baseline" in text and "total cost" in text

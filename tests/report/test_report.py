"""`tokenopt report` and the sidecar's report and metrics endpoints."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.integration.support import Sim, running_sidecar
from tokenopt.cli import main
from tokenopt.exceptions import ConfigError
from tokenopt.ledger import LedgerEntry
from tokenopt.report import build_report, parse_time, render
from tokenopt.report.render import AFTER, BEFORE

DAY = 86_400.0
T0 = 1_763_000_000.0  # 2025-11-13


def entry(ts: float, model: str, route: str, before: float, after: float, **fields: Any) -> LedgerEntry:
    return LedgerEntry(ts=ts, tenant=fields.pop("tenant", "t_a"), route=route, model=model,
                       conversation="c", stream=False, status=200, complete=True,
                       input_tokens=1000, cached_input_tokens=600, output_tokens=50,
                       cost_usd_before=before, cost_usd_after=after, priced=True, **fields)


ENTRIES = [
    entry(T0, "gpt-4.1", "/v1/chat/completions", 0.02, 0.01, plugins={"normalize": {}}),
    entry(T0 + 60, "gpt-4.1", "/v1/chat/completions", 0.02, 0.008,
          cache_break="tool order changed", plugins={"normalize": {}}),
    entry(T0 + DAY, "claude-sonnet-4-5", "/v1/messages", 0.05, 0.02, tenant="t_b",
          reasoning_tokens=40, reasoning_cost_usd=0.0006, fail_open="plugin:x",
          plugins={"normalize": {}, "thinking": {}}),
]


def test_totals_and_groups_follow_the_json_contract() -> None:
    data = json.loads(render(build_report(ENTRIES, group_by="model"), "json"))

    totals = data["totals"]
    for field in ("requests", "input_tokens", "cached_input_tokens", "cache_write_tokens",
                  "output_tokens", "reasoning_tokens", "tokens_saved", "cost_usd_before",
                  "cost_usd_after", "fail_opens"):
        assert field in totals
    assert (totals["requests"], totals["fail_opens"], totals["reasoning_tokens"]) == (3, 1, 40)
    assert totals["cost_usd_before"] == pytest.approx(0.09)
    assert totals["cost_usd_after"] == pytest.approx(0.038)
    assert totals["cached_share"] == pytest.approx(0.6)
    assert [g["key"] for g in data["groups"]] == ["claude-sonnet-4-5", "gpt-4.1"]
    assert data["top_cache_break_causes"] == [
        {"cause": "/v1/chat/completions gpt-4.1: tool order changed", "requests": 1}]
    assert [d["day"] for d in data["daily"]] == ["2025-11-13", "2025-11-14"]


@pytest.mark.parametrize(("group_by", "keys"), [
    ("route", {"/v1/chat/completions": 2, "/v1/messages": 1}),
    ("tenant", {"t_a": 2, "t_b": 1}),
    ("plugin", {"normalize": 3, "thinking": 1}),
])
def test_group_by(group_by: str, keys: dict[str, int]) -> None:
    data = build_report(ENTRIES, group_by=group_by).as_json()
    assert {g["key"]: g["requests"] for g in data["groups"]} == keys


def test_table_and_markdown_show_totals_and_causes() -> None:
    report = build_report(ENTRIES)
    table, md = render(report, "table"), render(report, "md")
    assert "total" in table and "$0.0900" in table and "tool order changed" in table
    assert md.startswith("## tokenopt savings by model")
    assert "| total | 3 |" in md


@pytest.mark.parametrize(("text", "expected"), [
    ("24h", T0 - DAY), ("7d", T0 - 7 * DAY), ("2025-11-13", T0 - T0 % DAY),
    (str(T0), T0), (None, None),
])
def test_parse_time(text: str | None, expected: float | None) -> None:
    assert parse_time(text, now=T0) == expected


def test_parse_time_refuses_nonsense() -> None:
    with pytest.raises(ConfigError, match="is not a time"):
        parse_time("yesterday-ish")


def test_the_cli_filters_by_time_and_writes_files(tmp_path: Path, sim: Sim,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ledger.sqlite"
    config = tmp_path / "tokenopt.toml"
    config.write_text(f'[ledger]\npath = "{path}"\n')
    body = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "Hi"}]}
    with running_sidecar(sim.url, ledger={"path": str(path)}) as sidecar:
        for _ in range(2):
            httpx.post(sidecar.url + "/v1/chat/completions", json=body, headers={"x-api-key": "k"})
            sidecar.sink.next()

    assert main(["report", "--config", str(config), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["requests"] == 2
    assert main(["report", "--config", str(config), "--format", "json", "--until", "1d"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["requests"] == 0
    out = tmp_path / "report.html"
    assert main(["report", "--config", str(config), "--format", "html", "--out", str(out)]) == 0
    assert out.read_text().startswith("<!doctype html>")


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("headless Chromium is needed for the HTML report test "
                    "(Debian: apt-get install chromium; .ci/run installs it)")
    return found


def screenshot(page: Path, png: Path) -> Image.Image:
    subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--window-size=1000,1000", f"--screenshot={png}", page.as_uri()],
        check=True, capture_output=True, timeout=60,
    )
    return Image.open(png).convert("RGB")


def pixels_of(image: Image.Image, color: str) -> int:
    rgb = tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))
    return sum(count for count, pixel in image.getcolors(maxcolors=1 << 20) or [] if pixel == rgb)


def test_the_html_report_renders_its_charts_in_headless_chromium(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render(build_report(ENTRIES), "html"))
    assert "<script" not in page.read_text() and "http" not in page.read_text()  # offline, inert

    image = screenshot(page, tmp_path / "report.png")

    # Both charts draw before and after bars: thousands of pixels of each colour.
    assert pixels_of(image, BEFORE) > 2000 and pixels_of(image, AFTER) > 2000
    # The before bars are taller/longer than the after ones, as the costs are.
    assert pixels_of(image, BEFORE) > pixels_of(image, AFTER)
    empty = tmp_path / "empty.html"
    empty.write_text(render(build_report([]), "html"))
    assert pixels_of(screenshot(empty, tmp_path / "empty.png"), BEFORE) < 500  # legend swatches only


def test_the_live_report_needs_the_admin_token(sim: Sim, tmp_path: Path) -> None:
    ledger = {"path": str(tmp_path / "ledger.sqlite")}
    with running_sidecar(sim.url, ledger=ledger) as off:
        assert httpx.get(off.url + "/tokenopt/report").status_code == 404
    with running_sidecar(sim.url, ledger=ledger, admin={"token": "s3cret-admin"}) as sidecar:
        httpx.post(sidecar.url + "/v1/chat/completions", headers={"x-api-key": "k"},
                   json={"model": "gpt-4.1", "messages": [{"role": "user", "content": "Hi"}]})
        sidecar.sink.next()
        url = sidecar.url + "/tokenopt/report"
        missing = httpx.get(url)
        wrong = httpx.get(url, headers={"authorization": "Bearer nope"})
        good = httpx.get(url, headers={"authorization": "Bearer s3cret-admin"})
        page = httpx.get(url + "?format=html&group_by=route",
                         headers={"authorization": "Bearer s3cret-admin"})
        bad = httpx.get(url + "?format=pdf", headers={"authorization": "Bearer s3cret-admin"})

    assert (missing.status_code, wrong.status_code, bad.status_code) == (401, 403, 400)
    assert good.status_code == 200 and good.json()["totals"]["requests"] == 1
    assert page.headers["content-type"].startswith("text/html") and "chart-models" in page.text


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value, found by name and labels (whatever their order on the line)."""
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if head.startswith(name + "{"):
            found = dict(part.split("=", 1) for part in head[len(name) + 1 : -1].split(","))
            if {k: v.strip('"') for k, v in found.items()} == labels:
                return float(value)
    raise AssertionError(f"no sample {name}{labels}")


def test_metrics_on_the_sidecar(sim: Sim, tmp_path: Path) -> None:
    body = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "Hi"}]}
    with running_sidecar(sim.url, ledger={"path": str(tmp_path / "l.sqlite")}) as sidecar:
        for content in (b"{broken", json.dumps(body).encode(), json.dumps(body).encode()):
            httpx.post(sidecar.url + "/v1/chat/completions", content=content,
                       headers={"x-api-key": "k", "content-type": "application/json"})
            sidecar.sink.next()
        text = httpx.get(sidecar.url + "/metrics").text

    labels = {"route": "/v1/chat/completions", "model": "gpt-4.1"}
    assert metric(text, "tokenopt_requests_total", **labels) == 2
    assert metric(text, "tokenopt_input_tokens_total", **labels) > 0
    assert metric(text, "tokenopt_fail_opens_total", route="/v1/chat/completions",
                  model="unknown") == 1
    assert metric(text, "tokenopt_added_latency_ms_count", route="/v1/chat/completions") == 3
    assert "sk-" not in text


def test_the_mounted_form_can_expose_metrics(sim: Sim, tmp_path: Path) -> None:
    import anyio

    from tokenopt.asgi import TokenOptMiddleware
    from tokenopt.engine import Engine
    from tokenopt.settings import Settings

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    engine = Engine(Settings.load(environ={}, ledger={"enabled": False}))
    wrapped = TokenOptMiddleware(app, engine=engine, metrics_path="/metrics")

    async def get(path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=wrapped)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.get(path)

    assert anyio.run(get, "/metrics").text.startswith("# HELP")
    assert anyio.run(get, "/other").status_code == 204

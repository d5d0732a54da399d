"""A short run of `benchmarks/soak.py`: real processes, concurrent mixed load, nothing lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_soak_has_no_errors_and_one_ledger_entry_per_request(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", "--duration", "3", "--clients", "8",
         "--conversations", "2", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=180,
        check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())

    assert result["sent"] > 0 and result["errors"] == 0, result["errors_by_kind"]
    assert result["ledger_entries_reported"] == result["ledger_entries_on_disk"] == result["sent"]
    assert set(result["sent_by_route"]) == {
        f"{route} {kind}" for route in ("/v1/chat/completions", "/v1/responses", "/v1/messages")
        for kind in ("json", "stream")}
    assert result["sidecar_exit_code"] in (0, 130)  # stopped by SIGINT, cleanly
    assert all(result["rss_kb"][k] > 0 for k in ("start", "end"))

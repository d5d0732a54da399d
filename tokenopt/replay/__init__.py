"""`tokenopt replay`: what tokenopt would have saved on recorded traffic, before it is in the path.

Each line is replayed twice against its own fresh simulator: as recorded
(baseline) and through the pipeline the settings enable (optimised). The
simulator applies each provider's cache rules on a clock set from the lines'
timestamps; costs come from the price book.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tokenopt.replay.runner import RunResult, run
from tokenopt.replay.traffic import TrafficError, TrafficLine, read_traffic
from tokenopt.settings import Settings
from tokenopt.tokens import TokenCounter

if TYPE_CHECKING:
    from tokenopt.pricing import PriceBook

__all__ = ["RunResult", "TrafficError", "TrafficLine", "compare", "read_traffic", "render_table",
           "run"]


async def compare(lines: list[TrafficLine], settings: Settings,
                  prices: PriceBook | None = None) -> dict[str, Any]:
    """Baseline and optimised runs of the same lines, summarised as the `--json` report."""
    from tokenopt.pricing import PriceBook
    from tokenopt.replay.summary import RunSummary

    counter = TokenCounter()
    prices = prices or PriceBook.load(settings.pricing.overrides)
    baseline = await run(lines, counter=counter)
    optimized = await run(lines, settings=settings, counter=counter)
    before = RunSummary.of(baseline.bills, prices)
    after = RunSummary.of(optimized.bills, prices)
    saved = before.totals.cost_usd - after.totals.cost_usd
    return {
        "lines": len(lines),
        "baseline": {**before.as_json(), "failed": baseline.failed},
        "optimized": {**after.as_json(), "failed": optimized.failed,
                      "fail_opens": sum(r.fail_open is not None for r in optimized.records)},
        "savings": {
            "input_tokens": before.totals.input_tokens - after.totals.input_tokens,
            "cost_usd": round(saved, 6),
            "cost_share": round(saved / before.totals.cost_usd, 4) if before.totals.cost_usd else 0.0,
        },
        "token_counts_are_estimates": before.totals.estimated_tokens or after.totals.estimated_tokens,
    }


ROWS = (
    ("requests", "upstream calls", "{:,}"),
    ("input_tokens", "input tokens", "{:,}"),
    ("cached_input_tokens", "  cached", "{:,}"),
    ("cache_write_tokens", "  cache writes", "{:,}"),
    ("cached_share", "cached share", "{:.1%}"),
    ("output_tokens", "output tokens", "{:,}"),
    ("reasoning_tokens", "  reasoning", "{:,}"),
    ("input_cost_usd", "input cost", "${:,.4f}"),
    ("output_cost_usd", "output cost", "${:,.4f}"),
    ("cost_usd", "total cost", "${:,.4f}"),
    ("tool_misses", "tool misses", "{:,}"),
    ("search_detours", "search detours", "{:,}"),
)


def render_table(report: dict[str, Any], out: TextIO, *, per_model: bool = True) -> None:
    """The before/after report as terminal tables: totals, then (optionally) per model."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, width=110)
    sections = [("all models", report["baseline"], report["optimized"])]
    models = sorted(set(report["baseline"]["by_model"]) | set(report["optimized"]["by_model"]))
    models = models if per_model else []
    sections += [(m, report["baseline"]["by_model"].get(m, {}), report["optimized"]["by_model"].get(m, {}))
                 for m in models]
    for title, before, after in sections:
        table = Table(title=f"replay of {report['lines']:,} lines: {title}", title_justify="left")
        table.add_column("")
        table.add_column("baseline", justify="right")
        table.add_column("tokenopt", justify="right")
        table.add_column("change", justify="right")
        for key, label, fmt in ROWS:
            b, a = before.get(key, 0), after.get(key, 0)
            change = "" if not b or key == "cached_share" else f"{(a - b) / b:+.1%}"
            table.add_row(label, fmt.format(b), fmt.format(a), change)
        console.print(table)
    savings = report["savings"]
    console.print(f"saved ${savings['cost_usd']:,.4f} ({savings['cost_share']:.1%} of the baseline cost)")
    if report["token_counts_are_estimates"]:
        console.print("token counts are estimates: some models' encodings are not available "
                      "offline (cl100k_base used)")


def load_lines(path: str | Path) -> list[TrafficLine]:
    return list(read_traffic(path))


def dump_json(report: dict[str, Any], out: TextIO) -> None:
    out.write(json.dumps(report, indent=2) + "\n")

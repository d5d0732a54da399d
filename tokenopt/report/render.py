"""A report as a terminal table (rich), Markdown, JSON or one self-contained HTML page."""

from __future__ import annotations

import html
import json
from io import StringIO
from typing import Any

from tokenopt.report.aggregate import Report

COLUMNS = (
    ("requests", "requests", "{:,}"),
    ("input_tokens", "input tok", "{:,}"),
    ("cached_share", "cached", "{:.1%}"),
    ("cache_write_tokens", "cache writes", "{:,}"),
    ("output_tokens", "output tok", "{:,}"),
    ("reasoning_tokens", "reasoning tok", "{:,}"),
    ("tokens_saved", "tokens saved", "{:,}"),
    ("cost_usd_before", "cost before", "${:,.4f}"),
    ("cost_usd_after", "cost after", "${:,.4f}"),
    ("cost_usd_saved", "saved", "${:,.4f}"),
    ("fail_opens", "fail-opens", "{:,}"),
)


def render(report: Report, fmt: str) -> str:
    data = report.as_json()
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt == "md":
        return markdown(data)
    if fmt == "html":
        return page(data)
    if fmt == "table":
        return table(data)
    raise ValueError(f"unknown format '{fmt}' (table, md, json or html)")


def _rows(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(g["key"], g) for g in data["groups"]] + [("total", data["totals"])]


def table(data: dict[str, Any]) -> str:
    from rich.console import Console
    from rich.table import Table

    out = StringIO()
    console = Console(file=out, width=160, force_terminal=False)
    grid = Table(title=f"tokenopt savings by {data['group_by']}", title_justify="left")
    grid.add_column(data["group_by"])
    for _, label, _ in COLUMNS:
        grid.add_column(label, justify="right")
    for key, row in _rows(data):
        grid.add_row(key, *(fmt.format(row[name]) for name, _, fmt in COLUMNS),
                     style="bold" if key == "total" else None)
    console.print(grid)
    for line in _footer(data):
        console.print(line)
    return out.getvalue()


def markdown(data: dict[str, Any]) -> str:
    lines = [f"## tokenopt savings by {data['group_by']}", "",
             "| " + " | ".join([data["group_by"], *(label for _, label, _ in COLUMNS)]) + " |",
             "| --- " + "| --: " * len(COLUMNS) + "|"]
    for key, row in _rows(data):
        cells = [fmt.format(row[name]) for name, _, fmt in COLUMNS]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines += ["", *(f"- {line}" for line in _footer(data))]
    return "\n".join(lines) + "\n"


def _footer(data: dict[str, Any]) -> list[str]:
    totals = data["totals"]
    lines = [(f"reasoning spend ${totals['reasoning_cost_usd']:,.4f}; "
              f"tool-search detours {totals['search_detours']:,} "
              f"(${totals.get('detour_cost_usd', 0.0):,.4f}, included in the cost after); "
              f"mean added latency {totals['added_latency_ms_mean']:.2f} ms")]
    lines += [f"cache break: {c['cause']} ({c['requests']:,})" for c in data["top_cache_break_causes"]]
    return lines


# -- HTML: one file, inline SVG charts, no script, no network ----------------------------------

BEFORE, AFTER = "#c0504d", "#2e7d32"


def page(data: dict[str, Any]) -> str:
    totals = data["totals"]
    saved = totals["cost_usd_saved"]
    share = saved / totals["cost_usd_before"] if totals["cost_usd_before"] else 0.0
    body = [
        "<h1>tokenopt savings</h1>",
        f"<p class=lead>Saved <b>${saved:,.4f}</b> ({share:.1%}) on {totals['requests']:,} requests; "
        f"{totals['cached_share']:.1%} of input tokens read from cache.</p>",
        "<h2>Savings over time</h2>", _savings_chart(data["daily"]),
        "<h2>Cost by model, before and after</h2>", _model_chart(data),
        f"<h2>By {html.escape(data['group_by'])}</h2>", _html_table(data),
    ]
    if data["top_cache_break_causes"]:
        body += ["<h2>Top cache-break causes</h2><ul>"]
        body += [f"<li>{html.escape(c['cause'])}: {c['requests']:,}</li>"
                 for c in data["top_cache_break_causes"]]
        body += ["</ul>"]
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<title>tokenopt report</title><style>"
        "body{font:14px system-ui,sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #ddd;"
        "text-align:right}td:first-child,th:first-child{text-align:left}.lead{font-size:16px}"
        "svg text{font:12px system-ui,sans-serif}"
        "</style></head><body>" + "".join(body) + "</body></html>\n"
    )


def _legend(x: int, y: int) -> str:
    return (f'<rect x="{x}" y="{y}" width="12" height="12" fill="{BEFORE}"/>'
            f'<text x="{x + 16}" y="{y + 11}">before</text>'
            f'<rect x="{x + 80}" y="{y}" width="12" height="12" fill="{AFTER}"/>'
            f'<text x="{x + 96}" y="{y + 11}">after</text>')


def _savings_chart(daily: list[dict[str, Any]]) -> str:
    width, height, pad = 640, 220, 40
    top = max([max(d["cost_usd_before"], d["cost_usd_after"]) for d in daily] or [0.0]) or 1.0
    slot = (width - 2 * pad) / max(len(daily), 1)
    bars = []
    for i, day in enumerate(daily):
        x = pad + i * slot
        for j, (key, color) in enumerate((("cost_usd_before", BEFORE), ("cost_usd_after", AFTER))):
            h = (height - 2 * pad) * day[key] / top
            bars.append(f'<rect class="bar" x="{x + j * slot * 0.4 + slot * 0.1:.1f}" '
                        f'y="{height - pad - h:.1f}" width="{slot * 0.4:.1f}" height="{h:.1f}" '
                        f'fill="{color}"><title>{day["day"]} {key}: ${day[key]:.4f}</title></rect>')
        bars.append(f'<text x="{x + slot / 2:.1f}" y="{height - pad + 14}" '
                    f'text-anchor="middle">{day["day"][5:]}</text>')
    return (f'<svg id="chart-savings" width="{width}" height="{height}" role="img" '
            f'aria-label="cost per day before and after">'
            f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
            f'stroke="#888"/>{"".join(bars)}{_legend(pad, 8)}'
            f'<text x="{pad}" y="{pad - 6}">max ${top:,.4f}/day</text></svg>')


def _model_chart(data: dict[str, Any]) -> str:
    groups = data["groups"] if data["group_by"] == "model" else []
    if not groups:
        groups = [{"key": "all", **data["totals"]}]
    width, row, pad = 640, 34, 160
    height = len(groups) * row + 40
    top = max(max(g["cost_usd_before"], g["cost_usd_after"]) for g in groups) or 1.0
    bars = []
    for i, group in enumerate(groups):
        y = 30 + i * row
        bars.append(f'<text x="{pad - 8}" y="{y + 14}" text-anchor="end">'
                    f'{html.escape(group["key"])}</text>')
        for j, (key, color) in enumerate((("cost_usd_before", BEFORE), ("cost_usd_after", AFTER))):
            w = (width - pad - 80) * group[key] / top
            bars.append(f'<rect class="bar" x="{pad}" y="{y + j * 13}" width="{w:.1f}" height="12" '
                        f'fill="{color}"><title>{key}: ${group[key]:.4f}</title></rect>'
                        f'<text x="{pad + w + 4:.1f}" y="{y + j * 13 + 10}">${group[key]:,.4f}</text>')
    return (f'<svg id="chart-models" width="{width}" height="{height}" role="img" '
            f'aria-label="cost by model before and after">{_legend(pad, 6)}{"".join(bars)}</svg>')


def _html_table(data: dict[str, Any]) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label, _ in COLUMNS)
    rows = "".join(
        f"<tr><td>{html.escape(key)}</td>"
        + "".join(f"<td>{fmt.format(row[name])}</td>" for name, _, fmt in COLUMNS) + "</tr>"
        for key, row in _rows(data))
    return f"<table><tr><th>{html.escape(data['group_by'])}</th>{head}</tr>{rows}</table>"

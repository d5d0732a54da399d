"""`tokenopt report`: before/after savings from the ledger, in four formats."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from tokenopt.exceptions import ConfigError
from tokenopt.ledger import Ledger
from tokenopt.report.aggregate import GROUPINGS, Report, Totals, build_report
from tokenopt.report.render import render

__all__ = ["GROUPINGS", "Report", "Totals", "build_report", "parse_time", "render", "report_from"]

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_time(value: str | None, *, now: float | None = None) -> float | None:
    """`2026-11-01`, `2026-11-01T12:00`, a unix time, or an age like `24h` / `7d`."""
    if value is None:
        return None
    now = time.time() if now is None else now
    match = _RELATIVE.match(value.strip())
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"'{value}' is not a time (use 2026-11-01, 2026-11-01T12:00, "
                          "a unix time, or an age like 24h or 7d)") from exc
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


async def report_from(ledger: Ledger, *, since: float | None = None, until: float | None = None,
                      group_by: str = "model") -> Report:
    if group_by not in GROUPINGS:
        raise ConfigError(f"cannot group by '{group_by}' (choose from {', '.join(GROUPINGS)})")
    return build_report(await ledger.query(since, until), group_by=group_by,
                        since=since, until=until)

"""The traffic file: JSON Lines, one recorded request a line (format in DESIGN.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from tokenopt.exceptions import ConfigError

Route = Literal["/v1/chat/completions", "/v1/responses", "/v1/messages"]


class TrafficError(ConfigError):
    """A traffic file that cannot be read; the message names the line."""


class TrafficLine(BaseModel):
    """One request as it was sent, and optionally what the model answered."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    ts: float
    path: Route
    headers: dict[str, str] = {}
    body: dict[str, Any]
    response: dict[str, Any] | None = None


def read_traffic(path: str | Path) -> Iterator[TrafficLine]:
    """Lines of a traffic file, validated; blank lines are skipped."""
    try:
        file = Path(path).open(encoding="utf-8")
    except OSError as exc:
        raise TrafficError(f"cannot read traffic file '{path}': {exc.strerror}") from exc
    with file:
        for number, text in enumerate(file, start=1):
            if not text.strip():
                continue
            try:
                yield TrafficLine.model_validate(json.loads(text))
            except (ValueError, ValidationError) as exc:
                reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
                raise TrafficError(f"{path}:{number}: not a traffic line: {reason}") from exc

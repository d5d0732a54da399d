"""Volatile spans: dates, times, ids that change on every request and break the prefix.

With `relocate_volatile`, each span found in the system prompt is replaced by
a short label (`[ts1]`) and its value moved, verbatim, into a labelled note at
the end of the newest user turn: after the cacheable prefix, and nothing lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Most specific first: a timestamp is not also reported as a date and a time.
DEFAULT_PATTERNS: dict[str, str] = {
    "timestamp": r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?",
    "uuid": r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b",
    "date": r"\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}/\d{1,2}/\d{2,4}\b|\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,? "
            r"(?:\d{1,2} )?(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]* \d{1,2}(?:, \d{4})?",
    "time": r"\b\d{1,2}:\d{2}(?::\d{2})?(?:\s?[AaPp][Mm])?\b",
    "epoch": r"\b1[6-9]\d{8}(?:\d{3})?\b",
    "hex_id": r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{16,}\b",
    # Tried only where a run of id characters starts: a `\b` inside a run (at each "-")
    # would rescan the rest of the run from every dash, quadratic on "a-a-a-...".
    "base64_id": r"(?<![A-Za-z0-9_-])\b(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[a-z])"
                 r"(?=[A-Za-z0-9_-]*[A-Z])[A-Za-z0-9_-]{20,}\b",
}
LABELS = {"timestamp": "ts", "uuid": "id", "date": "date", "time": "time", "epoch": "epoch",
          "hex_id": "id", "base64_id": "id"}


@dataclass(frozen=True, slots=True)
class Span:
    label: str
    kind: str
    value: str


class VolatileSpans:
    """Finds and relocates volatile spans with one compiled alternation."""

    def __init__(self, patterns: dict[str, str]) -> None:
        self.kinds = list(patterns)
        self.regex = re.compile("|".join(f"(?P<{kind}>{pattern})" for kind, pattern in patterns.items()))

    def relocate(self, texts: list[str]) -> tuple[list[str], list[Span]]:
        """The texts with each span replaced by its label, and the spans in order."""
        spans: list[Span] = []
        counts: dict[str, int] = {}

        def label(match: re.Match[str]) -> str:
            kind = match.lastgroup or "value"
            prefix = LABELS.get(kind, kind)
            counts[prefix] = counts.get(prefix, 0) + 1
            name = f"{prefix}{counts[prefix]}"
            spans.append(Span(name, kind, match.group(0)))
            return f"[{name}]"

        return [self.regex.sub(label, text) for text in texts], spans


def note_for(spans: list[Span]) -> str:
    """The labelled block appended to the newest user turn."""
    values = "; ".join(f"[{span.label}] = {span.value}" for span in spans)
    return f"\n\n(Values referenced in the system prompt: {values})"

"""Where Anthropic `cache_control` breakpoints go, and with which TTL.

Stable segments end at the last tool, the last system block and the last block
of the history before the newest turn. A breakpoint is placed only where reuse
is expected to pay for the write (1.25× input for 5 minutes, 2× for an hour,
against 0.1× per read): the segment's prefix was seen before for this tenant,
or the conversation is continuing. The 1-hour TTL is chosen when requests of
the conversation arrive more than five minutes apart (a 5-minute entry would
be re-written every turn) but within the hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_BREAKPOINTS = 4
# Blocks that cannot carry a marker (PROVIDER_SEMANTICS §1.3).
UNMARKABLE = frozenset({"thinking", "redacted_thinking"})
FIVE_MINUTES, ONE_HOUR = 300.0, 3600.0


@dataclass(frozen=True, slots=True)
class Plan:
    """Which segments get a breakpoint, and the TTL they get."""

    tools: bool
    system: bool
    history: bool
    ttl: str

    @property
    def count(self) -> int:
        return self.tools + self.system + self.history


def choose_ttl(gap_seconds: float | None, write_5m: float = 1.25, write_1h: float = 2.0,
               read: float = 0.1) -> str:
    """`1h` when, at this cadence, one 1-hour write costs less than re-writing every turn.

    Per turn after the first: 5-minute entries expire between turns and are
    written again (write_5m), 1-hour ones are read (read); the 1-hour entry
    costs write_1h once instead of write_5m. It pays when the gap is over five
    minutes and under an hour, since write_5m - read > 0 from the second turn on
    and the extra first-write cost (write_1h - write_5m) is less than one saved
    re-write (write_5m - read).
    """
    if gap_seconds is None or not FIVE_MINUTES < gap_seconds < ONE_HOUR:
        return "5m"
    return "1h" if write_1h - write_5m < write_5m - read else "5m"


def marker(ttl: str) -> dict[str, str]:
    return {"type": "ephemeral", "ttl": ttl} if ttl == "1h" else {"type": "ephemeral"}


def count_markers(body: dict[str, Any]) -> int:
    """Breakpoints the client already set (tools, system, messages, automatic)."""
    def marked(items: Any) -> int:
        return sum(isinstance(i, dict) and "cache_control" in i
                   for i in items) if isinstance(items, list) else 0

    total = marked(body.get("tools")) + marked(body.get("system"))
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            total += marked(message.get("content"))
    return total + ("cache_control" in body)


def mark_message(message: dict[str, Any], ttl: str, *, skip: int = 0) -> dict[str, Any] | None:
    """The message with a breakpoint on its last markable block (None: none can carry one).

    `skip` leaves that many trailing blocks out (a relocated-values note: the
    next request's history will not contain it, so the prefix ends before it).
    """
    content = message.get("content")
    if isinstance(content, str):
        if not content:
            return None
        return {**message, "content": [{"type": "text", "text": content, "cache_control": marker(ttl)}]}
    if not isinstance(content, list):
        return None
    for index in range(len(content) - 1 - skip, -1, -1):
        block = content[index]
        if not isinstance(block, dict) or block.get("type") in UNMARKABLE:
            continue
        if block.get("type") == "text" and not block.get("text"):
            continue
        if "cache_control" in block:
            return message  # the client's own breakpoint already ends this segment
        blocks = list(content)
        blocks[index] = {**block, "cache_control": marker(ttl)}
        return {**message, "content": blocks}
    return None

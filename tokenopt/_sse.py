"""A sans-I/O parser for Server-Sent Events.

The relay forwards bytes as they arrive; this parser only watches them, so it
keeps no more than the one event being assembled.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event: its `event:` name (or "message") and joined `data:` lines."""

    event: str
    data: str
    raw: bytes


class SSEParser:
    """Splits a byte stream into events, whatever the chunk boundaries.

    `feed()` returns the events completed by a chunk, each with the exact bytes
    that made it up, so a caller can drop one event and forward the rest verbatim.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        self._buffer += chunk
        events: list[SSEEvent] = []
        while True:
            end, sep_len = _find_boundary(self._buffer)
            if end < 0:
                return events
            raw = bytes(self._buffer[: end + sep_len])
            del self._buffer[: end + sep_len]
            event = _parse_event(raw)
            if event is not None:
                events.append(event)

    def flush(self) -> bytes:
        """Return (and forget) bytes of an event that never got its blank line."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest


def _find_boundary(buffer: bytearray) -> tuple[int, int]:
    # Events end at a blank line; servers use \n\n, \r\n\r\n or (rarely) \r\r.
    best = (-1, 0)
    for sep in (b"\n\n", b"\r\n\r\n", b"\r\r"):
        index = buffer.find(sep)
        if index >= 0 and (best[0] < 0 or index < best[0]):
            best = (index, len(sep))
    return best


def _parse_event(raw: bytes) -> SSEEvent | None:
    name = "message"
    data: list[str] = []
    for line in raw.decode("utf-8", errors="replace").splitlines():
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    if not data and name == "message":
        # A comment or keep-alive: kept (as event "") so a relay can forward its bytes.
        return SSEEvent(event="", data="", raw=raw) if raw.strip() else None
    return SSEEvent(event=name, data="\n".join(data), raw=raw)

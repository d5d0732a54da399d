from __future__ import annotations

import pytest

from tokenopt._sse import SSEParser

STREAM = (
    b"event: message_start\ndata: {\"a\": 1}\n\n"
    b": keep-alive comment\n\n"
    b"data: line one\ndata: line two\n\n"
    b"event: ping\r\ndata: {}\r\n\r\n"
    b"data: [DONE]\n\n"
)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(STREAM)])
def test_events_are_the_same_whatever_the_chunk_boundaries(size: int) -> None:
    parser = SSEParser()
    events = []
    for start in range(0, len(STREAM), size):
        events += parser.feed(STREAM[start : start + size])
    assert [(e.event, e.data) for e in events] == [
        ("message_start", '{"a": 1}'),
        ("", ""),
        ("message", "line one\nline two"),
        ("ping", "{}"),
        ("message", "[DONE]"),
    ]
    # The events' raw bytes, comments included, rebuild the stream exactly.
    assert b"".join(e.raw for e in events) == STREAM


def test_an_unterminated_event_is_returned_by_flush() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: {\"partial\"") == []
    assert parser.flush() == b"data: {\"partial\""
    assert parser.flush() == b""

"""Reading traffic files: valid lines load, bad ones are refused with their line number."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenopt.replay import TrafficError, read_traffic


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "traffic.jsonl"
    path.write_text(text)
    return path


def test_lines_load_with_defaults_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = write(tmp_path, '{"ts": 1, "path": "/v1/messages", "body": {"model": "m"}}\n\n'
                           '{"ts": 2.5, "path": "/v1/responses", "body": {}, "response": {"id": "r"},'
                           ' "headers": {"x-tokenopt-conversation": "c"}, "note": "ignored"}\n')
    first, second = read_traffic(path)
    assert (first.ts, first.path, first.headers, first.response) == (1.0, "/v1/messages", {}, None)
    assert second.response == {"id": "r"} and second.headers == {"x-tokenopt-conversation": "c"}


@pytest.mark.parametrize(("line", "reason"), [
    ("{not json", "Expecting property name"),
    ('{"ts": 1, "path": "/v1/embeddings", "body": {}}', "Input should be"),
    ('{"ts": 1, "path": "/v1/messages"}', "Field required"),
    ('{"ts": "noon", "path": "/v1/messages", "body": {}}', "valid number"),
])
def test_a_bad_line_names_its_number_and_the_reason(tmp_path: Path, line: str, reason: str) -> None:
    path = write(tmp_path, '{"ts": 1, "path": "/v1/messages", "body": {}}\n' + line + "\n")
    with pytest.raises(TrafficError, match=rf"traffic.jsonl:2: .*{reason}"):
        list(read_traffic(path))


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TrafficError, match="cannot read traffic file"):
        list(read_traffic(tmp_path / "absent.jsonl"))

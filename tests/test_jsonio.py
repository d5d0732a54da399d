import json
import math

import pytest

from tokenopt import jsonio


def test_round_trip_is_compact_and_keeps_key_order() -> None:
    value = {"b": 1, "a": [1.5, "é", None, True]}
    assert jsonio.dumps(value) == b'{"b":1,"a":[1.5,"\xc3\xa9",null,true]}'
    assert jsonio.loads(jsonio.dumps(value)) == value


def test_sorted_dump_is_the_same_for_equal_values() -> None:
    assert jsonio.dumps_sorted({"b": 1, "a": 2}) == jsonio.dumps_sorted({"a": 2, "b": 1}) == b'{"a":2,"b":1}'


def test_deep_nesting_is_a_json_error_not_a_recursion_error() -> None:
    with pytest.raises(jsonio.JSONError, match="nested too deeply"):
        jsonio.loads(b"[" * 5000 + b"]" * 5000)


@pytest.mark.parametrize("raw", [b"{", b'{"a": }', b"\xff\xfe", b""])
def test_malformed_json_is_a_json_error(raw: bytes) -> None:
    with pytest.raises(jsonio.JSONError):
        jsonio.loads(raw)


def test_what_the_json_module_accepts_is_still_accepted() -> None:
    assert math.isnan(jsonio.loads(b"[NaN]")[0])
    assert jsonio.loads(b'"\\ud800"') == "\ud800"
    assert jsonio.loads(jsonio.dumps("\ud800")) == "\ud800"
    assert jsonio.loads(jsonio.dumps(10**30)) == 10**30
    assert json.loads(jsonio.dumps({1: "x"})) == {"1": "x"}


@pytest.mark.parametrize("raw", [
    b'{"model":"m","tools":[{"name":"a","input_schema":{}},{"name":"b"}],"messages":[]}',
    b'{"tools": 5}', b'{"tools": null, "a": 1}', b'{"tools": [1, {"a": NaN}]}',
    b'[1, "tools"]', b'{"tools": [{"x": 1}], "tools": [2]}', b'{"a": "\\"tools\\""}',
    b'{"z": 1, "tools": [], "a": [{"b": "\\ud800"}]}',
])
def test_a_request_body_reads_as_plain_json_does(raw: bytes) -> None:
    read = jsonio.loads_request(raw)
    assert jsonio.dumps(read) == jsonio.dumps(jsonio.loads(raw))  # same values, same key order


def test_tool_entries_sent_again_are_the_same_objects() -> None:
    first = jsonio.loads_request(b'{"tools":[{"name":"t1","description":"one"}],"n":1}')
    second = jsonio.loads_request(b'{"n":2, "tools": [{"name":"t1","description":"one"}]}')
    changed = jsonio.loads_request(b'{"tools":[{"name":"t1","description":"two"}]}')
    assert second["tools"][0] is first["tools"][0]
    assert changed["tools"][0] == {"name": "t1", "description": "two"}


@pytest.mark.parametrize("raw", [b'{"tools": [', b'{"tools": [1,]}', b'{"tools": [' * 3000])
def test_a_malformed_request_body_is_a_json_error(raw: bytes) -> None:
    with pytest.raises(jsonio.JSONError):
        jsonio.loads_request(raw)

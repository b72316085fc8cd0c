"""Intake's pure request checks: the nesting depth read from the JSON text without parsing it, and the media type."""

import json

import pytest
from tthc_intake.validation import MalformedBody, is_json, nesting_depth, raw_events


@pytest.mark.parametrize(("text", "depth"), [
    ('{}', 1),
    ('[{"a": [1, {"b": {}}]}]', 5),
    ('{"a": "[[[{{{"}', 1),  # brackets inside a string are text
    ('{"a": "\\"[[", "b": ["]]"]}', 2),  # an escaped quote does not end the string
    ('{"a": "\\\\", "b": [[]]}', 3),  # an escaped backslash does
    ('"no structure"', 0),
    ('{"a": "unterminated [[[[', 1),  # the rest of an unterminated string is text
])
def test_nesting_depth_reads_the_text_like_a_parser(text: str, depth: int) -> None:
    assert nesting_depth(text.encode()) == depth


def test_nesting_depth_agrees_with_the_parsed_value() -> None:
    def parsed_depth(value: object) -> int:
        if isinstance(value, dict):
            return 1 + max(map(parsed_depth, value.values()), default=0)
        if isinstance(value, list):
            return 1 + max(map(parsed_depth, value), default=0)
        return 0

    value = {"x": [{"y": "]}[{"}, [[["z"]]], {"w": {"v": ["\"]"]}}]}
    assert nesting_depth(json.dumps(value).encode()) == parsed_depth(value) == 5


def test_a_million_levels_are_measured_without_recursion() -> None:
    assert nesting_depth(b"[" * 1_000_000 + b"]" * 1_000_000) == 1_000_000
    with pytest.raises(MalformedBody, match="nested deeper than 32"):
        raw_events(b"[" * 1_000_000 + b"]" * 1_000_000)


def test_a_batch_may_be_one_level_deeper_than_an_event() -> None:
    event = {"data": 1}
    for _ in range(30):
        event = {"data": event}  # 31 objects
    assert raw_events(json.dumps([{"e": event}]).encode())  # array + 32 objects
    with pytest.raises(MalformedBody):
        raw_events(json.dumps({"e": {"f": event}}).encode())  # 33 objects


@pytest.mark.parametrize(("content_type", "ok"), [
    ("application/json", True), ("Application/JSON; charset=utf-8", True), (None, False), ("text/json", False),
    ("application/json-patch+json", False),
])
def test_only_application_json_is_json(content_type: str | None, ok: bool) -> None:
    assert is_json(content_type) is ok

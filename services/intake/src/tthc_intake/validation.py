"""The checks of a request, from its bytes to validated events, or to everything wrong with it. Pure (no I/O,
no clock: the caller passes the latest acceptable `occurred_at`), so every rule is tested on its own.

The contract's own checks (fields, types, and the bounds that need no clock) are `tthc_contracts.events`';
here are the bounds of the request and of the JSON text: media type, nesting depth, finite numbers, valid
UTF-16, the source a key may post for, `occurred_at` against intake's clock, and the published size.
"""

from __future__ import annotations

import json
import re
from array import array
from collections.abc import Sequence
from datetime import datetime
from itertools import accumulate
from typing import Any

from tthc_common.errors import Problem
from tthc_common.publish import OutgoingMessage
from pydantic import ValidationError
from tthc_contracts.events import MAX_NESTING, EventValidationError, parse_dossier_event, timestamp_adapter
from tthc_contracts.timefmt import format_ts


class MalformedBody(ValueError):
    """The body is not one event or an array of events (422, no index, no field)."""


def is_json(content_type: str | None) -> bool:
    """`application/json`, with or without parameters (`; charset=utf-8`)."""
    return (content_type or "").split(";", 1)[0].strip().lower() == "application/json"


# A JSON string, escapes included; an unterminated one runs to the end (never backtracks: linear time).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 and -1 as signed bytes


def nesting_depth(body: bytes) -> int:
    """How deep arrays and objects nest in a JSON text, read without parsing it, so a body nested a million
    levels deep costs a scan, never a recursion."""
    structure = _STRING.sub(b"", body).translate(_BRACKET_STEPS, _NOT_BRACKETS)
    return max(accumulate(array("b", structure)), default=0)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("a number is out of range")
    return value


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def raw_events(body: bytes, *, max_nesting: int = MAX_NESTING) -> list[Any]:
    """The body as a list of raw events: one object becomes a list of one. Raises MalformedBody.

    `max_nesting` bounds each event; the array around a batch is one level more."""
    around = 1 if body.lstrip()[:1] == b"[" else 0
    decoded = decode_json(body, max_depth=max_nesting + around,
                          too_deep=f"JSON nested deeper than {max_nesting} levels in an event")
    if isinstance(decoded, dict):
        return [decoded]
    if isinstance(decoded, list):
        if not decoded:
            raise MalformedBody("the array is empty: send at least one event")
        return decoded
    raise MalformedBody("the body must be one event (a JSON object) or an array of events")


def decode_json(body: bytes, *, max_depth: int, too_deep: str) -> Any:
    """The JSON value of `body`, read within the bounds of events.md: arrays and objects nested at most
    `max_depth` deep (else MalformedBody(`too_deep`)), finite numbers, valid UTF-16. Raises MalformedBody."""
    if nesting_depth(body) > max_depth:
        raise MalformedBody(too_deep)
    try:
        decoded = json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, UnicodeDecodeError):
        raise MalformedBody("the body is not valid UTF-8 JSON") from None
    if _SURROGATE_ESCAPE.search(body):  # rare: only then is the text checked for unpaired \uD800-\uDFFF
        try:
            json.dumps(decoded, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedBody("a string holds an unpaired UTF-16 surrogate (\\uD800-\\uDFFF)") from None
    return decoded


def foreign_sources(raws: list[Any], source: str) -> list[Problem]:
    """Events that name another source than the key's (403). Events without a source are left to
    validation (422)."""
    problems = []
    for index, raw in enumerate(raws):
        claimed = raw.get("source") if isinstance(raw, dict) else None
        if isinstance(claimed, str) and claimed != source:
            problems.append(Problem(index=index, field="source",
                                    reason=f"this key may only post events of source {source!r}"))
    return problems


def validate_events(raws: list[Any], *, latest_occurred_at: datetime) -> tuple[list[Any], list[Problem]]:
    """(events, problems): every problem of every event, so the sender can fix all in one go.

    `latest_occurred_at`: intake's clock plus the allowed lead (events.md, Bounds)."""
    events: list[Any] = []
    problems: list[Problem] = []
    for index, raw in enumerate(raws):
        try:
            event = parse_dossier_event(raw)
        except EventValidationError as exc:
            problems.extend(Problem(index=index, field=None if e.field == "(event)" else e.field, reason=e.reason)
                            for e in exc.errors)
            if all(e.field != "occurred_at" for e in exc.errors):  # and the clock's bound, if it applies
                problems.extend(_ahead_of_clock(index, _occurred_at(raw), latest_occurred_at))
            continue
        if ahead := _ahead_of_clock(index, event.occurred_at, latest_occurred_at):
            problems.extend(ahead)
            continue
        events.append(event)
    return events, problems


def _occurred_at(raw: Any) -> datetime | None:
    try:
        return timestamp_adapter.validate_python(raw.get("occurred_at") if isinstance(raw, dict) else None)
    except ValidationError:
        return None


def _ahead_of_clock(index: int, occurred_at: datetime | None, latest: datetime) -> list[Problem]:
    if occurred_at is None or occurred_at <= latest:
        return []
    return [Problem(index=index, field="occurred_at", reason=(
        f"lies in the future: intake takes events up to {format_ts(latest)} (its clock plus the allowed lead)"))]


def oversized(messages: Sequence[OutgoingMessage], max_event_bytes: int) -> list[Problem]:
    """Events whose published JSON is over `max_event_bytes` (413), each named."""
    return [Problem(index=index,
                    reason=f"the event is {len(m.value):,} bytes of JSON; at most {max_event_bytes:,}")
            for index, m in enumerate(messages) if len(m.value) > max_event_bytes]


def split_duplicates(events: list[Any], seen_before: set[str]) -> tuple[list[int], list[int]]:
    """Positions of the (new, duplicate) events, in request order. A repeated `event_id` inside the request is
    a duplicate from its second occurrence on; all events of a request share one source."""
    new: list[int] = []
    duplicates: list[int] = []
    seen = set(seen_before)
    for position, event in enumerate(events):
        if event.event_id in seen:
            duplicates.append(position)
        else:
            seen.add(event.event_id)
            new.append(position)
    return new, duplicates

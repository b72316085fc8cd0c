"""From a request body to validated events, or to the list of everything wrong with it.

The checks are pure (no I/O), so the HTTP handler stays a sequence of steps and every rule can be
tested on its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tthc_contracts.events import EventValidationError, parse_dossier_event

BODY = "(body)"


@dataclass(frozen=True)
class Problem:
    """One entry of a 4xx `errors` list. `index` is the event's position (None: the whole body)."""

    index: int | None
    field: str
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "reason": self.reason}


class MalformedBody(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def raw_events(body: bytes) -> list[Any]:
    """The body as a list of raw events: one object becomes a list of one. Raises MalformedBody."""
    try:
        decoded = json.loads(body, parse_constant=_refuse_constant)  # NaN, Infinity are refused
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedBody("the body is not valid UTF-8 JSON") from exc
    if isinstance(decoded, dict):
        return [decoded]
    if isinstance(decoded, list):
        if not decoded:
            raise MalformedBody("the array is empty: send at least one event")
        return decoded
    raise MalformedBody("the body must be one event (a JSON object) or an array of events")


def foreign_sources(raws: list[Any], source: str) -> list[Problem]:
    """Events that name another source than the key's (403). Events without a source are left to
    validation (422)."""
    problems = []
    for index, raw in enumerate(raws):
        claimed = raw.get("source") if isinstance(raw, dict) else None
        if isinstance(claimed, str) and claimed != source:
            problems.append(Problem(index, "source", f"this key may only post events of source {source!r}"))
    return problems


def validate_events(raws: list[Any]) -> tuple[list[Any], list[Problem]]:
    """(events, problems): every problem of every event, so the sender can fix all in one go."""
    events: list[Any] = []
    problems: list[Problem] = []
    for index, raw in enumerate(raws):
        try:
            events.append(parse_dossier_event(raw))
        except EventValidationError as exc:
            problems.extend(Problem(index, e.field, e.reason) for e in exc.errors)
    return events, problems


def split_duplicates(events: list[Any], seen_before: set[str]) -> tuple[list[Any], list[Any]]:
    """(new, duplicates) in request order. A repeated `event_id` inside the request is a duplicate
    from its second occurrence on; all events of a request share one source."""
    new: list[Any] = []
    duplicates: list[Any] = []
    seen = set(seen_before)
    for event in events:
        if event.event_id in seen:
            duplicates.append(event)
        else:
            seen.add(event.event_id)
            new.append(event)
    return new, duplicates

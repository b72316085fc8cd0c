"""The deployment's calendar file (`spec/deadlines.md` §1), read strictly.

A file that does not parse, an interval that ends before it starts or overlaps another, an unknown
key, a date that is not a date, or a date listed both as a day off and as a working day is refused
with its line and the reason: the service must not start on a half-read calendar.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

import yaml

from tthc_contracts.config_yaml import SUPPLEMENT_MODES, ConfigFileError, choice, compose, is_null, number
from tthc_contracts.config_yaml import line as _line
from tthc_contracts.config_yaml import mapping as _mapping
from tthc_contracts.config_yaml import scalar as _scalar

DEFAULT_OFFICE_HOURS: tuple[tuple[int, int], ...] = ((8 * 60, 12 * 60), (13 * 60, 17 * 60))

_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_INTERVAL = re.compile(r"^\s*(\d\d:\d\d)\s*-\s*(\d\d:\d\d|24:00)\s*$")
_ONLINE_LEVELS = ("partial", "full")  # dịch vụ công trực tuyến một phần / toàn trình
_PROCEDURE_KEYS = "supplement_mode, online"


class CalendarFileError(ConfigFileError):
    what = "calendar"


@dataclass(frozen=True)
class AgencyCalendar:
    office_hours: tuple[tuple[int, int], ...] | None = None
    receipt_cutoff: int | None = None
    receipt_cutoff_set: bool = False  # an agency may turn a province-wide cut-off off with null


@dataclass(frozen=True)
class CalendarConfig:
    office_hours: tuple[tuple[int, int], ...] = DEFAULT_OFFICE_HOURS
    receipt_cutoff: int | None = None
    extra_days_off: frozenset[date] = frozenset()
    extra_working_days: frozenset[date] = frozenset()
    agencies: dict[str, AgencyCalendar] = field(default_factory=dict)
    procedure_supplement_modes: dict[str, str] = field(default_factory=dict)
    # indices.md online figures: the procedures offered as an online public service, and how.
    procedure_online: dict[str, str] = field(default_factory=dict)
    # deadlines.md §9: how far a printed appointment may differ from the legal due date, in office hours.
    appointment_tolerance_hours: float = 0.0


def _minutes(text: str, node: yaml.Node, allow_24: bool = False) -> int:
    if allow_24 and text == "24:00":
        return 24 * 60
    m = _TIME.match(text)
    if not m:
        raise CalendarFileError(_line(node), f"{text!r} is not a time of day HH:MM")
    return int(m.group(1)) * 60 + int(m.group(2))


def _office_hours(node: yaml.Node) -> tuple[tuple[int, int], ...]:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise CalendarFileError(_line(node), "office_hours must be a non-empty list like [\"08:00-12:00\"]")
    intervals: list[tuple[int, int, yaml.Node]] = []
    for item in node.value:
        text = _scalar(item, "an office interval")
        m = _INTERVAL.match(text)
        if not m:
            raise CalendarFileError(_line(item), f"{text!r} is not an interval HH:MM-HH:MM")
        start, end = _minutes(m.group(1), item), _minutes(m.group(2), item, allow_24=True)
        if end <= start:
            raise CalendarFileError(_line(item), f"interval {text!r} ends before it starts")
        intervals.append((start, end, item))
    intervals.sort(key=lambda x: x[0])
    for (s1, e1, _), (s2, _e2, n2) in zip(intervals, intervals[1:]):
        if s2 < e1:
            raise CalendarFileError(_line(n2), f"interval {n2.value!r} overlaps another office interval")
    return tuple((s, e) for s, e, _ in intervals)


def _cutoff(node: yaml.Node) -> int | None:
    if is_null(node):
        return None
    return _minutes(_scalar(node, "receipt_cutoff"), node)


def _dates(node: yaml.Node, key: str) -> dict[date, int]:
    if not isinstance(node, yaml.SequenceNode):
        raise CalendarFileError(_line(node), f"{key} must be a list of dates YYYY-MM-DD")
    out: dict[date, int] = {}
    for item in node.value:
        text = _scalar(item, "a date")
        try:
            out[date.fromisoformat(text)] = _line(item)
        except ValueError:
            raise CalendarFileError(_line(item), f"{text!r} in {key} is not a date YYYY-MM-DD") from None
    return out


def _tolerance_hours(node: yaml.Node) -> float:
    hours = number(node, "appointment_tolerance_hours")
    if hours < 0:
        raise CalendarFileError(_line(node), f"appointment_tolerance_hours must be >= 0, not {hours:g}")
    return hours


def parse_calendar(text: str, path: str | None = None) -> CalendarConfig:
    try:
        return _build(compose(text))
    except ConfigFileError as exc:
        raise CalendarFileError(exc.line, exc.reason, path) from None


def _build(root: yaml.Node | None) -> CalendarConfig:
    if root is None:
        return CalendarConfig()
    values: dict[str, object] = {}
    days_off: dict[date, int] = {}
    working: dict[date, int] = {}
    agencies: dict[str, AgencyCalendar] = {}
    procedures: dict[str, str] = {}
    online: dict[str, str] = {}
    for key, key_node, value in _mapping(root, "the calendar file"):
        if key == "office_hours":
            values["office_hours"] = _office_hours(value)
        elif key == "receipt_cutoff":
            values["receipt_cutoff"] = _cutoff(value)
        elif key == "extra_days_off":
            days_off = _dates(value, key)
        elif key == "extra_working_days":
            working = _dates(value, key)
        elif key == "agencies":
            for code, _, body in _mapping(value, "agencies"):
                hours, cutoff, cutoff_set = None, None, False
                for akey, anode, avalue in _mapping(body, f"agency {code}"):
                    if akey == "office_hours":
                        hours = _office_hours(avalue)
                    elif akey == "receipt_cutoff":
                        cutoff, cutoff_set = _cutoff(avalue), True
                    else:
                        raise CalendarFileError(
                            _line(anode), f"unknown key {akey!r} for agency {code} (office_hours, receipt_cutoff)"
                        )
                agencies[code] = AgencyCalendar(hours, cutoff, cutoff_set)
        elif key == "procedures":
            for code, _, body in _mapping(value, "procedures"):
                for pkey, pnode, pvalue in _mapping(body, f"procedure {code}"):
                    if pkey == "supplement_mode":
                        procedures[code] = choice(pvalue, "supplement_mode", SUPPLEMENT_MODES)
                    elif pkey == "online":
                        online[code] = choice(pvalue, "online", _ONLINE_LEVELS)
                    else:
                        raise CalendarFileError(
                            _line(pnode), f"unknown key {pkey!r} for procedure {code} ({_PROCEDURE_KEYS})"
                        )
        elif key == "appointment_tolerance_hours":
            values["appointment_tolerance_hours"] = _tolerance_hours(value)
        else:
            raise CalendarFileError(_line(key_node), f"unknown key {key!r}")
    both = sorted(set(days_off) & set(working))
    if both:
        raise CalendarFileError(working[both[0]], f"{both[0]} is listed both as a day off and as a working day")
    return CalendarConfig(
        office_hours=values.get("office_hours", DEFAULT_OFFICE_HOURS),  # type: ignore[arg-type]
        receipt_cutoff=values.get("receipt_cutoff"),  # type: ignore[arg-type]
        extra_days_off=frozenset(days_off),
        extra_working_days=frozenset(working),
        agencies=agencies,
        procedure_supplement_modes=procedures,
        procedure_online=online,
        appointment_tolerance_hours=values.get("appointment_tolerance_hours", 0.0),  # type: ignore[arg-type]
    )

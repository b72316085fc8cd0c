"""The calendar in force and its fingerprint: the calendar file's content and the holidays package.

Each dossier row remembers the fingerprint it was computed under. When the service starts with a
different one (the province announced a make-up day, a typhoon closed the offices, holidays was
upgraded), every open dossier is re-folded under the new calendar and, where its due or at-risk
instant moved, a `deadline.scheduled` with `basis: calendar_change` is published (deadlines.md §1).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import holidays

from tthc_core.calendar import CalendarBook
from tthc_core.calendar_config import CalendarConfig


@dataclass(frozen=True)
class ActiveCalendar:
    """The calendars in force and their fingerprint (`calendar_version`)."""

    book: CalendarBook
    version: str

    @classmethod
    def of(cls, config: CalendarConfig) -> ActiveCalendar:
        return cls(CalendarBook(config), calendar_version(config))


def calendar_version(config: CalendarConfig) -> str:
    """What due dates depend on (not what only the figures read, like `online` or the appointment
    tolerance): a change of it re-schedules the open dossiers."""
    doc = {
        "holidays": holidays.__version__,
        "office_hours": config.office_hours,
        "receipt_cutoff": config.receipt_cutoff,
        "extra_days_off": sorted(d.isoformat() for d in config.extra_days_off),
        "extra_working_days": sorted(d.isoformat() for d in config.extra_working_days),
        "agencies": {code: [a.office_hours, a.receipt_cutoff, a.receipt_cutoff_set]
                     for code, a in sorted(config.agencies.items())},
        "procedures": dict(sorted(config.procedure_supplement_modes.items())),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]

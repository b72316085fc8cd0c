"""The periods the service speaks of without being asked: the current month, quarter and year (the
Prometheus gauges' `period` label), and the present instant they stand at.

These belong with `tthc_core.indices.Period` (issue 9: one place for the periods, imported by dashboards
and services); they live here until the core takes them.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from tthc_contracts.timefmt import to_vn
from tthc_core.indices import Period

PERIOD_NAMES = ("month", "quarter", "year")

# The watermark is the time of an event already seen: the present instant is just after it, so that the
# event a user just posted counts.
JUST_AFTER = timedelta(microseconds=1)


def present(watermark: datetime | None) -> datetime | None:
    return None if watermark is None else watermark + JUST_AFTER


def _month_end(year: int, month: int) -> date:
    first_next = date(year + (month == 12), month % 12 + 1, 1)
    return first_next - timedelta(days=1)


def current_periods(at: datetime) -> dict[str, Period]:
    """The month, quarter and year (local dates, Vietnam time) that contain the instant `at`."""
    day = to_vn(at).date()
    q_first = 3 * ((day.month - 1) // 3) + 1
    periods = {
        "month": Period(day.replace(day=1), _month_end(day.year, day.month)),
        "quarter": Period(date(day.year, q_first, 1), _month_end(day.year, q_first + 2)),
        "year": Period(date(day.year, 1, 1), date(day.year, 12, 31)),
    }
    assert tuple(periods) == PERIOD_NAMES
    return periods

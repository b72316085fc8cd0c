"""The index figures of a period at a cut, from the store, with `tthc_core.indices.compute_indices`.

The cut (indices.md): a period's figures see the events before P1 24:00, or before "now" when that is
earlier. "Now" is an explicit `until` when the caller gives one (a report as of an instant, like
`tthc replay --until`), else the service's watermark: the latest event time it has seen, the
watermark instant itself included (so the event a user just posted counts).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from tthc_contracts import VN_TZ, format_ts
from tthc_core.calendar import CalendarBook
from tthc_core.indices import GROUPINGS, Period, compute_indices

from .store import dossiers_at_cut

# The watermark is the time of an event already seen: the present instant just after it.
JUST_AFTER = timedelta(microseconds=1)


def present(watermark: datetime | None) -> datetime | None:
    return None if watermark is None else watermark + JUST_AFTER


def cut_for(period: Period, watermark: datetime | None, until: datetime | None) -> datetime:
    return period.cut(until if until is not None else present(watermark))


def indices_report(
    engine: Engine,
    book: CalendarBook,
    period: Period,
    cut: datetime,
    groupings: Iterable[str] = GROUPINGS,
) -> dict[str, Any]:
    """indices.json of the period at `cut` (plus `cut` itself, so a reader knows what instant it shows)."""
    dossiers, issued = dossiers_at_cut(engine, book, period.begins_at, cut)
    result = compute_indices(dossiers, period, cut, book, issued, tuple(groupings))
    result["cut"] = format_ts(cut)
    return result


# -- the current month, quarter and year (Prometheus gauges) ----------------------------------------
PERIOD_NAMES = ("month", "quarter", "year")


def _month_end(year: int, month: int) -> date:
    first_next = date(year + (month == 12), month % 12 + 1, 1)
    return first_next - timedelta(days=1)


def current_periods(at: datetime) -> dict[str, Period]:
    """The month, quarter and year (local dates, Vietnam time) that contain the instant `at`."""
    day = at.astimezone(VN_TZ).date()
    q_first = 3 * ((day.month - 1) // 3) + 1
    return {
        "month": Period(day.replace(day=1), _month_end(day.year, day.month)),
        "quarter": Period(date(day.year, q_first, 1), _month_end(day.year, q_first + 2)),
        "year": Period(date(day.year, 1, 1), date(day.year, 12, 31)),
    }


def current_figures(engine: Engine, book: CalendarBook, watermark: datetime) -> dict[str, dict[str, Any]]:
    """period name -> indices by agency and by field, at the present instant.

    The three periods contain the present, so they share its cut, and the year's handled dossiers
    include the quarter's and the month's: one load and fold serves the three.
    """
    now = present(watermark)
    assert now is not None
    periods = current_periods(watermark)
    year = periods["year"]
    cut = year.cut(now)
    dossiers, issued = dossiers_at_cut(engine, book, year.begins_at, cut)
    return {
        name: compute_indices(dossiers, period, cut, book, issued, ("agency", "field"))
        for name, period in periods.items()
    }

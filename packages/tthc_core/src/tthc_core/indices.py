"""The index figures of `spec/indices.md`. Pure.

Input: every received dossier as it stood at the period's cut (the deadline fold of the events
before the cut, advanced to the cut) and the first `apology.issued` instant of each dossier. The
same functions serve `tthc replay`'s `indices.json`, the metrics service's HTTP report and its
Prometheus gauges.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Iterable, Mapping

from tthc_contracts import VN_TZ

from .calendar import CalendarBook
from .deadlines import Dossier

GROUPINGS = ("agency", "field", "procedure", "channel")
FIGURES = (
    "received", "closed", "early", "on_time", "late", "open_overdue", "open_within",
    "on_time_rate", "i766_on_time_rate", "i766_on_time_score", "single_visit_rate",
    "supplement_at_most_once_rate", "contact_score", "apology_coverage", "apology_timely_rate",
    "avg_processing_days",
)  # fmt: skip


@dataclass(frozen=True)
class Period:
    start: date  # P0, inclusive
    end: date  # P1, inclusive

    @property
    def begins_at(self) -> datetime:
        return datetime.combine(self.start, time(0), tzinfo=VN_TZ)

    @property
    def ends_at(self) -> datetime:
        """P1 24:00."""
        return datetime.combine(self.end + timedelta(days=1), time(0), tzinfo=VN_TZ)

    def cut(self, now: datetime | None) -> datetime:
        """The figures see the events before P1 24:00, or before `now` when that is earlier."""
        return self.ends_at if now is None or now >= self.ends_at else now


@dataclass(frozen=True, slots=True)  # slots: a province year holds a million of them
class DossierFigures:
    """What one dossier contributes to a period's figures."""

    group_keys: tuple[str, str, str, str]  # agency, field, procedure, channel
    received: bool
    closed: bool
    outcome: str | None
    open_overdue: bool
    open_within: bool
    supplement_requests: int
    i766_on_time: bool
    late_with_apology: bool
    late_apology_timely: bool
    processing_days: float | None


def _first_apology(d: Dossier, issued_at: datetime | None) -> datetime | None:
    times = [t for t in (d.extended_at[0] if d.extended_at else None, issued_at) if t is not None]
    return min(times) if times else None


def dossier_figures(
    d: Dossier, period: Period, cut: datetime, book: CalendarBook, issued_at: datetime | None = None
) -> DossierFigures | None:
    """None when the dossier was not handled in the period (received after the cut or closed before P0)."""
    p0 = period.begins_at
    if d.received_at >= cut or (d.closed_at is not None and d.closed_at < p0):
        return None
    closed = d.closed_at is not None and p0 <= d.closed_at < cut
    still_open = d.closed_at is None or d.closed_at >= cut
    overdue = still_open and d.is_overdue_at(cut)
    cal = d.calendar(book)

    # 766 criterion 2.1
    if closed:
        end = d.judged_close
    elif still_open and d.clock == "awaiting_supplement":
        end = d.stops[-1].start
    else:
        end = cut
    assert end is not None
    supp = sum(
        ((s.end - s.start) for s in d.stops if s.kind == "supplement" and s.end is not None and s.end <= end),
        timedelta(0),
    )
    requests_before_end = sum(1 for t in d.supplement_requested_at if t <= end)
    i766_on_time = requests_before_end <= 1 and end - supp <= d.due_at_receipt

    processing_days = None
    if closed:
        j = d.judged_close
        assert j is not None
        worked = cal.between(d.start_at, j) - sum(cal.between(s.start, s.end) for s in d.completed_stops(j))
        processing_days = worked / cal.day_length_us

    late = closed and d.outcome == "late"
    first_apology = _first_apology(d, issued_at) if late else None
    deadline_for_apology = d.at_risk_at or d.due_at
    return DossierFigures(
        group_keys=(d.handling_agency.code, d.field_code, d.procedure_code, d.channel),
        received=p0 <= d.received_at < cut,
        closed=closed,
        outcome=d.outcome if closed else None,
        open_overdue=overdue,
        open_within=still_open and not overdue,
        supplement_requests=len([t for t in d.supplement_requested_at if d.closed_at is None or t < d.closed_at]),
        i766_on_time=i766_on_time,
        late_with_apology=first_apology is not None,
        late_apology_timely=first_apology is not None and first_apology <= deadline_for_apology,
        processing_days=processing_days,
    )


def _rate(numerator: float, denominator: int) -> float | None:
    return None if denominator == 0 else round(numerator / denominator, 4)


def aggregate(rows: Iterable[DossierFigures]) -> dict[str, Any]:
    rows = list(rows)
    closed = [r for r in rows if r.closed]
    late = [r for r in closed if r.outcome == "late"]
    n_closed = len(closed)
    early = sum(r.outcome == "early" for r in closed)
    on_time = sum(r.outcome == "on_time" for r in closed)
    i766 = _rate(sum(r.i766_on_time for r in rows), len(rows))
    days = [r.processing_days for r in closed if r.processing_days is not None]
    return {
        "received": sum(r.received for r in rows),
        "closed": n_closed,
        "early": early,
        "on_time": on_time,
        "late": len(late),
        "open_overdue": sum(r.open_overdue for r in rows),
        "open_within": sum(r.open_within for r in rows),
        "on_time_rate": _rate(early + on_time, n_closed),
        "i766_on_time_rate": i766,
        "i766_on_time_score": None if i766 is None else round(20 * i766, 4),
        "single_visit_rate": _rate(sum(r.supplement_requests == 0 for r in closed), n_closed),
        "supplement_at_most_once_rate": _rate(sum(r.supplement_requests <= 1 for r in closed), n_closed),
        "contact_score": _rate(sum(max(0, 2 - r.supplement_requests) for r in closed), n_closed),
        "apology_coverage": _rate(sum(r.late_with_apology for r in late), len(late)),
        "apology_timely_rate": _rate(sum(r.late_apology_timely for r in late), len(late)),
        "avg_processing_days": None if not days else round(sum(days) / len(days), 4),
    }


def compute_indices(
    dossiers: Iterable[Dossier],
    period: Period,
    cut: datetime,
    book: CalendarBook,
    issued_at: Mapping[str, datetime] | None = None,
    groupings: Iterable[str] = GROUPINGS,
) -> dict[str, Any]:
    """`indices.json`: the total and one table per grouping, every figure of indices.md."""
    issued_at = issued_at or {}
    rows = [
        f
        for d in dossiers
        if (f := dossier_figures(d, period, cut, book, issued_at.get(d.dossier_id))) is not None
    ]
    return tabulate(rows, period, groupings)


def tabulate(rows: list[DossierFigures], period: Period, groupings: Iterable[str] = GROUPINGS) -> dict[str, Any]:
    """`indices.json` from each handled dossier's `dossier_figures` (in dossier order: the sums are floats)."""
    result: dict[str, Any] = {"from": period.start.isoformat(), "to": period.end.isoformat(), "total": aggregate(rows)}
    for grouping in groupings:
        i = GROUPINGS.index(grouping)
        groups: dict[str, list[DossierFigures]] = {}
        for r in rows:
            groups.setdefault(r.group_keys[i], []).append(r)
        result[f"by_{grouping}"] = {key: aggregate(groups[key]) for key in sorted(groups)}
    return result

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
from .deadlines import Dossier, appointment_verdict

GROUPINGS = ("agency", "field", "procedure", "channel")
FIGURES = (
    "received", "closed", "early", "on_time", "late", "open_overdue", "open_within",
    "on_time_rate", "i766_on_time_rate", "i766_on_time_score", "single_visit_rate",
    "supplement_at_most_once_rate", "contact_score", "apology_coverage", "apology_timely_rate",
    "appointment_checked", "appointment_later", "appointment_earlier", "appointment_later_rate",
    "online_received", "online_rate", "procedures_offered_online", "procedures_with_online",
    "online_uptake_rate",
    "avg_processing_days",
)  # fmt: skip
# One line per figure (indices.md), for the Prometheus help texts and anything else that names them.
FIGURE_HELP: dict[str, str] = {
    "received": "Dossiers received in the period",
    "closed": "Dossiers closed in the period",
    "early": "Dossiers closed early (before the due date) in the period",
    "on_time": "Dossiers closed on the due date in the period",
    "late": "Dossiers closed late in the period",
    "open_overdue": "Dossiers handled in the period, open and overdue at the cut",
    "open_within": "Dossiers handled in the period, open and not overdue at the cut",
    "on_time_rate": "(early + on_time) / closed (ND 61 art. 30)",
    "i766_on_time_rate": "766 criterion 2.1 on-time rate over the dossiers handled in the period",
    "i766_on_time_score": "20 x i766_on_time_rate (766 group 2 points)",
    "single_visit_rate": "Closed dossiers with no supplementation request / closed",
    "supplement_at_most_once_rate": "Closed dossiers with at most one supplementation request / closed",
    "contact_score": "Mean over closed dossiers of 2 (no request), 1 (one), 0 (more) (TT 01/2018)",
    "apology_coverage": "Late dossiers with an apology / late dossiers",
    "apology_timely_rate": "Late dossiers whose first apology came by the at-risk moment / late dossiers",
    "appointment_checked": "Dossiers received in the period whose receipt slip carried an appointment",
    "appointment_later": "Of those, appointments later than the law allows (deadlines.md 9)",
    "appointment_earlier": "Of those, appointments earlier than the legal due date",
    "appointment_later_rate": "appointment_later / appointment_checked",
    "online_received": "Dossiers received online in the period",
    "online_rate": "online_received / received",
    "procedures_offered_online": "Procedures with dossiers in the period that the calendar marks online",
    "procedures_with_online": "Of those, procedures with at least one online dossier in the period",
    "online_uptake_rate": "procedures_with_online / procedures_offered_online",
    "avg_processing_days": "Mean office time from start to judged close, stops excluded, in working days",
}
assert set(FIGURE_HELP) == set(FIGURES), "every figure needs a help text"


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


@dataclass(frozen=True)
class DossierFigures:
    """What one dossier contributes to a period's figures: plain values, so that a service may keep
    them as counters; every formula over them is `aggregate`'s."""

    group_keys: tuple[str, str, str, str]  # agency, field, procedure, channel
    received: bool  # received in the period
    closed: bool
    outcome: str | None
    open_overdue: bool
    open_within: bool
    supplement_requests: int
    i766_on_time: bool
    late_with_apology: bool
    late_apology_timely: bool
    processing_days: float | None
    # Facts of the receipt, counted by the figures of the dossiers received in the period:
    appointment_checked: bool  # the receipt carried an appointment (deadlines.md §9)
    appointment_later: bool  # ... later than the law allows, beyond the calendar file's tolerance
    appointment_earlier: bool  # ... earlier than the legal due date, beyond the tolerance
    online: bool  # received through the online channel
    offered_online: bool  # the calendar file marks its procedure `online: partial | full`

    @property
    def procedure_code(self) -> str:
        return self.group_keys[2]


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
    appointment = appointment_verdict(d, book)
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
        appointment_checked=appointment is not None,
        appointment_later=appointment == "later",
        appointment_earlier=appointment == "earlier",
        online=d.channel == "online",
        offered_online=book.online_level(d.procedure_code) is not None,
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
    received = [r for r in rows if r.received]
    checked = [r for r in received if r.appointment_checked]
    appointment_later = sum(r.appointment_later for r in checked)
    online_received = sum(r.online for r in received)
    # Distinct procedures among this group's dossiers received in the period; a procedure without any
    # dossier is not seen (indices.md).
    offered = {r.procedure_code for r in received if r.offered_online}
    with_online = {r.procedure_code for r in received if r.offered_online and r.online}
    return {
        "received": len(received),
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
        "appointment_checked": len(checked),
        "appointment_later": appointment_later,
        "appointment_earlier": sum(r.appointment_earlier for r in checked),
        "appointment_later_rate": _rate(appointment_later, len(checked)),
        "online_received": online_received,
        "online_rate": _rate(online_received, len(received)),
        "procedures_offered_online": len(offered),
        "procedures_with_online": len(with_online),
        "online_uptake_rate": _rate(len(with_online), len(offered)),
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
    result: dict[str, Any] = {"from": period.start.isoformat(), "to": period.end.isoformat(), "total": aggregate(rows)}
    for grouping in groupings:
        i = GROUPINGS.index(grouping)
        groups: dict[str, list[DossierFigures]] = {}
        for r in rows:
            groups.setdefault(r.group_keys[i], []).append(r)
        result[f"by_{grouping}"] = {key: aggregate(groups[key]) for key in sorted(groups)}
    return result

"""The index figures of `spec/indices.md`. Pure.

Input: every received dossier as it stood at the period's cut (the deadline fold of the events
before the cut, advanced to the cut) and the first `apology.issued` instant of each dossier. The
same functions serve `tthc replay`'s `indices.json`, the metrics service's HTTP report and its
Prometheus gauges.

A dossier contributes to a period's figures through at most three `Tally`s of plain counts, each a
fact of one moment, so that a service can keep them as counters instead of re-reading every dossier:
- `received_facts`: when it was received (counted in the period that contains `received_at`);
- `closed_facts`: when it closed (in the period that contains `closed_at`; fixed from then on);
- `open_facts`: while it is open, at the cut (open, overdue, 766 on time: these move with the cut).
A Tally adds up (`+`), and `figures(tally)` is the one place of every formula.

For a service that keeps them: `month_start` names the month a fact is counted in; `open_thresholds` gives
the instants at which an open dossier's `open_facts` change, so that they can be counted at any later cut
without its state; `tally_of_counts` turns kept counts back into a Tally; `facts_basis` fingerprints what
the kept facts depend on besides the states. The periods the services speak of without being asked (the
current month, quarter and year) are here too (`current_periods`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from fractions import Fraction
from typing import Any, Iterable, Mapping

import holidays

from tthc_contracts import VN_TZ
from tthc_contracts.timefmt import to_vn

from .calendar import CalendarBook, add_months
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


# -- the periods of the gauges and dashboards --------------------------------------------------------------
PERIOD_NAMES = ("month", "quarter", "year")

# A watermark is the time of an event already seen: the present instant is just after it, so that the
# event a user just posted counts.
JUST_AFTER = timedelta(microseconds=1)


def present(watermark: datetime | None) -> datetime | None:
    """The present instant of a service whose latest event seen is `watermark`."""
    return None if watermark is None else watermark + JUST_AFTER


def _month_end(year: int, month: int) -> date:
    return add_months(date(year, month, 1), 1) - timedelta(days=1)


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


def month_start(at: datetime) -> date:
    """The first day of the local month (Vietnam time) containing `at`: the month a fact is counted in."""
    return to_vn(at).date().replace(day=1)


@dataclass(frozen=True)
class MonthSplit:
    """A period as whole local months `[first_month, last_month]` (both first days; None when the period
    holds no whole month) and the instants `[a, b)` of its parts that are not whole months (at most two)."""

    first_month: date | None
    last_month: date | None
    partial: tuple[tuple[datetime, datetime], ...]


def split_by_months(period: Period) -> MonthSplit:
    """The whole months inside the period (facts kept per month answer for them) and the rest."""
    first = period.start if period.start.day == 1 else add_months(period.start.replace(day=1), 1)
    after = add_months(period.end.replace(day=1), 1)  # the month after P1's
    end_is_month_end = period.end == after - timedelta(days=1)
    last_excl = after if end_is_month_end else period.end.replace(day=1)  # first day after the whole months
    if first >= last_excl:  # no whole month inside
        return MonthSplit(None, None, ((period.begins_at, period.ends_at),))
    partial = []
    begin = datetime.combine(first, time(0), tzinfo=VN_TZ)
    if period.begins_at < begin:
        partial.append((period.begins_at, begin))
    end = datetime.combine(last_excl, time(0), tzinfo=VN_TZ)
    if end < period.ends_at:
        partial.append((end, period.ends_at))
    return MonthSplit(first, add_months(last_excl, -1), tuple(partial))


# The counts of a Tally (indices.md); every figure is a formula over them (`figures`).
COUNTS = (
    "handled",  # dossiers handled in the period: the 766 population
    "received", "closed", "early", "on_time", "late", "open_overdue", "open_within",
    "i766_on_time",
    "closed_without_request",  # closed with no supplementation request: single visit
    "closed_at_most_one_request",
    "contact_points",  # 2 (no request), 1 (one), 0 (more), summed over the closed dossiers
    "late_with_apology", "late_apology_timely",
    "processed",  # closed dossiers whose processing time is in `processing_us`
    "appointment_checked", "appointment_later", "appointment_earlier",
    "online_received",
)  # fmt: skip


@dataclass
class Tally:
    """What some dossiers contribute to a period's figures; tallies add up.

    `processing_us` keeps the office time from start to judged close (stops excluded) exactly, in
    microseconds, per working-day length (µs) of the dossiers' calendars, so that the average in
    working days does not depend on the order in which dossiers were added. The procedure sets count
    distinct procedures of the dossiers received in the period (online uptake).
    """

    counts: Counter[str] = field(default_factory=Counter)
    processing_us: Counter[int] = field(default_factory=Counter)
    procedures_offered_online: set[str] = field(default_factory=set)
    procedures_with_online: set[str] = field(default_factory=set)

    def __iadd__(self, other: Tally) -> Tally:
        self.counts.update(other.counts)
        self.processing_us.update(other.processing_us)
        self.procedures_offered_online |= other.procedures_offered_online
        self.procedures_with_online |= other.procedures_with_online
        return self

    def __add__(self, other: Tally) -> Tally:
        total = Tally()
        total += self
        total += other
        return total


def group_keys(d: Dossier) -> tuple[str, str, str, str]:
    """agency (the one holding the dossier), field, procedure, channel: the groupings of `GROUPINGS`."""
    return (d.handling_agency.code, d.field_code, d.procedure_code, d.channel)


def _first_apology(d: Dossier, issued_at: datetime | None) -> datetime | None:
    times = [t for t in (d.extended_at[0] if d.extended_at else None, issued_at) if t is not None]
    return min(times) if times else None


def _i766_on_time(d: Dossier, end: datetime) -> bool:
    """766 criterion 2.1 for a dossier whose `end` is given (the judged close, the cut, or the pending
    supplementation request): at most one request before `end`, and `end - supp <= due_at_receipt`."""
    supp = sum(
        ((s.end - s.start) for s in d.stops if s.kind == "supplement" and s.end is not None and s.end <= end),
        timedelta(0),
    )
    requests_before_end = sum(1 for t in d.supplement_requested_at if t <= end)
    return requests_before_end <= 1 and end - supp <= d.due_at_receipt


def received_facts(d: Dossier, book: CalendarBook) -> Tally:
    """What the receipt contributes to the period containing `received_at`."""
    tally = Tally()
    c = tally.counts
    c["received"] = 1
    verdict = appointment_verdict(d, book)
    c["appointment_checked"] = int(verdict is not None)
    c["appointment_later"] = int(verdict == "later")
    c["appointment_earlier"] = int(verdict == "earlier")
    online = d.channel == "online"
    c["online_received"] = int(online)
    # indices.md: procedures with no dossier in the period are not seen, so not counted
    if book.online_level(d.procedure_code) is not None:
        tally.procedures_offered_online.add(d.procedure_code)
        if online:
            tally.procedures_with_online.add(d.procedure_code)
    return tally


def closed_facts(d: Dossier, book: CalendarBook, issued_at: datetime | None = None) -> Tally:
    """What a closed dossier contributes to the period containing `closed_at` (a dossier closed in the
    period is handled in it). `issued_at`: its first `apology.issued`, if any."""
    assert d.closed_at is not None and d.judged_close is not None
    tally = Tally()
    c = tally.counts
    j = d.judged_close
    requests = len([t for t in d.supplement_requested_at if t < d.closed_at])
    c["handled"] = 1
    c["closed"] = 1
    if d.outcome is not None:
        c[d.outcome] = 1
    c["i766_on_time"] = int(_i766_on_time(d, j))
    c["closed_without_request"] = int(requests == 0)
    c["closed_at_most_one_request"] = int(requests <= 1)
    c["contact_points"] = max(0, 2 - requests)
    if d.outcome == "late":
        first_apology = _first_apology(d, issued_at)
        c["late_with_apology"] = int(first_apology is not None)
        c["late_apology_timely"] = int(first_apology is not None and first_apology <= (d.at_risk_at or d.due_at))
    cal = d.calendar(book)
    worked = cal.between(d.start_at, j) - sum(cal.between(s.start, s.end) for s in d.completed_stops(j))
    c["processed"] = 1
    tally.processing_us[cal.day_length_us] = worked
    return tally


def open_facts(d: Dossier, cut: datetime) -> Tally:
    """What a dossier received before `cut` and still open there contributes at `cut` (it is handled in
    every period whose cut this is)."""
    tally = Tally()
    c = tally.counts
    overdue = d.is_overdue_at(cut)
    c["handled"] = 1
    c["open_overdue"] = int(overdue)
    c["open_within"] = int(not overdue)
    # 766: still in progress, `end` is the cut, or the time of the pending supplementation request
    end = d.stops[-1].start if d.clock == "awaiting_supplement" else cut
    c["i766_on_time"] = int(_i766_on_time(d, end))
    return tally


@dataclass(frozen=True)
class OpenThresholds:
    """When an open dossier's `open_facts` change with the cut, for any cut after every instant of its state
    (its events are all before the cut, as they are in a state folded up to the cut):

    - `open_overdue` at the cut iff `overdue_after` is not None and `cut > overdue_after`;
    - `i766_on_time` at the cut iff `i766_late_after` is None or `cut <= i766_late_after`.

    A threshold at or before the state's last event gives a fixed answer at every such cut (a stopped
    clock, more than one supplementation request), so both are plain comparisons, fit for SQL.
    """

    overdue_after: datetime | None
    i766_late_after: datetime | None


def open_thresholds(d: Dossier) -> OpenThresholds:
    """The instants of `OpenThresholds` for an open dossier: `open_facts(d, cut)` for every cut after its
    last event, without the state (the metrics service keeps them in two columns)."""
    assert d.closed_at is None
    due = d.extended_due_at or d.due_at
    if d.clock == "running":
        overdue_after: datetime | None = due  # is_overdue_at: overdue once the cut passes the due instant
    else:
        # is_overdue_at: fixed while the clock stands (stopped after the due instant had passed, or not);
        # the stop's start lies before every later cut.
        overdue_after = d.stops[-1].start if d.stops[-1].start > due else None
    if d.clock == "awaiting_supplement":
        # 766: `end` is the pending request, whatever the cut: fixed
        on_time = _i766_on_time(d, d.stops[-1].start)
        late_after = None if on_time else d.received_at
    elif len(d.supplement_requested_at) > 1:
        late_after = d.received_at  # 766: more than one request before the cut is late, whatever the cut
    else:
        # 766 with `end` = the cut: every completed supplementation round and every request lie before it,
        # so on time iff cut - supp <= due_at_receipt
        supp = sum(((s.end - s.start) for s in d.stops if s.kind == "supplement" and s.end is not None),
                   timedelta(0))
        late_after = d.due_at_receipt + supp
    return OpenThresholds(overdue_after, late_after)


def tally_of_counts(counts: Mapping[str, int], processing_us: Mapping[int, int], procedure_code: str,
                    book: CalendarBook) -> Tally:
    """The Tally of some dossiers of one procedure (and one agency, field, channel) from their counts added up
    (`received_facts`, `closed_facts`, `open_facts`: `counts` by COUNTS name, `processing_us` by working-day
    length). The procedure sets of `received_facts` follow from the counts: the procedure is offered online
    when the calendar file marks it and a dossier of it was received (`received` > 0), with online when one
    of them came online (`online_received` > 0). So the online marks are read now, never kept."""
    tally = Tally(Counter({c: n for c, n in counts.items() if n}),
                  Counter({length: us for length, us in processing_us.items() if us}))
    if counts.get("received", 0) > 0 and book.online_level(procedure_code) is not None:
        tally.procedures_offered_online.add(procedure_code)
        if counts.get("online_received", 0) > 0:
            tally.procedures_with_online.add(procedure_code)
    return tally


# Raised when what `received_facts` and `closed_facts` count changes, so that kept counts are counted again.
FACTS_VERSION = 1


def facts_basis(book: CalendarBook) -> str:
    """A fingerprint of what `received_facts` and `closed_facts` of a stored state depend on besides it: the
    calendars (office time of the processing days), the appointment tolerance, the holidays package and
    this code's version. Not the online marks (read with the counts, `tally_of_counts`) nor the supplement
    modes (the fold's business: they are in the state)."""
    c = book.config
    kept = (FACTS_VERSION, holidays.__version__, c.office_hours, c.receipt_cutoff, sorted(c.extra_days_off),
            sorted(c.extra_working_days), sorted(c.agencies.items()), c.appointment_tolerance_hours)
    return hashlib.sha256(repr(kept).encode("utf-8")).hexdigest()[:32]


def dossier_tally(d: Dossier, period: Period, cut: datetime, book: CalendarBook,
                  issued_at: datetime | None = None) -> Tally | None:
    """What the dossier, as it stood at `cut`, contributes to the period's figures; None when it was not
    handled in the period (received after the cut or closed before P0)."""
    p0 = period.begins_at
    if d.received_at >= cut or (d.closed_at is not None and d.closed_at < p0):
        return None
    tally = received_facts(d, book) if p0 <= d.received_at else Tally()
    if d.closed_at is not None and d.closed_at < cut:
        tally += closed_facts(d, book, issued_at)
    else:
        tally += open_facts(d, cut)
    return tally


def _rate(numerator: float, denominator: int) -> float | None:
    return None if denominator == 0 else round(numerator / denominator, 4)


def figures(tally: Tally) -> dict[str, Any]:
    """Every figure of indices.md from a tally: the one place of the formulas."""
    c = tally.counts
    closed, late, received, checked = c["closed"], c["late"], c["received"], c["appointment_checked"]
    i766 = _rate(c["i766_on_time"], c["handled"])
    offered, with_online = len(tally.procedures_offered_online), len(tally.procedures_with_online)
    processed = c["processed"]
    # The mean of the dossiers' working days, each exact (µs / day length), added exactly: no order effect.
    worked_days = sum((Fraction(us, length) for length, us in sorted(tally.processing_us.items())), Fraction(0))
    return {
        "received": received,
        "closed": closed,
        "early": c["early"],
        "on_time": c["on_time"],
        "late": late,
        "open_overdue": c["open_overdue"],
        "open_within": c["open_within"],
        "on_time_rate": _rate(c["early"] + c["on_time"], closed),
        "i766_on_time_rate": i766,
        "i766_on_time_score": None if i766 is None else round(20 * i766, 4),
        "single_visit_rate": _rate(c["closed_without_request"], closed),
        "supplement_at_most_once_rate": _rate(c["closed_at_most_one_request"], closed),
        "contact_score": _rate(c["contact_points"], closed),
        "apology_coverage": _rate(c["late_with_apology"], late),
        "apology_timely_rate": _rate(c["late_apology_timely"], late),
        "appointment_checked": checked,
        "appointment_later": c["appointment_later"],
        "appointment_earlier": c["appointment_earlier"],
        "appointment_later_rate": _rate(c["appointment_later"], checked),
        "online_received": c["online_received"],
        "online_rate": _rate(c["online_received"], received),
        "procedures_offered_online": offered,
        "procedures_with_online": with_online,
        "online_uptake_rate": _rate(with_online, offered),
        "avg_processing_days": None if not processed else round(float(worked_days) / processed, 4),
    }


def tables(tallies: Mapping[tuple[str, str, str, str], Tally], period: Period,
           groupings: Iterable[str] = GROUPINGS) -> dict[str, Any]:
    """`indices.json` from tallies keyed by `group_keys`: the total and one table per grouping."""
    total = Tally()
    for tally in tallies.values():
        total += tally
    result: dict[str, Any] = {"from": period.start.isoformat(), "to": period.end.isoformat(),
                              "total": figures(total)}
    for grouping in groupings:
        i = GROUPINGS.index(grouping)
        groups: dict[str, Tally] = {}
        for keys, tally in tallies.items():
            groups.setdefault(keys[i], Tally())
            groups[keys[i]] += tally
        result[f"by_{grouping}"] = {key: figures(groups[key]) for key in sorted(groups)}
    return result


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
    tallies: dict[tuple[str, str, str, str], Tally] = {}
    for d in dossiers:
        tally = dossier_tally(d, period, cut, book, issued_at.get(d.dossier_id))
        if tally is not None:
            tallies.setdefault(group_keys(d), Tally())
            tallies[group_keys(d)] += tally
    return tables(tallies, period, groupings)

"""A dossier's legal life on the working calendar (`spec/deadlines.md` §2-8).

`Dossier` is the state of one dossier; `fold()` applies its events in event-time order, with the
at-risk and overdue moments of §7 happening in time order between them, and returns the derived
events (`deadline.*`). Pure and synchronous: the deadline service, `tthc replay` and the metrics
figures all run this very code.

Exactly once per `due_at`: every derived event has a key (`kind|due_at|...`); a key already in
`emitted` is never produced again, so a service that re-folds a dossier after a late event, a
restart or a redelivery passes the keys it has already published.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Iterable, Literal

from tthc_contracts import VN_TZ, derived_id, format_ts, parse_ts
from tthc_contracts.derived import (
    AtRiskData,
    ClosedData,
    DeadlineAtRisk,
    DeadlineClosed,
    DeadlineOverdue,
    DeadlineScheduled,
    OverdueData,
    ScheduledData,
)
from tthc_contracts.events import CLOSING_TYPES, Agency, Duration

from .calendar import CalendarBook, WorkingCalendar, add_months, us_to_hours

DERIVED_SOURCE = "tthc-deadline"

# §7: events of one dossier at the same instant are applied in this order, then by event_id.
EVENT_RANK: dict[str, int] = {
    "dossier.submitted": 0,
    "dossier.refused": 0,
    "dossier.received": 1,
    "dossier.transferred": 2,
    "dossier.supplement_requested": 3,
    "dossier.supplement_received": 4,
    "dossier.paused": 5,
    "dossier.resumed": 6,
    "dossier.extended": 7,
    "dossier.resolved": 8,
    "dossier.returned": 9,
    "dossier.withdrawn": 10,
    "dossier.stopped": 11,
}

ClockState = Literal["running", "awaiting_supplement", "paused"]
StateName = Literal["open", "at_risk", "overdue", "awaiting_supplement", "paused", "closed"]
# A dossier's states (interfaces.md), in this one list for the services, the dashboards and the tests.
STATES: tuple[StateName, ...] = ("open", "at_risk", "overdue", "awaiting_supplement", "paused", "closed")
AppointmentVerdict = Literal["later", "earlier", "matching"]


def event_order_key(event: Any) -> tuple[datetime, int, str]:
    return (event.occurred_at, EVENT_RANK.get(event.type, 99), event.event_id)


def receipt_winner(receipts: Iterable[Any]) -> Any:
    """§7: of a dossier's `dossier.received` events, the first in event order is the receipt; the others
    are conflicts. The one rule for the deadline fold, the apology letters and the metrics."""
    return min(receipts, key=event_order_key)


@dataclass
class Stop:
    """One stopped-clock interval: awaiting supplement, or paused (financial obligation, other)."""

    kind: Literal["supplement", "pause"]
    start: datetime
    end: datetime | None = None
    due_at_when_stopped: datetime | None = None


@dataclass
class Dossier:
    dossier_id: str
    source: str
    procedure_code: str
    procedure_name: str
    field_code: str
    field_name: str
    receiving_agency: Agency
    handling_agency: Agency  # the agency holding the dossier now (last transfer target)
    calendar_agency: str  # §1: the handling agency named at receipt governs the calendar for life
    channel: str
    duration_value: float
    duration_unit: str
    supplement_mode: str
    received_at: datetime
    start_at: datetime
    due_at_receipt: datetime
    due_at: datetime
    at_risk_at: datetime | None
    extended_due_at: datetime | None = None
    extensions: int = 0
    extended_at: list[datetime] = field(default_factory=list)
    clock: ClockState = "running"
    stops: list[Stop] = field(default_factory=list)
    supplement_requested_at: list[datetime] = field(default_factory=list)
    closed_at: datetime | None = None
    judged_close: datetime | None = None
    outcome: str | None = None
    late_by_hours: float | None = None
    closing_type: str | None = None
    # §9: the appointment printed on the receipt slip (NgayHenTra), kept and compared, never trusted,
    # and its office-time distance from due_at_receipt (positive: the slip promises later than the law).
    appointment_at: datetime | None = None
    appointment_gap_hours: float | None = None
    watermark: datetime | None = None  # event time this state has been advanced to
    emitted: set[str] = field(default_factory=set)
    # The order key (`event_order_key`) of the last event folded into this state: a later event can be
    # applied to the state as it is (`apply_in_order`); an earlier one needs a fold of the whole log.
    last_event: tuple[datetime, int, str] | None = None

    # -- derived views ----------------------------------------------------------------------------
    @property
    def supplement_requests(self) -> int:
        return len(self.supplement_requested_at)

    @property
    def duration(self) -> Duration:
        # Validated when the receipt was (a hot path: every derived event carries it).
        return Duration.model_construct(value=self.duration_value, unit=self.duration_unit)

    @property
    def is_closed(self) -> bool:
        return self.closed_at is not None

    def state_at(self, now: datetime | None = None) -> StateName:
        now = now or self.watermark or self.received_at
        if self.is_closed:
            return "closed"
        if self.clock == "awaiting_supplement":
            return "awaiting_supplement"
        if self.clock == "paused":
            return "paused"
        if self.extended_due_at is not None:
            return "overdue" if now > self.extended_due_at else "open"
        if now > self.due_at:
            return "overdue"
        if self.at_risk_at is not None and now >= self.at_risk_at:
            return "at_risk"
        return "open"

    @property
    def state(self) -> StateName:
        return self.state_at()

    def next_moment_at(self) -> datetime | None:
        """The next instant at which advancing time may emit something (None: nothing pending).

        The deadline service indexes this column so that a tick finds the dossiers that just
        became at risk or overdue by a range scan, whatever the number of open dossiers.
        """
        if self.is_closed or self.clock != "running":
            return None
        if self.extended_due_at is not None:
            key = f"overdue|{format_ts(self.extended_due_at)}|extended"
            return None if key in self.emitted else self.extended_due_at + _EPSILON
        if self.at_risk_at is not None and f"at_risk|{format_ts(self.due_at)}" not in self.emitted:
            return self.at_risk_at
        if f"overdue|{format_ts(self.due_at)}" not in self.emitted:
            return self.due_at + _EPSILON
        return None

    def is_overdue_at(self, now: datetime) -> bool:
        """indices.md `open_overdue`: overdue, or the clock stopped after the due instant had passed."""
        if self.is_closed:
            return False
        due = self.extended_due_at or self.due_at
        if self.clock == "running":
            return now > due
        return self.stops[-1].start > due

    def calendar(self, book: CalendarBook) -> WorkingCalendar:
        return book.for_agency(self.calendar_agency)

    def completed_stops(self, before: datetime | None = None) -> list[Stop]:
        return [s for s in self.stops if s.end is not None and (before is None or s.end <= before)]

    def row(self) -> dict[str, Any]:
        """One line of `dossiers.jsonl` (interfaces.md), also the HTTP view of the deadline service."""
        return {
            "dossier_id": self.dossier_id,
            "handling_agency": self.handling_agency.code,
            "procedure_code": self.procedure_code,
            "field_code": self.field_code,
            "channel": self.channel,
            "received_at": format_ts(self.received_at),
            "start_at": format_ts(self.start_at),
            "due_at_receipt": format_ts(self.due_at_receipt),
            "due_at": format_ts(self.due_at),
            "extended_due_at": format_ts(self.extended_due_at),
            "at_risk_at": format_ts(self.at_risk_at),
            "state": self.state,
            "outcome": self.outcome,
            "closed_at": format_ts(self.closed_at),
            "late_by_hours": self.late_by_hours,
            "supplement_requests": self.supplement_requests,
            "extensions": self.extensions,
            "appointment_at": format_ts(self.appointment_at),
            "appointment_gap_hours": self.appointment_gap_hours,
        }

    # -- persistence (the deadline service stores this as JSON) ----------------------------------
    def to_json(self) -> dict[str, Any]:
        ts = format_ts
        return {
            "v": 1,
            "dossier_id": self.dossier_id,
            "source": self.source,
            "procedure": [self.procedure_code, self.procedure_name, self.field_code, self.field_name],
            "receiving_agency": self.receiving_agency.model_dump(mode="json"),
            "handling_agency": self.handling_agency.model_dump(mode="json"),
            "calendar_agency": self.calendar_agency,
            "channel": self.channel,
            "duration": [self.duration_value, self.duration_unit],
            "supplement_mode": self.supplement_mode,
            "received_at": ts(self.received_at),
            "start_at": ts(self.start_at),
            "due_at_receipt": ts(self.due_at_receipt),
            "due_at": ts(self.due_at),
            "at_risk_at": ts(self.at_risk_at),
            "extended_due_at": ts(self.extended_due_at),
            "extensions": self.extensions,
            "extended_at": [ts(x) for x in self.extended_at],
            "clock": self.clock,
            "stops": [[s.kind, ts(s.start), ts(s.end), ts(s.due_at_when_stopped)] for s in self.stops],
            "supplement_requested_at": [ts(x) for x in self.supplement_requested_at],
            "closed_at": ts(self.closed_at),
            "judged_close": ts(self.judged_close),
            "outcome": self.outcome,
            "late_by_hours": self.late_by_hours,
            "closing_type": self.closing_type,
            "appointment_at": ts(self.appointment_at),
            "appointment_gap_hours": self.appointment_gap_hours,
            "watermark": ts(self.watermark),
            "emitted": sorted(self.emitted),
            "last_event": None if self.last_event is None else [ts(self.last_event[0]), *self.last_event[1:]],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Dossier":
        pt = lambda x: parse_ts(x) if x else None  # noqa: E731
        return cls(
            dossier_id=d["dossier_id"],
            source=d["source"],
            procedure_code=d["procedure"][0],
            procedure_name=d["procedure"][1],
            field_code=d["procedure"][2],
            field_name=d["procedure"][3],
            receiving_agency=Agency.model_construct(**d["receiving_agency"]),  # validated when received
            handling_agency=Agency.model_construct(**d["handling_agency"]),
            calendar_agency=d["calendar_agency"],
            channel=d["channel"],
            duration_value=d["duration"][0],
            duration_unit=d["duration"][1],
            supplement_mode=d["supplement_mode"],
            received_at=parse_ts(d["received_at"]),
            start_at=parse_ts(d["start_at"]),
            due_at_receipt=parse_ts(d["due_at_receipt"]),
            due_at=parse_ts(d["due_at"]),
            at_risk_at=pt(d["at_risk_at"]),
            extended_due_at=pt(d["extended_due_at"]),
            extensions=d["extensions"],
            extended_at=[parse_ts(x) for x in d["extended_at"]],
            clock=d["clock"],
            stops=[Stop(k, parse_ts(s), pt(e), pt(w)) for k, s, e, w in d["stops"]],
            supplement_requested_at=[parse_ts(x) for x in d["supplement_requested_at"]],
            closed_at=pt(d["closed_at"]),
            judged_close=pt(d["judged_close"]),
            outcome=d["outcome"],
            late_by_hours=d["late_by_hours"],
            closing_type=d["closing_type"],
            # States stored before the appointment audit have neither key: no appointment was kept.
            appointment_at=pt(d.get("appointment_at")),
            appointment_gap_hours=d.get("appointment_gap_hours"),
            watermark=pt(d["watermark"]),
            emitted=set(d["emitted"]),
            last_event=_last_event(d.get("last_event")),
        )


_EPSILON = timedelta(microseconds=1)


def _last_event(stored: Any) -> tuple[datetime, int, str] | None:
    # A state stored before `last_event` was kept has none: its next event takes a fold of the log.
    if not stored:
        return None
    at, rank, event_id = stored
    return parse_ts(at), int(rank), str(event_id)


# -- due-date computation (§3) ----------------------------------------------------------------------
def compute_due(cal: WorkingCalendar, clock_from: datetime, start: datetime, value: float, unit: str) -> datetime:
    """The due instant for a duration whose clock (re)starts at `clock_from` (effective `start`).

    Working units add office time from `start`; calendar units count from the local date of
    `clock_from` and end at the close of office hours, moved to the next working day (Đ147-148).
    """
    if unit == "working_days":
        return cal.add(start, round(value * cal.day_length_us))
    if unit == "working_hours":
        return cal.add(start, round(value * 3_600_000_000))
    local_day = cal._split(clock_from)[0]
    if unit == "calendar_days":
        return cal.end_of_office_on_or_after(local_day + timedelta(days=math.ceil(value)))
    if unit == "months":
        return cal.end_of_office_on_or_after(add_months(local_day, math.ceil(value)))
    raise ValueError(f"unknown duration unit {unit!r}")


def appointment_gap_hours(cal: WorkingCalendar, due_at_receipt: datetime, appointment_at: datetime) -> float:
    """§9: the office time from the legal due date to the printed appointment, in hours, signed.

    Both instants are taken to the minute. Office time, so 17:00 and the next opening are the
    same promise (gap 0).
    """
    due, appointment = _to_minute(due_at_receipt), _to_minute(appointment_at)
    if appointment >= due:
        return round(us_to_hours(cal.between(due, appointment)), 2)
    return round(-us_to_hours(cal.between(appointment, due)), 2)


def appointment_verdict(d: Dossier, book: CalendarBook) -> AppointmentVerdict | None:
    """§9: `later` when the slip's gap exceeds the calendar file's tolerance, `earlier` when it is below
    minus the tolerance, else `matching`; None when the receipt carried no appointment."""
    gap = d.appointment_gap_hours
    if gap is None:
        return None
    tolerance = book.appointment_tolerance_hours
    if gap > tolerance:
        return "later"
    if gap < -tolerance:
        return "earlier"
    return "matching"


def _to_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def compute_at_risk(cal: WorkingCalendar, clock_restart: datetime, due_at: datetime) -> datetime | None:
    """§7: one working-day length of office time before `due_at`; None when not after the restart."""
    at_risk = cal.subtract(due_at, cal.day_length_us)
    return at_risk if at_risk > clock_restart else None


# -- the fold ---------------------------------------------------------------------------------------
class DossierMachine:
    """Applies one dossier's events and time to its state, collecting derived events."""

    def __init__(self, book: CalendarBook, dossier_id: str, emitted: Iterable[str] = ()):
        self.book = book
        self.dossier_id = dossier_id
        self.state: Dossier | None = None
        self.out: list[Any] = []
        self._already = set(emitted)

    # Each derived event has a key; one whose key was already emitted is never produced again.
    def _emit(self, key: str, event: Any) -> None:
        st = self.state
        assert st is not None
        if key in st.emitted:
            return
        st.emitted.add(key)
        if key in self._already:
            return  # published before (a re-fold after a restart or a late event)
        self.out.append(event)

    def _envelope(self, key: str, at: datetime) -> dict[str, Any]:
        return {
            "event_id": derived_id(self.dossier_id, key),
            "occurred_at": at,
            "source": DERIVED_SOURCE,
            "dossier_id": self.dossier_id,
        }

    def _schedule(self, basis: str, at: datetime) -> None:
        st = self.state
        assert st is not None
        key = f"scheduled|{format_ts(st.due_at)}|{format_ts(st.at_risk_at)}|{basis}|{format_ts(at)}"
        self._emit(
            key,
            DeadlineScheduled(
                **self._envelope(key, at),
                data=ScheduledData(
                    due_at=st.due_at, at_risk_at=st.at_risk_at, handling_agency=st.handling_agency, basis=basis
                ),
            ),
        )

    # -- time -------------------------------------------------------------------------------------
    def advance(self, now: datetime) -> None:
        """Let event time pass up to `now`, emitting at-risk and overdue moments in time order."""
        st = self.state
        if st is None:
            return
        if st.watermark is None or now > st.watermark:
            st.watermark = now
        if st.is_closed or st.clock != "running":
            return
        if st.extended_due_at is not None:
            due = st.extended_due_at
            if now > due:
                key = f"overdue|{format_ts(due)}|extended"
                self._emit(
                    key,
                    DeadlineOverdue(
                        **self._envelope(key, due),
                        data=OverdueData(
                            due_at=due, handling_agency=st.handling_agency, extended=True, duration=st.duration
                        ),
                    ),
                )
            return
        due_text = format_ts(st.due_at)
        if st.at_risk_at is not None and now >= st.at_risk_at:
            key = f"at_risk|{due_text}"
            self._emit(
                key,
                DeadlineAtRisk(
                    **self._envelope(key, st.at_risk_at),
                    data=AtRiskData(due_at=st.due_at, handling_agency=st.handling_agency, duration=st.duration),
                ),
            )
        if now > st.due_at:
            key = f"overdue|{due_text}"
            self._emit(
                key,
                DeadlineOverdue(
                    **self._envelope(key, st.due_at),
                    data=OverdueData(due_at=st.due_at, handling_agency=st.handling_agency, duration=st.duration),
                ),
            )

    # -- events -----------------------------------------------------------------------------------
    def apply(self, event: Any) -> None:
        st = self.state
        if event.type == "dossier.received":
            if st is None:
                self._receive(event)
            return  # §7: the first dossier.received in event order wins
        if st is None or event.occurred_at < st.received_at:
            return  # submitted/refused, or dated before the receipt: changes nothing
        self.advance(event.occurred_at)  # moments reached at an instant happen before its events
        if st.is_closed:
            return  # events of a closed dossier are recorded and change nothing
        handler = _HANDLERS.get(event.type)
        if handler is not None:
            handler(self, st, event)

    def _receive(self, ev: Any) -> None:
        d = ev.data
        handling = d.handling_agency or d.receiving_agency
        cal = self.book.for_agency(handling.code)
        received_at = ev.occurred_at
        start = cal.effective_start(received_at, apply_cutoff=True)
        due = compute_due(cal, received_at, start, d.duration.value, d.duration.unit)
        mode = d.supplement_mode or self.book.supplement_mode(d.procedure.code) or "restart"
        appointment = d.appointment_at
        gap = None if appointment is None else appointment_gap_hours(cal, due, appointment)
        self.state = Dossier(
            dossier_id=ev.dossier_id,
            source=ev.source,
            procedure_code=d.procedure.code,
            procedure_name=d.procedure.name,
            field_code=d.procedure.field_code,
            field_name=d.procedure.field_name,
            receiving_agency=d.receiving_agency,
            handling_agency=handling,
            calendar_agency=handling.code,
            channel=d.channel,
            duration_value=d.duration.value,
            duration_unit=d.duration.unit,
            supplement_mode=mode,
            received_at=received_at,
            start_at=start,
            due_at_receipt=due,
            due_at=due,
            at_risk_at=compute_at_risk(cal, start, due),
            appointment_at=appointment,
            appointment_gap_hours=gap,
            watermark=received_at,
        )
        self._schedule("received", received_at)

    def _transferred(self, st: Dossier, ev: Any) -> None:
        st.handling_agency = ev.data.to_agency

    def _supplement_requested(self, st: Dossier, ev: Any) -> None:
        st.supplement_requested_at.append(ev.occurred_at)
        if st.clock == "running":  # one stop at a time: a request while stopped only counts
            st.clock = "awaiting_supplement"
            st.stops.append(Stop("supplement", ev.occurred_at, None, st.due_at))

    def _supplement_received(self, st: Dossier, ev: Any) -> None:
        if st.clock != "awaiting_supplement":
            return
        stop = st.stops[-1]
        stop.end = ev.occurred_at
        st.clock = "running"
        cal = st.calendar(self.book)
        if st.supplement_mode == "pause":
            self._resume_remaining(st, cal, stop, ev.occurred_at, "supplement_restart")
            return
        # restart (ND 61 Điều 19.4): the full duration again from the documents' receipt.
        restart = cal.effective_start(ev.occurred_at, apply_cutoff=True)
        st.due_at = compute_due(cal, ev.occurred_at, restart, st.duration_value, st.duration_unit)
        st.at_risk_at = compute_at_risk(cal, restart, st.due_at)
        self._schedule("supplement_restart", ev.occurred_at)

    def _resume_remaining(self, st: Dossier, cal: WorkingCalendar, stop: Stop, at: datetime, basis: str) -> None:
        if stop.start > st.due_at:
            return  # the clock stopped after the due instant: an overdue dossier stays overdue
        remaining = cal.between(stop.start, st.due_at)
        restart = cal.effective_start(at)  # no receipt cut-off on a resume
        st.due_at = cal.add(restart, remaining)
        st.at_risk_at = compute_at_risk(cal, restart, st.due_at)
        self._schedule(basis, at)

    def _paused(self, st: Dossier, ev: Any) -> None:
        if st.clock == "running":
            st.clock = "paused"
            st.stops.append(Stop("pause", ev.occurred_at, None, st.due_at))

    def _resumed(self, st: Dossier, ev: Any) -> None:
        if st.clock != "paused":
            return
        stop = st.stops[-1]
        stop.end = ev.occurred_at
        st.clock = "running"
        self._resume_remaining(st, st.calendar(self.book), stop, ev.occurred_at, "resumed")

    def _extended(self, st: Dossier, ev: Any) -> None:
        # §6: the committed due_at stays for judging the outcome; a second extension is flagged.
        st.extensions += 1
        st.extended_due_at = ev.data.new_due_at
        st.extended_at.append(ev.occurred_at)
        key = f"scheduled|{format_ts(st.extended_due_at)}|extended|{format_ts(ev.occurred_at)}"
        self._emit(
            key,
            DeadlineScheduled(
                **self._envelope(key, ev.occurred_at),
                data=ScheduledData(
                    due_at=st.extended_due_at, at_risk_at=None, handling_agency=st.handling_agency, basis="extended"
                ),
            ),
        )

    def _closed(self, st: Dossier, ev: Any) -> None:
        st.closed_at = ev.occurred_at
        st.closing_type = ev.type
        # §8: a clock stopped at the close is judged at the instant it stopped (766).
        st.judged_close = st.stops[-1].start if st.clock != "running" else ev.occurred_at
        j, due = st.judged_close, st.due_at
        cal = st.calendar(self.book)
        if j > due:
            st.outcome = "late"
            st.late_by_hours = round(us_to_hours(cal.between(due, j)), 2)
        elif _local_date(j) < _local_date(due):
            st.outcome = "early"
        else:
            st.outcome = "on_time"
        # A late event may change how the close is judged (a pause that arrived after the close): the
        # corrected deadline.closed is published again, numbered, so the last one published is always
        # the dossier's outcome, even when it goes back to an earlier judgement.
        # The agency is part of it: a transfer posted late changes who holds the closed dossier.
        signature = (f"{format_ts(st.closed_at)}|{st.outcome}|{format_ts(st.due_at)}|{st.late_by_hours}"
                     f"|{st.handling_agency.code}")
        published = dict(_closes(self._already | st.emitted))
        if published and published[max(published)] == signature:
            st.emitted.add(f"closed#{max(published)}|{signature}")
            return
        key = f"closed#{max(published) + 1 if published else 0}|{signature}"
        self._emit(
            key,
            DeadlineClosed(
                **self._envelope(key, st.closed_at),
                data=ClosedData(
                    outcome=st.outcome,
                    closed_at=st.closed_at,
                    due_at=st.due_at,
                    late_by_hours=st.late_by_hours,
                    handling_agency=st.handling_agency,
                    duration=st.duration,
                ),
            ),
        )


def _closes(keys: Iterable[str]) -> Iterable[tuple[int, str]]:
    """The closes published so far, as (number, signature), from the derived-event keys."""
    for k in keys:
        if k.startswith("closed#"):
            number, _, signature = k[len("closed#"):].partition("|")
            yield int(number), signature


def _local_date(t: datetime) -> date:
    return t.astimezone(VN_TZ).date()


_HANDLERS = {
    "dossier.transferred": DossierMachine._transferred,
    "dossier.supplement_requested": DossierMachine._supplement_requested,
    "dossier.supplement_received": DossierMachine._supplement_received,
    "dossier.paused": DossierMachine._paused,
    "dossier.resumed": DossierMachine._resumed,
    "dossier.extended": DossierMachine._extended,
    **{t: DossierMachine._closed for t in CLOSING_TYPES},
}


def dedupe_and_sort(events: Iterable[Any]) -> list[Any]:
    """One event per (source, event_id), in the order of §7."""
    seen: dict[tuple[str, str], Any] = {}
    for ev in events:
        seen.setdefault((ev.source, ev.event_id), ev)
    return sorted(seen.values(), key=event_order_key)


def fold(
    events: Iterable[Any],
    book: CalendarBook,
    until: datetime | None = None,
    emitted: Iterable[str] = (),
    advance_to: datetime | None = None,
) -> tuple[Dossier | None, list[Any]]:
    """Apply a dossier's events (any order, duplicates allowed) and let time pass.

    A replay passes `until`: events at or after it are ignored and time passes to it. A live
    service passes `advance_to`, its watermark: every event it has is applied, then time passes
    to the watermark, which may lie past the dossier's own last event. Returns the state (None
    while no `dossier.received` has arrived: its other events are held, not dropped) and the
    derived events whose keys are not in `emitted` (those were published before).
    """
    emitted = frozenset(emitted)
    ordered = dedupe_and_sort(e for e in events if until is None or e.occurred_at < until)
    if not ordered:
        return None, []
    machine = DossierMachine(book, ordered[0].dossier_id, emitted)
    for ev in ordered:
        machine.apply(ev)
    for now in (until, advance_to):
        if now is not None:
            machine.advance(now)
    if machine.state is None:
        return None, []
    machine.state.last_event = event_order_key(ordered[-1])
    # Keys published earlier stay published, even when the history no longer produces them (a late
    # closing event after an overdue moment): they must never be sent twice.
    machine.state.emitted |= emitted
    return machine.state, machine.out


def in_order(state: Dossier, events: Iterable[Any]) -> bool:
    """Whether every one of `events` comes after the last event folded into `state` (`apply_in_order`
    may then be used instead of a fold of the whole log)."""
    last = state.last_event
    return last is not None and all(event_order_key(e) > last for e in events)


def apply_in_order(state: Dossier, events: Iterable[Any], book: CalendarBook,
                   advance_to: datetime | None = None) -> list[Any]:
    """Apply new events to a stored state (in place) and let time pass to `advance_to`; returns the new
    derived events. The events must all come after the state's last event (`in_order`): the result is
    then exactly `fold` of the whole log with the state's keys as `emitted`, at the cost of the new
    events alone. (Letting time pass changes only the emitted keys and the watermark, never how an
    event applies, so a state advanced past a later event's instant applies it as the fold would.)"""
    ordered = dedupe_and_sort(events)
    if not in_order(state, ordered):
        raise ValueError("apply_in_order: an event comes before the state's last event; fold the log instead")
    machine = DossierMachine(book, state.dossier_id, state.emitted)
    machine.state = state
    for ev in ordered:
        machine.apply(ev)
    if advance_to is not None:
        machine.advance(advance_to)
    if ordered:
        state.last_event = event_order_key(ordered[-1])
    return machine.out


def advance(state: Dossier, book: CalendarBook, now: datetime) -> list[Any]:
    """Let event time pass to `now` on a stored state (in place); returns the new derived events."""
    machine = DossierMachine(book, state.dossier_id, state.emitted)
    machine.state = state
    machine.advance(now)
    return machine.out


def reschedule(
    events: Iterable[Any], book: CalendarBook, previous: Dossier, at: datetime
) -> tuple[Dossier | None, list[Any]]:
    """Re-fold a dossier on a changed calendar (deadlines.md §1): `deadline.scheduled` with basis
    `calendar_change` when its due or at-risk instant moved, then any moment the new dates make due.
    """
    state, out = fold(events, book, emitted=previous.emitted, advance_to=max(at, previous.watermark or at))
    if state is None:
        return None, []
    # The history's own schedules under the new calendar are not news: one calendar_change says it.
    out = [e for e in out if e.type != "deadline.scheduled"]
    if (state.due_at, state.at_risk_at) != (previous.due_at, previous.at_risk_at) and not state.is_closed:
        machine = DossierMachine(book, state.dossier_id)
        machine.state = state
        machine._schedule("calendar_change", at)
        out = machine.out + out
    return state, out

"""Builders of events for tests: one factory module for the whole suite.

Dossier events (events.md v1) are dicts, as one-stop software posts them:

    received("D-1", "2026-03-02T09:00", 3, appointment_at="2026-03-05T09:00")
    resolved("D-1", "2026-03-04T10:00")
    extended("D-1", "2026-03-03T16:00", new_due_at="2026-03-10T09:00")
    event("dossier.paused", "2026-03-03T10:00", {"reason": "other"}, dossier_id="D-1")
    changed(received(), "data.duration.unit", "weeks")  # a copy with one field set (or removed: KeyError)

The deadline service's events are its typed models (`.model_dump(mode="json")` is what goes on Kafka), for a
dossier of `DEADLINE_DURATION` handled by `AGENCY` unless told, with the service's derived event ids:

    at_risk("D-1", due), overdue("D-1", due), closed("D-1", "late", closed_at, due),
    scheduled("D-1", due, when)

An instant is Vietnam local text without an offset (`2026-03-02T09:00`), text with an offset, or an aware
datetime; the dicts hold it as `format_ts` writes it (`2026-03-02T09:00:00+07:00`). An agency is a dict
{"code", "name"} or an `Agency`. `parsed(...)` gives the typed dossier events the domain code folds.
"""

from __future__ import annotations

import copy
import uuid
from datetime import datetime, timedelta
from typing import Any

from tthc_contracts import VN_TZ, derived_id, format_ts, parse_dossier_event
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

Instant = str | datetime

SOURCE = "motcua-lang-son"  # the one-stop software of tỉnh Lạng Sơn, as in the README
DEADLINE_SOURCE = "tthc-deadline"
AGENCY = {"code": "000.00.12.H10", "name": "Sở Tư pháp tỉnh Lạng Sơn"}
PROCEDURE = {
    "code": "2.000567",
    "name": "Đăng ký thành lập doanh nghiệp tư nhân",
    "field_code": "G09-KH02",
    "field_name": "Thành lập và hoạt động doanh nghiệp",
}
CRIMINAL_RECORD = {  # Cấp Phiếu lý lịch tư pháp: the procedure of most service-level tests
    "code": "1.001234",
    "name": "Cấp Phiếu lý lịch tư pháp",
    "field_code": "G13-TP01",
    "field_name": "Lý lịch tư pháp",
}
APPLICANT = "Nguyễn Văn An"
DEADLINE_DURATION = {"value": 5, "unit": "working_days"}


def at(text: str) -> datetime:
    """`2026-03-02T09:00` as an aware instant in Vietnam time (a text with an offset keeps it)."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=VN_TZ)


def instant(moment: Instant) -> datetime:
    return at(moment) if isinstance(moment, str) else moment


def _plain(agency: Any) -> dict[str, Any]:
    """A fresh dict each time: a test may change the event it was given."""
    return agency.model_dump() if hasattr(agency, "model_dump") else dict(agency)


# ---- dossier events (dicts) -------------------------------------------------------------------------


def event(
    kind: str,
    when: Instant,
    data: dict[str, Any] | None = None,
    dossier_id: str = "D-1",
    event_id: str | None = None,
    source: str = SOURCE,
) -> dict[str, Any]:
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "type": kind,
        "schema_version": 1,
        "occurred_at": format_ts(instant(when)),
        "source": source,
        "dossier_id": dossier_id,
        "data": data or {},
    }


def received(
    dossier_id: str = "D-1",
    when: Instant = "2026-03-02T09:00",
    value: float = 3,
    unit: str = "working_days",
    *,
    procedure: dict[str, str] = PROCEDURE,
    agency: Any = AGENCY,
    handling_agency: Any = None,
    channel: str = "in_person",
    applicant: str = APPLICANT,
    applicant_kind: str = "citizen",
    phone: str | None = None,
    appointment_at: Instant | None = None,
    event_id: str | None = None,
    source: str = SOURCE,
    **data: Any,
) -> dict[str, Any]:
    """A `dossier.received`; `appointment_at` is the slip's NgayHenTra; other data fields (e.g.
    `supplement_mode`) as keywords."""
    body: dict[str, Any] = {"procedure": dict(procedure), "receiving_agency": _plain(agency)}
    if handling_agency is not None:
        body["handling_agency"] = _plain(handling_agency)
    body["channel"] = channel
    body["duration"] = {"value": value, "unit": unit}
    body["applicant"] = {"kind": applicant_kind, "name": applicant} | ({"phone": phone} if phone else {})
    if appointment_at is not None:
        body["appointment_at"] = format_ts(instant(appointment_at))
    return event("dossier.received", when, body | data, dossier_id, event_id, source)


def resolved(
    dossier_id: str, when: Instant, result: str = "approved", *, event_id: str | None = None,
    source: str = SOURCE,
) -> dict[str, Any]:
    return event("dossier.resolved", when, {"result": result}, dossier_id, event_id, source)


def extended(
    dossier_id: str,
    when: Instant,
    new_due_at: Instant,
    reason: str = "Chờ xác minh",
    *,
    event_id: str | None = None,
    source: str = SOURCE,
) -> dict[str, Any]:
    data = {"new_due_at": format_ts(instant(new_due_at)), "reason": reason}
    return event("dossier.extended", when, data, dossier_id, event_id, source)


def changed(event: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `event` with the dotted `path` set to `value` (or removed when `value` is KeyError)."""
    event = copy.deepcopy(event)
    *parents, last = path.split(".")
    node = event
    for part in parents:
        node = node[part]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return event


def parsed(*events: dict[str, Any]) -> list[Any]:
    return [parse_dossier_event(e) for e in events]


# ---- the deadline service's events (typed) --------------------------------------------------------


def at_risk(
    dossier_id: str, due: Instant, *, agency: Any = AGENCY, when: Instant | None = None,
    duration: Any = DEADLINE_DURATION,
) -> DeadlineAtRisk:
    """Announced a day before `due` unless `when` says otherwise."""
    due = instant(due)
    return DeadlineAtRisk(
        event_id=derived_id("deadline.at_risk", dossier_id, due),
        occurred_at=instant(when) if when is not None else due - timedelta(days=1),
        source=DEADLINE_SOURCE,
        dossier_id=dossier_id,
        data=AtRiskData(due_at=due, handling_agency=agency, duration=duration),
    )


def overdue(
    dossier_id: str, due: Instant, *, agency: Any = AGENCY, duration: Any = DEADLINE_DURATION
) -> DeadlineOverdue:
    due = instant(due)
    return DeadlineOverdue(
        event_id=derived_id("deadline.overdue", dossier_id, due),
        occurred_at=due,
        source=DEADLINE_SOURCE,
        dossier_id=dossier_id,
        data=OverdueData(due_at=due, handling_agency=agency, duration=duration),
    )


def closed(
    dossier_id: str, outcome: str, closed_at: Instant, due: Instant, *, agency: Any = AGENCY,
    late_by_hours: float | None = None, duration: Any = DEADLINE_DURATION,
) -> DeadlineClosed:
    closed_at = instant(closed_at)
    return DeadlineClosed(
        event_id=derived_id("deadline.closed", dossier_id),
        occurred_at=closed_at,
        source=DEADLINE_SOURCE,
        dossier_id=dossier_id,
        data=ClosedData(outcome=outcome, closed_at=closed_at, due_at=instant(due),
                        late_by_hours=late_by_hours, handling_agency=agency, duration=duration),
    )


def scheduled(
    dossier_id: str, due: Instant, when: Instant, *, agency: Any = AGENCY, basis: str = "supplement_restart",
    at_risk_at: Instant | None = None,
) -> DeadlineScheduled:
    """A due date (re)scheduled at `when`, as after a supplementation restarts the clock."""
    due = instant(due)
    return DeadlineScheduled(
        event_id=derived_id("deadline.scheduled", dossier_id, due),
        occurred_at=instant(when),
        source=DEADLINE_SOURCE,
        dossier_id=dossier_id,
        data=ScheduledData(due_at=due, at_risk_at=instant(at_risk_at) if at_risk_at is not None else None,
                           handling_agency=agency, basis=basis),
    )

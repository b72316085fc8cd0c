"""Random dossier lives for property tests (hypothesis): a receipt, then supplementation rounds, pauses,
extensions, transfers, maybe a close, at random instants; every kind of state a dossier can be in.

    @given(logs=st.lists(dossier_log(), min_size=1, max_size=6))
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st

from tthc_contracts import VN_TZ, format_ts

if TYPE_CHECKING:
    from tthc_core.deadlines import Dossier

SOURCE = "motcua-random"
AGENCIES = (
    {"code": "000.00.12.H10", "name": "Sở Tư pháp"},
    {"code": "000.00.13.H10", "name": "Sở Xây dựng"},
    {"code": "000.30.21.H10", "name": "UBND xã Hữu Lũng"},
)
PROCEDURES = (
    {"code": "2.000567", "name": "Đăng ký doanh nghiệp", "field_code": "G09-KH02",
     "field_name": "Doanh nghiệp"},
    {"code": "1.001234", "name": "Cấp phép xây dựng", "field_code": "G10-XD01", "field_name": "Xây dựng"},
)
# A calendar file for these lives: one procedure offered online, a tolerance for the printed appointments.
CALENDAR = 'appointment_tolerance_hours: 4\nprocedures:\n  "2.000567": {online: full}\n'
DURATIONS = (("working_days", (1, 2, 5, 15)), ("working_hours", (4, 8, 16)), ("calendar_days", (3, 10)),
             ("months", (1,)))
STEPS = ("dossier.supplement_requested", "dossier.supplement_received", "dossier.paused", "dossier.resumed",
         "dossier.extended", "dossier.transferred", "close")
CLOSES = ("dossier.resolved", "dossier.withdrawn", "dossier.returned", "dossier.stopped")
FIRST = datetime(2026, 1, 5, 7, 0, tzinfo=VN_TZ)


def _event(kind: str, at: datetime, dossier_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "type": kind, "schema_version": 1, "occurred_at": format_ts(at),
            "source": SOURCE, "dossier_id": dossier_id, "data": data}


@st.composite
def dossier_log(draw: st.DrawFn, *, closing: bool = True, days: int = 200) -> list[dict[str, Any]]:
    """The events of one random dossier (JSON-ready dicts, in event order)."""
    dossier_id = f"R-{uuid.uuid4().hex[:12]}"
    received_at = FIRST + timedelta(minutes=draw(st.integers(0, 60 * 24 * days)))
    unit, values = draw(st.sampled_from(DURATIONS))
    data: dict[str, Any] = {
        "procedure": draw(st.sampled_from(PROCEDURES)), "receiving_agency": draw(st.sampled_from(AGENCIES)),
        "channel": draw(st.sampled_from(("in_person", "online", "postal"))),
        "duration": {"value": draw(st.sampled_from(values)), "unit": unit},
        "applicant": {"kind": "citizen", "name": "Nguyễn Văn An"},
    }
    if draw(st.booleans()):
        data["appointment_at"] = format_ts(received_at + timedelta(hours=draw(st.integers(1, 24 * 20))))
    if draw(st.booleans()):
        data["supplement_mode"] = draw(st.sampled_from(("restart", "pause")))
    events = [_event("dossier.received", received_at, dossier_id, data)]
    at = received_at
    for _ in range(draw(st.integers(0, 7))):
        # from a minute to three weeks later: many lives end before, many after their due instant
        at += timedelta(minutes=draw(st.sampled_from((1, 30, 60 * 3, 60 * 24, 60 * 24 * 3, 60 * 24 * 9)))
                        + draw(st.integers(0, 60 * 24 * 12)))
        kind = draw(st.sampled_from(STEPS if closing else STEPS[:-1]))
        if kind == "close":
            close = draw(st.sampled_from(CLOSES))
            result = {"result": draw(st.sampled_from(("approved", "denied")))} if close == CLOSES[0] else {}
            events.append(_event(close, at, dossier_id, result))
            break
        step: dict[str, Any] = {
            "dossier.supplement_requested": {"reason": "thiếu giấy tờ"},
            "dossier.supplement_received": {"channel": "in_person"},
            "dossier.paused": {"reason": "financial_obligation"},
            "dossier.resumed": {},
            "dossier.extended": {"new_due_at": format_ts(at + timedelta(hours=draw(st.integers(1, 24 * 15)))),
                                 "reason": "cần xác minh"},
            "dossier.transferred": {"to_agency": draw(st.sampled_from(AGENCIES))},
        }[kind]
        events.append(_event(kind, at, dossier_id, step))
    return events


def boundaries(d: Dossier) -> list[datetime]:
    """The instants where an open dossier's facts may turn (due dates, the ends of supplementation, the
    starts of stops), each with its neighbours 1 µs apart: the cuts a property test should try."""
    supp = timedelta(0)
    instants = [d.due_at, d.due_at_receipt, *(s.start for s in d.stops)]
    if d.extended_due_at is not None:
        instants.append(d.extended_due_at)
    for stop in d.stops:
        if stop.kind == "supplement" and stop.end is not None:
            supp += stop.end - stop.start
            instants.append(d.due_at_receipt + supp)
    return [t + timedelta(microseconds=k) for t in instants for k in (-1, 0, 1)]

"""Builders of v1 event dicts (events.md) for tests: one factory module for the whole suite.

    received("D-1", "2026-03-02T09:00", value=3, appointment_at="2026-03-05T09:00")
    event("dossier.resolved", "2026-03-04T10:00", {"result": "approved"}, dossier_id="D-1")

Instants are written as Vietnam local time without an offset (`2026-03-02T09:00`) and sent with +07:00.
`parsed(...)` gives the typed events the domain code folds.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from tthc_contracts import VN_TZ, format_ts, parse_dossier_event

SOURCE = "motcua-test"
AGENCY = {"code": "000.00.12.H10", "name": "Sở Tư pháp tỉnh Lạng Sơn"}
PROCEDURE = {
    "code": "2.000567",
    "name": "Đăng ký thành lập doanh nghiệp tư nhân",
    "field_code": "G09-KH02",
    "field_name": "Thành lập và hoạt động doanh nghiệp",
}


def at(text: str) -> datetime:
    """`2026-03-02T09:00` as an aware instant in Vietnam time."""
    return datetime.fromisoformat(text).replace(tzinfo=VN_TZ)


def event(
    kind: str,
    when: str,
    data: dict[str, Any] | None = None,
    dossier_id: str = "D-1",
    event_id: str | None = None,
    source: str = SOURCE,
) -> dict[str, Any]:
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "type": kind,
        "schema_version": 1,
        "occurred_at": format_ts(at(when)),
        "source": source,
        "dossier_id": dossier_id,
        "data": data or {},
    }


def received(
    dossier_id: str = "D-1",
    when: str = "2026-03-02T09:00",
    value: float = 3,
    unit: str = "working_days",
    *,
    procedure: dict[str, str] | None = None,
    agency: dict[str, str] | None = None,
    channel: str = "in_person",
    appointment_at: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A `dossier.received`; `appointment_at` (local text like `when`) is the slip's NgayHenTra."""
    data: dict[str, Any] = {
        "procedure": procedure or PROCEDURE,
        "receiving_agency": agency or AGENCY,
        "channel": channel,
        "duration": {"value": value, "unit": unit},
        "applicant": {"kind": "citizen", "name": "Nguyễn Văn An"},
        **extra,
    }
    if appointment_at is not None:
        data["appointment_at"] = format_ts(at(appointment_at))
    return event("dossier.received", when, data, dossier_id)


def parsed(*events: dict[str, Any]) -> list[Any]:
    return [parse_dossier_event(e) for e in events]

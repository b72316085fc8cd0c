"""The worked example of docs/dvcqg/: DVCQG bodies -> v1 events -> replay, checked against values computed
by hand from the calendar.

How the values below were computed: March 2026 has no public holiday; office hours are the default
08:00-12:00 and 13:00-17:00 (8 hours a working day); both procedures take 10 working days (catalogue).

D1 (Cấp Phiếu lý lịch tư pháp, Sở Tư pháp, at the desk): received Mon 02/03 09:00, so due at receipt
    Mon 16/03 09:00 (ten working days later, same hour); the slip printed 16/03 09:00: gap 0.
    Supplementation asked Wed 04/03 10:00, documents brought Mon 09/03 14:00: the clock restarts (restart
    mode), ten working days from 09/03 14:00 is Mon 23/03 14:00; at risk one working day before, Fri 20/03
    14:00. Resolved Fri 20/03 10:30, a date before 23/03: early. Returned Mon 23/03 09:00 (not a close).
D2 (Đăng ký biến động đất đai, Sở Nông nghiệp và Môi trường, online): submitted Sun 08/03 20:15,
    received Mon 09/03 08:30, due at receipt Mon 23/03 08:30. The slip printed 23/03 17:00, rounded to the
    end of the day: 08:30-12:00 (3.5 h) + 13:00-17:00 (4 h) = 7.5 office hours later than the law allows.
    Step 6 (financial obligation) on Wed 18/03 14:00 pauses the clock with 18/03 14-17 (3 h) + 19/03 (8 h)
    + 20/03 (8 h) + 23/03 08:00-08:30 (0.5 h) = 19.5 office hours left; the second step 6 (19/03) changes
    nothing; step 4 on Mon 23/03 10:00 resumes: 23/03 10-12 and 13-17 (6 h), 24/03 (8 h), then 5.5 h of
    25/03: due Wed 25/03 14:30, at risk Tue 24/03 14:30. Resolved 25/03 11:00, the due date itself: on
    time. Returned 25/03 15:00.
D3 (online, refused at the desk Tue 03/03 10:05): submitted and refused, never received: no dossier row.
"""

from __future__ import annotations

import json
import uuid
from datetime import date
from pathlib import Path

from tthc_adapters.catalogue_file import load_catalogue
from tthc_adapters.cli import main
from tthc_contracts import parse_dossier_event, parse_ts
from tthc_contracts.dvcqg import translate
from tthc_core.calendar import CalendarBook
from tthc_core.indices import Period
from tthc_core.replay import replay

DOCS = Path(__file__).resolve().parents[2] / "docs" / "dvcqg"
SOURCE = "motcua-lang-son"
D1, D2, D3 = "000.00.12.H10-260302-0001", "000.00.20.H10-260309-0004", "000.00.12.H10-260303-0002"
NAMESPACE = uuid.UUID("0b6f3a2e-5d1c-4c8e-9a7f-3e2d1c0b9a88")

# Every v1 event the bodies imply, once each: (dossier, type, occurred_at, round n, data).
EXPECTED_EVENTS = [
    (D1, "dossier.received", "2026-03-02T09:00:00", 0, None),
    (D3, "dossier.submitted", "2026-03-03T07:40:00", 0, {"channel": "online"}),
    (
        D3,
        "dossier.refused",
        "2026-03-03T10:05:00",
        0,
        {"reason": "Người yêu cầu không cư trú tại tỉnh Lạng Sơn: nộp tại Sở Tư pháp nơi cư trú"},
    ),
    (
        D1,
        "dossier.supplement_requested",
        "2026-03-04T10:00:00",
        1,
        {"reason": "Thiếu bản sao Căn cước công dân"},
    ),
    (D2, "dossier.submitted", "2026-03-08T20:15:00", 0, {"channel": "online"}),
    (D2, "dossier.received", "2026-03-09T08:30:00", 0, None),
    (D1, "dossier.supplement_received", "2026-03-09T14:00:00", 1, {"channel": "in_person"}),
    (D2, "dossier.paused", "2026-03-18T14:00:00", 0, {"reason": "financial_obligation"}),
    (D1, "dossier.resolved", "2026-03-20T10:30:00", 0, {"result": "approved"}),
    (D2, "dossier.resumed", "2026-03-23T10:00:00", 0, {}),
    (D1, "dossier.returned", "2026-03-23T09:00:00", 0, {}),
    (D2, "dossier.resolved", "2026-03-25T11:00:00", 0, {"result": "approved"}),
    (D2, "dossier.returned", "2026-03-25T15:00:00", 0, {}),
]
RECEIVED_DATA = {
    D1: {
        "procedure": {
            "code": "1.001234",
            "name": "Cấp Phiếu lý lịch tư pháp",
            "field_code": "G13-TP01",
            "field_name": "Lý lịch tư pháp",
        },
        "receiving_agency": {"code": "000.00.12.H10", "name": "Sở Tư pháp tỉnh Lạng Sơn"},
        "handling_agency": {"code": "000.00.12.H10", "name": "Sở Tư pháp tỉnh Lạng Sơn"},
        "channel": "in_person",
        "duration": {"value": 10, "unit": "working_days"},
        "applicant": {"kind": "citizen", "name": "Hoàng Thị Mai", "phone": "0912000001"},
        "appointment_at": "2026-03-16T09:00:00+07:00",
    },
    D2: {
        "procedure": {
            "code": "1.004227",
            "name": "Đăng ký biến động quyền sử dụng đất, quyền sở hữu tài sản gắn liền với đất",
            "field_code": "G14-TN01",
            "field_name": "Đất đai",
        },
        "receiving_agency": {"code": "000.00.20.H10", "name": "Sở Nông nghiệp và Môi trường tỉnh Lạng Sơn"},
        "handling_agency": {"code": "000.00.20.H10", "name": "Sở Nông nghiệp và Môi trường tỉnh Lạng Sơn"},
        "channel": "online",
        "duration": {"value": 10, "unit": "working_days"},
        "applicant": {"kind": "citizen", "name": "Lý Văn Thành"},
        "appointment_at": "2026-03-23T17:00:00+07:00",
        "supplement_mode": "pause",
    },
}


def _row(
    dossier_id,
    agency,
    procedure,
    field,
    channel,
    received,
    due_at_receipt,
    due,
    at_risk,
    outcome,
    closed,
    supplements,
    appointment,
    gap,
):
    t = lambda x: f"{x}+07:00"  # noqa: E731
    return {
        "dossier_id": dossier_id,
        "handling_agency": agency,
        "procedure_code": procedure,
        "field_code": field,
        "channel": channel,
        "received_at": t(received),
        "start_at": t(received),
        "due_at_receipt": t(due_at_receipt),
        "due_at": t(due),
        "extended_due_at": None,
        "at_risk_at": t(at_risk),
        "state": "closed",
        "outcome": outcome,
        "closed_at": t(closed),
        "late_by_hours": None,
        "supplement_requests": supplements,
        "extensions": 0,
        "appointment_at": t(appointment),
        "appointment_gap_hours": gap,
    }


EXPECTED_ROWS = [
    _row(
        D1,
        "000.00.12.H10",
        "1.001234",
        "G13-TP01",
        "in_person",
        "2026-03-02T09:00:00",
        "2026-03-16T09:00:00",
        "2026-03-23T14:00:00",
        "2026-03-20T14:00:00",
        "early",
        "2026-03-20T10:30:00",
        1,
        "2026-03-16T09:00:00",
        0.0,
    ),
    _row(
        D2,
        "000.00.20.H10",
        "1.004227",
        "G14-TN01",
        "online",
        "2026-03-09T08:30:00",
        "2026-03-23T08:30:00",
        "2026-03-25T14:30:00",
        "2026-03-24T14:30:00",
        "on_time",
        "2026-03-25T11:00:00",
        0,
        "2026-03-23T17:00:00",
        7.5,
    ),
]


def translate_the_bodies() -> list[dict]:
    """As `tthc dvcqg` does: line after line, steps kept per dossier, each event once."""
    catalogue = load_catalogue(DOCS / "catalogue.yaml")
    steps: dict[str, list] = {}
    events: dict[str, dict] = {}
    for line in (DOCS / "payloads.jsonl").read_text(encoding="utf-8").splitlines():
        result = translate(json.loads(line), catalogue, SOURCE, steps)
        assert result.errors == []
        for dossier_id, new in result.new_steps.items():
            steps.setdefault(dossier_id, []).extend(new)
        for e in result.events:
            events.setdefault(e["event_id"], e)
    return list(events.values())


def test_every_derived_event_is_as_computed_by_hand():
    events = translate_the_bodies()
    assert [(e["dossier_id"], e["type"], e["occurred_at"]) for e in events] == [
        (d, kind, f"{when}+07:00") for d, kind, when, _, _ in EXPECTED_EVENTS
    ]
    for event, (dossier_id, kind, when, n, data) in zip(events, EXPECTED_EVENTS):
        instant = when.replace("-", "").replace("T", "").replace(":", "")
        assert event["event_id"] == str(uuid.uuid5(NAMESPACE, f"{SOURCE}/{dossier_id}/{kind}/{n}/{instant}"))
        assert event["source"] == SOURCE and event["schema_version"] == 1
        assert event["data"] == (RECEIVED_DATA[dossier_id] if data is None else data)


def test_the_committed_translation_is_what_the_command_writes(tmp_path):
    code = main(
        [
            "dvcqg",
            "--in",
            str(DOCS / "payloads.jsonl"),
            "--catalogue",
            str(DOCS / "catalogue.yaml"),
            "--source",
            SOURCE,
            "--out",
            str(tmp_path / "events.jsonl"),
        ]
    )
    assert code == 0
    assert (tmp_path / "events.jsonl").read_bytes() == (DOCS / "events.jsonl").read_bytes()
    assert [
        json.loads(line) for line in (DOCS / "events.jsonl").read_text(encoding="utf-8").splitlines()
    ] == (translate_the_bodies())


def test_the_replay_gives_every_dossier_field_as_computed_by_hand():
    events = [parse_dossier_event(e) for e in translate_the_bodies()]
    period = Period(date(2026, 3, 1), date(2026, 3, 31))
    result = replay(events, CalendarBook(), parse_ts("2026-04-01T00:00:00+07:00"), period)
    assert [d.row() for d in result.dossiers] == EXPECTED_ROWS  # D3 was never received
    # D2 reached its at-risk moment (24/03 14:30) before closing on time: a draft, cancelled at the close.
    assert [(d.dossier_id, d.kind, d.status) for d in result.drafts] == [(D2, "at_risk", "cancelled")]
    total = result.indices["total"]
    assert {
        k: total[k]
        for k in (
            "received",
            "closed",
            "early",
            "on_time",
            "late",
            "appointment_checked",
            "appointment_later",
            "appointment_earlier",
            "appointment_later_rate",
            "online_received",
            "online_rate",
        )
    } == {
        "received": 2,
        "closed": 2,
        "early": 1,
        "on_time": 1,
        "late": 0,
        "appointment_checked": 2,
        "appointment_later": 1,
        "appointment_earlier": 0,
        "appointment_later_rate": 0.5,
        "online_received": 1,
        "online_rate": 0.5,
    }

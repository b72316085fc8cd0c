"""The apology service as one component: FastStream's in-memory Kafka, SQLite in tmp_path, HTTP through
httpx's ASGI transport. The outbox is drained by hand (`apology.flush()`), so every test sees exactly
what the service published, once.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import docx
import httpx
import pytest
from faststream.kafka import TestKafkaBroker

from tthc_apology.app import MIGRATIONS_DIR, create_app
from tthc_apology.auth import COOKIE_NAME
from tthc_apology.config import ApologySettings
from tthc_apology.officer_keys import hash_key
from tthc_common.broker import KafkaMessage
from tthc_common.db import run_migrations
from tthc_common.dead_letter import HEADER_REASON
from tthc_contracts import VN_TZ, derived_id
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
from tthc_contracts.events import Agency, Duration
from tthc_core.apology import apology_id_for

AGENCY = Agency(code="000.00.12.H10", name="Sở Tư pháp tỉnh Lạng Sơn")
OTHER_AGENCY = Agency(code="000.00.15.H10", name="Sở Xây dựng tỉnh Lạng Sơn")
KEY, OTHER_KEY = "so-tu-phap-officer-key", "so-xay-dung-officer-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
OTHER_AUTH = {"Authorization": f"Bearer {OTHER_KEY}"}
APPLICANT = 'Công ty TNHH Hoa & Lá <Việt> "Số 1"'
DURATION = Duration(value=5, unit="working_days")
DEADLINE_SOURCE = "tthc-deadline"
ONE_STOP = "motcua-lang-son"

DUE = datetime(2026, 3, 10, 17, 0, tzinfo=VN_TZ)  # a Tuesday
AT_RISK_AT = datetime(2026, 3, 9, 17, 0, tzinfo=VN_TZ)


def ts(dt: datetime) -> str:
    return dt.isoformat()


# ---- events as the other services publish them ---------------------------------------------------

def received(dossier_id: str, *, applicant: str = APPLICANT, agency: Agency = AGENCY,
             at: datetime = datetime(2026, 3, 3, 9, 0, tzinfo=VN_TZ), event_id: str | None = None) -> dict[str, Any]:
    return {
        "event_id": event_id or str(uuid.uuid4()), "type": "dossier.received", "schema_version": 1,
        "occurred_at": ts(at), "source": ONE_STOP, "dossier_id": dossier_id,
        "data": {
            "procedure": {"code": "1.001234", "name": "Cấp Phiếu lý lịch tư pháp", "field_code": "G13-TP01",
                          "field_name": "Lý lịch tư pháp"},
            "receiving_agency": agency.model_dump(), "handling_agency": agency.model_dump(),
            "channel": "in_person", "duration": DURATION.model_dump(),
            "applicant": {"kind": "organization", "name": applicant, "phone": "0912345678"},
        },
    }


def extended(dossier_id: str, at: datetime, new_due_at: datetime) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "type": "dossier.extended", "schema_version": 1, "occurred_at": ts(at),
            "source": ONE_STOP, "dossier_id": dossier_id,
            "data": {"new_due_at": ts(new_due_at), "reason": "Chờ xác minh"}}


def at_risk(dossier_id: str, due: datetime = DUE, agency: Agency = AGENCY, at: datetime | None = None) -> DeadlineAtRisk:
    at = at or due - timedelta(days=1)
    return DeadlineAtRisk(event_id=derived_id("deadline.at_risk", dossier_id, due), occurred_at=at,
                          source=DEADLINE_SOURCE, dossier_id=dossier_id,
                          data=AtRiskData(due_at=due, handling_agency=agency, duration=DURATION))


def overdue(dossier_id: str, due: datetime = DUE, agency: Agency = AGENCY) -> DeadlineOverdue:
    return DeadlineOverdue(event_id=derived_id("deadline.overdue", dossier_id, due), occurred_at=due,
                           source=DEADLINE_SOURCE, dossier_id=dossier_id,
                           data=OverdueData(due_at=due, handling_agency=agency, duration=DURATION))


def closed(dossier_id: str, outcome: str, closed_at: datetime, due: datetime = DUE) -> DeadlineClosed:
    late = 3.0 if outcome == "late" else None
    return DeadlineClosed(event_id=derived_id("deadline.closed", dossier_id), occurred_at=closed_at,
                          source=DEADLINE_SOURCE, dossier_id=dossier_id,
                          data=ClosedData(outcome=outcome, closed_at=closed_at, due_at=due, late_by_hours=late,
                                          handling_agency=AGENCY, duration=DURATION))


def rescheduled(dossier_id: str, new_due: datetime, at: datetime) -> DeadlineScheduled:
    return DeadlineScheduled(event_id=derived_id("deadline.scheduled", dossier_id, new_due), occurred_at=at,
                             source=DEADLINE_SOURCE, dossier_id=dossier_id,
                             data=ScheduledData(due_at=new_due, at_risk_at=None, handling_agency=AGENCY,
                                                basis="supplement_restart"))


# ---- the service under test ----------------------------------------------------------------------

@dataclass
class Apology:
    settings: ApologySettings
    app: Any
    broker: Any = None
    client: httpx.AsyncClient = None  # type: ignore[assignment]
    published: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[KafkaMessage] = field(default_factory=list)

    async def deadline(self, event: Any) -> None:
        await self.broker.publish(event.model_dump_json().encode(), self.settings.topics.deadline_events,
                                  key=event.dossier_id.encode())

    async def dossier(self, event: dict[str, Any]) -> None:
        await self.broker.publish(json.dumps(event, ensure_ascii=False).encode(),
                                  self.settings.topics.dossier_events, key=event["dossier_id"].encode())

    async def flush(self) -> None:
        await self.app.state.relay.drain()

    def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.published if type_ is None or e["type"] == type_]

    async def list(self, headers: dict[str, str] | None = AUTH, **params: str) -> httpx.Response:
        return await self.client.get("/v1/apologies", params=params, headers=headers)

    async def items(self, **params: str) -> list[dict[str, Any]]:
        response = await self.list(**params)
        assert response.status_code == 200, response.text
        return response.json()["items"]

    async def issue(self, apology_id: str, headers: dict[str, str] | None = AUTH, **body: Any) -> httpx.Response:
        body.setdefault("reason", "Hồ sơ cần xác minh thêm tại địa phương")
        body.setdefault("new_due_at", "2026-03-16T17:00:00+07:00")
        return await self.client.post(f"/v1/apologies/{apology_id}/issue", json=body, headers=headers)


def make_settings(tmp_path: Any, **overrides: Any) -> ApologySettings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path}/apology.db",
        "documents_dir": tmp_path / "documents",
        "officer_keys": f"{AGENCY.code}={hash_key(KEY)},{OTHER_AGENCY.code}={hash_key(OTHER_KEY)}",
        "topic_prefix": "component.",
        "log_level": "DEBUG",
        "retry_delay_s": 0,
    }
    values.update(overrides)
    return ApologySettings(**values)


async def running(settings: ApologySettings) -> AsyncIterator[Apology]:
    app = create_app(settings)
    run_migrations(settings.database_url, MIGRATIONS_DIR)
    router = app.state.kafka_router
    under_test = Apology(settings=settings, app=app)

    @router.subscriber(settings.topics.apology_events, group_id="test-capture")
    async def capture(msg: KafkaMessage) -> None:
        under_test.published.append(json.loads(msg.body))

    @router.subscriber(settings.topics.dead_letter, group_id="test-capture-dlq")
    async def capture_dead(msg: KafkaMessage) -> None:
        under_test.dead_letters.append(msg)

    async with TestKafkaBroker(router.broker) as broker:
        under_test.broker = broker
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://apology") as client:
            under_test.client = client
            yield under_test
    app.state.engine.dispose()


@pytest.fixture
async def apology(tmp_path: Any) -> AsyncIterator[Apology]:
    async for service in running(make_settings(tmp_path)):
        yield service


# ---- drafts from deadline events -----------------------------------------------------------------

async def test_at_risk_makes_one_draft_even_when_redelivered(apology: Apology) -> None:
    for _ in range(3):  # the first delivery and two redeliveries
        await apology.deadline(at_risk("D-1"))
    await apology.flush()

    drafted = apology.events("apology.drafted")
    assert len(drafted) == 1
    data = drafted[0]["data"]
    assert data["kind"] == "at_risk" and data["agency"]["code"] == AGENCY.code
    assert data["due_at"] == "2026-03-10T17:00:00+07:00"
    # 5 working days -> due + 3 working days, on the agency's calendar: Tuesday -> Friday
    assert data["proposed_due_at"] == "2026-03-13T17:00:00+07:00"
    assert data["apology_id"] == apology_id_for("D-1", "at_risk", DUE)
    assert data["document_url"] == f"/v1/apologies/{data['apology_id']}.docx"

    items = await apology.items()
    assert [(i["dossier_id"], i["kind"], i["status"]) for i in items] == [("D-1", "at_risk", "draft")]


async def test_closing_on_time_cancels_the_draft(apology: Apology) -> None:
    await apology.deadline(at_risk("D-2"))
    await apology.deadline(closed("D-2", "on_time", DUE - timedelta(hours=2)))
    await apology.flush()

    cancelled = apology.events("apology.cancelled")
    assert len(cancelled) == 1
    assert cancelled[0]["data"]["apology_id"] == apology_id_for("D-2", "at_risk", DUE)
    assert "on time" in cancelled[0]["data"]["reason"]
    assert [i["status"] for i in await apology.items()] == ["cancelled"]
    assert await apology.items(status="draft") == []


async def test_late_close_without_an_issued_apology_drafts_a_late_result(apology: Apology) -> None:
    await apology.deadline(closed("D-3", "late", DUE + timedelta(days=2)))
    await apology.flush()

    drafted = apology.events("apology.drafted")
    assert [d["data"]["kind"] for d in drafted] == ["late_result"]
    assert [(i["kind"], i["status"]) for i in await apology.items()] == [("late_result", "draft")]


async def test_late_close_after_an_issued_apology_drafts_nothing_more(apology: Apology) -> None:
    await apology.deadline(at_risk("D-4"))
    await apology.flush()
    (item,) = await apology.items()
    assert (await apology.issue(item["apology_id"])).status_code == 200

    await apology.deadline(overdue("D-4"))
    await apology.deadline(closed("D-4", "late", DUE + timedelta(days=3)))
    await apology.flush()
    assert len(apology.events("apology.drafted")) == 1  # no overdue draft, no late_result draft


async def test_overdue_without_an_at_risk_moment_drafts_once(apology: Apology) -> None:
    await apology.deadline(overdue("D-5"))
    await apology.deadline(overdue("D-5"))
    await apology.flush()
    assert [d["data"]["kind"] for d in apology.events("apology.drafted")] == ["overdue"]


async def test_a_moved_due_date_cancels_the_old_draft(apology: Apology) -> None:
    await apology.deadline(at_risk("D-6"))
    await apology.deadline(rescheduled("D-6", DUE + timedelta(days=7), DUE - timedelta(hours=20)))
    await apology.flush()
    assert [c["data"]["reason"] for c in apology.events("apology.cancelled")] == ["the due date moved"]


async def test_extension_recorded_by_one_stop_software_cancels_the_draft(apology: Apology) -> None:
    await apology.deadline(at_risk("D-7"))
    await apology.dossier(extended("D-7", DUE - timedelta(hours=3), DUE + timedelta(days=5)))
    await apology.flush()
    assert len(apology.events("apology.cancelled")) == 1
    assert [i["status"] for i in await apology.items()] == ["cancelled"]


async def test_extension_consumed_before_an_earlier_at_risk_still_cancels_it(apology: Apology) -> None:
    # The dossier and deadline topics are not ordered with each other: the extension (later in event
    # time) is read first. In event order the draft would have been cancelled by it; so it is.
    await apology.dossier(extended("D-8", DUE - timedelta(hours=3), DUE + timedelta(days=5)))
    await apology.deadline(at_risk("D-8"))
    await apology.deadline(closed("D-8", "late", DUE + timedelta(days=6)))
    await apology.flush()
    assert len(apology.events("apology.drafted")) == 1
    assert len(apology.events("apology.cancelled")) == 1
    assert await apology.items(status="draft") == []  # and no late_result: the apology was given


async def test_unusable_messages_go_to_the_dead_letter_topic_and_the_consumer_moves_on(apology: Apology) -> None:
    await apology.broker.publish(b"{not json", apology.settings.topics.deadline_events, key=b"D-9")
    bad = at_risk("D-9").model_dump(mode="json")
    del bad["data"]["due_at"]
    await apology.broker.publish(json.dumps(bad).encode(), apology.settings.topics.deadline_events, key=b"D-9")
    broken_receipt = received("D-9")
    broken_receipt["data"]["duration"]["value"] = 0
    await apology.dossier(broken_receipt)
    await apology.deadline(at_risk("D-9"))
    await apology.flush()

    reasons = [dict(m.headers)[HEADER_REASON] for m in apology.dead_letters]
    assert len(reasons) == 3
    assert "not valid JSON" in reasons[0]
    assert "due_at" in reasons[1]
    assert "duration" in reasons[2]
    assert APPLICANT not in " ".join(reasons)
    assert len(apology.events("apology.drafted")) == 1  # the next good message was processed


async def test_other_dossier_events_are_acknowledged_and_ignored(apology: Apology) -> None:
    await apology.dossier({"event_id": str(uuid.uuid4()), "type": "dossier.resolved", "schema_version": 1,
                           "occurred_at": ts(DUE), "source": ONE_STOP, "dossier_id": "D-10",
                           "data": {"result": "approved"}})
    await apology.flush()
    assert apology.published == [] and apology.dead_letters == []


async def test_metrics_count_by_kind_and_agency_and_logs_carry_no_personal_data(
        apology: Apology, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await apology.dossier(received("D-11"))
    await apology.deadline(at_risk("D-11"))
    await apology.deadline(closed("D-11", "on_time", DUE - timedelta(hours=1)))
    await apology.deadline(overdue("D-12"))
    await apology.flush()
    (item,) = await apology.items(status="draft")
    assert (await apology.issue(item["apology_id"])).status_code == 200

    text = (await apology.client.get("/metrics")).text
    labels = f'agency="{AGENCY.code}"'
    assert re.search(rf'tthc_apology_drafts_created_total\{{{labels},kind="at_risk"\}} 1\.0', text)
    assert re.search(rf'tthc_apology_drafts_created_total\{{{labels},kind="overdue"\}} 1\.0', text)
    assert re.search(rf'tthc_apology_drafts_cancelled_total\{{{labels},kind="at_risk"\}} 1\.0', text)
    assert re.search(rf'tthc_apology_letters_issued_total\{{{labels},kind="overdue"\}} 1\.0', text)
    assert "Hoa &" not in text and "0912345678" not in text
    logged = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    assert "Hoa &" not in logged and "0912345678" not in logged


# ---- who may see and do what ---------------------------------------------------------------------

async def test_without_a_valid_key_everything_is_401(apology: Apology) -> None:
    await apology.deadline(at_risk("D-20"))
    apology_id = apology_id_for("D-20", "at_risk", DUE)
    for headers in (None, {"Authorization": "Bearer wrong-key"}, {"Authorization": f"Basic {KEY}"}):
        assert (await apology.list(headers=headers)).status_code == 401
        assert (await apology.list(headers=headers, status="nonsense")).status_code == 401
        assert (await apology.client.get(f"/v1/apologies/{apology_id}.docx", headers=headers)).status_code == 401
        response = await apology.issue(apology_id, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    await apology.flush()
    assert apology.events("apology.issued") == []


async def test_officers_see_and_act_on_their_own_agency_only(apology: Apology) -> None:
    await apology.deadline(at_risk("D-21"))
    await apology.deadline(at_risk("D-22", agency=OTHER_AGENCY))
    await apology.flush()
    mine = apology_id_for("D-21", "at_risk", DUE)
    theirs = apology_id_for("D-22", "at_risk", DUE)

    assert [i["apology_id"] for i in await apology.items()] == [mine]
    assert [i["apology_id"] for i in await apology.items(agency=AGENCY.code)] == [mine]
    assert (await apology.list(agency=OTHER_AGENCY.code)).status_code == 403
    assert [i["apology_id"] for i in (await apology.list(headers=OTHER_AUTH)).json()["items"]] == [theirs]

    assert (await apology.client.get(f"/v1/apologies/{theirs}.docx", headers=AUTH)).status_code == 403
    assert (await apology.client.get(f"/v1/apologies/{theirs}.pdf", headers=AUTH)).status_code == 403
    assert (await apology.issue(theirs)).status_code == 403
    assert (await apology.issue("no-such-apology")).status_code == 404
    await apology.flush()
    assert apology.events("apology.issued") == []


# ---- issuing and numbers -------------------------------------------------------------------------

async def test_issuing_numbers_01_then_02_and_publishes_once(apology: Apology) -> None:
    await apology.deadline(at_risk("D-30"))
    await apology.deadline(at_risk("D-31"))
    await apology.flush()
    first, second = apology_id_for("D-30", "at_risk", DUE), apology_id_for("D-31", "at_risk", DUE)

    response = await apology.issue(first, reason="Chờ kết quả xác minh", new_due_at="2026-03-16T10:00:00+07:00")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["number"], body["reason"]) == ("issued", "01/PXL", "Chờ kết quả xác minh")
    assert body["new_due_at"] == "2026-03-16T10:00:00+07:00"
    assert (await apology.issue(second)).json()["number"] == "02/PXL"

    again = await apology.issue(first)
    assert again.status_code == 409
    assert "01/PXL" in again.json()["detail"]
    await apology.flush()
    issued = apology.events("apology.issued")
    assert sorted((e["data"]["apology_id"], e["data"]["number"]) for e in issued) == sorted(
        [(first, "01/PXL"), (second, "02/PXL")])
    assert issued[0]["data"]["new_due_at"] == "2026-03-16T10:00:00+07:00"


async def test_concurrent_issuing_never_hands_out_a_number_twice(apology: Apology) -> None:
    dossiers = [f"D-4{n:02d}" for n in range(15)]
    for d in dossiers:
        await apology.deadline(at_risk(d))
    ids = [apology_id_for(d, "at_risk", DUE) for d in dossiers]
    # 20 requests at once: every draft once, and five of them a second time
    requests = ids + ids[:5]
    responses = await asyncio.gather(*(apology.issue(i) for i in requests))

    ok = [r.json() for r in responses if r.status_code == 200]
    assert sorted(r.status_code for r in responses) == [200] * 15 + [409] * 5
    assert sorted(r["number"] for r in ok) == [f"{n:02d}/PXL" for n in range(1, 16)]
    assert sorted(r["apology_id"] for r in ok) == sorted(ids)
    await apology.flush()
    assert len(apology.events("apology.issued")) == 15


async def test_a_chosen_number_must_not_collide_and_is_never_handed_out_again(apology: Apology) -> None:
    for d in ("D-50", "D-51", "D-52"):
        await apology.deadline(at_risk(d))
    a, b, c = (apology_id_for(d, "at_risk", DUE) for d in ("D-50", "D-51", "D-52"))

    assert (await apology.issue(a, number="2")).json()["number"] == "02/PXL"
    collision = await apology.issue(b, number="02/PXL")
    assert collision.status_code == 409
    assert (await apology.issue(b)).json()["number"] == "01/PXL"
    assert (await apology.issue(c)).json()["number"] == "03/PXL"  # 02 was taken by hand


async def test_issue_body_is_validated(apology: Apology) -> None:
    await apology.deadline(at_risk("D-53"))
    apology_id = apology_id_for("D-53", "at_risk", DUE)
    assert (await apology.issue(apology_id, reason="   ")).status_code == 422
    assert (await apology.issue(apology_id, new_due_at="2026-03-16T17:00:00")).status_code == 422  # naive
    assert (await apology.issue(apology_id, new_due_at="2026-03-09T17:00:00+07:00")).status_code == 422
    assert (await apology.issue(apology_id, surprise=1)).status_code == 422
    assert (await apology.items())[0]["status"] == "draft"


async def test_a_cancelled_draft_cannot_be_issued(apology: Apology) -> None:
    await apology.deadline(at_risk("D-54"))
    await apology.deadline(closed("D-54", "early", DUE - timedelta(days=1, hours=2)))
    response = await apology.issue(apology_id_for("D-54", "at_risk", DUE))
    assert response.status_code == 409 and "cancelled" in response.json()["detail"]


# ---- documents -----------------------------------------------------------------------------------

def docx_text(content: bytes) -> str:
    document = docx.Document(io.BytesIO(content))
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        parts += [cell.text for row in table.rows for cell in row.cells]
    return "\n".join(parts)


async def test_docx_waits_for_the_receipt_then_renders_names_exactly(apology: Apology) -> None:
    await apology.deadline(at_risk("D-60"))  # the draft arrives before the dossier's receipt
    apology_id = apology_id_for("D-60", "at_risk", DUE)
    url = f"/v1/apologies/{apology_id}.docx"
    not_yet = await apology.client.get(url, headers=AUTH)
    assert not_yet.status_code == 409 and "dossier.received" in not_yet.json()["detail"]
    assert (await apology.items())[0]["letter_ready"] is False

    await apology.dossier(received("D-60"))
    response = await apology.client.get(url, headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/vnd.openxmlformats")
    text = docx_text(response.content)
    assert APPLICANT in text
    assert "D-60" in text and "Cấp Phiếu lý lịch tư pháp" in text
    assert "17 giờ 00 phút, ngày 10/03/2026" in text  # the missed appointment
    assert "17 giờ 00 phút, ngày 13/03/2026" in text  # the proposed one
    (item,) = await apology.items()
    assert item["letter_ready"] and item["applicant_name"] == APPLICANT


async def test_the_issued_letter_carries_the_number_reason_and_new_date(apology: Apology) -> None:
    await apology.dossier(received("D-61"))
    await apology.deadline(at_risk("D-61"))
    apology_id = apology_id_for("D-61", "at_risk", DUE)
    draft_text = docx_text((await apology.client.get(f"/v1/apologies/{apology_id}.docx", headers=AUTH)).content)
    assert "01/PXL" not in draft_text

    await apology.issue(apology_id, reason="Cần xác minh tại UBND xã", new_due_at="2026-03-18T10:30:00+07:00")
    text = docx_text((await apology.client.get(f"/v1/apologies/{apology_id}.docx", headers=AUTH)).content)
    assert "01/PXL" in text
    assert "Cần xác minh tại UBND xã" in text
    assert "10 giờ 30 phút, ngày 18/03/2026" in text


async def test_the_earliest_receipt_wins_whatever_order_they_arrive_in(apology: Apology) -> None:
    await apology.deadline(at_risk("D-62"))
    await apology.dossier(received("D-62", applicant="Người Sau", at=datetime(2026, 3, 3, 10, 0, tzinfo=VN_TZ)))
    await apology.dossier(received("D-62", applicant="Người Trước", at=datetime(2026, 3, 3, 9, 0, tzinfo=VN_TZ)))
    await apology.dossier(received("D-62", applicant="Người Sau Nữa", at=datetime(2026, 3, 4, 9, 0, tzinfo=VN_TZ)))
    text = docx_text((await apology.client.get(
        f"/v1/apologies/{apology_id_for('D-62', 'at_risk', DUE)}.docx", headers=AUTH)).content)
    assert "Người Trước" in text and "Người Sau" not in text


async def test_pdf_preview_or_501_when_libreoffice_is_missing(apology: Apology,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from tthc_adapters.pdf import find_soffice

    await apology.dossier(received("D-63"))
    await apology.deadline(at_risk("D-63"))
    url = f"/v1/apologies/{apology_id_for('D-63', 'at_risk', DUE)}.pdf"
    if find_soffice() is not None:
        response = await apology.client.get(url, headers=AUTH)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/pdf"
        assert response.content.startswith(b"%PDF")

    monkeypatch.setattr("tthc_apology.documents.find_soffice", lambda: None)
    missing = await apology.client.get(url, headers=AUTH)
    assert missing.status_code == 501
    assert "LibreOffice" in missing.json()["detail"]


# ---- the officers' inbox page --------------------------------------------------------------------

async def test_inbox_lists_drafts_overdue_first_and_issues_from_the_form(apology: Apology) -> None:
    later_due = datetime(2099, 1, 6, 17, 0, tzinfo=VN_TZ)
    await apology.dossier(received("D-70"))
    await apology.deadline(at_risk("D-70", due=later_due))
    await apology.deadline(overdue("D-71"))  # due in the past: listed first
    await apology.deadline(at_risk("D-72", agency=OTHER_AGENCY))

    assert (await apology.client.get("/inbox")).status_code == 401
    login = await apology.client.get("/inbox", params={"key": KEY})
    assert login.status_code == 303 and login.headers["location"] == "/inbox"
    assert "httponly" in login.headers["set-cookie"].lower()
    assert "samesite=strict" in login.headers["set-cookie"].lower()
    assert apology.client.cookies.get(COOKIE_NAME) == KEY  # the browser keeps it from now on

    page = await apology.client.get("/inbox")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '<html lang="vi">' in html
    assert html.index("D-71") < html.index("D-70")
    assert "Đã quá hạn" in html and "D-72" not in html
    assert "Hoa &amp; Lá &lt;Việt&gt;" in html  # escaped, not interpreted
    assert f"/v1/apologies/{apology_id_for('D-70', 'at_risk', later_due)}.docx" in html
    # the download link works with the inbox cookie
    download = await apology.client.get(f"/v1/apologies/{apology_id_for('D-70', 'at_risk', later_due)}.docx")
    assert download.status_code == 200

    target = apology_id_for("D-71", "overdue", DUE)
    form = {"reason": "Chờ ý kiến của Sở Tài chính", "new_due_at": "2026-03-20T16:00", "number": ""}
    issued = await apology.client.post(f"/inbox/apologies/{target}/issue", data=form,
                                       headers={"origin": "http://apology"})
    assert issued.status_code == 303
    done = await apology.client.get(issued.headers["location"])
    assert "Đã ban hành phiếu số 01/PXL" in done.text

    bad = await apology.client.post(f"/inbox/apologies/{apology_id_for('D-70', 'at_risk', later_due)}/issue",
                                    data={"reason": "", "new_due_at": "x"})
    assert bad.status_code == 422 and "Cần nhập lý do" in bad.text
    forged = await apology.client.post(f"/inbox/apologies/{apology_id_for('D-70', 'at_risk', later_due)}/issue",
                                       data=form, headers={"origin": "https://evil.example"})
    assert forged.status_code == 403

    await apology.flush()
    issued_events = apology.events("apology.issued")
    assert [(e["data"]["apology_id"], e["data"]["new_due_at"]) for e in issued_events] == [
        (target, "2026-03-20T16:00:00+07:00")]


# ---- deployment configuration: calendar and templates --------------------------------------------

async def test_proposed_appointment_is_counted_on_the_configured_calendar(tmp_path: Any) -> None:
    calendar = tmp_path / "calendar.yaml"
    calendar.write_text("extra_days_off: [2026-03-12]  # a typhoon closure\n", encoding="utf-8")
    async for apology in running(make_settings(tmp_path, calendar_file=calendar)):
        await apology.deadline(at_risk("D-80"))
        await apology.flush()
        (drafted,) = apology.events("apology.drafted")
        # Tuesday 10 + 3 working days, Thursday 12 off: Wednesday 11, Friday 13, Monday 16
        assert drafted["data"]["proposed_due_at"] == "2026-03-16T17:00:00+07:00"


async def test_an_agency_template_replaces_the_bundled_letter(tmp_path: Any) -> None:
    from importlib import resources

    templates = tmp_path / "templates"
    templates.mkdir()
    bundled = resources.files("tthc_core.letter").joinpath("templates/mau04.docx").read_bytes()
    document = docx.Document(io.BytesIO(bundled))
    document.add_paragraph("Mẫu riêng của Sở Tư pháp")
    document.save(templates / f"{AGENCY.code}.docx")

    async for apology in running(make_settings(tmp_path, templates_dir=templates)):
        await apology.dossier(received("D-81"))
        await apology.deadline(at_risk("D-81"))
        await apology.deadline(at_risk("D-82", agency=OTHER_AGENCY))
        await apology.dossier(received("D-82", agency=OTHER_AGENCY))
        own = await apology.client.get(f"/v1/apologies/{apology_id_for('D-81', 'at_risk', DUE)}.docx", headers=AUTH)
        other = await apology.client.get(f"/v1/apologies/{apology_id_for('D-82', 'at_risk', DUE)}.docx",
                                         headers=OTHER_AUTH)
        assert "Mẫu riêng của Sở Tư pháp" in docx_text(own.content) and APPLICANT in docx_text(own.content)
        assert "Mẫu riêng" not in docx_text(other.content) and APPLICANT in docx_text(other.content)

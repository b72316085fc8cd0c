"""The apology service as one component: FastStream's in-memory Kafka, SQLite in tmp_path, HTTP through
httpx's ASGI transport. The outbox is drained by hand (`apology.flush()`), so every test sees exactly
what the service published, once. Events come from tests/support/events.py.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import quote

import docx
import httpx
import pytest
from faststream.kafka import TestKafkaBroker
from tthc_apology.app import MIGRATIONS_DIR, create_app
from tthc_apology.auth import COOKIE_NAME
from tthc_apology.config import ApologySettings
from tthc_apology.queries import get_entry
from tthc_common.broker import KafkaMessage
from tthc_common.db import run_migrations, session_scope
from tthc_common.dead_letter import HEADER_REASON
from tthc_common.errors import MAX_PAGE, MAX_PAGE_SIZE
from tthc_common.keys import hash_key
from tthc_contracts import VN_TZ
from tthc_contracts.events import Agency, Duration
from tthc_contracts.timefmt import now_vn
from tthc_core.apology import apology_id_for
from tthc_core.calendar import CalendarBook

from tests.support import events
from tests.support.events import CRIMINAL_RECORD, extended, resolved, scheduled
from tests.support.infra import unavailable

AGENCY = Agency(code="000.00.12.H10", name="Sở Tư pháp tỉnh Lạng Sơn")
OTHER_AGENCY = Agency(code="000.00.15.H10", name="Sở Xây dựng tỉnh Lạng Sơn")
KEY, OTHER_KEY = "so-tu-phap-officer-key", "so-xay-dung-officer-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
OTHER_AUTH = {"Authorization": f"Bearer {OTHER_KEY}"}
APPLICANT = 'Công ty TNHH Hoa & Lá <Việt> "Số 1"'
DURATION = Duration(value=5, unit="working_days")

DUE = datetime(2026, 3, 10, 17, 0, tzinfo=VN_TZ)  # a Tuesday
CALENDAR = CalendarBook().for_agency(AGENCY.code)


def appointment(days_ahead: int = 14, hour: int = 10, minute: int = 0) -> datetime:
    """A new appointment the service accepts: a working day some days from now, inside office hours."""
    day = CALENDAR.next_working_day((now_vn() + timedelta(days=days_ahead)).date())
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=VN_TZ)


def plain_week_monday() -> datetime:
    """A Monday some weeks ahead whose Friday before is a working day and whose weekend is not."""
    monday = appointment(days_ahead=21)
    while not (monday.weekday() == 0 and CALENDAR.is_working_day(monday.date())
               and CALENDAR.is_working_day((monday - timedelta(days=3)).date())
               and not any(CALENDAR.is_working_day((monday - timedelta(days=n)).date()) for n in (1, 2))):
        monday += timedelta(days=1)
    return monday


def vn(dt: datetime) -> str:
    return f"{dt.astimezone(VN_TZ):%d/%m/%Y %H:%M}"


# ---- events as the other services publish them ---------------------------------------------------

# This module's dossiers: a Phiếu lý lịch tư pháp of DURATION received on 03/03/2026 09:00 from an
# organisation whose name and phone must never show in a log or a dead letter; due at DUE unless told.
received = partial(events.received, when="2026-03-03T09:00", value=DURATION.value,
                   unit=DURATION.unit, procedure=CRIMINAL_RECORD, agency=AGENCY, handling_agency=AGENCY,
                   applicant=APPLICANT, applicant_kind="organization", phone="0912345678")
at_risk = partial(events.at_risk, due=DUE)
overdue = partial(events.overdue, due=DUE)
closed = partial(events.closed, due=DUE)


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

    async def deadline_batch(self, *bodies: Any) -> None:
        """Several records delivered to the consumer as ONE batch."""
        encoded = [b if isinstance(b, bytes) else b.model_dump_json().encode() for b in bodies]
        await self.broker.publish_batch(*encoded, topic=self.settings.topics.deadline_events)

    async def flush(self) -> None:
        await self.app.state.relay.drain()

    def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.published if type_ is None or e["type"] == type_]

    async def list(self, headers: dict[str, str] | None = AUTH, **params: Any) -> httpx.Response:
        return await self.client.get("/v1/apologies", params=params, headers=headers)

    async def items(self, **params: Any) -> list[dict[str, Any]]:
        response = await self.list(**params)
        assert response.status_code == 200, response.text
        return response.json()["items"]

    async def issue(self, apology_id: str, headers: dict[str, str] | None = AUTH, **body: Any) -> httpx.Response:
        body.setdefault("reason", "Hồ sơ cần xác minh thêm tại địa phương")
        body.setdefault("new_due_at", appointment().isoformat())
        return await self.client.post(f"/v1/apologies/{apology_id}/issue", json=body, headers=headers)


def errors(response: httpx.Response) -> list[dict[str, Any]]:
    """The one error shape of every 4xx: {"errors": [{"field"?, "reason"}]}."""
    body = response.json()
    assert set(body) == {"errors"} and body["errors"], body
    for problem in body["errors"]:
        assert set(problem) <= {"index", "field", "reason"} and problem["reason"], problem
    return body["errors"]


def reason(response: httpx.Response) -> str:
    return " ".join(p["reason"] for p in errors(response))


def make_settings(tmp_path: Any, **overrides: Any) -> ApologySettings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path}/apology.db",
        "documents_dir": tmp_path / "documents",
        "officer_keys": f"{AGENCY.code}={hash_key(KEY)},{OTHER_AGENCY.code}={hash_key(OTHER_KEY)}",
        "topic_prefix": "component.",
        "log_level": "DEBUG",
        "retry_delay_s": 0,
        "poison_backoff_s": 0,
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
    await apology.deadline_batch(at_risk("D-1"), at_risk("D-1"))  # and twice in one batch
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
    (item,) = await apology.items()
    assert (item["status"], item["cancelled_at"]) == ("cancelled", "2026-03-10T15:00:00+07:00")
    assert await apology.items(status="draft") == []


async def test_late_close_without_an_issued_apology_drafts_a_late_result(apology: Apology) -> None:
    await apology.deadline(closed("D-3", "late", DUE + timedelta(days=2), late_by_hours=3.0))
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
    await apology.deadline(closed("D-4", "late", DUE + timedelta(days=3), late_by_hours=3.0))
    await apology.flush()
    assert len(apology.events("apology.drafted")) == 1  # no overdue draft, no late_result draft


async def test_overdue_without_an_at_risk_moment_drafts_once(apology: Apology) -> None:
    await apology.deadline(overdue("D-5"))
    await apology.deadline(overdue("D-5"))
    await apology.flush()
    assert [d["data"]["kind"] for d in apology.events("apology.drafted")] == ["overdue"]


async def test_a_moved_due_date_cancels_the_old_draft(apology: Apology) -> None:
    await apology.deadline(at_risk("D-6"))
    await apology.deadline(scheduled("D-6", DUE + timedelta(days=7), DUE - timedelta(hours=20)))
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
    await apology.deadline(closed("D-8", "late", DUE + timedelta(days=6), late_by_hours=3.0))
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


async def test_a_poison_message_inside_a_batch_is_set_aside_and_the_rest_of_the_batch_is_processed(
        apology: Apology) -> None:
    overdue_without_agency = overdue("D-92").model_dump(mode="json")
    overdue_without_agency["data"].pop("handling_agency")
    await apology.deadline_batch(at_risk("D-90"), b"[1, 2", json.dumps(overdue_without_agency).encode(),
                                 at_risk("D-91"), at_risk("D-90"))
    await apology.flush()

    assert sorted(d["dossier_id"] for d in apology.events("apology.drafted")) == ["D-90", "D-91"]
    reasons = [dict(m.headers)[HEADER_REASON] for m in apology.dead_letters]
    assert len(reasons) == 2
    assert "not valid JSON" in reasons[0] and "handling_agency" in reasons[1]


async def test_other_dossier_events_are_acknowledged_and_ignored(apology: Apology) -> None:
    await apology.dossier(resolved("D-10", DUE))
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
        assert "Bearer" in reason(response)
    # The inbox cookie opens the pages and their links, never the issuing API (another site's form
    # could send it).
    apology.client.cookies.set(COOKIE_NAME, KEY)
    assert (await apology.list(headers=None)).status_code == 200
    assert (await apology.issue(apology_id, headers=None)).status_code == 401
    apology.client.cookies.clear()
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
    forbidden = await apology.list(agency=OTHER_AGENCY.code)
    assert forbidden.status_code == 403 and errors(forbidden)[0]["field"] == "agency"
    assert [i["apology_id"] for i in (await apology.list(headers=OTHER_AUTH)).json()["items"]] == [theirs]

    for response in (await apology.client.get(f"/v1/apologies/{theirs}.docx", headers=AUTH),
                     await apology.client.get(f"/v1/apologies/{theirs}.pdf", headers=AUTH),
                     await apology.client.get(f"/v1/apologies/{theirs}", headers=AUTH),
                     await apology.client.get("/v1/dossiers/D-22/apologies", headers=AUTH),
                     await apology.issue(theirs)):
        assert response.status_code == 403 and errors(response)
    missing = await apology.issue("no-such-apology")
    assert missing.status_code == 404 and errors(missing)
    await apology.flush()
    assert apology.events("apology.issued") == []


# ---- the list: one page shape --------------------------------------------------------------------

async def test_the_list_is_paged_with_a_total_and_refuses_pages_beyond_the_documented_bounds(
        apology: Apology) -> None:
    dossiers = [f"D-P{n:02d}" for n in range(7)]
    await apology.deadline_batch(*(at_risk(d, due=DUE + timedelta(days=n)) for n, d in enumerate(dossiers)))

    first = (await apology.list(page_size=3)).json()
    assert set(first) == {"items", "page", "page_size", "total"}
    assert (first["page"], first["page_size"], first["total"]) == (1, 3, 7)
    pages = [first["items"]] + [(await apology.list(page_size=3, page=p)).json()["items"] for p in (2, 3, 4)]
    assert [[i["dossier_id"] for i in page] for page in pages] == [dossiers[0:3], dossiers[3:6], dossiers[6:], []]
    assert (await apology.list(status="cancelled")).json()["total"] == 0

    for params in ({"page_size": MAX_PAGE_SIZE + 1}, {"page": 2**62}, {"page": MAX_PAGE + 1}, {"page": 0},
                   {"page_size": 0}, {"page": "x"}, {"status": "nonsense"}, {"year": 10**20}):
        response = await apology.list(**params)
        assert response.status_code == 422, (params, response.text)
        assert errors(response)[0]["field"] == next(iter(params))
    assert (await apology.list(page_size=MAX_PAGE_SIZE, page=MAX_PAGE)).json()["items"] == []


# ---- issuing and numbers -------------------------------------------------------------------------

async def test_issuing_numbers_01_then_02_and_publishes_once(apology: Apology) -> None:
    await apology.deadline(at_risk("D-30"))
    await apology.deadline(at_risk("D-31"))
    await apology.flush()
    first, second = apology_id_for("D-30", "at_risk", DUE), apology_id_for("D-31", "at_risk", DUE)
    new_due = appointment(hour=10, minute=30)

    response = await apology.issue(first, reason="Chờ kết quả xác minh", new_due_at=new_due.isoformat())
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["number"], body["reason"]) == ("issued", "01/PXL", "Chờ kết quả xác minh")
    assert body["new_due_at"] == new_due.isoformat()
    assert (await apology.issue(second)).json()["number"] == "02/PXL"

    again = await apology.issue(first)
    assert again.status_code == 409
    assert "01/PXL" in reason(again)
    await apology.flush()
    issued = apology.events("apology.issued")
    assert sorted((e["data"]["apology_id"], e["data"]["number"]) for e in issued) == sorted(
        [(first, "01/PXL"), (second, "02/PXL")])
    assert issued[0]["data"]["new_due_at"] == new_due.isoformat()


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
    assert collision.status_code == 409 and errors(collision)[0]["field"] == "number"
    assert (await apology.issue(b)).json()["number"] == "01/PXL"
    assert (await apology.issue(c)).json()["number"] == "03/PXL"  # 02 was taken by hand


async def test_issue_body_is_validated_field_by_field(apology: Apology) -> None:
    await apology.deadline(at_risk("D-53"))
    apology_id = apology_id_for("D-53", "at_risk", DUE)
    cases = [
        ({"reason": "   "}, "reason"),
        ({"reason": "nul \x00 byte"}, "reason"),
        ({"reason": "x" * 2001}, "reason"),
        ({"new_due_at": "2026-03-16T17:00:00"}, "new_due_at"),  # naive
        ({"new_due_at": "16/03/2026 17:00"}, "new_due_at"),
        ({"number": "0\n1"}, "number"),
        ({"number": ""}, "number"),
        ({"surprise": 1}, "surprise"),
    ]
    for body, field_name in cases:
        response = await apology.issue(apology_id, **body)
        assert response.status_code == 422, (body, response.text)
        assert [p.get("field") for p in errors(response)] == [field_name], (body, response.text)
    assert (await apology.items())[0]["status"] == "draft"


async def test_a_cancelled_draft_cannot_be_issued(apology: Apology) -> None:
    await apology.deadline(at_risk("D-54"))
    await apology.deadline(closed("D-54", "early", DUE - timedelta(days=1, hours=2)))
    response = await apology.issue(apology_id_for("D-54", "at_risk", DUE))
    assert response.status_code == 409 and "cancelled" in reason(response)


# ---- the new appointment: after now, after the missed date, in office time ----------------------

async def test_a_new_appointment_in_the_past_or_outside_office_time_is_refused_with_the_nearest_valid_one(
        apology: Apology) -> None:
    await apology.deadline(at_risk("D-55"))
    apology_id = apology_id_for("D-55", "at_risk", DUE)
    monday = plain_week_monday()
    friday = monday - timedelta(days=3)
    saturday_noon = (monday - timedelta(days=2)).replace(hour=12)
    cases = [
        # (new_due_at, what the reason must say, the proposal)
        (DUE + timedelta(days=1), "sau thời điểm ban hành", None),  # after the missed date, but in the past
        (monday.replace(hour=12, minute=20), "ngoài giờ làm việc", monday.replace(hour=12, minute=0)),
        (monday.replace(hour=12, minute=40), "ngoài giờ làm việc", monday.replace(hour=13, minute=0)),
        (monday.replace(hour=7, minute=0), "ngoài giờ làm việc", monday.replace(hour=8, minute=0)),
        (saturday_noon, "là ngày nghỉ", friday.replace(hour=17, minute=0)),
        (monday.replace(hour=18, minute=30), "ngoài giờ làm việc", monday.replace(hour=17, minute=0)),
    ]
    for new_due_at, why, proposed in cases:
        response = await apology.issue(apology_id, new_due_at=new_due_at.isoformat())
        assert response.status_code == 422, response.text
        (problem,) = errors(response)
        assert problem["field"] == "new_due_at"
        assert why in problem["reason"]
        found = re.search(r"Thời điểm hợp lệ gần nhất: (\d\d/\d\d/\d{4} \d\d:\d\d)\.", problem["reason"])
        assert found, problem["reason"]
        if proposed is not None:
            assert found.group(1) == vn(proposed)
        else:  # the first office minute after now
            when = datetime.strptime(found.group(1), "%d/%m/%Y %H:%M").replace(tzinfo=VN_TZ)
            assert now_vn() < when <= now_vn() + timedelta(days=5)
    accepted = await apology.issue(apology_id, new_due_at=monday.replace(hour=17, minute=0).isoformat())
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["new_due_at"] == monday.replace(hour=17, minute=0).isoformat()


async def test_the_interval_ends_and_openings_are_accepted(apology: Apology) -> None:
    dossiers = ["D-56", "D-57", "D-58"]
    await apology.deadline_batch(*(at_risk(d) for d in dossiers))
    day = appointment(days_ahead=9)
    for dossier_id, (hour, minute) in zip(dossiers, [(8, 0), (12, 0), (17, 0)]):
        response = await apology.issue(apology_id_for(dossier_id, "at_risk", DUE),
                                       new_due_at=day.replace(hour=hour, minute=minute).isoformat())
        assert response.status_code == 200, response.text


async def test_absurd_appointments_are_a_422_not_a_500(apology: Apology) -> None:
    await apology.deadline(at_risk("D-59"))
    apology_id = apology_id_for("D-59", "at_risk", DUE)
    for value in ("9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59+14:00",
                  "2999-01-02T10:00:00+07:00", 10**12, "1970-01-01T00:00:00Z"):
        response = await apology.issue(apology_id, new_due_at=value)
        assert response.status_code == 422, (value, response.text)
        assert errors(response)[0]["field"] == "new_due_at"
    assert (await apology.items())[0]["status"] == "draft"


# ---- documents -----------------------------------------------------------------------------------

def docx_text(content: bytes) -> str:
    document = docx.Document(io.BytesIO(content))
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        parts += [cell.text for row in table.rows for cell in row.cells]
    return "\n".join(parts)


def attachment_name(response: httpx.Response) -> str:
    found = re.search(r'filename="([^"]+)"', response.headers["content-disposition"])
    assert found, response.headers["content-disposition"]
    return found.group(1)


async def test_docx_waits_for_the_receipt_then_renders_names_exactly(apology: Apology) -> None:
    await apology.deadline(at_risk("D-60"))  # the draft arrives before the dossier's receipt
    apology_id = apology_id_for("D-60", "at_risk", DUE)
    url = f"/v1/apologies/{apology_id}.docx"
    not_yet = await apology.client.get(url, headers=AUTH)
    assert not_yet.status_code == 409 and "dossier.received" in reason(not_yet)
    assert (await apology.items())[0]["letter_ready"] is False

    await apology.dossier(received("D-60"))
    response = await apology.client.get(url, headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert attachment_name(response) == "phieu-xin-loi-D-60-at_risk.docx"  # a draft says what it is
    text = docx_text(response.content)
    assert APPLICANT in text
    assert "D-60" in text and "Cấp Phiếu lý lịch tư pháp" in text
    assert "17 giờ 00 phút, ngày 10/03/2026" in text  # the missed appointment
    assert "17 giờ 00 phút, ngày 13/03/2026" in text  # the proposed one
    (item,) = await apology.items()
    assert item["letter_ready"] and item["applicant_name"] == APPLICANT


async def test_the_issued_letter_carries_the_number_as_stored_reason_and_new_date(apology: Apology) -> None:
    await apology.dossier(received("D-61"))
    await apology.deadline(at_risk("D-61"))
    apology_id = apology_id_for("D-61", "at_risk", DUE)
    draft_text = docx_text((await apology.client.get(f"/v1/apologies/{apology_id}.docx", headers=AUTH)).content)
    assert "01/PXL" not in draft_text

    new_due = appointment(hour=10, minute=30)
    await apology.issue(apology_id, reason="Cần xác minh tại UBND xã", new_due_at=new_due.isoformat())
    deps = apology.app.state.deps
    with session_scope(deps.engine) as session:
        stored = get_entry(session, apology_id)
        assert stored is not None
        # The letter is given the number exactly as stored and published.
        assert deps.letters.fields(stored.row, stored.dossier).number == stored.row.number == "01/PXL"
    response = await apology.client.get(f"/v1/apologies/{apology_id}.docx", headers=AUTH)
    assert attachment_name(response) == "01-PXL-D-61.docx"  # filed under its number
    text = docx_text(response.content)
    assert "01/PXL" in text
    assert "Cần xác minh tại UBND xã" in text
    assert f"{new_due:%H} giờ {new_due:%M} phút, ngày {new_due:%d/%m/%Y}" in text


async def test_the_letter_head_by_default_does_not_repeat_the_province(apology: Apology) -> None:
    await apology.dossier(received("D-64"))
    await apology.deadline(at_risk("D-64"))
    text = docx_text((await apology.client.get(
        f"/v1/apologies/{apology_id_for('D-64', 'at_risk', DUE)}.docx", headers=AUTH)).content)
    assert "UBND TỈNH LẠNG SƠN" in text and "SỞ TƯ PHÁP" in text
    assert "SỞ TƯ PHÁP TỈNH LẠNG SƠN" not in text  # the province is the parent line's, once
    assert "Sở Tư pháp tỉnh Lạng Sơn" in text  # the running text keeps the full name


async def test_an_agency_configured_letter_head_and_signer_are_printed(tmp_path: Any) -> None:
    heads = {AGENCY.code: {"parent_agency": "ỦY BAN NHÂN DÂN TỈNH LẠNG SƠN", "issuing_agency": "SỞ TƯ PHÁP",
                           "signer_position": "KT. GIÁM ĐỐC\nPHÓ GIÁM ĐỐC"}}
    async for service in running(make_settings(tmp_path, letter_heads=heads)):
        await service.dossier(received("D-65"))
        await service.deadline(at_risk("D-65"))
        text = docx_text((await service.client.get(
            f"/v1/apologies/{apology_id_for('D-65', 'at_risk', DUE)}.docx", headers=AUTH)).content)
        assert "ỦY BAN NHÂN DÂN TỈNH LẠNG SƠN" in text and "UBND TỈNH LẠNG SƠN" not in text
        assert "KT. GIÁM ĐỐC" in text and "PHÓ GIÁM ĐỐC" in text


def test_a_letter_head_with_an_unknown_line_is_refused_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APOLOGY_LETTER_HEADS", json.dumps({AGENCY.code: {"signer": "GIÁM ĐỐC"}}))
    with pytest.raises(ValueError, match="letter_heads"):
        ApologySettings()


async def test_the_earliest_receipt_wins_whatever_order_they_arrive_in(apology: Apology) -> None:
    await apology.deadline(at_risk("D-62"))
    await apology.dossier(received("D-62", applicant="Người Sau", when="2026-03-03T10:00"))
    await apology.dossier(received("D-62", applicant="Người Trước", when="2026-03-03T09:00"))
    await apology.dossier(received("D-62", applicant="Người Sau Nữa", when="2026-03-04T09:00"))
    text = docx_text((await apology.client.get(
        f"/v1/apologies/{apology_id_for('D-62', 'at_risk', DUE)}.docx", headers=AUTH)).content)
    assert "Người Trước" in text and "Người Sau" not in text


async def test_pdf_of_a_draft_and_of_an_issued_letter_named_after_its_number(
        apology: Apology, monkeypatch: pytest.MonkeyPatch, soffice: str) -> None:
    await apology.dossier(received("D-63"))
    await apology.deadline(at_risk("D-63"))
    apology_id = apology_id_for("D-63", "at_risk", DUE)
    url = f"/v1/apologies/{apology_id}.pdf"
    draft = await apology.client.get(url, headers=AUTH)
    assert draft.status_code == 200, draft.text
    assert draft.headers["content-type"] == "application/pdf" and draft.content.startswith(b"%PDF")
    assert attachment_name(draft) == "phieu-xin-loi-D-63-at_risk.pdf"
    assert "01/PXL" not in pdf_text(draft.content)

    assert (await apology.issue(apology_id, number="7")).status_code == 200
    issued = await apology.client.get(url, headers=AUTH)
    assert issued.status_code == 200 and attachment_name(issued) == "07-PXL-D-63.pdf"
    text = pdf_text(issued.content)
    assert "07/PXL" in text and APPLICANT in text

    monkeypatch.setattr("tthc_apology.documents.find_soffice", lambda: None)
    await apology.deadline(at_risk("D-64"))
    await apology.dossier(received("D-64"))
    missing = await apology.client.get(f"/v1/apologies/{apology_id_for('D-64', 'at_risk', DUE)}.pdf", headers=AUTH)
    assert missing.status_code == 501
    assert "LibreOffice" in reason(missing)


@pytest.fixture
def soffice() -> str:
    """LibreOffice, which `make test` installs (deploy/local/office.mk): missing, the test fails in CI."""
    from tthc_adapters.pdf import find_soffice

    found = find_soffice()
    if found is None:
        unavailable("no LibreOffice (soffice): run `make office` (Debian's libreoffice-writer-nogui)")
    return found


def pdf_text(content: bytes) -> str:
    import subprocess

    done = subprocess.run(["pdftotext", "-layout", "-", "-"], input=content, capture_output=True, check=True)
    return " ".join(done.stdout.decode("utf-8").split())


# ---- a dossier's letters, on one page --------------------------------------------------------------

async def test_an_officer_of_the_holding_agency_reads_every_letter_of_a_dossier(apology: Apology) -> None:
    later_due = DUE + timedelta(days=7)
    await apology.dossier(received("D-65"))
    await apology.deadline(at_risk("D-65"))
    await apology.deadline(scheduled("D-65", later_due, DUE - timedelta(hours=20)))  # cancels it
    await apology.deadline(overdue("D-65", due=later_due))
    overdue_id = apology_id_for("D-65", "overdue", later_due)
    assert (await apology.issue(overdue_id)).status_code == 200
    await apology.deadline(closed("D-65", "late", later_due + timedelta(days=2), due=later_due,
                                  late_by_hours=3.0))

    body = (await apology.client.get("/v1/dossiers/D-65/apologies", headers=AUTH)).json()
    assert body["holding_agency"] == AGENCY.model_dump()
    assert body["applicant_name"] == APPLICANT
    assert [(i["kind"], i["status"]) for i in body["items"]] == [("at_risk", "cancelled"), ("overdue", "issued")]
    assert body["items"][0]["cancel_reason"] == "the due date moved"
    assert body["items"][1]["number"] == "01/PXL"

    page = await apology.client.get("/inbox/dossiers/D-65", headers=AUTH)
    assert page.status_code == 200
    assert "Cơ quan đang giữ hồ sơ: <strong>Sở Tư pháp tỉnh Lạng Sơn</strong>" in page.text
    assert "Thời hạn giải quyết đã thay đổi" in page.text  # the cancellation's reason, in Vietnamese
    assert "Đã ban hành số 01/PXL" in page.text
    assert "Xin lỗi trước hạn (sắp trễ hạn)" in page.text and "Xin lỗi khi đã trễ hạn" in page.text

    # The dossier moves to another agency: its letters are now read there.
    transfer_due = later_due + timedelta(days=14)
    await apology.deadline(at_risk("D-65", due=transfer_due, agency=OTHER_AGENCY))
    assert (await apology.client.get("/v1/dossiers/D-65/apologies", headers=AUTH)).status_code == 403
    assert (await apology.client.get("/inbox/dossiers/D-65", headers=AUTH)).status_code == 403
    theirs = (await apology.client.get("/v1/dossiers/D-65/apologies", headers=OTHER_AUTH)).json()
    assert [i["agency"] for i in theirs["items"]] == [AGENCY.code, AGENCY.code, OTHER_AGENCY.code]
    assert (await apology.client.get("/v1/dossiers/D-nothing/apologies", headers=AUTH)).status_code == 404


# ---- the officers' inbox page --------------------------------------------------------------------

async def test_inbox_lists_drafts_overdue_first_and_issues_from_the_form(apology: Apology) -> None:
    later_due = datetime(2099, 1, 6, 17, 0, tzinfo=VN_TZ)
    await apology.dossier(received("D-70"))
    await apology.deadline(at_risk("D-70", due=later_due))
    await apology.deadline(overdue("D-71"))  # due in the past: listed first
    await apology.dossier(received("D-71"))
    await apology.deadline(at_risk("D-73"))  # drafted before its due date, which has passed since
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
    assert f"<title>Phiếu xin lỗi – {AGENCY.name}</title>" in html
    assert f"Cơ quan: <strong>{AGENCY.name}</strong>" in html
    assert html.index("D-71") < html.index("D-70")
    assert "D-72" not in html
    assert "Xin lỗi khi đã trễ hạn" in html and "Xin lỗi trước hạn (sắp trễ hạn)" in html
    assert "Đã quá hạn: phiếu soạn trước hạn nhưng chưa ban hành" in html  # D-73, not a contradiction
    assert "10/03/2026 17:00" in html and "06/01/2099 17:00" in html  # dd/mm/yyyy HH:MM
    assert 'type="datetime-local"' not in html
    assert "Hoa &amp; Lá &lt;Việt&gt;" in html  # escaped, not interpreted
    assert f"/v1/apologies/{apology_id_for('D-70', 'at_risk', later_due)}.pdf" in html
    # the download link works with the inbox cookie
    download = await apology.client.get(f"/v1/apologies/{apology_id_for('D-70', 'at_risk', later_due)}.docx")
    assert download.status_code == 200

    target = apology_id_for("D-71", "overdue", DUE)
    new_due = appointment(hour=16)
    form = {"reason": "Chờ ý kiến của Sở Tài chính", "new_due_at": vn(new_due), "number": ""}
    issued = await apology.client.post(f"/inbox/apologies/{target}/issue", data=form,
                                       headers={"origin": "http://apology"})
    assert issued.status_code == 303, issued.text
    done = await apology.client.get(issued.headers["location"])
    assert "Đã ban hành phiếu số 01/PXL" in done.text
    assert f"Phiếu đã ban hành năm {now_vn().year} (1)" in done.text
    assert "01-PXL-D-71.docx" in done.text and "01-PXL-D-71.pdf" in done.text

    other = apology_id_for("D-70", "at_risk", later_due)
    bad = await apology.client.post(f"/inbox/apologies/{other}/issue", data={"reason": "", "new_due_at": "x"})
    assert bad.status_code == 422 and "ngày/tháng/năm giờ:phút" in bad.text
    # Month first, as a US date picker would send it: day 20 of month 3 does not parse as month 20.
    swapped = await apology.client.post(f"/inbox/apologies/{other}/issue",
                                        data={**form, "new_due_at": "03/20/2026 16:00"})
    assert swapped.status_code == 422 and "ngày/tháng/năm giờ:phút" in swapped.text
    no_reason = await apology.client.post(f"/inbox/apologies/{other}/issue", data={**form, "reason": " "})
    assert no_reason.status_code == 422 and "Cần nhập lý do chậm trễ." in no_reason.text
    forged = await apology.client.post(f"/inbox/apologies/{other}/issue", data=form,
                                       headers={"origin": "https://evil.example"})
    assert forged.status_code == 403

    await apology.flush()
    issued_events = apology.events("apology.issued")
    assert [(e["data"]["apology_id"], e["data"]["new_due_at"]) for e in issued_events] == [
        (target, new_due.isoformat())]


async def test_the_page_and_the_api_give_the_same_reason_for_a_refused_appointment(apology: Apology) -> None:
    await apology.deadline_batch(at_risk("D-74"), at_risk("D-75"))
    saturday = (plain_week_monday() - timedelta(days=2)).replace(hour=9)
    api = await apology.issue(apology_id_for("D-74", "at_risk", DUE), new_due_at=saturday.isoformat())
    apology.client.cookies.set(COOKIE_NAME, KEY)
    page = await apology.client.post(f"/inbox/apologies/{apology_id_for('D-75', 'at_risk', DUE)}/issue",
                                     data={"reason": "Chờ xác minh", "new_due_at": vn(saturday)})
    assert api.status_code == page.status_code == 422
    (problem,) = errors(api)
    assert "Thời điểm hợp lệ gần nhất" in problem["reason"]
    from html import escape

    assert escape(problem["reason"], quote=False) in page.text
    assert f'value="{vn(saturday)}"' in page.text  # what the officer typed stays in the field


async def test_the_inbox_lists_the_issued_letters_of_a_year_with_their_numbers(apology: Apology) -> None:
    dossiers = ["D-80", "D-81", "D-82"]
    await apology.deadline_batch(*(at_risk(d) for d in dossiers))
    for d in dossiers:
        assert (await apology.issue(apology_id_for(d, "at_risk", DUE))).status_code == 200
    year = now_vn().year
    page = (await apology.client.get("/inbox", headers=AUTH)).text
    assert f"Phiếu đã ban hành năm {year} (3)" in page and f"Năm {year}: 3 phiếu" in page
    issued_table = page[page.index('id="issued"'):]
    assert [issued_table.index(n) < issued_table.index(m) for n, m in (("03/PXL", "02/PXL"), ("02/PXL", "01/PXL"))] \
        == [True, True]  # the newest first
    api = (await apology.list(status="issued", year=year)).json()
    assert sorted(i["number"] for i in api["items"]) == ["01/PXL", "02/PXL", "03/PXL"] and api["total"] == 3
    assert (await apology.list(status="issued", year=year - 1)).json()["total"] == 0
    empty = (await apology.client.get("/inbox", params={"year": year - 1}, headers=AUTH)).text
    assert f"Chưa có phiếu nào được ban hành trong năm {year - 1}." in empty


# ---- what the service documents ------------------------------------------------------------------

async def test_openapi_documents_bodies_security_and_every_error(apology: Apology) -> None:
    spec = (await apology.client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["officerKey"] == {"type": "http", "scheme": "bearer", "description": schemes["officerKey"][
        "description"]}
    issue_op = spec["paths"]["/v1/apologies/{apology_id}/issue"]["post"]
    assert issue_op["security"] == [{"officerKey": []}]
    assert issue_op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/IssueRequest")
    for path, method, statuses in [
        ("/v1/apologies", "get", {"200", "401", "403", "422"}),
        ("/v1/apologies/{apology_id}", "get", {"200", "401", "403", "404", "422"}),
        ("/v1/apologies/{apology_id}.docx", "get", {"200", "401", "403", "404", "409", "422"}),
        ("/v1/apologies/{apology_id}.pdf", "get", {"200", "401", "403", "404", "409", "422", "501", "503"}),
        ("/v1/apologies/{apology_id}/issue", "post", {"200", "401", "403", "404", "409", "413", "415", "422"}),
        ("/v1/dossiers/{dossier_id}/apologies", "get", {"200", "401", "403", "404", "422"}),
    ]:
        responses = spec["paths"][path][method]["responses"]
        assert set(responses) == statuses, path
        for status in statuses - {"200"}:
            assert responses[status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    page = spec["paths"]["/v1/apologies"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    page_schema = spec["components"]["schemas"][page["$ref"].rsplit("/", 1)[1]]
    assert set(page_schema["properties"]) == {"items", "page", "page_size", "total"}
    assert "/inbox" not in spec["paths"]


async def test_asyncapi_declares_the_payloads_consumed_and_published(tmp_path: Any) -> None:
    settings = make_settings(tmp_path)
    app = create_app(settings)  # not started: the document needs no broker (and has no test subscriber)
    document = app.state.kafka_router.schema.to_specification().to_jsonable()
    topics = settings.topics
    channels = {c["address"]: c for c in document["channels"].values()}
    assert set(channels) == {topics.dossier_events, topics.deadline_events, topics.apology_events}
    operations = {op["channel"]["$ref"].rsplit("/", 1)[1]: op["action"] for op in document["operations"].values()}
    assert sorted(operations.values()) == ["receive", "receive", "send"]
    schemas = document["components"]["schemas"]

    def payload_refs(address: str) -> set[str]:
        (message_ref,) = (m["$ref"] for m in channels[address]["messages"].values())
        message = document["components"]["messages"][message_ref.rsplit("/", 1)[1]]
        payload = schemas[message["payload"]["$ref"].rsplit("/", 1)[1]]
        return {ref["$ref"].rsplit("/", 1)[1] for ref in payload["oneOf"]}

    assert payload_refs(topics.deadline_events) == {"DeadlineScheduled", "DeadlineAtRisk", "DeadlineOverdue",
                                                    "DeadlineClosed"}
    assert {"DossierReceived", "DossierExtended"} <= payload_refs(topics.dossier_events)
    assert payload_refs(topics.apology_events) == {"ApologyDrafted", "ApologyIssued", "ApologyCancelled"}
    assert set(schemas["DraftedData"]["properties"]) >= {"apology_id", "kind", "agency", "proposed_due_at",
                                                          "document_url"}
    assert set(schemas["IssuedData"]["properties"]) >= {"apology_id", "number", "issued_at", "new_due_at"}


async def test_no_input_to_the_issue_endpoint_or_the_list_answers_5xx(apology: Apology) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    await apology.deadline(at_risk("D-99"))
    apology_id = apology_id_for("D-99", "at_risk", DUE)
    texts = st.text(max_size=40) | st.sampled_from(["", " ", "\x00", "9999-12-31T23:59:59-12:00", "07"])
    instants = st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()) | texts | st.integers()
    bodies = st.fixed_dictionaries({}, optional={"reason": texts | st.integers(), "new_due_at": instants,
                                                 "number": texts | st.none()})
    params = st.dictionaries(st.sampled_from(["page", "page_size", "status", "year", "agency"]),
                             texts | st.integers(min_value=-2**70, max_value=2**70).map(str), max_size=3)
    seen: list[int] = []

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(body=bodies, query=params, path=texts)
    def check(body: dict[str, Any], query: dict[str, str], path: str) -> None:
        async def requests() -> list[httpx.Response]:
            return [await apology.client.post(f"/v1/apologies/{apology_id}/issue", json=body, headers=AUTH),
                    await apology.list(**query),
                    await apology.client.get(f"/v1/apologies/{quote(path, safe='')}", headers=AUTH)]

        for response in asyncio.run_coroutine_threadsafe(requests(), loop).result():
            seen.append(response.status_code)
            assert response.status_code < 500, (body, query, path, response.text)

    loop = asyncio.get_running_loop()
    await asyncio.to_thread(check)
    assert seen and any(s == 422 for s in seen)


async def test_no_input_to_the_inbox_answers_5xx(apology: Apology) -> None:
    from hypothesis import HealthCheck, given, settings, strategies as st

    await apology.deadline(at_risk("D-98"))
    await apology.dossier(received("D-98"))
    apology_id = apology_id_for("D-98", "at_risk", DUE)
    texts = st.text(max_size=40) | st.sampled_from(["", "²", "٢٠٢٦", "31/02/2026 10:00", "01/01/0000 10:00",
                                                    "31/12/9999 23:59", "99/99/9999 99:99", apology_id])
    forms = st.fixed_dictionaries({}, optional={"reason": texts, "new_due_at": texts, "number": texts})
    apology.client.cookies.set(COOKIE_NAME, KEY)
    seen: list[int] = []

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(year=texts, issued=texts, path=texts, form=forms)
    def check(year: str, issued: str, path: str, form: dict[str, str]) -> None:
        async def requests() -> list[httpx.Response]:
            return [await apology.client.get("/inbox", params={"year": year, "issued": issued}),
                    await apology.client.get(f"/inbox/dossiers/{quote(path, safe='')}"),
                    await apology.client.post(f"/inbox/apologies/{quote(path, safe='') or 'x'}/issue", data=form,
                                              headers={"origin": "http://apology"}),
                    await apology.client.post(f"/inbox/apologies/{apology_id}/issue", data=form,
                                              headers={"origin": "http://apology"})]

        for response in asyncio.run_coroutine_threadsafe(requests(), loop).result():
            seen.append(response.status_code)
            assert response.status_code < 500, (year, issued, path, form, response.text[-500:])

    loop = asyncio.get_running_loop()
    await asyncio.to_thread(check)
    assert 200 in seen and 422 in seen and 404 in seen


# ---- deployment configuration: calendar and templates --------------------------------------------

async def test_proposed_appointment_is_counted_on_the_configured_calendar(tmp_path: Any) -> None:
    calendar = tmp_path / "calendar.yaml"
    calendar.write_text("extra_days_off: [2026-03-12]  # a typhoon closure\n", encoding="utf-8")
    async for apology in running(make_settings(tmp_path, calendar_file=calendar)):
        await apology.deadline(at_risk("D-83"))
        await apology.flush()
        (drafted,) = apology.events("apology.drafted")
        # Tuesday 10 + 3 working days, Thursday 12 off: Wednesday 11, Friday 13, Monday 16
        assert drafted["data"]["proposed_due_at"] == "2026-03-16T17:00:00+07:00"


async def test_the_new_appointment_is_checked_on_the_agency_office_hours(tmp_path: Any) -> None:
    calendar = tmp_path / "calendar.yaml"
    calendar.write_text(f'agencies:\n  "{AGENCY.code}": {{office_hours: ["07:30-11:30", "13:30-17:30"]}}\n',
                        encoding="utf-8")
    async for apology in running(make_settings(tmp_path, calendar_file=calendar)):
        await apology.deadline_batch(at_risk("D-84"), at_risk("D-85"))
        day = appointment(days_ahead=12)
        refused = await apology.issue(apology_id_for("D-84", "at_risk", DUE),
                                      new_due_at=day.replace(hour=17, minute=45).isoformat())
        assert refused.status_code == 422
        assert "07:30–11:30, 13:30–17:30" in reason(refused)
        assert f"Thời điểm hợp lệ gần nhất: {vn(day.replace(hour=17, minute=30))}." in reason(refused)
        accepted = await apology.issue(apology_id_for("D-85", "at_risk", DUE),
                                       new_due_at=day.replace(hour=17, minute=30).isoformat())
        assert accepted.status_code == 200, accepted.text


async def test_an_agency_template_replaces_the_bundled_letter(tmp_path: Any) -> None:
    from importlib import resources

    templates = tmp_path / "templates"
    templates.mkdir()
    bundled = resources.files("tthc_core.letter").joinpath("templates/mau04.docx").read_bytes()
    document = docx.Document(io.BytesIO(bundled))
    document.add_paragraph("Mẫu riêng của Sở Tư pháp")
    document.save(templates / f"{AGENCY.code}.docx")

    async for apology in running(make_settings(tmp_path, templates_dir=templates)):
        await apology.dossier(received("D-86"))
        await apology.deadline(at_risk("D-86"))
        await apology.deadline(at_risk("D-87", agency=OTHER_AGENCY))
        await apology.dossier(received("D-87", agency=OTHER_AGENCY, handling_agency=OTHER_AGENCY))
        own = await apology.client.get(f"/v1/apologies/{apology_id_for('D-86', 'at_risk', DUE)}.docx", headers=AUTH)
        other = await apology.client.get(f"/v1/apologies/{apology_id_for('D-87', 'at_risk', DUE)}.docx",
                                         headers=OTHER_AUTH)
        assert "Mẫu riêng của Sở Tư pháp" in docx_text(own.content) and APPLICANT in docx_text(own.content)
        assert "Mẫu riêng" not in docx_text(other.content) and APPLICANT in docx_text(other.content)

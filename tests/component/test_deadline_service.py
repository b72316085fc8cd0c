"""The deadline service as one component: FastStream's in-memory Kafka in and out, SQLite, HTTP over the
ASGI transport. Time moves only by event time and by `deadline.tick` messages (the wall-clock ticker
is off here), so every expectation is an exact instant.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from faststream.kafka import TestKafkaBroker

from tests.support import events
from tests.support.events import AGENCY, CRIMINAL_RECORD, changed, event, resolved
from tests.support.examples import examples
from tests.support.schema import migration_differences
from tthc_common.broker import KafkaMessage
from tthc_contracts.derived import Tick
from tthc_core.calendar_config import CalendarFileError
from tthc_deadline.app import create_app
from tthc_deadline.config import DeadlineSettings

EXAMPLE_05 = next(e for e in examples() if e.name == "05-extension-transfer-766")
APPLICANT_NAME = "Nguyễn Thị Riêng Tư"


# ---- events ---------------------------------------------------------------------------------------

# This module's dossiers: a Phiếu lý lịch tư pháp at the Sở Tư pháp, whose applicant's name and phone must
# never show in a log, a dead letter or a metric.
received = partial(events.received, procedure=CRIMINAL_RECORD, handling_agency=AGENCY,
                   applicant=APPLICANT_NAME, phone="0912345678")


# ---- the service under test -----------------------------------------------------------------------

@dataclass
class Deadline:
    app: Any
    settings: DeadlineSettings
    broker: Any
    http: httpx.AsyncClient
    published: dict[str, list[KafkaMessage]] = field(default_factory=dict)

    @property
    def topics(self) -> Any:
        return self.settings.topics

    async def send(self, *events: dict[str, Any] | bytes) -> None:
        for ev in events:
            body = ev if isinstance(ev, bytes) else json.dumps(ev, ensure_ascii=False).encode()
            key = None if isinstance(ev, bytes) else ev["dossier_id"].encode()
            await self.broker.publish(body, self.topics.dossier_events, key=key)

    async def tick(self, at: str) -> None:
        await self.broker.publish(Tick(at=datetime.fromisoformat(at)).model_dump_json().encode(),
                                  self.topics.deadline_ticks)

    async def settled(self) -> None:
        """Wait until time has been let pass (the sweeper is idle), everything queued is published and the
        state gauges are refreshed."""
        engine = self.app.state.engine
        async with asyncio.timeout(10):
            while True:
                with engine.connect() as conn:
                    pending = conn.execute(sa.text(
                        "SELECT (SELECT count(*) FROM outbox) + (SELECT count(*) FROM deadline_receipt_conflicts "
                        "WHERE published_at IS NULL)")).scalar()
                gauges = self.app.state.deps.state_gauges
                if pending == 0 and self.app.state.deps.sweeper.idle and gauges.idle:
                    return
                await asyncio.sleep(0.02)

    def derived(self, type_: str | None = None, dossier_id: str | None = None) -> list[dict[str, Any]]:
        out = [json.loads(m.body) for m in self.published.get(self.topics.deadline_events, [])]
        return [e for e in out if (type_ is None or e["type"] == type_)
                and (dossier_id is None or e["dossier_id"] == dossier_id)]

    def dead_letters(self) -> list[KafkaMessage]:
        return self.published.get(self.topics.dead_letter, [])

    async def dossier(self, dossier_id: str) -> httpx.Response:
        return await self.http.get(f"/v1/dossiers/{dossier_id}")

    async def metric(self, name: str) -> float | None:
        text = (await self.http.get("/metrics")).text
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return None

    async def assert_state_gauges_count_the_rows(self) -> None:
        """`tthc_deadline_dossiers{state}` (kept by the writers, not counted) equals a count of the rows."""
        with self.app.state.engine.connect() as conn:
            rows = dict(conn.execute(sa.text("SELECT state, count(*) FROM deadline_dossiers GROUP BY state")).all())
        assert rows, "no dossier stored"
        for state in ("open", "at_risk", "overdue", "awaiting_supplement", "paused", "closed"):
            assert await self.metric(f'tthc_deadline_dossiers{{state="{state}"}}') == rows.get(state, 0), state


def make_settings(tmp_path: Path, **overrides: Any) -> DeadlineSettings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path}/deadline.db",
        "topic_prefix": "component.",
        "publish_ticks": False,
        "outbox_poll_interval_s": 0.05,
        "state_gauges_min_interval_s": 0,
        "retry_delay_s": 0.0,
        "log_level": "DEBUG",
    }
    values.update(overrides)
    return DeadlineSettings(**values)


@asynccontextmanager
async def running_deadline(settings: DeadlineSettings) -> AsyncIterator[Deadline]:
    app = create_app(settings)
    router = app.state.kafka_router
    published: dict[str, list[KafkaMessage]] = {}

    for topic in (settings.topics.deadline_events, settings.topics.dead_letter):
        @router.subscriber(topic, group_id="test-capture")
        async def capture(msg: KafkaMessage, _topic: str = topic) -> None:
            published.setdefault(msg.raw_message.topic, []).append(msg)

    async with TestKafkaBroker(router.broker, connect_only=False) as broker:
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://deadline") as http:
                yield Deadline(app, settings, broker, http, published)


@pytest.fixture
async def deadline(tmp_path: Path) -> AsyncIterator[Deadline]:
    async with running_deadline(make_settings(tmp_path)) as running:
        yield running


# ---- a receipt schedules the deadline -------------------------------------------------------------

async def test_receipt_publishes_scheduled_deadline_and_http_shows_it(deadline: Deadline) -> None:
    # Fri 18:30 + 3 working days -> clock starts Mon 08:00, due Wed 17:00 (deadlines.md §3)
    await deadline.send(received("D-0001", "2026-03-06T18:30:00+07:00"))
    await deadline.settled()

    [scheduled] = deadline.derived("deadline.scheduled")
    assert scheduled["dossier_id"] == "D-0001"
    assert scheduled["data"]["due_at"] == "2026-03-11T17:00:00+07:00"
    assert scheduled["data"]["at_risk_at"] == "2026-03-10T17:00:00+07:00"
    assert scheduled["data"]["basis"] == "received"
    [message] = deadline.published[deadline.topics.deadline_events]
    assert message.raw_message.key == b"D-0001"

    response = await deadline.dossier("D-0001")
    assert response.status_code == 200
    row = response.json()
    assert row["start_at"] == "2026-03-09T08:00:00+07:00"
    assert row["due_at"] == "2026-03-11T17:00:00+07:00"
    assert row["state"] == "open"
    assert row["handling_agency"] == "000.00.12.H10"


async def test_ticks_emit_at_risk_then_overdue_once_and_the_list_follows(deadline: Deadline) -> None:
    await deadline.send(received("D-0002", "2026-03-09T09:00:00+07:00"))  # due Thu 12/03 09:00
    await deadline.tick("2026-03-11T09:00:00+07:00")  # at-risk instant itself
    await deadline.settled()
    assert [e["occurred_at"] for e in deadline.derived("deadline.at_risk")] == ["2026-03-11T09:00:00+07:00"]
    assert (await deadline.dossier("D-0002")).json()["state"] == "at_risk"
    listed = (await deadline.http.get("/v1/dossiers", params={"state": "at_risk"})).json()
    assert [r["dossier_id"] for r in listed["items"]] == ["D-0002"]

    await deadline.tick("2026-03-12T09:00:00+07:00")  # the due instant: not yet overdue
    await deadline.tick("2026-03-12T09:00:01+07:00")
    await deadline.tick("2026-03-13T09:00:00+07:00")
    await deadline.tick("2026-03-12T10:00:00+07:00")  # a late tick never moves time back
    await deadline.settled()
    assert len(deadline.derived("deadline.at_risk")) == 1
    [overdue] = deadline.derived("deadline.overdue")
    assert overdue["data"]["due_at"] == "2026-03-12T09:00:00+07:00"
    assert (await deadline.http.get("/v1/dossiers", params={"state": "at_risk"})).json()["items"] == []
    listed = (await deadline.http.get("/v1/dossiers", params={"state": "overdue"})).json()
    assert [r["dossier_id"] for r in listed["items"]] == ["D-0002"]
    assert await deadline.metric("tthc_deadline_watermark_seconds") == datetime.fromisoformat(
        "2026-03-13T09:00:00+07:00").timestamp()
    assert await deadline.metric("tthc_deadline_open_dossiers") == 1
    await deadline.assert_state_gauges_count_the_rows()


async def test_events_move_time_for_other_dossiers_too(deadline: Deadline) -> None:
    await deadline.send(received("D-A", "2026-03-09T09:00:00+07:00", value=4, unit="working_hours"))
    # D-B's receipt a day later moves the watermark past D-A's due instant (Mon 13:00)
    await deadline.send(received("D-B", "2026-03-10T09:00:00+07:00"))
    await deadline.settled()
    assert [e["dossier_id"] for e in deadline.derived("deadline.overdue")] == ["D-A"]
    assert (await deadline.dossier("D-A")).json()["state"] == "overdue"


# ---- the spec's example 05, shuffled and duplicated -----------------------------------------------

@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_example_05_shuffled_with_duplicates_gives_the_expected_rows(tmp_path: Path, seed: int) -> None:
    lines = EXAMPLE_05.event_lines()
    expected = EXAMPLE_05.expected_dossiers()
    rng = random.Random(seed)
    stream = lines + rng.sample(lines, 5)  # some events twice more
    rng.shuffle(stream)

    async with running_deadline(make_settings(tmp_path)) as deadline:
        for line in stream:
            await deadline.send(json.loads(line))
        await deadline.tick("2026-02-01T00:00:00+07:00")  # the example's --until
        await deadline.settled()

        listed = (await deadline.http.get("/v1/dossiers", params={"page_size": 100})).json()
        assert listed["items"] == expected
        assert listed["total"] == 3
        for row in expected:
            assert (await deadline.dossier(row["dossier_id"])).json() == row
        # derived events are never published twice, whatever the order of arrival
        ids = [e["event_id"] for e in deadline.derived()]
        assert len(ids) == len(set(ids))
        # A close re-judged when a late event arrives (a supplementation round that arrived after the close)
        # is published again, corrected: the last deadline.closed of each dossier is its final outcome.
        last_close = {e["dossier_id"]: e["data"] for e in deadline.derived("deadline.closed")}
        assert {d: (c["outcome"], c["due_at"]) for d, c in last_close.items()} == {
            r["dossier_id"]: (r["outcome"], r["due_at"]) for r in expected if r["state"] == "closed"}
        assert deadline.dead_letters() == []
        await deadline.assert_state_gauges_count_the_rows()


# ---- at-least-once delivery, poison messages, held events, conflicts ------------------------------

async def test_a_redelivered_event_is_processed_once(deadline: Deadline) -> None:
    ev = received("D-0003", "2026-03-09T09:00:00+07:00")
    await deadline.send(ev, ev)
    await deadline.send(ev)
    await deadline.settled()

    assert len(deadline.derived("deadline.scheduled")) == 1
    with deadline.app.state.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM deadline_event_log")).scalar() == 1
    metrics = (await deadline.http.get("/metrics")).text
    assert 'tthc_deadline_consumed_events_total{type="dossier.received"} 1.0' in metrics
    assert "tthc_deadline_duplicate_events_total 2.0" in metrics


async def test_poison_messages_go_to_dead_letter_and_the_next_message_is_processed(deadline: Deadline) -> None:
    naive = changed(received("D-0004"), "occurred_at", "2026-03-09T09:00:00")  # no UTC offset: refused
    await deadline.send(b"{not json", naive, received("D-0005", "2026-03-09T09:00:00+07:00"))
    await deadline.settled()

    first, second = deadline.dead_letters()
    assert first.body == b"{not json"
    assert first.headers["x-dead-letter-error"] == "JSONDecodeError"
    assert second.headers["x-dead-letter-reason"].startswith("occurred_at:")
    assert second.headers["x-dead-letter-topic"] == deadline.topics.dossier_events
    assert APPLICANT_NAME not in second.headers["x-dead-letter-reason"]
    assert [e["dossier_id"] for e in deadline.derived("deadline.scheduled")] == ["D-0005"]
    assert (await deadline.dossier("D-0004")).status_code == 404


async def test_an_event_before_its_receipt_is_held_then_applied(deadline: Deadline) -> None:
    await deadline.send(event("dossier.supplement_requested", "2026-03-10T10:00:00+07:00",
                              {"reason": "Thiếu tờ khai"}, "D-0006"))
    await deadline.settled()
    response = await deadline.dossier("D-0006")
    assert response.status_code == 404
    [problem] = response.json()["errors"]
    assert problem["field"] == "dossier_id"
    assert problem["reason"].startswith("no dossier.received yet: its 1 other event(s) are held")
    assert deadline.derived() == []

    await deadline.send(received("D-0006", "2026-03-09T09:00:00+07:00"))
    await deadline.settled()
    row = (await deadline.dossier("D-0006")).json()
    assert row["state"] == "awaiting_supplement"
    assert row["supplement_requests"] == 1
    assert [e["type"] for e in deadline.derived(dossier_id="D-0006")] == ["deadline.scheduled"]
    listed = (await deadline.http.get("/v1/dossiers", params={"state": "awaiting_supplement"})).json()
    assert [r["dossier_id"] for r in listed["items"]] == ["D-0006"]


async def test_a_second_receipt_is_a_conflict_dead_lettered_and_ignored(deadline: Deadline) -> None:
    first = received("D-0007", "2026-03-09T09:00:00+07:00")
    second = received("D-0007", "2026-03-10T09:00:00+07:00", value=10)
    await deadline.send(first, second)
    await deadline.settled()

    row = (await deadline.dossier("D-0007")).json()
    assert row["received_at"] == "2026-03-09T09:00:00+07:00"
    assert row["due_at"] == "2026-03-12T09:00:00+07:00"
    [conflict] = deadline.dead_letters()
    assert json.loads(conflict.body)["event_id"] == second["event_id"]
    assert conflict.raw_message.key == b"D-0007"
    assert conflict.headers["x-dead-letter-error"] == "ReceiptConflict"
    assert first["event_id"] in conflict.headers["x-dead-letter-reason"]
    assert conflict.headers["x-dead-letter-topic"] == deadline.topics.dossier_events
    with deadline.app.state.engine.connect() as conn:
        ignored = conn.execute(sa.text("SELECT event_id, ignored FROM deadline_event_log ORDER BY id")).all()
    assert ignored == [(first["event_id"], False), (second["event_id"], True)]


async def test_an_earlier_receipt_arriving_late_wins_and_the_other_is_the_conflict(deadline: Deadline) -> None:
    later = received("D-0008", "2026-03-10T09:00:00+07:00")
    earlier = received("D-0008", "2026-03-09T09:00:00+07:00")
    await deadline.send(later, earlier)
    await deadline.settled()

    assert (await deadline.dossier("D-0008")).json()["received_at"] == "2026-03-09T09:00:00+07:00"
    [conflict] = deadline.dead_letters()
    assert json.loads(conflict.body)["event_id"] == later["event_id"]


# ---- restarts ---------------------------------------------------------------------------------------

async def test_derived_events_are_exactly_once_across_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with running_deadline(settings) as deadline:
        await deadline.send(received("D-0009", "2026-03-09T09:00:00+07:00"))
        await deadline.tick("2026-03-11T12:00:00+07:00")
        await deadline.settled()
        before = deadline.derived()
        row_before = (await deadline.dossier("D-0009")).json()
    assert [e["type"] for e in before] == ["deadline.scheduled", "deadline.at_risk"]

    async with running_deadline(settings) as deadline:
        # the same tick and the same event again (a consumer that restarted before committing offsets)
        await deadline.send(received("D-0009", "2026-03-09T09:00:00+07:00", event_id=before[0]["event_id"]))
        await deadline.tick("2026-03-11T12:00:00+07:00")
        await deadline.settled()
        assert deadline.derived() == []
        assert (await deadline.dossier("D-0009")).json() == row_before
        await deadline.tick("2026-03-12T09:30:00+07:00")
        await deadline.settled()
        assert [e["type"] for e in deadline.derived()] == ["deadline.overdue"]


async def test_a_conflict_record_left_unpublished_is_dead_lettered_at_start_up(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    first = received("D-0010", "2026-03-09T09:00:00+07:00")
    second = received("D-0010", "2026-03-10T09:00:00+07:00")
    async with running_deadline(settings) as deadline:
        await deadline.send(first, second)
        await deadline.settled()
        [published] = deadline.dead_letters()
        # as a version that published the records itself leaves one it had not published yet
        with deadline.app.state.engine.begin() as conn:
            conn.execute(sa.text("UPDATE deadline_receipt_conflicts SET published_at = NULL"))

    async with running_deadline(settings) as deadline:
        await deadline.settled()
        [conflict] = deadline.dead_letters()
        assert conflict.body == published.body
        assert conflict.raw_message.key == b"D-0010"
        assert {k: v for k, v in conflict.headers.items() if k.startswith("x-dead-letter-")} == {
            k: v for k, v in published.headers.items() if k.startswith("x-dead-letter-")}
        assert conflict.headers["x-dead-letter-error"] == "ReceiptConflict"
        assert first["event_id"] in conflict.headers["x-dead-letter-reason"]


async def test_a_mistyped_future_date_does_not_move_time_for_everyone(deadline: Deadline) -> None:
    await deadline.send(received("D-ONTIME", "2026-03-09T09:00:00+07:00"))  # due Thu 12/03 09:00
    await deadline.tick("2026-03-10T10:00:00+07:00")
    await deadline.send(received("D-TYPO", "2062-03-10T10:00:00+07:00"))  # 2062 for 2026
    await deadline.settled()

    assert (await deadline.dossier("D-ONTIME")).json()["state"] == "open"
    assert deadline.derived("deadline.overdue") == []
    assert (await deadline.dossier("D-TYPO")).json()["received_at"] == "2062-03-10T10:00:00+07:00"
    assert await deadline.metric("tthc_deadline_events_ahead_of_ticks_total") == 1
    assert await deadline.metric("tthc_deadline_watermark_seconds") == datetime.fromisoformat(
        "2026-03-10T11:00:00+07:00").timestamp()  # the tick + DEADLINE_MAX_EVENT_LEAD_S (1 h)


async def test_ticker_publishes_wall_time_that_the_service_consumes(deadline: Deadline) -> None:
    ticker = deadline.app.state.deps.ticker
    ticker.clock = lambda: datetime.fromisoformat("2026-03-20T10:00:00+07:00")
    await deadline.send(received("D-0010", "2026-03-09T09:00:00+07:00"))
    await ticker.tick_once()
    await deadline.settled()
    assert [e["type"] for e in deadline.derived()] == ["deadline.scheduled", "deadline.at_risk", "deadline.overdue"]
    assert await deadline.metric("tthc_deadline_ticks_published_total") == 1


# ---- HTTP list, metrics, start-up -------------------------------------------------------------------

async def test_list_filters_by_agency_and_state_with_pages(deadline: Deadline) -> None:
    other = {"code": "000.30.21.H10", "name": "UBND xã Hữu Lũng"}
    for i in range(5):
        await deadline.send(received(f"D-1{i}", "2026-03-09T09:00:00+07:00"))
    await deadline.send(received("D-20", "2026-03-09T09:00:00+07:00", agency=other, handling_agency=other))
    await deadline.send(resolved("D-11", "2026-03-09T15:00:00+07:00"))
    await deadline.settled()

    page1 = (await deadline.http.get("/v1/dossiers", params={"agency": AGENCY["code"], "page_size": 2})).json()
    page3 = (await deadline.http.get("/v1/dossiers",
                                     params={"agency": AGENCY["code"], "page_size": 2, "page": 3})).json()
    assert page1["total"] == 5
    assert [r["dossier_id"] for r in page1["items"]] == ["D-10", "D-11"]
    assert [r["dossier_id"] for r in page3["items"]] == ["D-14"]
    closed = (await deadline.http.get("/v1/dossiers", params={"state": "closed"})).json()
    assert [(r["dossier_id"], r["outcome"]) for r in closed["items"]] == [("D-11", "early")]
    by_other = (await deadline.http.get("/v1/dossiers", params={"agency": other["code"]})).json()
    assert [r["dossier_id"] for r in by_other["items"]] == ["D-20"]
    assert (await deadline.http.get("/v1/dossiers", params={"state": "late"})).status_code == 422


async def test_metrics_carry_no_dossier_or_applicant_data(deadline: Deadline) -> None:
    await deadline.send(received("D-SECRET-1", "2026-03-09T09:00:00+07:00"))
    await deadline.settled()
    text = (await deadline.http.get("/metrics")).text
    assert 'tthc_deadline_derived_events_total{type="deadline.scheduled"} 1.0' in text
    assert "D-SECRET-1" not in text and APPLICANT_NAME not in text
    assert (await deadline.http.get("/healthz")).json() == {"status": "ok"}


def test_an_invalid_calendar_file_stops_start_up_with_line_and_reason(tmp_path: Path) -> None:
    calendar = tmp_path / "calendar.yaml"
    calendar.write_text('office_hours: ["08:00-12:00"]\nextra_days_off: [2026-13-40]\n', encoding="utf-8")
    with pytest.raises(CalendarFileError) as refused:
        create_app(make_settings(tmp_path, calendar_file=calendar))
    assert refused.value.line == 2

    result = subprocess.run([sys.executable, "-m", "tthc_deadline"], capture_output=True, text=True, timeout=60,
                            env={"DEADLINE_CALENDAR_FILE": str(calendar),
                                 "DEADLINE_DATABASE_URL": f"sqlite:///{tmp_path}/x.db", "PATH": ""})
    assert result.returncode == 2
    assert "line 2" in result.stderr and "not a date" in result.stderr


async def test_the_calendar_file_governs_due_dates(tmp_path: Path) -> None:
    calendar = tmp_path / "calendar.yaml"
    calendar.write_text("extra_days_off: [2026-03-10]\n", encoding="utf-8")  # e.g. a typhoon closure
    async with running_deadline(make_settings(tmp_path, calendar_file=calendar)) as deadline:
        await deadline.send(received("D-0011", "2026-03-09T09:00:00+07:00"))
        await deadline.settled()
        assert (await deadline.dossier("D-0011")).json()["due_at"] == "2026-03-13T09:00:00+07:00"


async def test_a_changed_calendar_reschedules_open_dossiers_at_start_up(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with running_deadline(settings) as deadline:
        await deadline.send(received("D-MOVED", "2026-03-09T09:00:00+07:00"),  # due Thu 12/03 09:00
                            received("D-CLOSED", "2026-03-09T10:00:00+07:00"),
                            resolved("D-CLOSED", "2026-03-09T11:00:00+07:00"),
                            received("D-LATER", "2026-03-11T09:00:00+07:00"))  # after the closure: unmoved
        await deadline.settled()
        closed_before = (await deadline.dossier("D-CLOSED")).json()

    calendar = tmp_path / "calendar.yaml"
    calendar.write_text("extra_days_off: [2026-03-10]  # typhoon closure announced afterwards\n", encoding="utf-8")
    changed = settings.model_copy(update={"calendar_file": calendar})
    async with running_deadline(changed) as deadline:
        await deadline.settled()
        [rescheduled] = deadline.derived()
        assert rescheduled["type"] == "deadline.scheduled"
        assert rescheduled["dossier_id"] == "D-MOVED"
        assert rescheduled["data"]["basis"] == "calendar_change"
        assert rescheduled["data"]["due_at"] == "2026-03-13T09:00:00+07:00"
        assert rescheduled["data"]["at_risk_at"] == "2026-03-12T09:00:00+07:00"
        assert rescheduled["occurred_at"] == "2026-03-11T09:00:00+07:00"  # the watermark
        assert (await deadline.dossier("D-MOVED")).json()["due_at"] == "2026-03-13T09:00:00+07:00"
        assert (await deadline.dossier("D-CLOSED")).json() == closed_before
        assert await deadline.metric("tthc_deadline_calendar_rebased_dossiers_total") == 2
        # time now runs on the new calendar: Thu 12/03 09:00 is the at-risk instant, no longer the due one
        await deadline.tick("2026-03-12T09:30:00+07:00")
        await deadline.settled()
        assert [e["type"] for e in deadline.derived(dossier_id="D-MOVED")] == [
            "deadline.scheduled", "deadline.at_risk"]
        await deadline.assert_state_gauges_count_the_rows()

    async with running_deadline(changed) as deadline:  # same calendar again: nothing to redo
        await deadline.settled()
        assert deadline.derived() == []


def test_migrations_create_exactly_the_tables_the_models_describe(tmp_path: Path) -> None:
    from tthc_deadline.app import MIGRATIONS_DIR

    assert migration_differences(tmp_path, MIGRATIONS_DIR, {
        "processed_events", "outbox", "deadline_event_log", "deadline_dossiers", "deadline_watermark",
        "deadline_receipt_conflicts", "deadline_state_counts"}) == []

"""Intake as one component: HTTP in (httpx ASGI transport), an in-memory publisher out, SQLite.

Every refusal is checked twice: the response names the event and the field in the one error shape, and
nothing was published (nor recorded as accepted: the same valid event posted afterwards is still new).
"""

from __future__ import annotations

import copy
import json
import unicodedata
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from faststream.kafka import TestKafkaBroker
from tthc_common.keys import hash_key
from tthc_common.publish import OutgoingMessage
from tthc_contracts.timefmt import format_ts, now_vn
from tthc_intake.__main__ import main as intake_main
from tthc_intake.app import create_app
from tthc_intake.config import IntakeSettings
from tthc_intake.publisher import BrokerUnavailable, PublishRefused

from tests.support import events
from tests.support.events import changed

SOURCE = events.SOURCE  # the factory's events are of this source, bound to KEY
KEY = "lang-son-secret-key"
OTHER_SOURCE = "motcua-cao-bang"
OTHER_KEY = "cao-bang-secret-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
APPLICANT_NAME = "Nguyễn Văn Riêng"


# ---- events -----------------------------------------------------------------------------------
# From tests/support/events.py; this module's dossier is the README's example, received Fri 13/02/2026.

DOSSIER_ID = "000.00.12.H10-260213-0001"


def received(dossier_id: str = DOSSIER_ID) -> dict[str, Any]:
    return events.received(dossier_id, "2026-02-13T10:00", 5, applicant=APPLICANT_NAME, phone="0912345678")


def resolved(dossier_id: str = DOSSIER_ID) -> dict[str, Any]:
    return events.resolved(dossier_id, "2026-02-20T15:00")


def padded(event: dict[str, Any], total_bytes: int) -> dict[str, Any]:
    """`event` made about `total_bytes` of JSON by unknown data fields of 1000 characters each (every one
    within the string bound: only the size is wrong)."""
    event = copy.deepcopy(event)
    for n in range(total_bytes // 1010 + 1):
        event["data"][f"note_{n}"] = "x" * 1000
    return event


def nested(levels: int) -> Any:
    """An unknown data value nested `levels` deep (arrays)."""
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


# ---- the component ------------------------------------------------------------------------------


@dataclass
class InMemoryPublisher:
    """Kafka as these tests see it: each request's messages as one published batch; told to fail, it fails."""

    batches: list[list[OutgoingMessage]] = field(default_factory=list)
    fail_with: Exception | None = None
    reachable: bool = True

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.batches.append(list(messages))

    @property
    def messages(self) -> list[OutgoingMessage]:
        return [m for batch in self.batches for m in batch]

    def values(self) -> list[dict[str, Any]]:
        return [json.loads(m.value) for m in self.messages]


@dataclass
class Intake:
    client: httpx.AsyncClient
    settings: IntakeSettings
    app: Any
    publisher: InMemoryPublisher

    async def post(self, body: Any, headers: dict[str, str] | None = AUTH) -> httpx.Response:
        return await self.post_bytes(json.dumps(body, ensure_ascii=False).encode(), headers)

    async def post_bytes(self, body: bytes, headers: dict[str, str] | None = AUTH,
                         content_type: str | None = "application/json") -> httpx.Response:
        sent = {**({"content-type": content_type} if content_type else {}), **(headers or {})}
        return await self.client.post("/v1/events", content=body, headers=sent)

    async def still_new(self, event: dict[str, Any]) -> bool:
        """All or nothing: an event of a refused request was not recorded, so it is accepted now."""
        return (await self.post(event)).json() == {"accepted": 1, "duplicates": 0}


def make_settings(tmp_path: Any, **overrides: Any) -> IntakeSettings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path}/intake.db",
        "source_keys": f"{SOURCE}={hash_key(KEY)},{OTHER_SOURCE}={hash_key(OTHER_KEY)}",
        "topic_prefix": "component.",
        "log_level": "DEBUG",
    }
    values.update(overrides)
    return IntakeSettings(**values)


async def running_intake(settings: IntakeSettings) -> AsyncIterator[Intake]:
    publisher = InMemoryPublisher()
    app = create_app(settings, publisher=publisher)
    async with TestKafkaBroker(app.state.kafka_router.broker), app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake") as client:
            yield Intake(client=client, settings=settings, app=app, publisher=publisher)


@pytest.fixture
async def intake(tmp_path: Any) -> AsyncIterator[Intake]:
    async for running in running_intake(make_settings(tmp_path)):
        yield running


def assert_error_shape(response: httpx.Response) -> list[dict[str, Any]]:
    body = response.json()
    assert set(body) == {"errors"}, body
    for error in body["errors"]:
        assert set(error) <= {"index", "field", "reason"} and error["reason"], error
        assert not error["reason"].startswith(("Value error", "Assertion failed")), error
    return body["errors"]  # type: ignore[no-any-return]


# ---- accepted -------------------------------------------------------------------------------------


async def test_single_event_is_published_keyed_by_dossier_and_acknowledged(intake: Intake) -> None:
    event = received()
    event["data"]["future_field"] = {"kept": True}  # unknown data fields are kept
    nfd_name = unicodedata.normalize("NFD", APPLICANT_NAME)
    event["data"]["applicant"]["name"] = nfd_name

    response = await intake.post(event)

    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "duplicates": 0}
    [message] = intake.publisher.messages
    assert message.key == event["dossier_id"]
    assert message.topic == "component.tthc.dossier-events.v1"
    value = json.loads(message.value)
    assert value["event_id"] == event["event_id"]
    assert value["data"]["future_field"] == {"kept": True}
    assert value["data"]["applicant"]["name"] == unicodedata.normalize("NFC", nfd_name)
    assert value["occurred_at"] == "2026-02-13T10:00:00+07:00"


async def test_a_batch_is_published_as_one_unit_in_order(intake: Intake) -> None:
    batch = [received("D-1"), resolved("D-1"), received("D-2")]

    response = await intake.post(batch)

    assert response.status_code == 202
    assert response.json() == {"accepted": 3, "duplicates": 0}
    assert len(intake.publisher.batches) == 1  # one request, one transaction
    assert [m.key for m in intake.publisher.messages] == ["D-1", "D-1", "D-2"]
    assert [v["event_id"] for v in intake.publisher.values()] == [e["event_id"] for e in batch]


async def test_a_charset_parameter_is_still_json(intake: Intake) -> None:
    response = await intake.post_bytes(json.dumps(resolved()).encode(), content_type="application/json; charset=utf-8")

    assert response.status_code == 202


async def test_a_batch_of_exactly_the_limit_is_accepted(tmp_path: Any) -> None:
    async for intake in running_intake(make_settings(tmp_path, max_events_per_request=5)):
        response = await intake.post([resolved(f"D-{i}") for i in range(5)])
        assert response.status_code == 202
        assert response.json()["accepted"] == 5


@pytest.mark.parametrize("lead", [timedelta(minutes=-5), timedelta(minutes=10)])
async def test_an_event_a_little_ahead_of_the_clock_is_accepted(intake: Intake, lead: timedelta) -> None:
    event = changed(resolved(), "occurred_at", format_ts(now_vn() + lead))

    assert (await intake.post(event)).status_code == 202


async def test_the_bounds_themselves_are_accepted(intake: Intake) -> None:
    at_bounds = [
        changed(received("B-1"), "occurred_at", "2000-01-01T00:00:00+07:00") | {
            "data": {**received()["data"], "duration": {"value": 3650, "unit": "calendar_days"}}},
        changed(received("B-2"), "data.duration", {"value": 29200, "unit": "working_hours"}),
        changed(received("B-3"), "data.duration", {"value": 120, "unit": "months"}),
        changed(received("B-4"), "data.applicant.name", "N" * 1000),
        changed(received("B-5"), "occurred_at", "2026-02-13T10:00:00-14:00"),
        changed(received("B-6"), "data.appointment_at", "2036-02-13T10:00:00+07:00"),  # ten years to the second
        changed(received("B-7"), "data.extension", nested(30)),  # event > data > extension: 32 levels
        padded(received("B-8"), 60_000),
    ]

    response = await intake.post(at_bounds)

    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == len(at_bounds)


# ---- duplicates -------------------------------------------------------------------------------


async def test_a_repeated_event_is_reported_as_duplicate_and_not_republished(intake: Intake) -> None:
    event = received()
    assert (await intake.post(event)).json() == {"accepted": 1, "duplicates": 0}

    again = await intake.post(event)

    assert again.status_code == 202
    assert again.json() == {"accepted": 0, "duplicates": 1}
    assert len(intake.publisher.messages) == 1


async def test_the_same_id_twice_in_one_request_publishes_once(intake: Intake) -> None:
    event = received()
    other = resolved()

    response = await intake.post([event, other, event])

    assert response.json() == {"accepted": 2, "duplicates": 1}
    assert [v["event_id"] for v in intake.publisher.values()] == [event["event_id"], other["event_id"]]


async def test_a_batch_mixing_old_and_new_events_publishes_only_the_new(intake: Intake) -> None:
    old = received("D-1")
    await intake.post(old)
    new = resolved("D-1")

    response = await intake.post([old, new])

    assert response.json() == {"accepted": 1, "duplicates": 1}
    assert [v["event_id"] for v in intake.publisher.values()] == [old["event_id"], new["event_id"]]


async def test_event_ids_are_per_source(intake: Intake) -> None:
    shared_id = str(uuid.uuid4())
    ours = resolved() | {"event_id": shared_id}
    theirs = resolved() | {"event_id": shared_id, "source": OTHER_SOURCE}

    assert (await intake.post(ours)).json()["accepted"] == 1
    response = await intake.post(theirs, headers={"Authorization": f"Bearer {OTHER_KEY}"})

    assert response.json() == {"accepted": 1, "duplicates": 0}


# ---- refused: nothing published, nothing recorded ----------------------------------------------

REFUSED = [
    # (path, value, field named, words in the reason)
    ("data.procedure", KeyError, "data.procedure", "required"),
    ("occurred_at", "2026-02-13T10:00:00", "occurred_at", "offset"),
    ("type", "dossier.teleported", "type", "unknown event type"),
    ("data.duration.value", 0, "data.duration.value", "greater than 0"),
    ("data.duration.value", -2, "data.duration.value", "greater than 0"),
    ("data.duration.unit", "fortnights", "data.duration.unit", "working_days"),
    ("dossier_id", "D" * 65, "dossier_id", "at most 64"),
    ("dossier_id", "", "dossier_id", "at least 1"),
    ("dossier_id", "D-\x00-1", "dossier_id", "control characters"),
    ("event_id", KeyError, "event_id", "required"),
    ("event_id", "not-a-uuid", "event_id", "UUID"),
    ("data.channel", 3, "data.channel", "in_person"),
    # events.md, Bounds (issue 11's table first)
    ("occurred_at", "0001-01-01T00:00:00+07:00", "occurred_at", "before 2000"),
    ("occurred_at", "1900-01-01T00:00:00+07:00", "occurred_at", "before 2000"),
    ("occurred_at", "1970-01-01T00:00:00+00:00", "occurred_at", "before 2000"),
    ("occurred_at", "1999-12-31T23:59:59+07:00", "occurred_at", "before 2000"),
    ("occurred_at", "2999-01-01T00:00:00+07:00", "occurred_at", "future"),
    ("occurred_at", "9999-12-31T23:59:59+07:00", "occurred_at", "future"),
    ("occurred_at", "9999-12-31T23:59:59-12:00", "occurred_at", "out of range"),
    ("occurred_at", "1763888400", "occurred_at", "RFC 3339"),
    ("occurred_at", 1763888400, "occurred_at", "RFC 3339"),
    ("occurred_at", "2026-11-23 08:00:00+07:00", "occurred_at", "RFC 3339"),
    ("occurred_at", "2026-11-23T08:00+07:00", "occurred_at", "seconds"),
    ("occurred_at", "2026-11-23T08:00:00+23:59", "occurred_at", "within -14:00 and +14:00"),
    ("occurred_at", "2026-11-23T08:00:00+14:30", "occurred_at", "within -14:00 and +14:00"),
    ("occurred_at", "2026-02-30T08:00:00+07:00", "occurred_at", "not a valid date"),
    ("schema_version", True, "schema_version", "integer 1"),
    ("schema_version", 1.0, "schema_version", "integer 1"),
    ("schema_version", 2, "schema_version", "integer 1"),
    ("data.duration.value", 1e308, "data.duration.value", "at most 3650 working_days"),
    ("data.duration.value", 3651, "data.duration.value", "at most 3650 working_days"),
    ("data.duration.value", True, "data.duration.value", "number"),
    ("data.duration.value", "5", "data.duration.value", "number"),
    ("data.duration", {"value": 29201, "unit": "working_hours"}, "data.duration.value", "at most 29200"),
    ("data.duration", {"value": 121, "unit": "months"}, "data.duration.value", "at most 120 months"),
    ("data.duration", {"value": 3651, "unit": "calendar_days"}, "data.duration.value", "at most 3650"),
    ("data.appointment_at", "2036-02-13T10:00:01+07:00", "data.appointment_at", "within 10 years"),
    ("data.appointment_at", "2016-02-13T09:59:59+07:00", "data.appointment_at", "within 10 years"),
    ("data.appointment_at", "2026-02-27 10:00:00+07:00", "data.appointment_at", "RFC 3339"),
    ("data.applicant.name", "N" * 1001, "data.applicant.name", "at most 1000"),
    ("data.remarks", {"officer": ["x" * 1001]}, "data.remarks.officer.0", "at most 1000"),
    ("data.applicant.address", "Số 1\x00", "data.applicant.address", "NUL"),
]


@pytest.mark.parametrize(("path", "value", "expected_field", "words"), REFUSED,
                         ids=[f"{p}={v!r:.30}" for p, v, *_ in REFUSED])
async def test_an_invalid_event_refuses_the_whole_batch(intake: Intake, path: str, value: Any, expected_field: str,
                                                        words: str) -> None:
    valid = received("D-1")
    invalid = changed(received("D-2"), path, value)

    response = await intake.post([valid, invalid])

    assert response.status_code == 422
    errors = assert_error_shape(response)
    assert all(e["index"] == 1 for e in errors)
    by_field = {e["field"]: e["reason"] for e in errors}
    assert expected_field in by_field, errors
    assert words.lower() in by_field[expected_field].lower(), errors
    assert intake.publisher.messages == []
    assert await intake.still_new(valid)


async def test_a_new_due_date_beyond_ten_years_is_refused(intake: Intake) -> None:
    extended = events.extended(DOSSIER_ID, "2026-02-26T16:00", new_due_at="9999-12-31T23:59:59+07:00",
                               reason="Chờ kết quả xác minh")
    response = await intake.post(extended)

    assert response.status_code == 422
    assert assert_error_shape(response) == [
        {"index": 0, "field": "data.new_due_at", "reason": "must lie within 10 years of occurred_at"}]


async def test_an_event_further_ahead_than_the_lead_is_refused_and_the_lead_is_configurable(tmp_path: Any) -> None:
    twenty_minutes_ahead = changed(resolved(), "occurred_at", format_ts(now_vn() + timedelta(minutes=20)))

    async for intake in running_intake(make_settings(tmp_path)):
        response = await intake.post(twenty_minutes_ahead)
        assert response.status_code == 422
        [error] = assert_error_shape(response)
        assert error["field"] == "occurred_at" and "future" in error["reason"]
    async for intake in running_intake(make_settings(tmp_path / "hour", max_event_lead_s=3600)):
        assert (await intake.post(twenty_minutes_ahead)).status_code == 202


async def test_every_invalid_event_is_listed(intake: Intake) -> None:
    first = changed(received(), "occurred_at", "2026-02-13T10:00:00")
    second = changed(received(), "data.duration.unit", "weeks")

    response = await intake.post([first, resolved(), second])

    assert response.status_code == 422
    assert sorted((e["index"], e["field"]) for e in assert_error_shape(response)) == [
        (0, "occurred_at"), (2, "data.duration.unit")]
    assert intake.publisher.messages == []


async def test_an_event_that_is_not_an_object_is_named_by_its_index(intake: Intake) -> None:
    response = await intake.post([resolved(), 42])

    assert response.status_code == 422
    assert assert_error_shape(response) == [{"index": 1, "reason": "an event must be a JSON object"}]


@pytest.mark.parametrize("body", [
    b"{not json", b"42", b"[]", b"\xff\xfe", b'{"duration": NaN}', b'{"value": 1e400}', b'{"a": "\\ud800"}', b"",
    b"[" * 1000 + b"]" * 1000, b'{"data": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}",
], ids=["not-json", "number", "empty-array", "not-utf8", "nan", "infinite", "lone-surrogate", "empty", "1000-deep",
        "40-deep-object"])
async def test_a_body_that_is_not_events_is_refused_without_index_or_field(intake: Intake, body: bytes) -> None:
    response = await intake.post_bytes(body)

    assert response.status_code == 422
    [error] = assert_error_shape(response)
    assert set(error) == {"reason"}
    assert intake.publisher.messages == []


async def test_an_event_nested_33_deep_is_refused(intake: Intake) -> None:
    response = await intake.post([received("D-1"), changed(received("D-2"), "data.extension", nested(31))])

    assert response.status_code == 422
    assert "nested deeper than 32" in assert_error_shape(response)[0]["reason"]


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "application/jsonl"])
async def test_a_body_not_sent_as_json_is_unsupported(intake: Intake, content_type: str | None) -> None:
    response = await intake.post_bytes(json.dumps(resolved()).encode(), content_type=content_type)

    assert response.status_code == 415
    assert "application/json" in assert_error_shape(response)[0]["reason"]
    assert intake.publisher.messages == []


async def test_an_event_of_another_source_is_forbidden(intake: Intake) -> None:
    foreign = resolved() | {"source": OTHER_SOURCE}

    response = await intake.post([received(), foreign])

    assert response.status_code == 403
    assert assert_error_shape(response) == [
        {"index": 1, "field": "source", "reason": f"this key may only post events of source {SOURCE!r}"}]
    assert intake.publisher.messages == []


@pytest.mark.parametrize(
    "headers",
    [None, {"Authorization": "Bearer wrong-key"}, {"Authorization": KEY}, {"Authorization": f"Basic {KEY}"},
     {"Authorization": "Bearer "}],
    ids=["missing", "unknown", "no-scheme", "basic", "empty"],
)
async def test_without_a_valid_key_the_request_is_unauthorized(intake: Intake, headers: Any) -> None:
    response = await intake.post(received(), headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Bearer" in assert_error_shape(response)[0]["reason"]
    assert intake.publisher.messages == []


async def test_more_events_than_allowed_is_too_large(intake: Intake) -> None:
    response = await intake.post([resolved(f"D-{i}") for i in range(1001)])

    assert response.status_code == 413
    assert "at most 1000" in assert_error_shape(response)[0]["reason"]
    assert intake.publisher.messages == []


async def test_a_body_over_the_byte_limit_is_too_large(tmp_path: Any) -> None:
    async for intake in running_intake(make_settings(tmp_path, max_body_bytes=2000)):
        response = await intake.post([received(f"D-{i}") for i in range(5)])

        assert response.status_code == 413
        assert_error_shape(response)
        assert intake.publisher.messages == []

        # the same limit holds without a Content-Length (chunked upload)
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(5):
                yield json.dumps(received()).encode()[:1000]

        streamed = await intake.client.post("/v1/events", content=chunks(),
                                            headers={**AUTH, "content-type": "application/json"})
        assert streamed.status_code == 413


async def test_a_large_event_in_a_batch_of_five_is_refused_by_name_before_anything_is_sent(intake: Intake) -> None:
    batch = [received(f"D-{i}") for i in range(5)]
    batch[3] = padded(batch[3], 1_200_000)  # 1.2 MB of fields that are each within the string bound

    response = await intake.post(batch)

    assert response.status_code == 413
    [error] = assert_error_shape(response)
    assert error["index"] == 3 and "at most 65,536" in error["reason"]
    assert intake.publisher.batches == []
    assert await intake.still_new(batch[0])


async def test_an_event_just_over_64_kib_is_too_large(intake: Intake) -> None:
    response = await intake.post(padded(received(), 66_000))

    assert response.status_code == 413
    assert assert_error_shape(response)[0]["index"] == 0


async def test_a_1_2_mb_string_is_refused_by_the_string_bound(intake: Intake) -> None:
    response = await intake.post([resolved(), changed(resolved(), "data.comment", "x" * 1_200_000)])

    assert response.status_code == 422
    assert assert_error_shape(response) == [
        {"index": 1, "field": "data.comment",
         "reason": "a string in data must be at most 1000 characters, without NUL characters"}]


# ---- Kafka and the database -------------------------------------------------------------------


async def test_kafka_unavailable_is_503_with_retry_after_and_nothing_is_recorded(intake: Intake) -> None:
    event = received()
    intake.publisher.fail_with = BrokerUnavailable("Kafka did not acknowledge within 0.5 s")

    response = await intake.post(event)

    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "retry later" in assert_error_shape(response)[0]["reason"]
    intake.publisher.fail_with = None
    assert await intake.still_new(event)  # not recorded as accepted: the retry publishes it
    assert len(intake.publisher.messages) == 1


async def test_an_event_the_broker_refuses_is_a_413_naming_it_in_the_request(intake: Intake) -> None:
    old = resolved("D-0")
    await intake.post(old)
    batch = [old, received("D-1"), received("D-2")]
    # The publisher is given the new events only: its event 1 is the request's event 2.
    intake.publisher.fail_with = PublishRefused(1, "the broker refused the event as too large for the topic")

    response = await intake.post(batch)

    assert response.status_code == 413
    assert assert_error_shape(response) == [
        {"index": 2, "reason": "the broker refused the event as too large for the topic"}]
    intake.publisher.fail_with = None
    assert await intake.still_new(batch[1])


async def test_the_database_unavailable_is_503_and_nothing_is_published(intake: Intake) -> None:
    engine = intake.app.state.deps.engine
    with engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE intake_accepted_events RENAME TO elsewhere"))

    response = await intake.post(received())

    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "database" in assert_error_shape(response)[0]["reason"]
    assert intake.publisher.messages == []


# ---- observability ----------------------------------------------------------------------------


async def test_metrics_count_accepted_duplicates_and_refusals_with_bounded_labels(intake: Intake) -> None:
    event = received()
    await intake.post(event)
    await intake.post(event)
    await intake.post(received(), headers=None)
    await intake.post(changed(received(), "data.duration.unit", "weeks"))
    await intake.post_bytes(b"{}", content_type="text/plain")

    text = (await intake.client.get("/metrics")).text

    assert 'tthc_intake_events_accepted_total{type="dossier.received"} 1.0' in text
    assert 'tthc_intake_events_duplicate_total{type="dossier.received"} 1.0' in text
    assert 'tthc_intake_requests_rejected_total{reason="unauthorized"} 1.0' in text
    assert 'tthc_intake_requests_rejected_total{reason="invalid"} 1.0' in text
    assert 'tthc_intake_requests_rejected_total{reason="unsupported_media_type"} 1.0' in text
    assert "tthc_intake_kafka_reachable 1.0" in text
    assert event["dossier_id"] not in text
    assert SOURCE not in text


async def test_health_and_readiness(intake: Intake) -> None:
    assert (await intake.client.get("/healthz")).json() == {"status": "ok"}
    ready = await intake.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"kafka": "ok", "database": "ok"}


async def test_no_applicant_data_in_the_logs(intake: Intake, capsys: Any) -> None:
    event = received()
    await intake.post(event)
    await intake.post(event)
    await intake.post(changed(event, "data.duration.value", 0) | {"event_id": str(uuid.uuid4())})

    logged = capsys.readouterr().out

    assert event["event_id"] in logged  # the DEBUG line of the accepted event names it...
    assert APPLICANT_NAME not in logged  # ...and never its applicant
    assert "0912345678" not in logged


# ---- configuration and start-up ---------------------------------------------------------------


def test_hash_key_prints_the_digest_to_configure(capsys: Any) -> None:
    assert intake_main(["hash-key", KEY]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == hash_key(KEY)
    assert printed.startswith("sha256:") and len(printed) == len("sha256:") + 64


@pytest.mark.parametrize(("variable", "value", "words"), [
    ("INTAKE_SOURCE_KEYS", "", "no source keys: set INTAKE_SOURCE_KEYS"),
    ("INTAKE_SOURCE_KEYS", f"{SOURCE}={KEY}", "give the key's digest as sha256:<64 hex>"),
    ("INTAKE_SOURCE_KEYS", f"{SOURCE}=sha256:1234", "give the key's digest as sha256:<64 hex>"),
    ("INTAKE_SOURCE_KEYS", f"a={hash_key(KEY)},b={hash_key(KEY)}", "one key serves one name"),
    ("INTAKE_SOURCE_KEYS", "garbage", "must look like name=sha256:<64 hex>"),
    ("INTAKE_HTTP_PORT", "abc", "INTAKE_HTTP_PORT"),
    ("INTAKE_MAX_EVENT_LEAD_S", "-1", "INTAKE_MAX_EVENT_LEAD_S"),
], ids=["no-keys", "plain-key", "short-digest", "shared-key", "garbage", "port-abc", "negative-lead"])
def test_a_bad_setting_refuses_start_up_with_one_line(monkeypatch: Any, capsys: Any, tmp_path: Any, variable: str,
                                                      value: str, words: str) -> None:
    monkeypatch.setenv("INTAKE_DATABASE_URL", f"sqlite:///{tmp_path}/intake.db")
    monkeypatch.setenv("INTAKE_SOURCE_KEYS", f"{SOURCE}={hash_key(KEY)}")
    monkeypatch.setenv(variable, value)

    assert intake_main([]) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("intake: refusing to start: "), err
    assert words in err
    assert KEY not in err  # a misconfigured plain key is never echoed


async def test_an_event_far_in_the_future_hears_of_the_clock_besides_its_other_problems(intake: Intake) -> None:
    with_appointment = changed(received(), "data.appointment_at", "2026-02-27T10:00:00+07:00")
    response = await intake.post(changed(with_appointment, "occurred_at", "9999-12-31T23:59:59+07:00"))

    assert response.status_code == 422
    fields = {e["field"]: e["reason"] for e in assert_error_shape(response)}
    assert "future" in fields["occurred_at"]
    assert "within 10 years" in fields["data.appointment_at"]

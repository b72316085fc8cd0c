"""Intake as one component: HTTP in (httpx ASGI transport), FastStream's in-memory Kafka out, SQLite.

Every refusal is checked twice: the response names the event and the field, and nothing reached Kafka
(nor the accepted-ids table: the same valid event posted afterwards is still new).
"""

from __future__ import annotations

import copy
import json
import unicodedata
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from faststream.kafka import TestKafkaBroker
from tthc_common.broker import KafkaMessage
from tthc_intake.__main__ import main as intake_main
from tthc_intake.app import create_app
from tthc_intake.auth import hash_key, parse_source_keys
from tthc_intake.config import IntakeSettings

SOURCE = "motcua-lang-son"
KEY = "lang-son-secret-key"
OTHER_SOURCE = "motcua-cao-bang"
OTHER_KEY = "cao-bang-secret-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
APPLICANT_NAME = "Nguyễn Văn Riêng"


def received(dossier_id: str = "000.00.12.H10-260213-0001", **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "type": "dossier.received",
        "schema_version": 1,
        "occurred_at": "2026-02-13T10:00:00+07:00",
        "source": SOURCE,
        "dossier_id": dossier_id,
        "data": {
            "procedure": {"code": "2.000567", "name": "Đăng ký thành lập doanh nghiệp tư nhân",
                          "field_code": "G09-KH02", "field_name": "Thành lập và hoạt động doanh nghiệp"},
            "receiving_agency": {"code": "000.00.12.H10", "name": "Sở Tư pháp tỉnh Lạng Sơn"},
            "channel": "in_person",
            "duration": {"value": 5, "unit": "working_days"},
            "applicant": {"kind": "citizen", "name": APPLICANT_NAME, "phone": "0912345678"},
        },
    }
    event.update(overrides)
    return event


def resolved(dossier_id: str = "000.00.12.H10-260213-0001") -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "type": "dossier.resolved", "schema_version": 1,
            "occurred_at": "2026-02-20T15:00:00+07:00", "source": SOURCE, "dossier_id": dossier_id,
            "data": {"result": "approved"}}


@dataclass
class Intake:
    client: httpx.AsyncClient
    settings: IntakeSettings
    app: Any
    published: list[KafkaMessage] = field(default_factory=list)

    async def post(self, body: Any, headers: dict[str, str] | None = AUTH) -> httpx.Response:
        return await self.client.post("/v1/events", content=json.dumps(body, ensure_ascii=False).encode(),
                                      headers={"content-type": "application/json", **(headers or {})})

    def published_values(self) -> list[dict[str, Any]]:
        return [json.loads(m.body) for m in self.published]


def make_settings(tmp_path: Any, **overrides: Any) -> IntakeSettings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path}/intake.db",
        "source_keys": {SOURCE: hash_key(KEY), OTHER_SOURCE: OTHER_KEY},
        "topic_prefix": "component.",
        "log_level": "DEBUG",
    }
    values.update(overrides)
    return IntakeSettings(**values)


async def running_intake(settings: IntakeSettings) -> AsyncIterator[Intake]:
    app = create_app(settings)
    router = app.state.kafka_router
    intake_under_test = Intake(client=None, settings=settings, app=app)  # type: ignore[arg-type]

    @router.subscriber(settings.topics.dossier_events, group_id="test-capture")
    async def capture(msg: KafkaMessage) -> None:
        intake_under_test.published.append(msg)

    async with TestKafkaBroker(router.broker, connect_only=False), app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            intake_under_test.client = client
            yield intake_under_test


@pytest.fixture
async def intake(tmp_path: Any) -> AsyncIterator[Intake]:
    async for running in running_intake(make_settings(tmp_path)):
        yield running


# ---- accepted ---------------------------------------------------------------------------------


async def test_single_event_is_published_keyed_by_dossier_and_acknowledged(intake: Intake) -> None:
    event = received()
    event["data"]["future_field"] = {"kept": True}  # unknown data fields are kept
    nfd_name = unicodedata.normalize("NFD", APPLICANT_NAME)
    event["data"]["applicant"]["name"] = nfd_name

    response = await intake.post(event)

    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "duplicates": 0}
    assert len(intake.published) == 1
    message = intake.published[0]
    assert message.raw_message.key == event["dossier_id"].encode()
    assert message.raw_message.topic == "component.tthc.dossier-events.v1"
    value = json.loads(message.body)
    assert value["event_id"] == event["event_id"]
    assert value["data"]["future_field"] == {"kept": True}
    assert value["data"]["applicant"]["name"] == unicodedata.normalize("NFC", nfd_name)
    assert value["occurred_at"] == "2026-02-13T10:00:00+07:00"


async def test_batch_is_published_in_order_each_keyed_by_its_dossier(intake: Intake) -> None:
    batch = [received("D-1"), resolved("D-1"), received("D-2")]

    response = await intake.post(batch)

    assert response.status_code == 202
    assert response.json() == {"accepted": 3, "duplicates": 0}
    assert [m.raw_message.key for m in intake.published] == [b"D-1", b"D-1", b"D-2"]
    assert [v["event_id"] for v in intake.published_values()] == [e["event_id"] for e in batch]


async def test_a_batch_of_exactly_the_limit_is_accepted(tmp_path: Any) -> None:
    async for intake in running_intake(make_settings(tmp_path, max_events_per_request=5)):
        response = await intake.post([resolved(f"D-{i}") for i in range(5)])
        assert response.status_code == 202
        assert response.json()["accepted"] == 5


# ---- duplicates -------------------------------------------------------------------------------


async def test_a_repeated_event_is_reported_as_duplicate_and_not_republished(intake: Intake) -> None:
    event = received()
    assert (await intake.post(event)).json() == {"accepted": 1, "duplicates": 0}

    again = await intake.post(event)

    assert again.status_code == 202
    assert again.json() == {"accepted": 0, "duplicates": 1}
    assert len(intake.published) == 1


async def test_the_same_id_twice_in_one_request_publishes_once(intake: Intake) -> None:
    event = received()
    other = resolved()

    response = await intake.post([event, other, event])

    assert response.json() == {"accepted": 2, "duplicates": 1}
    assert [v["event_id"] for v in intake.published_values()] == [event["event_id"], other["event_id"]]


async def test_a_batch_mixing_old_and_new_events_publishes_only_the_new(intake: Intake) -> None:
    old = received("D-1")
    await intake.post(old)
    new = resolved("D-1")

    response = await intake.post([old, new])

    assert response.json() == {"accepted": 1, "duplicates": 1}
    assert [v["event_id"] for v in intake.published_values()] == [old["event_id"], new["event_id"]]


async def test_event_ids_are_per_source(intake: Intake) -> None:
    shared_id = str(uuid.uuid4())
    ours = resolved()
    ours["event_id"] = shared_id
    theirs = resolved()
    theirs.update(event_id=shared_id, source=OTHER_SOURCE)

    assert (await intake.post(ours)).json()["accepted"] == 1
    response = await intake.post(theirs, headers={"Authorization": f"Bearer {OTHER_KEY}"})

    assert response.json() == {"accepted": 1, "duplicates": 0}


# ---- refused: nothing published, nothing recorded ----------------------------------------------


def _without_procedure(event: dict[str, Any]) -> None:
    del event["data"]["procedure"]


def _naive_timestamp(event: dict[str, Any]) -> None:
    event["occurred_at"] = "2026-02-13T10:00:00"


def _unknown_type(event: dict[str, Any]) -> None:
    event["type"] = "dossier.teleported"


def _zero_duration(event: dict[str, Any]) -> None:
    event["data"]["duration"]["value"] = 0


def _negative_duration(event: dict[str, Any]) -> None:
    event["data"]["duration"]["value"] = -2


def _unknown_unit(event: dict[str, Any]) -> None:
    event["data"]["duration"]["unit"] = "fortnights"


def _long_dossier_id(event: dict[str, Any]) -> None:
    event["dossier_id"] = "D" * 65


def _empty_dossier_id(event: dict[str, Any]) -> None:
    event["dossier_id"] = ""


def _missing_event_id(event: dict[str, Any]) -> None:
    del event["event_id"]


def _mistyped_channel(event: dict[str, Any]) -> None:
    event["data"]["channel"] = 3


@pytest.mark.parametrize(
    ("breaks", "expected_field"),
    [
        (_without_procedure, "data.procedure"),
        (_naive_timestamp, "occurred_at"),
        (_unknown_type, "type"),
        (_zero_duration, "data.duration.value"),
        (_negative_duration, "data.duration.value"),
        (_unknown_unit, "data.duration.unit"),
        (_long_dossier_id, "dossier_id"),
        (_empty_dossier_id, "dossier_id"),
        (_missing_event_id, "event_id"),
        (_mistyped_channel, "data.channel"),
    ],
)
async def test_an_invalid_event_refuses_the_whole_batch(intake: Intake, breaks: Any, expected_field: str) -> None:
    valid = received("D-1")
    invalid = received("D-2")
    breaks(invalid)

    response = await intake.post([valid, invalid])

    assert response.status_code == 422
    errors = response.json()["errors"]
    assert {"index", "field", "reason"} <= set(errors[0])
    assert all(e["index"] == 1 for e in errors)
    assert expected_field in [e["field"] for e in errors]
    assert all(e["reason"] for e in errors)
    assert intake.published == []
    # all-or-nothing: the valid event of the refused batch was not recorded either
    assert (await intake.post(valid)).json() == {"accepted": 1, "duplicates": 0}


async def test_every_invalid_event_is_listed(intake: Intake) -> None:
    first, second = received(), received()
    _naive_timestamp(first)
    _unknown_unit(second)

    response = await intake.post([first, resolved(), second])

    assert response.status_code == 422
    assert sorted((e["index"], e["field"]) for e in response.json()["errors"]) == [
        (0, "occurred_at"), (2, "data.duration.unit")]
    assert intake.published == []


async def test_a_naive_timestamp_says_so(intake: Intake) -> None:
    event = received()
    _naive_timestamp(event)

    reason = (await intake.post(event)).json()["errors"][0]["reason"]

    assert "offset" in reason


@pytest.mark.parametrize("body", [b"{not json", b"42", b"[]", b"\xff\xfe", b'{"duration": NaN}'])
async def test_a_body_that_is_not_events_is_refused(intake: Intake, body: bytes) -> None:
    response = await intake.client.post("/v1/events", content=body, headers=AUTH)

    assert response.status_code == 422
    assert response.json()["errors"][0]["index"] is None
    assert response.json()["errors"][0]["field"] == "(body)"
    assert intake.published == []


async def test_an_event_of_another_source_is_forbidden(intake: Intake) -> None:
    foreign = resolved()
    foreign["source"] = OTHER_SOURCE

    response = await intake.post([received(), foreign])

    assert response.status_code == 403
    assert response.json()["errors"] == [
        {"index": 1, "field": "source", "reason": f"this key may only post events of source {SOURCE!r}"}]
    assert intake.published == []


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
    assert intake.published == []


async def test_more_events_than_allowed_is_too_large(intake: Intake) -> None:
    batch = [resolved(f"D-{i}") for i in range(1001)]

    response = await intake.post(batch)

    assert response.status_code == 413
    assert intake.published == []


async def test_a_body_over_the_byte_limit_is_too_large(tmp_path: Any) -> None:
    async for intake in running_intake(make_settings(tmp_path, max_body_bytes=2000)):
        response = await intake.post([received(f"D-{i}") for i in range(5)])

        assert response.status_code == 413
        assert intake.published == []

        # the same limit holds without a Content-Length (chunked upload)
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(5):
                yield json.dumps(received()).encode()[:1000]

        streamed = await intake.client.post("/v1/events", content=chunks(), headers=AUTH)
        assert streamed.status_code == 413


async def test_kafka_unavailable_is_503_and_nothing_is_recorded(intake: Intake, monkeypatch: Any) -> None:
    from aiokafka.errors import KafkaConnectionError

    broker = intake.app.state.broker

    async def refuse(*args: Any, **kwargs: Any) -> None:
        raise KafkaConnectionError("no broker")

    event = received()
    monkeypatch.setattr(broker, "publish", refuse)
    response = await intake.post(event)
    monkeypatch.undo()

    assert response.status_code == 503
    assert "Kafka" in response.json()["detail"]
    # not recorded as accepted: the retry publishes it
    assert (await intake.post(event)).json() == {"accepted": 1, "duplicates": 0}
    assert len(intake.published) == 1


# ---- observability ----------------------------------------------------------------------------


async def test_metrics_count_accepted_duplicates_and_refusals_with_bounded_labels(intake: Intake) -> None:
    event = received()
    await intake.post(event)
    await intake.post(event)
    await intake.post(received(), headers=None)
    bad = received()
    _unknown_unit(bad)
    await intake.post(bad)

    text = (await intake.client.get("/metrics")).text

    assert 'tthc_intake_events_accepted_total{type="dossier.received"} 1.0' in text
    assert 'tthc_intake_events_duplicate_total{type="dossier.received"} 1.0' in text
    assert 'tthc_intake_requests_rejected_total{reason="unauthorized"} 1.0' in text
    assert 'tthc_intake_requests_rejected_total{reason="invalid"} 1.0' in text
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
    bad = copy.deepcopy(event)
    bad["event_id"] = str(uuid.uuid4())
    _zero_duration(bad)
    await intake.post(bad)

    logged = capsys.readouterr().out

    assert event["event_id"] in logged  # the DEBUG line of the accepted event names it...
    assert APPLICANT_NAME not in logged  # ...and never its applicant
    assert "0912345678" not in logged


# ---- configuration ----------------------------------------------------------------------------


def test_hash_key_prints_the_digest_to_configure(capsys: Any) -> None:
    assert intake_main(["hash-key", KEY]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == hash_key(KEY)
    assert printed.startswith("sha256:") and len(printed) == len("sha256:") + 64


def test_source_keys_from_the_environment_keep_only_digests(monkeypatch: Any) -> None:
    monkeypatch.setenv("INTAKE_SOURCE_KEYS", f"{SOURCE}={hash_key(KEY)}, {OTHER_SOURCE}={OTHER_KEY}")

    keys = IntakeSettings().source_keys

    assert sorted(keys.values()) == [OTHER_SOURCE, SOURCE]
    assert hash_key(KEY).removeprefix("sha256:") in keys
    assert OTHER_KEY not in repr(IntakeSettings())


def test_source_keys_as_json_allow_several_keys_per_source(monkeypatch: Any) -> None:
    monkeypatch.setenv("INTAKE_SOURCE_KEYS", json.dumps({SOURCE: [KEY, "rotated-key"]}))

    assert list(IntakeSettings().source_keys.values()) == [SOURCE, SOURCE]


def test_one_key_for_two_sources_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="two sources"):
        parse_source_keys(f"a={KEY},b={KEY}")


def test_a_malformed_digest_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="64 hexadecimal"):
        parse_source_keys("a=sha256:1234")

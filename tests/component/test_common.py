"""tthc_common pieces on SQLite and FastStream's in-memory Kafka: settings, database and migrations,
idempotency, outbox relay, readiness and metrics endpoints, logging without personal data."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from faststream.kafka import TestKafkaBroker
from prometheus_client import CollectorRegistry
from sqlmodel import SQLModel
from tthc_common.broker import KafkaMessage, make_kafka_router
from tthc_common.db import make_engine, run_in_transaction, run_migrations, session_scope
from tthc_common.health import health_router
from tthc_common.idempotency import ProcessedEvent, mark_processed, was_processed
from tthc_common.logging import JsonFormatter, event_log_fields
from tthc_common.outbox import OutboxMessage, OutboxRelay, add_payload_to_outbox, add_to_outbox
from tthc_common.publish import encode_event
from tthc_common.settings import ServiceSettings, service_settings_config
from tthc_contracts import derived_id, parse_dossier_event

from tests.support import events
from tests.support.examples import examples

INTAKE_MIGRATIONS = Path(__file__).resolve().parents[2] / "services/intake/src/tthc_intake/migrations"


class DemoSettings(ServiceSettings):
    model_config = service_settings_config("DEMO_")
    service_name: ClassVar[str] = "demo"
    http_port: int = 8099


# ---- settings ---------------------------------------------------------------------------------


def test_settings_defaults_derive_from_the_service_name(monkeypatch: Any) -> None:
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "TTHC_TOPIC_PREFIX", "DEMO_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)

    settings = DemoSettings()

    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert settings.database_url == "sqlite:///var/demo.db"
    assert settings.consumer_group == "tthc-demo"
    assert settings.http_port == 8099
    assert settings.topics.dossier_events == "tthc.dossier-events.v1"


def test_shared_variables_apply_and_a_prefixed_one_wins(monkeypatch: Any) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "shared:9092")
    monkeypatch.setenv("TTHC_TOPIC_PREFIX", "staging.")
    assert DemoSettings().kafka_bootstrap_servers == "shared:9092"
    assert DemoSettings().topics.dead_letter == "staging.tthc.dead-letter.v1"

    monkeypatch.setenv("DEMO_KAFKA_BOOTSTRAP_SERVERS", "own:9092")
    monkeypatch.setenv("DEMO_TOPIC_PREFIX", "mine.")
    monkeypatch.setenv("DEMO_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("DEMO_HTTP_PORT", "9000")
    settings = DemoSettings()
    assert settings.kafka_bootstrap_servers == "own:9092"
    assert settings.topic_prefix == "mine."
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert settings.http_port == 9000


def test_settings_are_read_when_built_not_at_import(monkeypatch: Any) -> None:
    monkeypatch.setenv("DEMO_HTTP_PORT", "1111")
    first = DemoSettings()
    monkeypatch.setenv("DEMO_HTTP_PORT", "2222")
    assert (first.http_port, DemoSettings().http_port) == (1111, 2222)


def test_a_bad_setting_does_not_echo_its_value(monkeypatch: Any) -> None:
    monkeypatch.setenv("DEMO_HTTP_PORT", "secret-looking-value")
    with pytest.raises(ValueError) as error:
        DemoSettings()
    assert "secret-looking-value" not in str(error.value)


# ---- database, migrations ---------------------------------------------------------------------


def test_sqlite_engine_creates_its_directory_and_runs_in_wal_mode(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/deep/er/x.db")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    assert (tmp_path / "deep/er/x.db").exists()


def test_migrations_upgrade_to_head_with_the_service_version_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/var/intake.db"

    run_migrations(url, INTAKE_MIGRATIONS)
    run_migrations(url, INTAKE_MIGRATIONS)  # idempotent: a restart upgrades nothing

    tables = set(sa.inspect(make_engine(url)).get_table_names())
    assert {"intake_accepted_events", "alembic_version_intake"} <= tables
    assert "alembic_version" not in tables


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    engine = make_engine(f"sqlite:///{tmp_path}/common.db")
    SQLModel.metadata.create_all(engine, tables=[ProcessedEvent.__table__, OutboxMessage.__table__])
    return engine


async def test_run_in_transaction_commits_or_rolls_back_everything(engine: sa.Engine) -> None:
    def works(session: Any) -> bool:
        return mark_processed(session, "c", "s", "e1")

    def fails(session: Any) -> None:
        mark_processed(session, "c", "s", "e2")
        add_to_outbox(session, "t", {"dossier_id": "D", "event_id": "x"})
        raise RuntimeError("crash after writing")

    assert await run_in_transaction(engine, works) is True
    with pytest.raises(RuntimeError):
        await run_in_transaction(engine, fails)

    with session_scope(engine) as session:
        assert was_processed(session, "c", "s", "e1")
        assert not was_processed(session, "c", "s", "e2")
        assert session.scalar(sa.select(sa.func.count()).select_from(OutboxMessage)) == 0


# ---- idempotency ------------------------------------------------------------------------------


def test_mark_processed_is_true_once_per_consumer_source_and_event(engine: sa.Engine) -> None:
    with session_scope(engine) as session:
        assert mark_processed(session, "deadline", "motcua", "e1") is True
        assert mark_processed(session, "deadline", "motcua", "e1") is False  # same transaction
    with session_scope(engine) as session:
        assert mark_processed(session, "deadline", "motcua", "e1") is False  # later transaction
        assert mark_processed(session, "apology", "motcua", "e1") is True  # another consumer
        assert mark_processed(session, "deadline", "other-source", "e1") is True


# ---- outbox -----------------------------------------------------------------------------------


@pytest.fixture
async def relay_setup(engine: sa.Engine) -> AsyncIterator[tuple[OutboxRelay, list[KafkaMessage]]]:
    settings = DemoSettings(topic_prefix="ob.", retry_delay_s=0)
    router = make_kafka_router(settings, registry=CollectorRegistry())
    received: list[KafkaMessage] = []

    @router.subscriber(settings.topics.deadline_events, group_id="reader")
    async def read(msg: KafkaMessage) -> None:
        received.append(msg)

    relay = OutboxRelay(engine, router.broker, name="demo", poll_interval_s=0.05)
    async with TestKafkaBroker(router.broker, connect_only=False):
        yield relay, received
        await relay.stop()


def _derived(dossier_id: str, n: int) -> dict[str, Any]:
    return events.event("deadline.scheduled", "2026-02-13T10:00", {"n": n, "note": "Sở Tư pháp"}, dossier_id,
                        event_id=derived_id("test", dossier_id, n), source="deadline")


async def test_the_relay_publishes_rows_in_order_keyed_and_deletes_them(
    engine: sa.Engine, relay_setup: tuple[OutboxRelay, list[KafkaMessage]]
) -> None:
    relay, received = relay_setup
    events = [_derived("D-1", 1), _derived("D-2", 1), _derived("D-1", 2)]
    with session_scope(engine) as session:
        for event in events:
            add_to_outbox(session, "ob.tthc.deadline-events.v1", event)

    assert await relay.drain() == 3

    assert [json.loads(m.body)["event_id"] for m in received] == [e["event_id"] for e in events]
    assert [m.raw_message.key for m in received] == [b"D-1", b"D-2", b"D-1"]
    assert json.loads(received[0].body)["data"]["note"] == "Sở Tư pháp"
    with session_scope(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(OutboxMessage)) == 0
    assert await relay.drain() == 0


async def test_outbox_rows_may_carry_kafka_headers_and_a_payload_sent_as_given(
    engine: sa.Engine, relay_setup: tuple[OutboxRelay, list[KafkaMessage]]
) -> None:
    relay, received = relay_setup
    topic = "ob.tthc.deadline-events.v1"
    payload = '{"dossier_id": "D-3",  "note": "Sở Tư pháp"}'  # not the compact form: kept as it is
    with session_scope(engine) as session:
        add_to_outbox(session, topic, _derived("D-1", 1), headers={"x-reason": "Lý do", "x-try": "1"})
        add_payload_to_outbox(session, topic, payload, key="D-3", headers={"x-reason": "other"})
        add_to_outbox(session, topic, _derived("D-2", 1))

    assert await relay.drain() == 3

    assert [m.headers.get("x-reason") for m in received] == ["Lý do", "other", None]
    assert received[0].headers["x-try"] == "1"
    assert all(m.headers["content-type"] == "application/json" for m in received)
    assert received[1].body == payload.encode("utf-8")
    assert received[1].raw_message.key == b"D-3"


async def test_the_running_relay_publishes_soon_after_a_commit(
    engine: sa.Engine, relay_setup: tuple[OutboxRelay, list[KafkaMessage]]
) -> None:
    relay, received = relay_setup
    relay.start()

    def handler(session: Any) -> None:
        if mark_processed(session, "demo", "motcua", "e-1"):
            add_to_outbox(session, "ob.tthc.deadline-events.v1", _derived("D-9", 1))

    await run_in_transaction(engine, handler)
    relay.wake()
    async with asyncio.timeout(5):
        while not received:
            await asyncio.sleep(0.01)

    assert json.loads(received[0].body)["dossier_id"] == "D-9"


async def test_the_relay_keeps_rows_when_kafka_refuses(
    engine: sa.Engine, relay_setup: tuple[OutboxRelay, list[KafkaMessage]], monkeypatch: Any
) -> None:
    relay, received = relay_setup
    with session_scope(engine) as session:
        add_to_outbox(session, "ob.tthc.deadline-events.v1", _derived("D-1", 1))

    async def refuse(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(relay.broker, "publish", refuse)
    with pytest.raises(Exception, match="Kafka refused"):
        await relay.relay_once()
    monkeypatch.undo()

    assert await relay.drain() == 1  # still there, published once Kafka is back
    assert len(received) == 1


# ---- health, readiness, metrics ---------------------------------------------------------------


def _health_app(engine: sa.Engine, broker: Any, registry: CollectorRegistry) -> FastAPI:
    app = FastAPI()
    app.include_router(health_router(broker=broker, engine=engine, registry=registry, readiness_timeout_s=0.5))
    return app


async def _get(app: FastAPI, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.get(path)


async def test_readyz_is_503_naming_kafka_when_the_broker_is_not_connected(engine: sa.Engine) -> None:
    router = make_kafka_router(DemoSettings(kafka_bootstrap_servers="127.0.0.1:1"), registry=CollectorRegistry())
    app = _health_app(engine, router.broker, CollectorRegistry())

    response = await _get(app, "/readyz")

    assert response.status_code == 503
    assert response.json()["checks"] == {"kafka": "unavailable", "database": "ok"}
    assert (await _get(app, "/healthz")).status_code == 200


async def test_readyz_is_503_naming_the_database_when_it_does_not_answer(tmp_path: Path) -> None:
    class AnsweringBroker:
        async def ping(self, timeout: float) -> bool:
            return True

    broken = make_engine(f"sqlite:///{tmp_path}/x.db")
    (tmp_path / "x.db").mkdir()  # a directory where the database file should be
    app = _health_app(broken, AnsweringBroker(), CollectorRegistry())

    response = await _get(app, "/readyz")

    assert response.status_code == 503
    assert response.json()["checks"] == {"kafka": "ok", "database": "unavailable"}


async def test_each_app_has_its_own_metrics_registry(engine: sa.Engine) -> None:
    # Two routers in one process: no "Duplicated timeseries" error, and each /metrics is its own.
    first, second = CollectorRegistry(), CollectorRegistry()
    make_kafka_router(DemoSettings(), registry=first)
    make_kafka_router(DemoSettings(), registry=second)

    text = (await _get(_health_app(engine, None, first), "/metrics")).text

    assert "faststream_received_messages_total" in text
    assert "tthc_consumer_stalls_total" in text


# ---- logging, encoding ------------------------------------------------------------------------


def test_logs_keep_only_whitelisted_fields() -> None:
    record = logging.LogRecord("tthc.x", logging.INFO, __file__, 1, "handled", None, None)
    event = {"event_id": "e-1", "type": "dossier.received", "dossier_id": "D-1",
             "data": {"applicant": {"name": "Lê Văn Tư"}}}
    for key, value in {**event_log_fields(event), "applicant": "Lê Văn Tư", "data": event["data"]}.items():
        setattr(record, key, value)

    line = json.loads(JsonFormatter("demo").format(record))

    assert line["event_id"] == "e-1" and line["type"] == "dossier.received" and line["dossier_id"] == "D-1"
    assert "Lê Văn Tư" not in json.dumps(line, ensure_ascii=False)
    assert line["service"] == "demo" and line["msg"] == "handled"


def test_encoded_events_are_compact_utf8_in_nfc() -> None:
    nfd = "Nguye\u0302\u0303n"  # 'Nguyễn' decomposed
    # A lone combining mark opening a string stays as it is: it has nothing to compose with.
    encoded = encode_event({"data": {nfd: [nfd, "\u0301x"]}, "dossier_id": "D"})

    assert encoded == '{"data":{"Nguyễn":["Nguyễn","\u0301x"]},"dossier_id":"D"}'.encode()


def test_an_encoded_event_is_the_compact_json_of_its_json_dump() -> None:
    events = [parse_dossier_event(raw) for example in examples() for raw in example.events()]
    assert events

    for event in events:
        expected = json.dumps(event.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":"))
        assert encode_event(event) == expected.encode(), event.event_id

"""Intake and the shared plumbing (dead-letter middleware, outbox relay) against a REAL Kafka broker.

Fixtures `kafka_bootstrap` (session: "host:port") and `topic_prefix` (unique per test) come from
tests/conftest.py; every topic and consumer group of a test carries the prefix.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from tthc_common.broker import KafkaMessage, consumer_options, make_kafka_router
from tthc_common.db import make_engine, session_scope
from tthc_common.dead_letter import HEADER_ERROR, HEADER_OFFSET, HEADER_REASON, PermanentError
from tthc_common.outbox import OutboxMessage, OutboxRelay, add_to_outbox
from tthc_common.service import build_service_app
from tthc_common.settings import ServiceSettings, service_settings_config
from tthc_intake.app import create_app
from tthc_intake.auth import hash_key
from tthc_intake.config import IntakeSettings

SOURCE = "motcua-lang-son"
KEY = "integration-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


class ToySettings(ServiceSettings):
    model_config = service_settings_config("TOY_")
    service_name: ClassVar[str] = "toy"


async def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.05)


async def read_topic(bootstrap: str, topic: str, want: int, timeout: float = 30.0) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(timeout):
            while len(records) < want:
                for part in (await consumer.getmany(timeout_ms=300)).values():
                    records.extend(part)
        # and nothing more arrives shortly after
        for part in (await consumer.getmany(timeout_ms=1000)).values():
            records.extend(part)
    finally:
        await consumer.stop()
    return records


async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with (app.router.lifespan_context(app),
                httpx.AsyncClient(transport=transport, base_url="http://svc") as client):
        yield client


def event(dossier_id: str, event_type: str = "dossier.resolved") -> dict[str, Any]:
    data: dict[str, Any] = {"result": "approved"} if event_type == "dossier.resolved" else {"channel": "online"}
    return {"event_id": str(uuid.uuid4()), "type": event_type, "schema_version": 1,
            "occurred_at": "2026-02-20T15:00:00+07:00", "source": SOURCE, "dossier_id": dossier_id,
            "data": data}


# ---- intake -----------------------------------------------------------------------------------


async def test_intake_publishes_acknowledged_events_keyed_by_dossier_and_drops_duplicates(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = IntakeSettings(kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix,
                              database_url=f"sqlite:///{tmp_path}/intake.db",
                              source_keys={SOURCE: hash_key(KEY)})
    batch = [event("D-1", "dossier.submitted"), event("D-2"), event("D-1")]
    later = event("D-3")

    async for client in serving(create_app(settings)):
        assert (await client.get("/readyz")).status_code == 200

        first = await client.post("/v1/events", json=batch, headers=AUTH)
        again = await client.post("/v1/events", json=[batch[1], later], headers=AUTH)

        assert first.status_code == 202 and first.json() == {"accepted": 3, "duplicates": 0}
        assert again.status_code == 202 and again.json() == {"accepted": 1, "duplicates": 1}
        metrics = (await client.get("/metrics")).text
        assert 'faststream_published_messages_total' in metrics

    records = await read_topic(kafka_bootstrap, settings.topics.dossier_events, want=4)
    assert len(records) == 4  # the duplicate was not published again
    by_id = {json.loads(r.value)["event_id"]: r for r in records}
    # Four partitions: read order across dossiers is not send order, so compare sets.
    assert set(by_id) == {e["event_id"] for e in [*batch, later]}
    d1 = [r for r in records if r.key == b"D-1"]
    assert [json.loads(r.value)["event_id"] for r in d1] == [batch[0]["event_id"], batch[2]["event_id"]]
    assert len({r.partition for r in d1}) == 1  # one dossier, one partition, in order


async def test_intake_refuses_an_invalid_batch_without_publishing(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = IntakeSettings(kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix,
                              database_url=f"sqlite:///{tmp_path}/intake.db",
                              source_keys={SOURCE: hash_key(KEY)})
    bad = event("D-2")
    bad["occurred_at"] = "2026-02-20T15:00:00"

    async for client in serving(create_app(settings)):
        refused = await client.post("/v1/events", json=[event("D-1"), bad], headers=AUTH)
        marker = await client.post("/v1/events", json=event("D-9"), headers=AUTH)

    assert refused.status_code == 422
    assert refused.json()["errors"][0]["index"] == 1
    assert marker.status_code == 202
    records = await read_topic(kafka_bootstrap, settings.topics.dossier_events, want=1)
    assert [r.key for r in records] == [b"D-9"]


# ---- dead-letter middleware on a real consumer group ------------------------------------------


async def test_poison_is_dead_lettered_committed_and_the_consumer_goes_on(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = ToySettings(kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix,
                           retry_delay_s=0.1)
    topic = f"{topic_prefix}toy-in"
    handled: list[int] = []
    failures = {"flaky": 0}

    def make_router() -> Any:
        router = make_kafka_router(settings, registry=CollectorRegistry())

        @router.subscriber(topic, **consumer_options(settings))
        async def handle(msg: KafkaMessage) -> None:
            body = json.loads(msg.body)
            if body.get("poison"):
                raise PermanentError("poison")
            if body.get("flaky") and failures["flaky"] < 2:
                failures["flaky"] += 1
                raise ConnectionError("database went away")  # passing: nack, read again
            handled.append(body["n"])

        return router

    router = make_router()
    async with router.lifespan_context(FastAPI()):
        broker = router.broker
        for body in ({"n": 1, "poison": True}, {"n": 2, "flaky": True}, {"n": 3}):
            await broker.publish(json.dumps(body).encode(), topic, key=b"same-dossier")
        await eventually(lambda: handled == [2, 3])
    assert failures["flaky"] == 2  # read three times, processed once

    dead = await read_topic(kafka_bootstrap, settings.topics.dead_letter, want=1)
    assert len(dead) == 1
    headers = {k: v.decode() for k, v in dead[0].headers}
    assert dead[0].value == b'{"n": 1, "poison": true}'
    assert dead[0].key == b"same-dossier"
    assert headers[HEADER_REASON] == "poison" and headers[HEADER_ERROR] == "PermanentError"
    assert headers[HEADER_OFFSET] == "0"

    # A restarted member of the group resumes after the last commit: nothing is read twice.
    handled.clear()
    router = make_router()
    async with router.lifespan_context(FastAPI()):
        await router.broker.publish(json.dumps({"n": 4}).encode(), topic, key=b"same-dossier")
        await eventually(lambda: handled == [4])
        await asyncio.sleep(1.0)
    assert handled == [4]


# ---- outbox relay inside a service app ---------------------------------------------------------


async def test_the_outbox_relay_of_a_service_publishes_committed_rows(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = ToySettings(kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix,
                           database_url=f"sqlite:///{tmp_path}/toy.db", outbox_poll_interval_s=0.1)
    engine = make_engine(settings.database_url)
    OutboxMessage.metadata.create_all(engine, tables=[OutboxMessage.__table__])
    registry = CollectorRegistry()
    router = make_kafka_router(settings, registry=registry)
    relay = OutboxRelay(engine, router.broker, name="toy", poll_interval_s=settings.outbox_poll_interval_s)
    app = build_service_app(settings, title="toy", router=router, engine=engine, registry=registry,
                            migrations_dir=None, relay=relay)
    topic = settings.topics.deadline_events

    async for client in serving(app):
        assert (await client.get("/readyz")).json()["checks"] == {"kafka": "ok", "database": "ok"}
        with session_scope(engine) as session:
            for n in range(3):
                add_to_outbox(session, topic, {"event_id": f"e-{n}", "dossier_id": "D-1", "n": n})
        relay.wake()
        records = await read_topic(kafka_bootstrap, topic, want=3)

    assert [json.loads(r.value)["n"] for r in records] == [0, 1, 2]
    with session_scope(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(OutboxMessage)) == 0


@pytest.fixture(autouse=True)
def _quiet_logs(monkeypatch: Any) -> None:
    monkeypatch.setenv("TOY_LOG_LEVEL", "WARNING")

"""Intake and the shared plumbing (dead-letter middleware, outbox relay) against a REAL Kafka broker.

Fixtures `kafka_bootstrap` (session: "host:port") and `topic_prefix` (unique per test) come from
tests/conftest.py; every topic and consumer group of a test carries the prefix. The test of intake with
Kafka down starts a broker of its own (deploy/local/kafka.sh) and stops it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from tthc_common.batches import Received, make_runners
from tthc_common.broker import KafkaMessage, batch_options, make_kafka_router
from tthc_common.db import make_engine, session_scope
from tthc_common.dead_letter import HEADER_ERROR, HEADER_OFFSET, HEADER_REASON, PermanentError
from tthc_common.outbox import OutboxMessage, OutboxRelay, add_to_outbox
from tthc_common.service import build_service_app
from tthc_common.keys import hash_key
from tthc_common.settings import ServiceSettings, service_settings_config
from tthc_intake.app import create_app
from tthc_intake.config import IntakeSettings

from tests.support import events
from tests.support.events import event
from tests.support.infra import free_ports

SOURCE = events.SOURCE  # the factory's events are of this source, bound to KEY
KEY = "integration-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
ROOT = Path(__file__).resolve().parents[2]


class ToySettings(ServiceSettings):
    model_config = service_settings_config("TOY_")
    service_name: ClassVar[str] = "toy"


async def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.05)


async def read_topic(bootstrap: str, topic: str, want: int, timeout: float = 30.0,
                     isolation_level: str = "read_committed") -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None, isolation_level=isolation_level)
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


# Events from tests/support/events.py, all at one instant: Fri 20/02/2026 15:00.
WHEN = "2026-02-20T15:00"
resolved = partial(events.resolved, when=WHEN)


def submitted(dossier_id: str) -> dict[str, Any]:
    return event("dossier.submitted", WHEN, {"channel": "online"}, dossier_id)


# ---- intake ----------------------------------------------------------------------------------------


def intake_settings(bootstrap: str, prefix: str, tmp_path: Path, **overrides: Any) -> IntakeSettings:
    return IntakeSettings(kafka_bootstrap_servers=bootstrap, topic_prefix=prefix,
                          database_url=f"sqlite:///{tmp_path}/intake.db", source_keys=f"{SOURCE}={hash_key(KEY)}",
                          **overrides)


async def test_intake_publishes_acknowledged_events_keyed_by_dossier_and_drops_duplicates(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = intake_settings(kafka_bootstrap, topic_prefix, tmp_path)
    batch = [submitted("D-1"), resolved("D-2"), resolved("D-1")]
    later = resolved("D-3")

    async for client in serving(create_app(settings)):
        assert (await client.get("/readyz")).status_code == 200

        first = await client.post("/v1/events", json=batch, headers=AUTH)
        again = await client.post("/v1/events", json=[batch[1], later], headers=AUTH)

        assert first.status_code == 202 and first.json() == {"accepted": 3, "duplicates": 0}
        assert again.status_code == 202 and again.json() == {"accepted": 1, "duplicates": 1}
        assert "tthc_intake_kafka_reachable 1.0" in (await client.get("/metrics")).text

    records = await read_topic(kafka_bootstrap, settings.topics.dossier_events, want=4)
    assert len(records) == 4  # the duplicate was not published again
    by_id = {json.loads(r.value)["event_id"]: r for r in records}
    # Four partitions: read order across dossiers is not send order, so compare sets.
    assert set(by_id) == {e["event_id"] for e in [*batch, later]}
    d1 = [r for r in records if r.key == b"D-1"]
    assert [json.loads(r.value)["event_id"] for r in d1] == [batch[0]["event_id"], batch[2]["event_id"]]
    assert len({r.partition for r in d1}) == 1  # one dossier, one partition, in order
    assert dict(d1[0].headers)["content-type"] == b"application/json"


async def test_intake_refuses_an_invalid_batch_without_publishing(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = intake_settings(kafka_bootstrap, topic_prefix, tmp_path)
    bad = resolved("D-2")
    bad["occurred_at"] = "2026-02-20T15:00:00"

    async for client in serving(create_app(settings)):
        refused = await client.post("/v1/events", json=[resolved("D-1"), bad], headers=AUTH)
        marker = await client.post("/v1/events", json=resolved("D-9"), headers=AUTH)

    assert refused.status_code == 422
    assert refused.json()["errors"][0]["index"] == 1
    assert marker.status_code == 202
    records = await read_topic(kafka_bootstrap, settings.topics.dossier_events, want=1)
    assert [r.key for r in records] == [b"D-9"]


def keys_on_two_partitions(partitions: int) -> tuple[str, str]:
    """Two dossier ids that Kafka's default partitioner puts on different partitions."""
    partitioner = DefaultPartitioner()
    first = "D-A"
    spot = partitioner(first.encode(), list(range(partitions)), list(range(partitions)))
    other = next(f"D-{n}" for n in range(100) if partitioner(f"D-{n}".encode(), list(range(partitions)),
                                                              list(range(partitions))) != spot)
    return first, other


async def test_a_batch_whose_fourth_event_the_broker_refuses_leaves_nothing_readable(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """All or nothing on a real broker: the topic takes records of at most 2,000 bytes, the 4th event of five
    is 3 KB (within intake's own 64 KiB bound, so Kafka is the one refusing). The other events are written
    (on another partition) and then aborted: a read_committed consumer sees none of them."""
    settings = intake_settings(kafka_bootstrap, topic_prefix, tmp_path)
    topic = settings.topics.dossier_events
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 4, 1, topic_configs={"max.message.bytes": "2000"})])
    finally:
        await admin.close()
    same, other = keys_on_two_partitions(4)
    batch = [submitted(same), resolved(same), resolved(same), resolved(other), resolved(same)]
    batch[3]["data"]["note"] = "x" * 1000
    batch[3]["data"]["more"] = "y" * 1000
    batch[3]["data"]["still_more"] = "z" * 1000
    marker = resolved(same)

    async for client in serving(create_app(settings)):
        refused = await client.post("/v1/events", json=batch, headers=AUTH)
        accepted = await client.post("/v1/events", json=marker, headers=AUTH)
        again = await client.post("/v1/events", json=batch[0], headers=AUTH)

    assert refused.status_code == 413, refused.text
    assert refused.json() == {"errors": [
        {"index": 3, "reason": "the broker refused the event as too large for the topic"}]}
    assert accepted.status_code == 202
    assert again.json() == {"accepted": 1, "duplicates": 0}  # the refused batch was not recorded either
    committed = await read_topic(kafka_bootstrap, topic, want=2, isolation_level="read_committed")
    assert [json.loads(r.value)["event_id"] for r in committed] == [marker["event_id"], batch[0]["event_id"]]
    # The refused batch's other events did reach the log, aborted: only a read_uncommitted reader sees them.
    everything = await read_topic(kafka_bootstrap, topic, want=6, isolation_level="read_uncommitted")
    aborted = {e["event_id"] for e in (batch[0], batch[1], batch[2], batch[4])}
    assert aborted <= {json.loads(r.value)["event_id"] for r in everything}


class ThrowawayKafka:
    """A broker of one test's own (deploy/local/kafka.sh), to be stopped under intake's feet."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_ports(1)[0]
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, "KAFKA_PORT": str(self.port), "KAFKA_DATA_DIR": str(data_dir),
                    "KAFKA_HEAP_OPTS": "-Xmx256m -Xms64m"}

    def _run(self, command: str) -> None:
        done = subprocess.run([str(ROOT / "deploy/local/kafka.sh"), command], env=self.env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]

    def start(self) -> None:
        self._run("start")

    def stop(self) -> None:
        self._run("stop")


@contextmanager
def throwaway_kafka(tmp_path: Path) -> Iterator[ThrowawayKafka]:
    kafka = ThrowawayKafka(tmp_path / "kafka")
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop()


async def test_with_kafka_down_intake_answers_503_within_a_second_and_recovers(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    with throwaway_kafka(tmp_path) as kafka:
        settings = intake_settings(kafka.bootstrap, topic_prefix, tmp_path, kafka_publish_timeout_s=10.0)
        async for client in serving(create_app(settings)):
            assert (await client.post("/v1/events", json=resolved("D-1"), headers=AUTH)).status_code == 202

            await asyncio.to_thread(kafka.stop)
            async with asyncio.timeout(30):  # the watch notices (the gauge says so)
                while "tthc_intake_kafka_reachable 0.0" not in (await client.get("/metrics")).text:
                    await asyncio.sleep(0.2)
            timings = []
            for n in range(3):
                t0 = time.monotonic()
                down = await client.post("/v1/events", json=resolved(f"D-{n + 2}"), headers=AUTH)
                timings.append(time.monotonic() - t0)
                assert down.status_code == 503, down.text
                assert down.headers["retry-after"] == "5"
                assert "retry later" in down.json()["errors"][0]["reason"]
            print("503 answered in", [f"{t:.3f}" for t in timings])
            assert max(timings) < 1.0, timings
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["kafka"] == "unavailable"

            await asyncio.to_thread(kafka.start)
            back = None
            async with asyncio.timeout(60):
                while back is None or back.status_code != 202:
                    await asyncio.sleep(0.5)
                    back = await client.post("/v1/events", json=resolved("D-9"), headers=AUTH)
            assert (await client.get("/readyz")).status_code == 200
        records = await read_topic(kafka.bootstrap, settings.topics.dossier_events, want=1)
        assert [r.key for r in records] == [b"D-9"]  # a new broker (kafka.sh starts empty): only what came after


# ---- batch consumption on a real consumer group (tthc_common.batches) --------------------------------


async def test_a_poison_message_is_set_aside_committed_and_the_consumer_goes_on(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = ToySettings(kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix, retry_delay_s=0.1,
                           poison_backoff_s=0, database_url=f"sqlite:///{tmp_path}/toy.db")
    topic = f"{topic_prefix}toy-in"
    handled: list[int] = []
    failures = {"database": 0}
    engine = make_engine(settings.database_url)

    def parse(record: Any) -> int:
        body = json.loads(record.value)
        if body.get("poison"):
            raise PermanentError("poison")
        return int(body["n"])

    def unit(session: Any, items: list[Received[int]]) -> None:
        numbers = [i.event for i in items]
        if 2 in numbers and failures["database"] < 2:
            failures["database"] += 1
            raise sa.exc.OperationalError("SELECT 1", {}, ConnectionError("database went away"))
        handled.extend(numbers)

    def make_router() -> Any:
        registry = CollectorRegistry()
        router = make_kafka_router(settings, registry=registry)
        runner = make_runners(settings, engine=engine, broker=router.broker, registry=registry)(
            "toy.orders", parse=parse, unit=unit)

        @router.subscriber(topic, **batch_options(settings))
        async def handle(payload: Any, msg: KafkaMessage) -> None:
            await runner.run(msg.raw_message)

        return router

    router = make_router()
    async with router.lifespan_context(FastAPI()):
        broker = router.broker
        for body in ({"n": 1, "poison": True}, {"n": 2}, {"n": 3}):
            await broker.publish(json.dumps(body).encode(), topic, key=b"same-dossier")
        await eventually(lambda: sorted(set(handled)) == [2, 3])
    assert failures["database"] == 2  # the database away: read again until it answers, never skipped

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
    engine.dispose()


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

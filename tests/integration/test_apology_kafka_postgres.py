"""The apology service for real: `python -m tthc_apology` as its own process (one or two replicas), a REAL
Kafka broker and a REAL PostgreSQL database (fixtures from tests/conftest.py: kafka_bootstrap,
postgres_url, pg_database_url, topic_prefix, free_port). Events go in with a plain Kafka producer, results
are read over HTTP, from the database and from the apology-events topic.
"""

from __future__ import annotations

import asyncio
import io
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import docx
import httpx
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import BaseModel
from tthc_apology.consumers import DEADLINE_GROUP_SUFFIX
from tthc_common.db import make_engine
from tthc_common.keys import hash_key
from tthc_contracts import VN_TZ
from tthc_contracts.events import Agency
from tthc_contracts.timefmt import now_vn
from tthc_contracts.topics import Topics
from tthc_core.apology import apology_id_for
from tthc_core.calendar import CalendarBook

from tests.support import events
from tests.support.events import CRIMINAL_RECORD, at_risk, closed, extended, overdue, scheduled
from tests.support.infra import create_topics, free_ports, fresh_databases, read_until_quiet, service_env

AGENCY = Agency(code="000.00.12.H10", name="Sở Tư pháp tỉnh Lạng Sơn")
KEY = "integration-officer-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
APPLICANT = "Hộ kinh doanh Bánh & Trà <Mẫu Sơn>"
DUE = datetime(2026, 3, 10, 17, 0, tzinfo=VN_TZ)


def appointment(days_ahead: int = 14, hour: int = 10) -> str:
    """A new appointment the service accepts: a working day ahead, inside office hours."""
    calendar = CalendarBook().for_agency(AGENCY.code)
    day = calendar.next_working_day((now_vn() + timedelta(days=days_ahead)).date())
    return datetime(day.year, day.month, day.day, hour, tzinfo=VN_TZ).isoformat()


# ---- events as intake and the deadline service publish them ------------------------------------------
# From tests/support/events.py. A dossier's receipt and extension have stable ids: sent twice, they are
# one event redelivered.

def stable_id(kind: str, dossier_id: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{kind}/{dossier_id}"))


def received(dossier_id: str) -> dict[str, Any]:
    return events.received(dossier_id, "2026-03-03T09:00", 5, procedure=CRIMINAL_RECORD, agency=AGENCY,
                           channel="online", applicant=APPLICANT, event_id=stable_id("received", dossier_id))


def many_dossiers(n: int) -> tuple[list[dict[str, Any]], list[Any]]:
    """(dossier events, deadline events) of `n` dossiers, each in its own order, with every rule at work:
    at-risk then closed on time (cancelled), overdue without an at-risk moment, a moved due date, a late
    close, an extension recorded by the one-stop software, redeliveries."""
    dossier_events, deadline_events = [], []
    for i in range(n):
        d = f"D-R{i:03d}"
        due = DUE + timedelta(days=i % 9)
        dossier_events.append(received(d))
        case = i % 6
        if case == 0:
            deadline_events += [at_risk(d, due), closed(d, "on_time", due - timedelta(hours=3), due)]
        elif case == 1:
            deadline_events += [overdue(d, due), overdue(d, due)]
        elif case == 2:
            later = due + timedelta(days=7)
            moved = scheduled(d, later, due - timedelta(hours=20))
            deadline_events += [at_risk(d, due), moved, at_risk(d, later)]
        elif case == 3:
            deadline_events += [at_risk(d, due), overdue(d, due),
                                closed(d, "late", due + timedelta(days=2), due, late_by_hours=2.0)]
        elif case == 4:
            deadline_events += [at_risk(d, due)]
            at = due - timedelta(hours=2)
            dossier_events.append(extended(d, at, new_due_at=at + timedelta(days=7),
                                           event_id=stable_id("extended", d)))
        else:
            deadline_events += [closed(d, "late", due + timedelta(days=1), due, late_by_hours=2.0)]
        if i % 10 == 0:
            dossier_events.append(received(d))  # the same receipt once more
    return dossier_events, deadline_events


# ---- Kafka helpers ---------------------------------------------------------------------------------


async def produce(bootstrap: str, topic: str, events: list[Any], key: str = "") -> None:
    """Dicts and typed events as JSON, bytes as they are."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for event in events:
            if isinstance(event, BaseModel):
                event = event.model_dump(mode="json")
            value = event if isinstance(event, bytes) else json.dumps(event, ensure_ascii=False).encode()
            k = key or (event["dossier_id"] if isinstance(event, dict) else "x")
            await producer.send(topic, value, key=k.encode())
        await producer.flush()
    finally:
        await producer.stop()


def events_of(records: list[Any], type_: str) -> list[dict[str, Any]]:
    return [e for e in (json.loads(r.value) for r in records) if e["type"] == type_]


async def caught_up(bootstrap: str, group: str, topic: str) -> bool:
    """True when `group` has committed the end offset of every partition of `topic`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        (described,) = await admin.describe_topics([topic])
        partitions = [TopicPartition(topic, p["partition"]) for p in described.get("partitions", ())]
        if not partitions:
            return False  # not created yet
        ends = await consumer.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(group)
        return all(end == 0 or (tp in committed and committed[tp].offset >= end) for tp, end in ends.items())
    finally:
        await consumer.stop()
        await admin.close()


async def eventually(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    async with asyncio.timeout(timeout):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.25)


# ---- the service as a process -----------------------------------------------------------------------

@asynccontextmanager
async def apology_process(*, bootstrap: str, database_url: str, prefix: str, group: str, port: int,
                          workdir: Path, name: str = "apology", **env_extra: str) -> AsyncIterator[httpx.AsyncClient]:
    env = service_env("apology", {
        "database_url": database_url, "consumer_group": group, "http_port": str(port),
        "documents_dir": str(workdir / "documents"), "officer_keys": f"{AGENCY.code}={hash_key(KEY)}",
        "log_format": "text", "outbox_poll_interval_s": "0.2", "poison_backoff_s": "0.05",
    }, KAFKA_BOOTSTRAP_SERVERS=bootstrap, TTHC_TOPIC_PREFIX=prefix) | env_extra
    log_path = workdir / f"{name}-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tthc_apology"], env=env, cwd=workdir, stdout=log,
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            async def ready() -> bool:
                if proc.poll() is not None:
                    raise AssertionError(f"the service exited {proc.returncode}:\n{log_path.read_text()[-3000:]}")
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, timeout=90, what="readiness")
            yield client
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def list_items(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    response = await client.get("/v1/apologies", params={"page_size": "500", **params}, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def rows_in(database_url: str, query: str) -> list[Any]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text(query)))
    finally:
        engine.dispose()


# ---- tests -------------------------------------------------------------------------------------------

async def test_a_poison_message_in_a_batch_is_dead_lettered_and_the_rest_becomes_a_letter_issued_once(
        kafka_bootstrap: str, pg_database_url: str, topic_prefix: str, free_port: int, tmp_path: Path) -> None:
    topics = Topics(topic_prefix)
    await create_topics(kafka_bootstrap, [topics.dossier_events, topics.deadline_events])
    # In Kafka before the service starts: read as one batch, the poison messages among the good ones.
    await produce(kafka_bootstrap, topics.dossier_events, [received("D-1"), received("D-2")])
    d1, d2 = overdue("D-1", DUE), overdue("D-2", DUE)
    not_an_event = json.dumps({**d1.model_dump(mode="json"), "data": {"due_at": "tomorrow"}}).encode()
    await produce(kafka_bootstrap, topics.deadline_events, [b"{poison", d1, not_an_event, d2, d1], key="D-1")
    async with apology_process(bootstrap=kafka_bootstrap, database_url=pg_database_url, prefix=topic_prefix,
                               group=f"{topic_prefix}apology", port=free_port, workdir=tmp_path) as client:
        async def drafted_and_ready() -> list[dict[str, Any]]:
            items = await list_items(client)
            return items if len(items) == 2 and all(i["letter_ready"] for i in items) else []

        items = await eventually(drafted_and_ready, what="the drafts")
        apology_id = apology_id_for("D-1", "overdue", DUE)
        assert sorted((i["apology_id"], i["kind"], i["status"]) for i in items) == sorted(
            [(apology_id, "overdue", "draft"), (apology_id_for("D-2", "overdue", DUE), "overdue", "draft")])

        document = await client.get(f"/v1/apologies/{apology_id}.docx", headers=AUTH)
        assert document.status_code == 200
        text = "\n".join(p.text for p in docx.Document(io.BytesIO(document.content)).paragraphs)
        assert APPLICANT in text

        issued = await client.post(f"/v1/apologies/{apology_id}/issue", headers=AUTH,
                                   json={"reason": "Chờ xác minh", "new_due_at": appointment()})
        assert issued.status_code == 200 and issued.json()["number"] == "01/PXL"
        again = await client.post(f"/v1/apologies/{apology_id}/issue", headers=AUTH,
                                  json={"reason": "Lần hai", "new_due_at": appointment(15)})
        assert again.status_code == 409 and again.json()["errors"][0]["reason"].startswith("already issued")

        async def published() -> list[Any]:
            records = await read_until_quiet(kafka_bootstrap, topics.apology_events, settle_s=1.0)
            return records if events_of(records, "apology.issued") else []

        records = await eventually(published, what="apology.issued on Kafka")
        metrics = (await client.get("/metrics")).text

    assert sorted(e["data"]["apology_id"] for e in events_of(records, "apology.drafted")) == sorted(
        [apology_id, apology_id_for("D-2", "overdue", DUE)])
    assert [(e["data"]["apology_id"], e["data"]["number"]) for e in events_of(records, "apology.issued")] == [
        (apology_id, "01/PXL")]
    assert all(r.key == json.loads(r.value)["dossier_id"].encode() for r in records)
    dead = await read_until_quiet(kafka_bootstrap, topics.dead_letter)
    assert sorted(r.value for r in dead) == sorted([b"{poison", not_an_event])
    reasons = {r.value: dict(r.headers)["x-dead-letter-reason"].decode() for r in dead}
    assert "not valid JSON" in reasons[b"{poison"] and "due_at" in reasons[not_an_event]
    assert 'tthc_consumer_batch_records_count{consumer="apology.deadline-events"}' in metrics


async def test_a_restart_and_a_replay_with_a_new_consumer_group_still_leave_one_draft(
        kafka_bootstrap: str, pg_database_url: str, topic_prefix: str, free_port: int, tmp_path: Path) -> None:
    topics = Topics(topic_prefix)
    inputs = {topics.dossier_events: [received("D-2")], topics.deadline_events: [overdue("D-2", DUE)] * 2}
    first_group, second_group = f"{topic_prefix}apology", f"{topic_prefix}apology-replay"

    async with apology_process(bootstrap=kafka_bootstrap, database_url=pg_database_url, prefix=topic_prefix,
                               group=first_group, port=free_port, workdir=tmp_path) as client:
        for topic, events in inputs.items():
            await produce(kafka_bootstrap, topic, events)
        await eventually(lambda: list_items(client), what="the draft")

    # Restart with a new consumer group (it reads both topics from the beginning) and deliver the same
    # messages once more on top.
    for topic, events in inputs.items():
        await produce(kafka_bootstrap, topic, events)
    async with apology_process(bootstrap=kafka_bootstrap, database_url=pg_database_url, prefix=topic_prefix,
                               group=second_group, port=free_port, workdir=tmp_path) as client:
        async def replayed() -> bool:
            return (await caught_up(kafka_bootstrap, second_group, topics.dossier_events)
                    and await caught_up(kafka_bootstrap, second_group + DEADLINE_GROUP_SUFFIX,
                                        topics.deadline_events))

        await eventually(replayed, timeout=90, what="the new group reading everything")
        items = await list_items(client)

    assert [(i["dossier_id"], i["kind"], i["status"]) for i in items] == [("D-2", "overdue", "draft")]
    assert rows_in(pg_database_url, "SELECT count(*) FROM apologies")[0][0] == 1
    assert rows_in(pg_database_url, "SELECT count(*) FROM outbox")[0][0] == 0
    records = await read_until_quiet(kafka_bootstrap, topics.apology_events)
    assert len(events_of(records, "apology.drafted")) == 1
    assert len(records) == 1


async def test_concurrent_issuing_on_postgresql_never_repeats_a_number(
        kafka_bootstrap: str, pg_database_url: str, topic_prefix: str, free_port: int, tmp_path: Path) -> None:
    topics = Topics(topic_prefix)
    dossiers = [f"D-3{n:02d}" for n in range(15)]
    async with apology_process(bootstrap=kafka_bootstrap, database_url=pg_database_url, prefix=topic_prefix,
                               group=f"{topic_prefix}apology", port=free_port, workdir=tmp_path) as client:
        await produce(kafka_bootstrap, topics.deadline_events, [overdue(d, DUE) for d in dossiers])

        async def all_drafted() -> bool:
            return len(await list_items(client)) == len(dossiers)

        await eventually(all_drafted, what="15 drafts")
        ids = [apology_id_for(d, "overdue", DUE) for d in dossiers]
        body = {"reason": "Quá tải hồ sơ", "new_due_at": appointment()}
        responses = await asyncio.gather(*(client.post(f"/v1/apologies/{i}/issue", json=body, headers=AUTH)
                                           for i in ids + ids[:5]))

    assert sorted(r.status_code for r in responses) == [200] * 15 + [409] * 5
    numbers = sorted(r.json()["number"] for r in responses if r.status_code == 200)
    assert numbers == [f"{n:02d}/PXL" for n in range(1, 16)]
    records = await read_until_quiet(kafka_bootstrap, topics.apology_events)
    assert sorted(e["data"]["number"] for e in events_of(records, "apology.issued")) == numbers


LETTERS = ("SELECT apology_id, dossier_id, kind, status, agency_code, due_at, proposed_due_at, drafted_at, "
           "cancel_reason, cancelled_at FROM apologies ORDER BY apology_id")


async def test_two_replicas_on_four_partitions_draft_exactly_what_one_replica_drafts(
        kafka_bootstrap: str, postgres_url: str, tmp_path: Path) -> None:
    dossier_events, deadline_events = many_dossiers(120)
    runs: dict[str, Any] = {}
    with fresh_databases(postgres_url, ["apology_one", "apology_two"]) as (one_url, two_url):
        for name, url, replicas in (("one", one_url, 1), ("two", two_url, 2)):
            prefix = f"t-{uuid.uuid4().hex[:8]}."
            topics, group = Topics(prefix), f"{prefix}apology"
            await create_topics(kafka_bootstrap, [topics.dossier_events, topics.deadline_events])
            ports = free_ports(replicas)
            async with AsyncExitStack() as stack:
                clients = [await stack.enter_async_context(apology_process(
                    bootstrap=kafka_bootstrap, database_url=url, prefix=prefix, group=group, port=port,
                    workdir=tmp_path, name=f"{name}-{n}", APOLOGY_BATCH_MAX_RECORDS="40"))
                    for n, port in enumerate(ports)]
                await asyncio.sleep(3)  # both replicas in the group before the events come
                await produce(kafka_bootstrap, topics.dossier_events, dossier_events)
                await produce(kafka_bootstrap, topics.deadline_events, deadline_events)

                async def done(url: str = url, topics: Topics = topics, group: str = group) -> bool:
                    return (await caught_up(kafka_bootstrap, group, topics.dossier_events)
                            and await caught_up(kafka_bootstrap, group + DEADLINE_GROUP_SUFFIX,
                                                topics.deadline_events)
                            and rows_in(url, "SELECT count(*) FROM outbox")[0][0] == 0)

                await eventually(done, timeout=120, what=f"{name} replica(s) caught up")
                metrics = [(await c.get("/metrics")).text for c in clients]
            records = await read_until_quiet(kafka_bootstrap, topics.apology_events)
            per_dossier: dict[str, list[str]] = {}
            for r in records:  # one dossier's events stay in order on its partition
                per_dossier.setdefault(r.key.decode(), []).append(r.value.decode())
            runs[name] = (rows_in(url, LETTERS), per_dossier, metrics)

    (letters_one, published_one, _), (letters_two, published_two, metrics_two) = runs["one"], runs["two"]
    assert letters_two == letters_one
    assert published_two == published_one
    statuses = {(row[2], row[3]) for row in letters_one}
    assert {("at_risk", "cancelled"), ("overdue", "draft"), ("at_risk", "draft"), ("late_result", "draft")} <= statuses
    # Both replicas of the second run consumed deadline events (the four partitions were shared).
    for text in metrics_two:
        assert 'tthc_consumer_batch_records_count{consumer="apology.deadline-events"}' in text
        count = next(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                     if line.startswith('tthc_consumer_batch_records_sum{consumer="apology.deadline-events"}'))
        assert count > 0

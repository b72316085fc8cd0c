"""The apology service for real: `python -m tthc_apology` as its own process, a REAL Kafka broker and a
REAL PostgreSQL database (fixtures from tests/conftest.py: kafka_bootstrap, pg_database_url,
topic_prefix, free_port). Events go in with a plain Kafka producer, results are read over HTTP and from
the apology-events topic.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import docx
import httpx
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tthc_common.keys import hash_key
from tthc_common.db import make_engine
from tthc_contracts import VN_TZ, derived_id
from tthc_contracts.topics import Topics
from tthc_contracts.derived import DeadlineOverdue, OverdueData
from tthc_contracts.events import Agency, Duration
from tthc_core.apology import apology_id_for

AGENCY = Agency(code="000.00.12.H10", name="Sở Tư pháp tỉnh Lạng Sơn")
KEY = "integration-officer-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
APPLICANT = "Hộ kinh doanh Bánh & Trà <Mẫu Sơn>"
DUE = datetime(2026, 3, 10, 17, 0, tzinfo=VN_TZ)
DEADLINE_GROUP_SUFFIX = ".deadline-events"


def received(dossier_id: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"received/{dossier_id}")), "type": "dossier.received",
        "schema_version": 1, "occurred_at": "2026-03-03T09:00:00+07:00", "source": "motcua-lang-son",
        "dossier_id": dossier_id,
        "data": {
            "procedure": {"code": "1.001234", "name": "Cấp Phiếu lý lịch tư pháp", "field_code": "G13-TP01",
                          "field_name": "Lý lịch tư pháp"},
            "receiving_agency": AGENCY.model_dump(), "channel": "online",
            "duration": {"value": 5, "unit": "working_days"},
            "applicant": {"kind": "citizen", "name": APPLICANT},
        },
    }


def overdue(dossier_id: str) -> dict[str, Any]:
    event = DeadlineOverdue(event_id=derived_id("deadline.overdue", dossier_id, DUE), occurred_at=DUE,
                            source="tthc-deadline", dossier_id=dossier_id,
                            data=OverdueData(due_at=DUE, handling_agency=AGENCY,
                                             duration=Duration(value=5, unit="working_days")))
    return event.model_dump(mode="json")


# ---- Kafka helpers ---------------------------------------------------------------------------------

async def produce(bootstrap: str, topic: str, events: list[dict[str, Any]] | list[bytes], key: str = "") -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for event in events:
            value = event if isinstance(event, bytes) else json.dumps(event, ensure_ascii=False).encode()
            k = key or (event["dossier_id"] if isinstance(event, dict) else "x")
            await producer.send_and_wait(topic, value, key=k.encode())
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str, settle_s: float = 2.0) -> list[Any]:
    """Everything on `topic` now (waiting `settle_s` for stragglers)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    records: list[Any] = []
    try:
        quiet_since = asyncio.get_running_loop().time()
        while asyncio.get_running_loop().time() - quiet_since < settle_s:
            batch = await consumer.getmany(timeout_ms=300)
            for part in batch.values():
                records.extend(part)
                quiet_since = asyncio.get_running_loop().time()
    finally:
        await consumer.stop()
    return records


def events_of(records: list[Any], type_: str) -> list[dict[str, Any]]:
    return [e for e in (json.loads(r.value) for r in records) if e["type"] == type_]


async def caught_up(bootstrap: str, group: str, topic: str) -> bool:
    """True when `group` has committed the end offset of every partition of `topic`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            await consumer.topics()  # refresh metadata once
            partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or ())]
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
                          workdir: Path) -> AsyncIterator[httpx.AsyncClient]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "TTHC_TOPIC_PREFIX": prefix,
        "APOLOGY_DATABASE_URL": database_url,
        "APOLOGY_CONSUMER_GROUP": group,
        "APOLOGY_HTTP_PORT": str(port),
        "APOLOGY_DOCUMENTS_DIR": str(workdir / "documents"),
        "APOLOGY_OFFICER_KEYS": f"{AGENCY.code}={hash_key(KEY)}",
        "APOLOGY_LOG_FORMAT": "text",
        "APOLOGY_OUTBOX_POLL_INTERVAL_S": "0.2",
    }
    log_path = workdir / f"apology-{group}.log"
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
    response = await client.get("/v1/apologies", params=params, headers=AUTH)
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

async def test_receipt_and_overdue_become_a_letter_issued_once(
        kafka_bootstrap: str, pg_database_url: str, topic_prefix: str, free_port: int, tmp_path: Path) -> None:
    topics = Topics(topic_prefix)
    async with apology_process(bootstrap=kafka_bootstrap, database_url=pg_database_url, prefix=topic_prefix,
                               group=f"{topic_prefix}apology", port=free_port, workdir=tmp_path) as client:
        await produce(kafka_bootstrap, topics.dossier_events, [received("D-1")])
        await produce(kafka_bootstrap, topics.deadline_events, [b"{poison", overdue("D-1")], key="D-1")

        async def drafted_and_ready() -> list[dict[str, Any]]:
            items = await list_items(client)
            return items if items and items[0]["letter_ready"] else []

        (item,) = await eventually(drafted_and_ready, what="the draft")
        apology_id = apology_id_for("D-1", "overdue", DUE)
        assert (item["apology_id"], item["kind"], item["status"]) == (apology_id, "overdue", "draft")

        document = await client.get(f"/v1/apologies/{apology_id}.docx", headers=AUTH)
        assert document.status_code == 200
        text = "\n".join(p.text for p in docx.Document(io.BytesIO(document.content)).paragraphs)
        assert APPLICANT in text

        issued = await client.post(f"/v1/apologies/{apology_id}/issue", headers=AUTH,
                                   json={"reason": "Chờ xác minh", "new_due_at": "2026-03-17T17:00:00+07:00"})
        assert issued.status_code == 200 and issued.json()["number"] == "01/PXL"
        again = await client.post(f"/v1/apologies/{apology_id}/issue", headers=AUTH,
                                  json={"reason": "Lần hai", "new_due_at": "2026-03-18T17:00:00+07:00"})
        assert again.status_code == 409

        async def published() -> list[Any]:
            records = await read_topic(kafka_bootstrap, topics.apology_events, settle_s=1.0)
            return records if events_of(records, "apology.issued") else []

        records = await eventually(published, what="apology.issued on Kafka")

    assert [e["data"]["apology_id"] for e in events_of(records, "apology.drafted")] == [apology_id]
    assert [(e["data"]["apology_id"], e["data"]["number"]) for e in events_of(records, "apology.issued")] == [
        (apology_id, "01/PXL")]
    assert all(r.key == b"D-1" for r in records)
    dead = await read_topic(kafka_bootstrap, topics.dead_letter)
    assert [r.value for r in dead] == [b"{poison"]
    assert "not valid JSON" in dict(dead[0].headers)["x-dead-letter-reason"].decode()


async def test_a_restart_and_a_replay_with_a_new_consumer_group_still_leave_one_draft(
        kafka_bootstrap: str, pg_database_url: str, topic_prefix: str, free_port: int, tmp_path: Path) -> None:
    topics = Topics(topic_prefix)
    inputs = {topics.dossier_events: [received("D-2")], topics.deadline_events: [overdue("D-2"), overdue("D-2")]}
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
    records = await read_topic(kafka_bootstrap, topics.apology_events)
    assert len(events_of(records, "apology.drafted")) == 1
    assert len(records) == 1


async def test_concurrent_issuing_on_postgresql_never_repeats_a_number(
        kafka_bootstrap: str, pg_database_url: str, topic_prefix: str, free_port: int, tmp_path: Path) -> None:
    topics = Topics(topic_prefix)
    dossiers = [f"D-3{n:02d}" for n in range(15)]
    async with apology_process(bootstrap=kafka_bootstrap, database_url=pg_database_url, prefix=topic_prefix,
                               group=f"{topic_prefix}apology", port=free_port, workdir=tmp_path) as client:
        await produce(kafka_bootstrap, topics.deadline_events, [overdue(d) for d in dossiers])

        async def all_drafted() -> bool:
            return len(await list_items(client)) == len(dossiers)

        await eventually(all_drafted, what="15 drafts")
        ids = [apology_id_for(d, "overdue", DUE) for d in dossiers]
        body = {"reason": "Quá tải hồ sơ", "new_due_at": (DUE + timedelta(days=3)).isoformat()}
        responses = await asyncio.gather(*(client.post(f"/v1/apologies/{i}/issue", json=body, headers=AUTH)
                                           for i in ids + ids[:5]))

    assert sorted(r.status_code for r in responses) == [200] * 15 + [409] * 5
    numbers = sorted(r.json()["number"] for r in responses if r.status_code == 200)
    assert numbers == [f"{n:02d}/PXL" for n in range(1, 16)]
    records = await read_topic(kafka_bootstrap, topics.apology_events)
    assert sorted(e["data"]["number"] for e in events_of(records, "apology.issued")) == numbers

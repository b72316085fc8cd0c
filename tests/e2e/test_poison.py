"""A poison message never blocks a partition (issue 11.2): records written straight to the dossier-events
topic, bypassing intake (another producer, an old release, a bug), in front of valid events of the same
dossier (so on the same partition), are set aside on the dead-letter topic by each of the three consumers
with their reason, and the valid events behind them are processed by all three.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.support.events import AGENCY, at, event, received
from tests.support.stack import event_time_stack

DOSSIER = "000.00.12.H10-260302-0001"


def poison_records() -> list[bytes]:
    valid_shape = received(dossier_id=DOSSIER, when="2026-03-02T09:00")
    return [
        b"{not json",
        json.dumps({**valid_shape, "occurred_at": "0001-01-01T00:00:00+07:00"}).encode(),  # the domain cannot hold it
        json.dumps({**valid_shape, "schema_version": True}).encode(),
        json.dumps([valid_shape]).encode(),  # an array is a request body, not a record
    ]


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for value in values:  # one key: one partition, in this order
            await producer.send(topic, value, key=DOSSIER.encode())
        await producer.flush()
    finally:
        await producer.stop()


async def dead_letters(bootstrap: str, topic: str, want: int, timeout_s: float = 90) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(timeout_s):
            while len(records) < want:
                for part in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(part)
    except TimeoutError:
        pass
    finally:
        await consumer.stop()
    return records


async def test_poison_in_front_of_valid_events_is_set_aside_by_every_consumer(
    kafka_bootstrap: str, topic_prefix: str, service_databases: dict[str, str], tmp_path: Path
) -> None:
    valid = [
        received(dossier_id=DOSSIER, when="2026-03-02T09:00", value=3),
        event("dossier.resolved", "2026-03-10T10:00", {"result": "approved"}, dossier_id=DOSSIER),  # late
    ]
    with event_time_stack(kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix,
                          service_databases=service_databases, var_dir=tmp_path / "var",
                          officer_agencies=[AGENCY["code"]]) as stack:
        await produce(kafka_bootstrap, f"{topic_prefix}tthc.dossier-events.v1",
                      poison_records() + [json.dumps(e, ensure_ascii=False).encode() for e in valid])

        async with httpx.AsyncClient(timeout=30) as client:
            deadline_end = time.monotonic() + 120
            row: dict[str, Any] = {}
            letters: list[Any] = []
            figures: dict[str, Any] = {}
            while time.monotonic() < deadline_end:
                r = await client.get(stack.url("deadline") + f"/v1/dossiers/{DOSSIER}")
                row = r.json() if r.status_code == 200 else {}
                r = await client.get(stack.url("apology") + "/v1/apologies", params={"agency": AGENCY["code"]},
                                     headers={"Authorization": f"Bearer {stack.officer_key(AGENCY['code'])}"})
                letters = r.json()["items"] if r.status_code == 200 else []
                r = await client.get(stack.url("metrics") + "/v1/indices",
                                     params={"from": "2026-03-01", "to": "2026-03-31",
                                             "until": (at("2026-03-10T10:00") + timedelta(seconds=1)).isoformat()})
                figures = r.json().get("total", {}) if r.status_code == 200 else {}
                if row.get("outcome") == "late" and letters and figures.get("late") == 1:
                    break
                await asyncio.sleep(1)
        # the valid events behind the poison, processed by all three consumers
        assert row.get("outcome") == "late" and row.get("closed_at") == "2026-03-10T10:00:00+07:00", row
        assert {letter["kind"] for letter in letters} >= {"late_result"}, letters
        assert figures.get("received") == 1 and figures.get("late") == 1, figures

        dead = await dead_letters(kafka_bootstrap, f"{topic_prefix}tthc.dead-letter.v1", want=12)
    by_consumer: dict[str, list[bytes]] = {}
    for record in dead:
        headers = {k: v.decode() for k, v in record.headers}
        assert headers["x-dead-letter-reason"], headers
        by_consumer.setdefault(headers["x-dead-letter-consumer"], []).append(record.value)
    # each consumer set aside every poison record (the apology service reads only the types it uses, and an
    # unreadable record has none: it sets aside what it cannot read)
    assert len(by_consumer) == 3, sorted(by_consumer)
    for consumer, values in by_consumer.items():
        assert poison_records()[0] in values, consumer  # not JSON
        assert len(values) >= 2, (consumer, values)

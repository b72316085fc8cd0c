"""The real services the platform runs on answer the way the services use them.

Kafka: idempotent producer with acks=all, auto-created topic, consumer group with manual commits (a
restarted member resumes after the last commit). PostgreSQL: the SQLAlchemy URL from the fixtures works
with psycopg 3 and the database is fresh. Under CI these fail, never skip, when the services are missing.
"""

from __future__ import annotations

import asyncio

import psycopg
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


def group_member(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    """A consumer of `group` that commits by hand and starts from the beginning when the group has no offset."""
    return AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                            auto_offset_reset="earliest")


async def _drain(consumer: AIOKafkaConsumer, want: int, timeout: float = 30.0) -> list:
    """Read until `want` records arrived (or fail after `timeout` seconds)."""
    records: list = []
    async with asyncio.timeout(timeout):
        while len(records) < want:
            batch = await consumer.getmany(timeout_ms=500)
            for part in batch.values():
                records.extend(part)
    return records


async def test_kafka_idempotent_produce_and_group_consume_with_manual_commit(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}infra-check"
    group = f"{topic_prefix}group"
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        sent = [await producer.send_and_wait(topic, f"v{i}".encode(), key=f"k{i % 3}".encode()) for i in range(10)]
        assert all(md.topic == topic and md.offset >= 0 for md in sent)

        consumer = group_member(kafka_bootstrap, topic, group)
        await consumer.start()
        try:
            records = await _drain(consumer, 10)
            assert sorted(r.value for r in records) == sorted(f"v{i}".encode() for i in range(10))
            # per key, order is kept (same key -> same partition)
            for key in (b"k0", b"k1", b"k2"):
                values = [int(r.value[1:]) for r in records if r.key == key]
                assert values == sorted(values)
            await consumer.commit()
            partitions = consumer.assignment()
            assert partitions, "the group member got no partition"
            ends = await consumer.end_offsets(list(partitions))
            for tp in partitions:
                assert await consumer.committed(tp) == ends[tp]
        finally:
            await consumer.stop()

        # One more record; a new member of the same group starts after the committed offsets.
        await producer.send_and_wait(topic, b"after-commit", key=b"k0")
        consumer = group_member(kafka_bootstrap, topic, group)
        await consumer.start()
        try:
            records = await _drain(consumer, 1)
            await asyncio.sleep(0.5)
            records += [r for part in (await consumer.getmany(timeout_ms=500)).values() for r in part]
            assert [r.value for r in records] == [b"after-commit"]
        finally:
            await consumer.stop()
    finally:
        await producer.stop()


def test_postgres_write_and_read_a_row(pg_database_url: str) -> None:
    assert pg_database_url.startswith("postgresql+psycopg://")
    engine = sa.create_engine(pg_database_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text("select count(*) from pg_tables where schemaname = 'public'")).scalar() == 0
            conn.execute(sa.text("create table dossier (id text primary key, received_at timestamptz not null)"))
            conn.execute(
                sa.text("insert into dossier values (:id, :at)"),
                {"id": "000.00.01.H01-260101-0001", "at": "2026-01-02T08:00:00+07:00"},
            )
        with engine.connect() as conn:
            row = conn.execute(sa.text("select id, received_at from dossier")).one()
        assert row.id == "000.00.01.H01-260101-0001"
        assert row.received_at.isoformat() == "2026-01-02T01:00:00+00:00"
    finally:
        engine.dispose()

    # psycopg directly, on the plain libpq form of the same URL
    with psycopg.connect(pg_database_url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
        assert conn.execute("select current_database()").fetchone()[0] == pg_database_url.rsplit("/", 1)[1]
        assert conn.execute("select count(*) from dossier").fetchone()[0] == 1

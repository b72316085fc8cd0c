"""The deadline service for real: `python -m tthc_deadline` in a subprocess, a REAL Kafka broker and a
REAL PostgreSQL database (fixtures `kafka_bootstrap`, `pg_database_url`, `postgres_url`, `topic_prefix`,
`free_port` from tests/conftest.py). Under CI these fail, never skip, when the services are missing.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer

from tthc_contracts import VN_TZ, format_ts, parse_dossier_event
from tthc_contracts.topics import Topics
from tthc_contracts.derived import Tick
from tthc_core.calendar import CalendarBook
from tthc_core.deadlines import fold

from tests.support import events
from tests.support.events import AGENCY, CRIMINAL_RECORD, event, extended, resolved
from tests.support.infra import create_topics, free_ports, fresh_databases, read_until_quiet, service_env

COMMUNE = {"code": "000.30.21.H10", "name": "UBND xã Hữu Lũng"}
REPO = Path(__file__).resolve().parents[2]


# ---- events -----------------------------------------------------------------------------------------

# This module's dossiers: a Phiếu lý lịch tư pháp at the Sở Tư pháp, applied for online.
received = partial(events.received, procedure=CRIMINAL_RECORD, handling_agency=AGENCY, channel="online",
                   applicant="Lê Văn Thử", phone="0912345678")


def dossier_stream(rng: random.Random, count: int) -> list[dict[str, Any]]:
    """A quarter of a one-stop centre's life: receipts, transfers, supplementation rounds, pauses,
    extensions, closures; delivered roughly in time order with local shuffles and some duplicates.
    """
    base = datetime(2026, 1, 5, 8, 0, tzinfo=VN_TZ)
    events: list[dict[str, Any]] = []
    for i in range(count):
        dossier_id = f"000.00.12.H10-2601-{i:04d}"
        t = base + timedelta(hours=3 * i + rng.randint(0, 2), minutes=rng.choice([0, 15, 30]))
        value, unit = rng.choice([(3, "working_days"), (10, "working_days"), (8, "working_hours"),
                                  (0.5, "working_days"), (7, "calendar_days"), (1, "months")])
        events.append(received(dossier_id, t, value, unit))
        if rng.random() < 0.3:
            t += timedelta(hours=2)
            events.append(event("dossier.transferred", t, {"to_agency": COMMUNE}, dossier_id))
        if rng.random() < 0.4:
            t += timedelta(days=1)
            events.append(event("dossier.supplement_requested", t, {"reason": "Thiếu tờ khai"}, dossier_id))
            t += timedelta(days=rng.randint(1, 4))
            events.append(event("dossier.supplement_received", t, {"channel": "in_person"}, dossier_id))
        if rng.random() < 0.25:
            t += timedelta(days=1)
            events.append(event("dossier.paused", t, {"reason": "financial_obligation"}, dossier_id))
            t += timedelta(days=2)
            events.append(event("dossier.resumed", t, dossier_id=dossier_id))
        if rng.random() < 0.2:
            t += timedelta(days=1)
            events.append(extended(dossier_id, t, new_due_at=t + timedelta(days=20), reason="Chờ xác minh"))
        if rng.random() < 0.7:
            t += timedelta(days=rng.randint(1, 15), hours=rng.randint(0, 6))
            events.append(resolved(dossier_id, t))
    events.sort(key=lambda e: e["occurred_at"])
    for _ in range(len(events) // 4):  # late arrivals: swap neighbours
        j = rng.randrange(len(events) - 1)
        events[j], events[j + 1] = events[j + 1], events[j]
    for ev in rng.sample(events, len(events) // 10):  # redeliveries
        events.insert(rng.randrange(len(events)), ev)
    return events


# ---- the service in a subprocess ---------------------------------------------------------------------

class DeadlineProcess:
    def __init__(self, *, bootstrap: str, database_url: str, prefix: str, log: Path, **env: str) -> None:
        self.port = free_ports(1)[0]
        self.log = log
        self.env = service_env("deadline", {
            "database_url": database_url, "http_port": str(self.port), "consumer_group": f"{prefix}tthc-deadline",
            "log_format": "text"}, KAFKA_BOOTSTRAP_SERVERS=bootstrap, TTHC_TOPIC_PREFIX=prefix) | env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "tthc_deadline"], env=self.env, cwd=REPO,
                                         stdout=out, stderr=subprocess.STDOUT)

    async def ready(self, timeout: float = 60.0) -> None:
        async with httpx.AsyncClient(base_url=self.url) as http:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-3000:]
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError(f"deadline service not ready:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


# ---- Kafka and database helpers ----------------------------------------------------------------------

async def produce(bootstrap: str, topic: str, values: list[dict[str, Any]], key: str = "dossier_id") -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send(topic, json.dumps(value, ensure_ascii=False).encode(),
                                key=str(value.get(key, "tick")).encode())
        await producer.flush()
    finally:
        await producer.stop()


async def produce_tick(bootstrap: str, topic: str, at: datetime) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, Tick(at=at, instance="test").model_dump_json().encode(), key=b"test")
    finally:
        await producer.stop()


def scalar(engine: sa.Engine, sql: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql)).scalar()


async def until_caught_up(engine: sa.Engine, unique_events: int, watermark: datetime, proc: DeadlineProcess,
                          timeout: float = 180.0) -> None:
    """Every event applied, the watermark at the final tick, nothing due unswept, the outbox empty."""
    checks = {
        "events applied": "SELECT count(*) FROM deadline_event_log",
        "watermark": "SELECT max(at) FROM deadline_watermark",
        "outbox rows": "SELECT count(*) FROM outbox",
        "dossiers due": "SELECT count(*) FROM deadline_dossiers WHERE next_moment_at <= "
                        "(SELECT max(at) FROM deadline_watermark)",
    }
    wanted = {"events applied": unique_events, "watermark": watermark, "outbox rows": 0, "dossiers due": 0}
    seen: dict[str, Any] = {}
    stop = time.monotonic() + timeout
    while time.monotonic() < stop:
        assert proc.proc is not None and proc.proc.poll() is None, proc.log.read_text()[-3000:]
        try:
            seen = {name: scalar(engine, sql) for name, sql in checks.items()}
        except sa.exc.ProgrammingError:  # tables not migrated yet
            seen = {}
        if seen == wanted:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{proc.log.name}: not caught up: {seen} != {wanted}\n{proc.log.read_text()[-3000:]}")


@pytest.fixture
def second_pg_database_url(postgres_url: str) -> Iterator[str]:
    """One more fresh database on the same server (the reference service's)."""
    with fresh_databases(postgres_url, ["test"]) as (url,):
        yield url


# ---- tests -------------------------------------------------------------------------------------------

async def test_a_received_event_on_kafka_shows_its_due_date_over_http(
    kafka_bootstrap: str, pg_database_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    topics = Topics(topic_prefix)
    await create_topics(kafka_bootstrap, topics.all())
    service = DeadlineProcess(bootstrap=kafka_bootstrap, database_url=pg_database_url, prefix=topic_prefix,
                              log=tmp_path / "deadline.log", DEADLINE_TICK_INTERVAL_S="1")
    now = datetime.now(VN_TZ).replace(microsecond=0)
    ev = received("000.00.12.H10-LIVE-0001", now - timedelta(minutes=5), 10, "working_days")
    expected, _ = fold([parse_dossier_event(ev)], CalendarBook())
    assert expected is not None
    service.start()
    try:
        await service.ready()
        await produce(kafka_bootstrap, topics.dossier_events, [ev])
        async with httpx.AsyncClient(base_url=service.url) as http:
            async with asyncio.timeout(30):
                while (response := await http.get(f"/v1/dossiers/{ev['dossier_id']}")).status_code != 200:
                    await asyncio.sleep(0.2)
            row = response.json()
            assert row["due_at"] == format_ts(expected.due_at)
            assert row["received_at"] == ev["occurred_at"]
            assert row["state"] in ("open", "at_risk")
            listed = (await http.get("/v1/dossiers", params={"agency": AGENCY["code"]})).json()
            assert [r["dossier_id"] for r in listed["items"]] == [ev["dossier_id"]]

            # wall-clock ticks reach the service through Kafka and move its watermark to about now
            async with asyncio.timeout(30):
                while True:
                    metrics = (await http.get("/metrics")).text
                    line = next((ln for ln in metrics.splitlines()
                                 if ln.startswith("tthc_deadline_watermark_seconds ")), "x 0")
                    if float(line.split()[-1]) >= now.timestamp():
                        break
                    await asyncio.sleep(0.3)

        scheduled = [json.loads(r.value) for r in await read_until_quiet(kafka_bootstrap, topics.deadline_events)]
        assert [(e["type"], e["data"]["due_at"]) for e in scheduled] == [
            ("deadline.scheduled", format_ts(expected.due_at))]
        ticks = await read_until_quiet(kafka_bootstrap, topics.deadline_ticks, settle_s=0.5)
        assert ticks and all(Tick.model_validate_json(r.value).at >= now for r in ticks)
    finally:
        service.stop()
    # uvicorn re-raises SIGTERM after a graceful shutdown: -15 with the lifespan closed is a clean stop
    assert service.proc is not None and service.proc.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in service.log.read_text()


async def test_a_service_killed_mid_stream_and_restarted_ends_like_one_that_never_stopped(
    kafka_bootstrap: str, pg_database_url: str, second_pg_database_url: str, tmp_path: Path
) -> None:
    rng = random.Random(766)
    stream = dossier_stream(rng, 60)
    unique = len({(e["source"], e["event_id"]) for e in stream})
    until = datetime(2026, 4, 1, tzinfo=VN_TZ)
    half = len(stream) // 2

    run = uuid.uuid4().hex[:8]
    killed_topics, steady_topics = Topics(f"t-{run}-killed."), Topics(f"t-{run}-steady.")
    await asyncio.gather(create_topics(kafka_bootstrap, killed_topics.all()),
                         create_topics(kafka_bootstrap, steady_topics.all()))
    # No wall-clock ticks: both services see the same event time, ending at the test's own tick.
    common = {"DEADLINE_PUBLISH_TICKS": "false", "DEADLINE_DUE_BATCH_SIZE": "7"}
    killed = DeadlineProcess(bootstrap=kafka_bootstrap, database_url=pg_database_url,
                             prefix=killed_topics.prefix, log=tmp_path / "killed.log", **common)
    steady = DeadlineProcess(bootstrap=kafka_bootstrap, database_url=second_pg_database_url,
                             prefix=steady_topics.prefix, log=tmp_path / "steady.log", **common)
    killed_db, steady_db = sa.create_engine(pg_database_url), sa.create_engine(second_pg_database_url)
    try:
        killed.start()
        steady.start()
        await asyncio.gather(killed.ready(), steady.ready())

        for topics in (killed_topics, steady_topics):
            await produce(kafka_bootstrap, topics.dossier_events, stream[:half])
        async with asyncio.timeout(60):
            while (scalar(killed_db, "SELECT count(*) FROM deadline_event_log") or 0) < half // 3:
                await asyncio.sleep(0.01)
        killed.kill()
        processed_at_kill = scalar(killed_db, "SELECT count(*) FROM deadline_event_log")
        assert 0 < processed_at_kill < unique

        for topics in (killed_topics, steady_topics):
            await produce(kafka_bootstrap, topics.dossier_events, stream[half:])
            await produce_tick(kafka_bootstrap, topics.deadline_ticks, until)
        killed.start()
        await killed.ready()
        await asyncio.gather(until_caught_up(killed_db, unique, until, killed),
                             until_caught_up(steady_db, unique, until, steady))

        async with httpx.AsyncClient(base_url=killed.url) as a, httpx.AsyncClient(base_url=steady.url) as b:
            rows_killed = (await a.get("/v1/dossiers", params={"page_size": 500})).json()
            rows_steady = (await b.get("/v1/dossiers", params={"page_size": 500})).json()
        assert rows_killed["total"] == rows_steady["total"] == 60
        assert rows_killed["items"] == rows_steady["items"]

        # ... and both equal the pure domain's answer for the whole stream (tthc replay's rule)
        by_dossier: dict[str, list[Any]] = {}
        for raw in stream:
            by_dossier.setdefault(raw["dossier_id"], []).append(parse_dossier_event(raw))
        book = CalendarBook()
        expected = [fold(evs, book, until)[0].row() for _, evs in sorted(by_dossier.items())]  # type: ignore[union-attr]
        assert rows_steady["items"] == expected

        # exactly once per key, even if the killed service published some derived events twice (same
        # event_id) after the crash; a close re-judged by a late event is published again, corrected, so
        # the last deadline.closed of each dossier (one partition per dossier: in order) is its outcome
        for topics, rows in ((killed_topics, rows_killed), (steady_topics, rows_steady)):
            derived = [json.loads(r.value) for r in await read_until_quiet(kafka_bootstrap, topics.deadline_events)]
            by_id: dict[str, dict[str, Any]] = {}
            for e in derived:
                assert by_id.setdefault(e["event_id"], e) == e  # a repeat is the very same event
            last_close = {e["dossier_id"]: e["data"]["outcome"] for e in derived if e["type"] == "deadline.closed"}
            assert last_close == {r["dossier_id"]: r["outcome"] for r in rows["items"] if r["state"] == "closed"}
    finally:
        killed.stop()
        steady.stop()
        killed_db.dispose()
        steady_db.dispose()


async def consumed_by(service: DeadlineProcess) -> float:
    async with httpx.AsyncClient(base_url=service.url) as http:
        text = (await http.get("/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("tthc_deadline_consumed_events_total{"))


async def test_two_replicas_in_one_group_end_like_one_service(
    kafka_bootstrap: str, pg_database_url: str, second_pg_database_url: str, tmp_path: Path
) -> None:
    """Issue 10.3: replicas share the work of a 4-partition topic without a lock shared by all dossiers
    (per-partition watermark rows, per-shard state counts) and end exactly where one service ends."""
    rng = random.Random(1010)
    stream = dossier_stream(rng, 80)
    unique = len({(e["source"], e["event_id"]) for e in stream})
    until = datetime(2026, 4, 1, tzinfo=VN_TZ)
    run = uuid.uuid4().hex[:8]
    pair_topics, single_topics = Topics(f"t-{run}-pair."), Topics(f"t-{run}-single.")
    await asyncio.gather(create_topics(kafka_bootstrap, pair_topics.all()),
                         create_topics(kafka_bootstrap, single_topics.all()))
    common = {"DEADLINE_PUBLISH_TICKS": "false", "DEADLINE_BATCH_MAX_RECORDS": "20"}
    replicas = [DeadlineProcess(bootstrap=kafka_bootstrap, database_url=pg_database_url, prefix=pair_topics.prefix,
                                log=tmp_path / f"replica-{i}.log", DEADLINE_INSTANCE_NAME=f"replica-{i}", **common)
                for i in (1, 2)]
    single = DeadlineProcess(bootstrap=kafka_bootstrap, database_url=second_pg_database_url,
                             prefix=single_topics.prefix, log=tmp_path / "single.log", **common)
    pair_db, single_db = sa.create_engine(pg_database_url), sa.create_engine(second_pg_database_url)
    try:
        replicas[0].start()
        await replicas[0].ready()  # migrations run once; then the second joins the group
        replicas[1].start()
        single.start()
        await asyncio.gather(replicas[1].ready(), single.ready())
        await asyncio.sleep(3)  # the group's rebalance gives each replica its partitions
        for topics in (pair_topics, single_topics):
            await produce(kafka_bootstrap, topics.dossier_events, stream)
            await produce_tick(kafka_bootstrap, topics.deadline_ticks, until)
        await asyncio.gather(until_caught_up(pair_db, unique, until, replicas[0]),
                             until_caught_up(single_db, unique, until, single))
        assert all(await asyncio.gather(*(consumed_by(r) for r in replicas))), "each replica took a share"

        async with httpx.AsyncClient(base_url=replicas[1].url) as a, httpx.AsyncClient(base_url=single.url) as b:
            pair_rows = (await a.get("/v1/dossiers", params={"page_size": 500})).json()
            single_rows = (await b.get("/v1/dossiers", params={"page_size": 500})).json()
        assert pair_rows["total"] == single_rows["total"] == 80
        assert pair_rows["items"] == single_rows["items"]
        # the kept state counts (summed over the replicas' shards) are the rows' counts
        with pair_db.connect() as conn:
            kept = dict(conn.execute(sa.text(
                "SELECT state, sum(dossiers) FROM deadline_state_counts GROUP BY state HAVING sum(dossiers) > 0")).all())
            counted = dict(conn.execute(sa.text("SELECT state, count(*) FROM deadline_dossiers GROUP BY state")).all())
            shards = set(conn.execute(sa.text("SELECT DISTINCT shard FROM deadline_state_counts")).scalars())
        assert kept == counted
        assert len(shards) > 1
        # Derived events: every one the pure fold of the whole stream makes, each once (ids are
        # deterministic); the last deadline.closed of each dossier is its outcome. (Live, either may also
        # have announced a moment that an event arriving later made moot: time had reached it.)
        by_dossier: dict[str, list[Any]] = {}
        for raw in stream:
            by_dossier.setdefault(raw["dossier_id"], []).append(parse_dossier_event(raw))
        book = CalendarBook()
        expected_ids = {e.event_id for evs in by_dossier.values() for e in fold(evs, book, until)[1]
                        if e.type != "deadline.closed"}
        for topics in (pair_topics, single_topics):
            derived = [json.loads(r.value) for r in await read_until_quiet(kafka_bootstrap, topics.deadline_events)]
            by_id: dict[str, dict[str, Any]] = {}
            for e in derived:
                assert by_id.setdefault(e["event_id"], e) == e
            assert expected_ids <= set(by_id)
            last_close = {e["dossier_id"]: e["data"]["outcome"] for e in derived if e["type"] == "deadline.closed"}
            assert last_close == {r["dossier_id"]: r["outcome"] for r in single_rows["items"] if r["state"] == "closed"}
    finally:
        for service in (*replicas, single):
            service.stop()
        pair_db.dispose()
        single_db.dispose()

"""One tick of the deadline service with 1,000,000 open dossiers in PostgreSQL (prints figures; not a test).

    .venv/bin/python services/deadline/bench/bench_tick.py [--dossiers 1000000] [--compare 100000]
        [--ticks 9] [--due-per-tick 100] [--steady-ticks 20] [--database-url postgresql://...] [--no-service]

Issue: "open dossiers live in the database, not in memory; finding the dossiers that just became at-risk
or overdue is an index range scan whose cost does not grow with the number of open dossiers".
Target: one tick with 1,000,000 open dossiers < 50 ms; and the service's memory then.

1. PostgreSQL: a throwaway server (`deploy/local/postgres.sh` on a free port, stopped at the end), or
   the server of `--database-url` (an admin URL: a database is created there and dropped at the end).
   Each size gets its own database, migrated by the service's own Alembic history.
2. Open dossiers: a pool of real states, each `tthc_core.deadlines.fold` of a real `dossier.received`
   (procedures, durations and agencies of the simulator's catalogue; receipts over a year, in office
   hours or, for online ones, at any time), of which every row takes one with its own dossier_id. Only
   states still `open` at the load watermark W0 are kept, so every next_moment_at lies in the 12 months
   after W0. Loaded with COPY, then VACUUM (ANALYZE).
3. Ticks exactly as the service runs them (consumers.on_tick + sweeper): `advance_by_tick` (watermark
   := W) in one transaction, `DueSweeper.sweep()` (batches of `advance_due_batch`: index range scan on
   next_moment_at <= W, domain `advance`, state + outbox in one transaction per batch); that is the
   tick. The state gauges' read (`count_by_state`, a few rows of `deadline_state_counts`), which the
   service runs in the background after the tick, is timed apart. Successive watermarks W1..Wn each make ~`--due-per-tick`
   dossiers due. Each touched row is checked afterwards (decodes, advanced, next moment past W).
   The same with `--compare` dossiers shows whether the cost grows with N.
4. Memory: the real service (`python -m tthc_deadline`) on that database with a throwaway Kafka
   (`deploy/local/kafka.sh`); one more tick is sent, swept, then VmRSS / VmHWM are read from /proc.

W0 is the Monday 07:00 (+07:00) of next week: the service's own wall-clock ticks are then behind the
bench's watermark and do nothing, and the ticks fall on a working morning.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
from prometheus_client import CollectorRegistry
from psycopg import sql
from sqlalchemy import select, text
from sqlmodel import Session
from tthc_common.batches import Received
from tthc_common.db import make_engine, run_in_transaction, run_migrations
from tthc_contracts import VN_TZ, format_ts, parse_dossier_event
from tthc_contracts.derived import Tick
from tthc_core.calendar import CalendarBook
from tthc_core.calendar_config import CalendarConfig
from tthc_core.deadlines import fold
from tthc_deadline.active_calendar import ActiveCalendar, calendar_version
from tthc_deadline.app import MIGRATIONS_DIR
from tthc_deadline.config import DeadlineSettings
from tthc_deadline.metrics import DeadlineMetrics
from tthc_deadline.models import DossierRow
from tthc_deadline.queries import count_by_state, decode_state
from tthc_deadline.sweeper import DueSweeper
from tthc_deadline.units import apply_ticks
from tthc_sim.catalogue import PROCEDURES, Catalogue

REPO = Path(__file__).resolve().parents[3]
SOURCE = "motcua-lang-son"
TARGET_MS = 50.0
COPY_COLUMNS = ("dossier_id", "handling_agency", "state", "next_moment_at", "received_at", "due_at",
                "state_json", "calendar_version", "updated_at", "event_partition")
PARTITIONS = 4  # the dossiers spread over the partitions of a 4-partition topic, each with its time
ID_MARK = "@@DOSSIER_ID@@"
DUE_COUNT = "SELECT count(*) FROM deadline_dossiers WHERE next_moment_at <= :w"


def log(msg: str) -> None:
    print(f"[bench_tick {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def libpq(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=parts.scheme.split("+", 1)[0]))


def with_db(url: str, name: str, scheme: str) -> str:
    return urlunsplit(urlsplit(url)._replace(scheme=scheme, path=f"/{name}"))


def base_watermark() -> datetime:
    """The Monday 07:00 +07:00 of next week (always after the wall clock)."""
    today = datetime.now(VN_TZ).date()
    monday = today + timedelta(days=7 - today.weekday())
    return datetime(monday.year, monday.month, monday.day, 7, 0, tzinfo=VN_TZ)


# -- 2. the open dossiers -----------------------------------------------------------------------------
@dataclass
class Template:
    head: str  # state JSON before the dossier_id
    tail: str  # and after it
    agency: str
    next_moment_at: str
    received_at: str
    due_at: str


def received_event(rng: random.Random, i: int, at: datetime, proc: Any, agency: dict[str, str],
                   channel: str) -> Any:
    return parse_dossier_event({
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "type": "dossier.received",
        "schema_version": 1, "occurred_at": format_ts(at), "source": SOURCE, "dossier_id": f"pool-{i}",
        "data": {
            "procedure": {"code": proc.code, "name": proc.name, "field_code": proc.field_code,
                          "field_name": proc.field_name},
            "receiving_agency": agency, "handling_agency": agency, "channel": channel,
            "duration": {"value": proc.duration[0], "unit": proc.duration[1]},
            "applicant": {"kind": "citizen", "name": "Lê Văn Thử", "phone": "0912345678"},
        },
    })


def build_pool(size: int, w0: datetime, book: CalendarBook,
               seed: int) -> tuple[list[Template], dict[str, int]]:
    """`size` real states, open at w0: fold(dossier.received, advance_to=max(receipt, w0))."""
    rng = random.Random(seed)
    cat = Catalogue(w0.date())
    procs = list(PROCEDURES)
    weights = [p.weight for p in procs]
    span_s = 365 * 86400
    start = w0 - timedelta(days=30)  # received during the last month or the next eleven
    pool: list[Template] = []
    units: dict[str, int] = {}
    tries = 0
    while len(pool) < size:
        tries += 1
        proc = rng.choices(procs, weights)[0]
        unit = rng.choice(cat.communes) if proc.owner in ("commune", "district") else cat.unit(proc.owner)
        online = rng.random() < proc.online_share
        at = start + timedelta(seconds=rng.randrange(span_s))
        cal = book.for_agency(unit.code)
        if not online and not cal.is_office_instant(at):  # at the counter: office hours only
            continue
        channel = "online" if online else "in_person"
        event = received_event(rng, len(pool), at, proc, unit.as_agency(), channel)
        state, _ = fold([event], book, advance_to=max(at, w0))
        assert state is not None
        if state.state_at(max(at, w0)) != "open" or state.next_moment_at() is None:
            continue  # already at risk or overdue at w0: not an "open" row
        doc = state.to_json()
        doc["dossier_id"] = ID_MARK
        head, tail = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).split(ID_MARK)
        nxt = state.next_moment_at()
        assert nxt is not None and nxt > w0
        pool.append(Template(head, tail, unit.code, nxt.isoformat(), state.received_at.isoformat(),
                             state.due_at.isoformat()))
        units[unit.code] = units.get(unit.code, 0) + 1
    return pool, units


def copy_rows(conn: psycopg.Connection, n: int, pool: list[Template], version: str, w0: datetime,
              seed: int) -> None:
    rng = random.Random(seed + 1)
    updated = w0.isoformat()
    cols = ", ".join(COPY_COLUMNS)
    yymm = w0.strftime("%y%m")
    with conn.cursor() as cur, cur.copy(f"COPY deadline_dossiers ({cols}) FROM STDIN") as copy:
        buf = io.StringIO()
        for i in range(n):
            t = pool[rng.randrange(len(pool))]
            dossier_id = f"{t.agency}-{yymm}-{i:07d}"
            state_json = (t.head + dossier_id + t.tail).replace("\\", "\\\\")
            buf.write(f"{dossier_id}\t{t.agency}\topen\t{t.next_moment_at}\t{t.received_at}\t{t.due_at}\t"
                      f"{state_json}\t{version}\t{updated}\t{i % PARTITIONS}\n")
            if buf.tell() > 4_000_000:
                copy.write(buf.getvalue())
                buf = io.StringIO()
        copy.write(buf.getvalue())


@dataclass
class Database:
    n: int
    name: str
    url: str  # SQLAlchemy
    load_s: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, str] = field(default_factory=dict)
    service_at: datetime | None = None  # the watermark of the tick sent to the real service


def create_database(admin: str, n: int) -> Database:
    name = f"bench_tick_{n}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(libpq(admin), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return Database(n, name, with_db(admin, name, "postgresql+psycopg"))


def drop_database(admin: str, name: str) -> None:
    with psycopg.connect(libpq(admin), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def populate(db: Database, pool: list[Template], version: str, w0: datetime, seed: int) -> None:
    t = time.perf_counter()
    run_migrations(db.url, MIGRATIONS_DIR)
    db.load_s["migrations"] = time.perf_counter() - t
    with psycopg.connect(libpq(db.url)) as conn:
        t = time.perf_counter()
        copy_rows(conn, db.n, pool, version, w0, seed)
        # What the service's writers keep up to date (and migration 0003 fills from existing rows).
        conn.execute("INSERT INTO deadline_state_counts (shard, state, dossiers) "
                     "SELECT 'sweep', state, count(*) FROM deadline_dossiers GROUP BY state")
        for name in (*(f"p{p}" for p in range(PARTITIONS)), "tick"):
            conn.execute("INSERT INTO deadline_watermark (name, at, updated_at) VALUES (%s, %s, %s)",
                         (name, w0, w0))
        conn.commit()
        db.load_s["copy"] = time.perf_counter() - t
    with psycopg.connect(libpq(db.url), autocommit=True) as conn:
        t = time.perf_counter()
        conn.execute("VACUUM (ANALYZE) deadline_dossiers")
        db.load_s["vacuum_analyze"] = time.perf_counter() - t
        # A service runs on a settled database, not one still writing out a 1 GB bulk load: flush it
        # (the server's checkpoint, then the kernel's dirty pages) before timing anything.
        t = time.perf_counter()
        conn.execute("CHECKPOINT")
        os.sync()
        db.load_s["checkpoint_sync"] = time.perf_counter() - t
        for rel in ("deadline_dossiers", "deadline_dossiers_pkey", "ix_deadline_dossiers_next_moment_at"):
            db.sizes[rel] = conn.execute("SELECT pg_size_pretty(pg_total_relation_size(%s::regclass))",
                                         (rel,)).fetchone()[0]
        db.sizes["largest_instant"] = conn.execute(
            "SELECT count(*) AS n, next_moment_at FROM deadline_dossiers GROUP BY next_moment_at "
            "ORDER BY n DESC LIMIT 1").fetchone()


# -- 3. ticks ------------------------------------------------------------------------------------------
class NoRelay:
    """The sweeper only wakes the relay; the outbox rows stay in the table (counted below)."""

    def wake(self) -> None:
        pass


def selection_query(limit: int, watermark: datetime) -> Any:
    """The statement `store.advance_due_batch` runs (copied: the function builds it inline)."""
    return (
        select(DossierRow)
        .where(DossierRow.next_moment_at <= watermark)  # type: ignore[operator]
        .order_by(DossierRow.next_moment_at, DossierRow.dossier_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def explain(engine: Any, statement: Any, analyze: bool = True) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) in a transaction that is rolled back (FOR UPDATE takes row locks)."""
    compiled = statement.compile(dialect=engine.dialect)
    params = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in compiled.params.items()}
    opts = "ANALYZE, BUFFERS" if analyze else "COSTS"
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            rows = conn.exec_driver_sql(f"EXPLAIN ({opts}) {compiled}", params).all()
        finally:
            trans.rollback()
    return [r[0] for r in rows]


@dataclass
class TickResult:
    cluster: bool  # more than 2 x due-per-tick: an instant many dossiers share (a 17:00 close of office)
    watermark: datetime
    due: int
    advanced: int
    derived: int
    watermark_ms: float
    sweep_ms: float
    gauges_ms: float

    @property
    def total_ms(self) -> float:
        """The tick as the service runs it: the watermark transaction, then the sweep. (The gauge count
        runs after it in the background, `DeadlineConsumers.refresh_state_gauges`.)"""
        return self.watermark_ms + self.sweep_ms

    @property
    def per_dossier_ms(self) -> float:
        return self.sweep_ms / self.advanced if self.advanced else float("nan")


def next_watermark(engine: Any, due_per_tick: int) -> datetime:
    """The instant at which ~`due_per_tick` more dossiers are due (the next moments after the watermark)."""
    with engine.connect() as conn:
        current = conn.execute(text("SELECT max(at) FROM deadline_watermark")).scalar()
        moments = [r[0] for r in conn.execute(text(
            "SELECT next_moment_at FROM deadline_dossiers WHERE next_moment_at > :w "
            "ORDER BY next_moment_at LIMIT :k"), {"w": current, "k": due_per_tick})]
    return moments[-1]


def scalar(engine: Any, query: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(query), params).scalar()


async def run_ticks(db: Database, book: CalendarBook, version: str, ticks: int, due_per_tick: int,
                    prefix: str, w0: datetime, steady_ticks: int = 20) -> tuple[list[TickResult], dict]:
    settings = DeadlineSettings(database_url=db.url, topic_prefix=prefix)
    engine = make_engine(db.url)
    active = ActiveCalendar(book, version)
    metrics = DeadlineMetrics(CollectorRegistry())
    sweeper = DueSweeper(engine, active, deadline_topic=settings.topics.deadline_events,
                         batch_size=settings.due_batch_size, metrics=metrics,
                         relay=NoRelay())  # type: ignore[arg-type]
    extra: dict[str, Any] = {"batch_size": settings.due_batch_size}
    results: list[TickResult] = []
    try:
        # Warm the pool's connection and the catalogue caches as a running service would have them.
        await run_in_transaction(engine, lambda s: s.execute(text("SELECT 1")))
        first = next_watermark(engine, due_per_tick)
        extra["plan"] = explain(engine, selection_query(settings.due_batch_size, first))
        backlog_at = w0 + timedelta(days=30)
        extra["backlog_due"] = scalar(engine, DUE_COUNT, w=backlog_at)
        extra["backlog_plan"] = explain(engine, selection_query(settings.due_batch_size, backlog_at))
        extra["gauges_plan"] = explain(engine, text(
            "SELECT state, sum(dossiers) FROM deadline_state_counts GROUP BY state"))
        # The first sweeper run after a start (rebase_calendar_batch with the calendar unchanged).
        extra["rebase_plan"] = explain(engine, (
            select(DossierRow)
            .where(DossierRow.calendar_version != version, DossierRow.state != "closed",
                   DossierRow.dossier_id > "")
            .order_by(DossierRow.dossier_id).limit(settings.due_batch_size)
            .with_for_update(skip_locked=True)))
        async def one_tick(w: datetime) -> TickResult:
            with engine.connect() as conn:
                due_ids = [r[0] for r in conn.execute(text(
                    "SELECT dossier_id FROM deadline_dossiers WHERE next_moment_at <= :w"), {"w": w})]
            outbox_before = scalar(engine, "SELECT count(*) FROM outbox")
            t0 = time.perf_counter()
            # consumers.on_tick: one transaction moves the watermark ...
            await run_in_transaction(engine, lambda s: apply_ticks(s, [Received(Tick(at=w), "ticks", 0, 0)]))
            t1 = time.perf_counter()
            # ... the sweeper advances what became due (the service runs it as a background task) ...
            advanced = await sweeper.sweep()
            t2 = time.perf_counter()
            # ... and on_tick wakes the state gauges, which read the counts the writers keep.
            metrics.set_state_counts(await run_in_transaction(engine, count_by_state))
            t3 = time.perf_counter()
            derived = scalar(engine, "SELECT count(*) FROM outbox") - outbox_before
            check_advanced(engine, due_ids, w)
            return TickResult(False, w, len(due_ids), advanced, derived,
                              (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)

        attempts = 0
        while sum(not r.cluster for r in results) < ticks and attempts < 4 * ticks:
            attempts += 1
            result = await one_tick(next_watermark(engine, due_per_tick))
            result.cluster = result.due > 2 * due_per_tick
            results.append(result)
            log(f"N={db.n:,} tick {len(results)} W={format_ts(result.watermark)}: due {result.due}, "
                f"advanced {result.advanced}, derived {result.derived}, watermark {result.watermark_ms:.1f} ms, "
                f"sweep {result.sweep_ms:.1f} ms, gauges {result.gauges_ms:.1f} ms")
        # The service's own rhythm: the watermark moves by one tick interval (30 s) of office time.
        w = scalar(engine, "SELECT max(at) FROM deadline_watermark")
        steady: list[TickResult] = []
        for _ in range(steady_ticks):
            w += timedelta(seconds=settings.tick_interval_s)
            steady.append(await one_tick(w))
        extra["steady"] = steady
        log(f"N={db.n:,} {len(steady)} ticks of {settings.tick_interval_s:.0f} s: due "
            f"{[r.due for r in steady]}, tick ms {[round(r.total_ms, 1) for r in steady]}")
        # The counts the ticks kept equal a count of the rows.
        kept = await run_in_transaction(engine, count_by_state)
        with engine.connect() as conn:
            counted = dict(conn.execute(text(
                "SELECT state, count(*) FROM deadline_dossiers GROUP BY state")).all())
        assert kept == counted, (kept, counted)
        extra["state_counts"] = kept
        db.service_at = next_watermark(engine, due_per_tick)
    finally:
        engine.dispose()
    return results, extra


def check_advanced(engine: Any, ids: list[str], w: datetime) -> None:
    """Every dossier that was due decodes, was advanced to W, and its next moment lies past W."""
    if not ids:
        return
    with Session(engine) as session:
        in_ids = DossierRow.dossier_id.in_(ids)  # type: ignore[attr-defined]
        rows = session.scalars(select(DossierRow).where(in_ids)).all()
    assert len(rows) == len(ids)
    for row in rows:
        state = decode_state(row.state_json)
        assert state.watermark is not None and state.watermark >= w, row.dossier_id
        assert row.next_moment_at is None or row.next_moment_at > w, row.dossier_id
        assert row.state == state.state_at(w), row.dossier_id
        assert row.state in ("at_risk", "overdue"), (row.dossier_id, row.state)
        assert any(k.startswith(("at_risk|", "overdue|")) for k in state.emitted), row.dossier_id


# -- 4. the service's memory ---------------------------------------------------------------------------
def proc_status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            out[key] = value.strip()
    return out


async def service_memory(db: Database, bootstrap: str, workdir: Path, prefix: str) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from tthc_contracts.topics import Topics

    topics = Topics(prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        await admin.create_topics([NewTopic(t, num_partitions=4, replication_factor=1) for t in topics.all()
                                   if t not in existing])
    finally:
        await admin.close()
    port = free_port()
    logfile = workdir / f"deadline-{db.n}.log"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DEADLINE_")},
           "DEADLINE_DATABASE_URL": db.url, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "TTHC_TOPIC_PREFIX": prefix,
           "DEADLINE_CONSUMER_GROUP": f"{prefix}tthc-deadline", "DEADLINE_HTTP_PORT": str(port),
           "DEADLINE_PUBLISH_TICKS": "true", "DEADLINE_LOG_FORMAT": "text"}
    result: dict[str, Any] = {"n": db.n}
    w = db.service_at
    assert w is not None
    engine = make_engine(db.url)
    with open(logfile, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tthc_deadline"], env=env, cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        t0 = time.perf_counter()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"service exited:\n{logfile.read_text()[-3000:]}")
                if time.perf_counter() - t0 > 180:
                    raise RuntimeError(f"service not ready:\n{logfile.read_text()[-3000:]}")
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
            result["ready_s"] = time.perf_counter() - t0
            result["at_ready"] = proc_status(proc.pid)
            # Start-up work done: the sweeper's first run, the outbox of the bench's own ticks sent.
            while scalar(engine, "SELECT count(*) FROM outbox"):
                await asyncio.sleep(0.1)
            await asyncio.sleep(3)
            result["idle"] = proc_status(proc.pid)
            result["due"] = scalar(engine, DUE_COUNT, w=w)
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
            await producer.start()
            try:
                await producer.send_and_wait(topics.deadline_ticks,
                                             Tick(at=w, instance="bench").model_dump_json().encode(),
                                             key=b"bench")
            finally:
                await producer.stop()
            t1 = time.perf_counter()
            while True:  # the tick consumed, the watermark moved, everything due swept, the outbox sent
                if proc.poll() is not None:
                    raise RuntimeError(f"service exited:\n{logfile.read_text()[-3000:]}")
                if time.perf_counter() - t1 > 120:
                    raise RuntimeError(f"tick not swept:\n{logfile.read_text()[-3000:]}")
                wm = scalar(engine, "SELECT max(at) FROM deadline_watermark")
                left = scalar(engine, DUE_COUNT, w=w)
                outbox = scalar(engine, "SELECT count(*) FROM outbox")
                if wm >= w and left == 0 and outbox == 0:
                    break
                await asyncio.sleep(0.1)
            result["swept_s"] = time.perf_counter() - t1
            metrics = (await http.get("/metrics")).text
            result["metrics"] = [line for line in metrics.splitlines()
                                 if line.startswith(("tthc_deadline_dossiers_advanced_total",
                                                     "tthc_deadline_open_dossiers",
                                                     "tthc_deadline_ticks_published_total"))]
            await asyncio.sleep(2)  # let the gauges refresh after the tick and the relay settle
            result["after_tick"] = proc_status(proc.pid)
    finally:
        engine.dispose()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    return result


# -- infrastructure ------------------------------------------------------------------------------------
class Infra:
    """Throwaway servers started by this script, stopped in `close()` (also on SIGTERM / Ctrl-C)."""

    def __init__(self) -> None:
        self.pg_port: int | None = None
        self.kafka_port: int | None = None

    def start_postgres(self) -> str:
        self.pg_port = free_port()
        log(f"starting PostgreSQL on 127.0.0.1:{self.pg_port}")
        out = subprocess.run([str(REPO / "deploy/local/postgres.sh"), "start"], env={**os.environ,
                             "PG_PORT": str(self.pg_port)}, check=True, stdout=subprocess.PIPE, text=True)
        return out.stdout.strip().splitlines()[-1]

    def start_kafka(self) -> str:
        self.kafka_port = free_port()
        log(f"starting Kafka on 127.0.0.1:{self.kafka_port}")
        out = subprocess.run([str(REPO / "deploy/local/kafka.sh"), "start"], env={**os.environ,
                             "KAFKA_PORT": str(self.kafka_port)}, check=True, stdout=subprocess.PIPE,
                             text=True)
        return out.stdout.strip().splitlines()[-1]

    def close(self) -> None:
        if self.kafka_port is not None:
            subprocess.run([str(REPO / "deploy/local/kafka.sh"), "stop"],
                           env={**os.environ, "KAFKA_PORT": str(self.kafka_port)}, check=False)
            self.kafka_port = None
        if self.pg_port is not None:
            subprocess.run([str(REPO / "deploy/local/postgres.sh"), "stop"],
                           env={**os.environ, "PG_PORT": str(self.pg_port)}, check=False)
            self.pg_port = None


def pg_settings(admin: str) -> str:
    with psycopg.connect(libpq(admin)) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        shared = conn.execute("SHOW shared_buffers").fetchone()[0]
        fsync = conn.execute("SHOW fsync").fetchone()[0]
    return f"PostgreSQL {version}, shared_buffers {shared}, fsync {fsync}"


def mib(status: dict[str, str], key: str) -> str:
    kb = int(status[key].split()[0])
    return f"{kb / 1024:.0f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dossiers", type=int, default=1_000_000)
    parser.add_argument("--compare", type=int, default=100_000, help="second size for comparison (0: none)")
    parser.add_argument("--ticks", type=int, default=9)
    parser.add_argument("--due-per-tick", type=int, default=100)
    parser.add_argument("--steady-ticks", type=int, default=20,
                        help="then this many ticks of the service's interval (30 s of event time)")
    parser.add_argument("--pool", type=int, default=20_000, help="distinct real folded states")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url",
                        help="admin URL of a PostgreSQL server (default: start a throwaway one)")
    parser.add_argument("--kafka-bootstrap",
                        help="a Kafka for the memory step (default: start a throwaway one)")
    parser.add_argument("--no-service", action="store_true", help="skip the memory step (no Kafka)")
    args = parser.parse_args()

    def on_term(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    infra = Infra()
    workdir = Path(tempfile.mkdtemp(prefix="bench_tick_"))
    admin = args.database_url or ""
    databases: list[Database] = []
    load_before = load()
    prefix = f"bench-{uuid.uuid4().hex[:6]}."  # topics of the bench's ticks and of the service run
    try:
        if not admin:
            admin = infra.start_postgres()
        admin = with_db(admin, urlsplit(admin).path.lstrip("/") or "postgres", "postgresql+psycopg")
        w0 = base_watermark()
        book = CalendarBook()
        version = calendar_version(CalendarConfig())  # DEADLINE_CALENDAR_FILE unset, as the service below
        book.for_agency("").is_working_day(date(2026, 1, 1))  # app.warm_up
        sizes = [args.dossiers] + ([args.compare] if args.compare else [])
        t = time.perf_counter()
        pool, units = build_pool(min(args.pool, max(sizes)), w0, book, args.seed)
        pool_s = time.perf_counter() - t
        # As the service does once started (tthc_common.service): what lives as long as the process is
        # kept out of the garbage collector's full passes, here the pool of 20,000 states too.
        gc.freeze()
        log(f"pool of {len(pool):,} folded states in {pool_s:.1f}s ({len(units)} agencies)")

        runs: list[tuple[Database, list[TickResult], dict]] = []
        for n in sizes:
            db = create_database(admin, n)
            databases.append(db)
            log(f"loading {n:,} open dossiers into {db.name}")
            populate(db, pool, version, w0, args.seed)
            log("loaded: " + ", ".join(f"{k} {v:.1f}s" for k, v in db.load_s.items()))
            results, extra = asyncio.run(run_ticks(db, book, version, args.ticks, args.due_per_tick,
                                                   prefix, w0, args.steady_ticks))
            runs.append((db, results, extra))

        memory: list[dict[str, Any]] = []
        if not args.no_service:
            bootstrap = args.kafka_bootstrap or infra.start_kafka()
            for db in databases:
                log(f"starting the service on {db.name}")
                memory.append(asyncio.run(service_memory(db, bootstrap, workdir, prefix)))

        # -- summary --------------------------------------------------------------------------------
        print()
        print(f"deadline service, one tick (bench_tick.py); {os.cpu_count()} cores, python "
              f"{sys.version.split()[0]}; {pg_settings(admin)}")
        print(f"load average at start {load_before}, at end {load()}")
        print(f"W0 {format_ts(w0)}; pool: {len(pool):,} real folds of dossier.received ({pool_s:.1f}s), "
              f"{len(units)} agencies, {len(PROCEDURES)} procedures; batch size {runs[0][2]['batch_size']}; "
              f"~{args.due_per_tick} due per tick")
        print()
        for db, results, extra in runs:
            normal = [r for r in results if not r.cluster] or results
            n_biggest, at_biggest = db.sizes["largest_instant"]
            print(f"== {db.n:,} open dossiers: table {db.sizes['deadline_dossiers']} (with indexes), "
                  f"ix_deadline_dossiers_next_moment_at {db.sizes['ix_deadline_dossiers_next_moment_at']}; "
                  f"most dossiers sharing one next moment: {n_biggest} at {format_ts(at_biggest)}")
            print("   load: " + ", ".join(f"{k} {v:.1f}s" for k, v in db.load_s.items())
                  + f" ({db.n / db.load_s['copy']:,.0f} rows/s by COPY)")
            print("   selection of the first tick (EXPLAIN ANALYZE, BUFFERS; rolled back):")
            for line in extra["plan"]:
                print(f"     {line}")
            print(f"   {'tick':>4} {'watermark':32} {'due':>5} {'adv':>5} {'events':>6} {'wm ms':>6} "
                  f"{'sweep ms':>8} {'ms/dossier':>10} {'tick ms':>8} {'gauges ms':>9}")
            for i, r in enumerate(results, 1):
                flag = "  (cluster: not in the median)" if r.cluster else ""
                print(f"   {i:>4} {format_ts(r.watermark):32} {r.due:>5} {r.advanced:>5} {r.derived:>6} "
                      f"{r.watermark_ms:>6.1f} {r.sweep_ms:>8.1f} {r.per_dossier_ms:>10.2f} "
                      f"{r.total_ms:>8.1f} {r.gauges_ms:>9.1f}{flag}")
            print(f"   median of {len(normal)} ticks: due {statistics.median(r.due for r in normal):.0f}, "
                  f"sweep {statistics.median(r.sweep_ms for r in normal):.1f} ms "
                  f"({statistics.median(r.per_dossier_ms for r in normal):.2f} ms per dossier), "
                  f"tick (watermark + sweep) {statistics.median(r.total_ms for r in normal):.1f} ms "
                  f"(target < {TARGET_MS:.0f} ms; worst {max(r.total_ms for r in normal):.1f} ms); "
                  f"gauge count after it {statistics.median(r.gauges_ms for r in normal):.1f} ms")
            steady = extra["steady"]
            if steady:
                print(f"   {len(steady)} ticks of the service's interval (30 s of event time each, from "
                      f"{format_ts(steady[0].watermark)}): due per tick {[r.due for r in steady]}; tick "
                      f"(watermark + sweep) median {statistics.median(r.total_ms for r in steady):.1f} ms, "
                      f"worst {max(r.total_ms for r in steady):.1f} ms")
            print("   state gauges' read after each tick (consumers.refresh_state_gauges -> count_by_state):")
            for line in extra["gauges_plan"]:
                print(f"     {line}")
            print(f"   state counts after the ticks, equal to a count of the rows: {extra['state_counts']}")
            print(f"   a 30-day jump (backlog of {extra['backlog_due']:,} due), first batch's selection:")
            for line in extra["backlog_plan"]:
                print(f"     {line}")
            print("   first sweeper run after a start, calendar unchanged "
                  "(rebase_calendar_batch's selection):")
            for line in extra["rebase_plan"]:
                print(f"     {line}")
            print()
        for m in memory:
            print(f"== service on {m['n']:,} open dossiers: ready in {m['ready_s']:.1f}s (VmRSS "
                  f"{mib(m['at_ready'], 'VmRSS')}), idle after start-up {mib(m['idle'], 'VmRSS')}; "
                  "one tick with "
                  f"{m['due']} due swept and published in {m['swept_s']:.2f}s; then VmRSS "
                  f"{mib(m['after_tick'], 'VmRSS')}, VmHWM {mib(m['after_tick'], 'VmHWM')}, "
                  f"threads {m['after_tick']['Threads']}")
            for line in m["metrics"]:
                print(f"     {line}")
        print()
        print(f"summary (load average {load()}; medians over the ticks with ~{args.due_per_tick} due, and over the "
              f"{args.steady_ticks} ticks of 30 s)")
        print(f"  {'open dossiers':>13} {'load s':>7} {'due':>4} {'sweep ms':>9} {'ms/dossier':>10} "
              f"{'tick ms':>8} {'gauges ms':>9} {'30s due':>7} {'30s tick ms':>11} {'VmRSS':>8} {'VmHWM':>8}")
        by_n = {m["n"]: m for m in memory}
        for db, results, extra in runs:
            normal = [r for r in results if not r.cluster] or results
            m = by_n.get(db.n)
            steady = extra["steady"]
            steady_due = f"{statistics.median(r.due for r in steady):.0f}" if steady else "-"
            steady_ms = f"{statistics.median(r.total_ms for r in steady):.1f}" if steady else "-"
            print(f"  {db.n:>13,} {db.load_s['copy'] + db.load_s['vacuum_analyze']:>7.1f} "
                  f"{statistics.median(r.due for r in normal):>4.0f} "
                  f"{statistics.median(r.sweep_ms for r in normal):>9.1f} "
                  f"{statistics.median(r.per_dossier_ms for r in normal):>10.2f} "
                  f"{statistics.median(r.total_ms for r in normal):>8.1f} "
                  f"{statistics.median(r.gauges_ms for r in normal):>9.1f} "
                  f"{steady_due:>7} {steady_ms:>11} "
                  f"{mib(m['after_tick'], 'VmRSS') if m else '-':>8} "
                  f"{mib(m['after_tick'], 'VmHWM') if m else '-':>8}")
        return 0
    finally:
        if args.database_url:
            for db in databases:
                drop_database(admin, db.name)
        infra.close()
        log(f"service logs kept in {workdir}")


if __name__ == "__main__":
    sys.exit(main())

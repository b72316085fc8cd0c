#!/usr/bin/env python3
"""`make bench`: events per second through the real pipeline, next to what a bare Kafka consumer reads.

    python deploy/local/bench.py [--dossiers 1000] [--days 1] [--pg postgresql+psycopg://postgres@127.0.0.1:55432/postgres]

With Kafka running (`deploy/local/kafka.sh start`; $KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092):

1. generate simulated days (`tthc_sim`; by default from Monday 31/08/2026, past days whose follow-up events
   lie before today, as intake requires: events.md, Bounds; days reaching beyond today raise intake's lead,
   INTAKE_MAX_EVENT_LEAD_S, and the bench says so), start the four services (`stack.py`; SQLite under
   var/bench/, or a fresh PostgreSQL database per service with --pg), fresh topic prefix, no wall-clock ticks;
2. PIPELINE: from the first `POST /v1/events` until deadline (`GET /v1/dossiers`) and metrics
   (`GET /v1/indices`) report every dossier received and every closed dossier closed, i.e. every event
   validated, published, consumed, folded and persisted by both consumers;
3. RAW: then, on the same broker, a bare aiokafka consumer (no group, no deserialisation) reads the same
   messages from the dossier topic from the beginning to the end offsets; and once more parsing each
   message with the contract (`dossier_event_adapter.validate_json`), to show what validation costs.

Prints events, seconds, events/s and the ratio raw / pipeline. Not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import sys
import time
import uuid
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))  # stack.py (and demo.py) sit next to this file

import httpx
from demo import DEFAULT_DAY, kafka_answers, replay_of
from stack import ROOT, SERVICES, Stack, StackError, intake_lead_for, service_ports

BENCH_MARKER = ".tthc-bench"


def prepare_var(var: Path) -> None:
    if var.exists():
        if not (var / BENCH_MARKER).exists() and any(var.iterdir()):
            raise SystemExit(f"{var} exists and was not made by the benchmark (no {BENCH_MARKER})")
        shutil.rmtree(var)
    var.mkdir(parents=True)
    (var / BENCH_MARKER).touch()


class PgDatabases:
    """One throwaway database per service on the server of `admin_url`, dropped afterwards."""

    def __init__(self, admin_url: str):
        self.admin_url = admin_url
        self.names = {name: f"bench_{uuid.uuid4().hex[:8]}_{name}" for name in SERVICES}

    def _libpq(self, url: str) -> str:
        parts = urlsplit(url)
        return urlunsplit(parts._replace(scheme=parts.scheme.split("+", 1)[0]))

    def urls(self) -> dict[str, str]:
        return {n: urlunsplit(urlsplit(self.admin_url)._replace(path=f"/{db}")) for n, db in self.names.items()}

    def __enter__(self) -> Self:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self._libpq(self.admin_url), autocommit=True) as conn:
            for db in self.names.values():
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
        return self

    def __exit__(self, *exc: object) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self._libpq(self.admin_url), autocommit=True) as conn:
            for db in self.names.values():
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))


def post_all(client: httpx.Client, stack: Stack, events: list[dict[str, Any]], batch: int) -> int:
    headers = {"Authorization": f"Bearer {stack.intake_key}"}
    accepted = 0
    for i in range(0, len(events), batch):
        for attempt in range(10):
            r = client.post(stack.url("intake") + "/v1/events", json=events[i:i + batch], headers=headers)
            if r.status_code != 503:
                break
            time.sleep(0.5 * (attempt + 1))
        if r.status_code != 202:
            raise RuntimeError(f"intake: HTTP {r.status_code} {r.text[:300]}")
        accepted += r.json()["accepted"]
    return accepted


def prometheus_sum(text: str, metric: str, **labels: str) -> float:
    """Sum of the samples of `metric` whose labels include `labels` (Prometheus text format)."""
    total = 0.0
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    for line in text.splitlines():
        if line.startswith(metric + "{") and all(w in line for w in wanted):
            total += float(line.rsplit(" ", 1)[1])
    return total


def consumed_by_metrics(client: httpx.Client, stack: Stack) -> float:
    text = client.get(stack.url("metrics") + "/metrics").text
    return prometheus_sum(text, "tthc_metrics_consumed_events_total", stream="dossier")


def wait_processed(client: httpx.Client, stack: Stack, first: date, last: date, received: int, closed: int,
                   accepted: int, timeout_s: float, t0: float) -> dict[str, float]:
    """Seconds since t0 at which deadline, then metrics, had every dossier and every closure."""
    done: dict[str, float] = {}
    deadline_at = time.monotonic() + timeout_s
    base = stack.url("deadline") + "/v1/dossiers"
    next_figures_check = time.monotonic() + 10
    while len(done) < 2:
        if "deadline" not in done:
            total = client.get(base, params={"page_size": 1}).json()["total"]
            n_closed = client.get(base, params={"page_size": 1, "state": "closed"}).json()["total"]
            if total == received and n_closed == closed:
                done["deadline"] = time.monotonic() - t0
        # /v1/indices folds every dossier: asked 4 times a second it would slow the very service we time.
        # The consumed-events counter is cheap; the figures are checked once it has every event.
        # (Every 10 s the figures are looked at anyway, in case the counter is renamed one day.)
        if "metrics" not in done and (consumed_by_metrics(client, stack) >= accepted
                                      or time.monotonic() >= next_figures_check):
            next_figures_check = time.monotonic() + 10
            r = client.get(stack.url("metrics") + "/v1/indices",
                           params={"from": first.isoformat(), "to": last.isoformat(), "group_by": "channel"})
            t = r.json()["total"]
            if t["received"] == received and t["closed"] == closed:
                done["metrics"] = time.monotonic() - t0
        if time.monotonic() > deadline_at:
            raise TimeoutError(f"not processed within {timeout_s:.0f}s (done so far: {done})")
        time.sleep(0.25)
    return done


async def raw_read(bootstrap: str, topic: str, parse: bool) -> tuple[int, float]:
    """A bare aiokafka consumer: assign every partition, read from the beginning to the end offsets."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    adapter = None
    if parse:
        from tthc_contracts import dossier_event_adapter as adapter
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", client_id="tthc-bench-raw",
                                isolation_level="read_committed",  # as the services read
                                max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
    await consumer.start()
    try:
        # The consumer's own metadata covers only topics it subscribed to: ask the cluster directly.
        metadata = await consumer._client.fetch_all_metadata()
        partitions = metadata.partitions_for_topic(topic)
        if not partitions:
            raise RuntimeError(f"topic {topic} not found")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > 0}
        n = 0
        t0 = time.perf_counter()
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000, max_records=50_000)
            for tp, msgs in batches.items():
                n += len(msgs)
                if adapter is not None:
                    for m in msgs:
                        adapter.validate_json(m.value)
            # By position, not by the last record's offset: intake's transactions end with a commit marker,
            # an offset no record is returned for.
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        return n, time.perf_counter() - t0
    finally:
        await consumer.stop()


def rate(n: int, s: float) -> str:
    return f"{n / s:,.0f}" if s > 0 else "—"


def run(args: argparse.Namespace) -> int:
    from tthc_contracts import parse_ts
    from tthc_contracts.topics import Topics
    from tthc_sim import generate_days

    kafka = args.kafka or os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or "127.0.0.1:9092"
    if not kafka_answers(kafka):
        print(f"no Kafka at {kafka}: start it with deploy/local/kafka.sh start, or set KAFKA_BOOTSTRAP_SERVERS",
              file=sys.stderr)
        return 2
    events = generate_days(args.day, args.days, args.dossiers, args.seed)
    last_at = max(parse_ts(e["occurred_at"]) for e in events)
    first, last = args.day, last_at.date()
    expected = replay_of(events, last_at + timedelta(microseconds=1), first, last)
    received = len(expected.dossiers)
    closed = sum(d.is_closed for d in expected.dossiers)
    print(f"workload: {len(events)} events, {args.days} day(s) x {args.dossiers} dossiers from {args.day} "
          f"({received} received, {closed} closed by {last})")

    var = Path(args.var).resolve()
    prepare_var(var)
    prefix = f"bench-{secrets.token_hex(4)}."
    ports = service_ports(args.port_base)
    with ExitStack() as cleanup:
        pg = cleanup.enter_context(PgDatabases(args.pg)) if args.pg else None
        lead = intake_lead_for(last_at)
        if lead:
            print(f"events reach {last}, after today: intake's lead raised to INTAKE_MAX_EVENT_LEAD_S="
                  f"{lead['INTAKE_MAX_EVENT_LEAD_S']}")
        stack = Stack(kafka_bootstrap=kafka, topic_prefix=prefix, var_dir=var, ports=ports,
                      database_urls=pg.urls() if pg else None, officer_agencies=[],
                      extra_env={**lead, "DEADLINE_PUBLISH_TICKS": "false", "INTAKE_LOG_LEVEL": "WARNING",
                                 "DEADLINE_LOG_LEVEL": "WARNING", "APOLOGY_LOG_LEVEL": "WARNING",
                                 "METRICS_LOG_LEVEL": "WARNING"})
        storage = "PostgreSQL (one database per service)" if pg else f"SQLite under {var}"
        print(f"stack: Kafka {kafka}, topics {prefix}*, {storage}")
        try:
            cleanup.enter_context(stack)  # stopped on the way out, before its databases are dropped
        except StackError as exc:
            print(f"stack did not start: {exc}", file=sys.stderr)
            return 1
        try:
            with httpx.Client(timeout=300) as client:
                t0 = time.monotonic()
                accepted = post_all(client, stack, events, args.batch)
                posted_s = time.monotonic() - t0
                done = wait_processed(client, stack, first, last, received, closed, accepted, args.timeout, t0)
            pipeline_s = max(done.values())
            topic = Topics(prefix).dossier_events
            # Best of three: a read of a few thousand messages takes milliseconds, so one run is mostly noise.
            raw_n, raw_s = min((asyncio.run(raw_read(kafka, topic, parse=False)) for _ in range(3)), key=lambda r: r[1])
            parsed_n, parsed_s = min((asyncio.run(raw_read(kafka, topic, parse=True)) for _ in range(3)),
                                     key=lambda r: r[1])
        except (TimeoutError, RuntimeError, httpx.HTTPError) as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            print(stack.log_tails(10), file=sys.stderr)
            return 1

    rows = [
        ("intake: HTTP POST -> validated, durably in Kafka", accepted, posted_s),
        ("deadline: consumed, folded, persisted (all dossiers)", accepted, done["deadline"]),
        ("metrics: consumed, persisted, figures complete", accepted, done["metrics"]),
        ("PIPELINE: first POST -> deadline and metrics done", accepted, pipeline_s),
        ("RAW: bare aiokafka consumer, same topic and broker*", raw_n, raw_s),
        ("RAW + contract validation (pydantic, per message)*", parsed_n, parsed_s),
    ]
    print()
    print(f"{'stage':<54} {'events':>8} {'seconds':>9} {'events/s':>10}")
    for label, n, s in rows:
        print(f"{label:<54} {n:>8} {s:>9.2f} {rate(n, s):>10}")
    print("* best of 3 reads from the beginning of the topic to its end offsets, after the pipeline run")
    print(f"\nratio raw / pipeline: {(raw_n / raw_s) / (accepted / pipeline_s):,.0f}x "
          f"(the pipeline runs at {100 * (accepted / pipeline_s) / (raw_n / raw_s):.3g}% of the bare read rate)")
    if raw_n != accepted:
        print(f"note: the topic holds {raw_n} messages, intake accepted {accepted}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="deploy/local/bench.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--day", type=date.fromisoformat, default=DEFAULT_DAY,
                   help=f"the first simulated day ({DEFAULT_DAY}: past, so intake takes every event at its default lead)")
    p.add_argument("--days", type=int, default=5, help="consecutive simulated days (5: a steady load, not start-up)")
    p.add_argument("--dossiers", type=int, default=1000, help="dossiers per day (1000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--batch", type=int, default=1000, help="events per POST (at most 1000)")
    p.add_argument("--kafka", help="bootstrap servers (default $KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092)")
    p.add_argument("--pg", help="PostgreSQL admin URL (postgresql+psycopg://...): a database per service instead of SQLite")
    p.add_argument("--var", default=str(ROOT / "var" / "bench"))
    p.add_argument("--port-base", type=int, default=None,
                   help="services on BASE+1..BASE+4 (default: four ports free right now)")
    p.add_argument("--timeout", type=float, default=1800)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

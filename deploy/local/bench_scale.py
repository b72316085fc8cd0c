#!/usr/bin/env python3
"""`make bench-scale`: a province's year of history through the running services, then the live figures.

    python deploy/local/bench_scale.py [--dossiers 100000] [--db sqlite|postgres|both] [--check]

With Kafka running ($KAFKA_BOOTSTRAP_SERVERS; `make bench-scale` starts a throwaway one) and, for
`--db postgres`, a PostgreSQL server ($TTHC_TEST_DATABASE_URL, an admin URL; `make bench-scale` starts one):

1. a simulated province (`tthc_sim`: --per-day dossiers every working day, the days before today, so that
   intake takes every event at its default lead) is generated once into .cache/bench-scale/, in event-time
   order, as one-stop software would post it back-filling its history;
2. the four services start (SQLite under var/bench-scale/, or one PostgreSQL database each), no wall-clock
   ticks (a back-fill of the past: time follows the events), the province's calendar file for every service;
3. BACKFILL: the log is posted to intake (batches of 1000, --clients at a time) and the clock stops when
   every consumer group of the stack has read every record of every topic (lag 0, nothing moving for a
   few seconds) and the deadline service holds every dossier;
4. REFRESH: one refresh of the metrics service's gauges (current month + quarter + year), as the service
   itself timed it (`tthc_index_refresh_duration_seconds`);
5. REPORT: `GET /v1/indices` of the current year (the present cut);
6. RSS: each service's peak resident memory (VmHWM).

Lines, comparable from run to run:

    BACKFILL: <db> <dossiers> dossiers <events> events <seconds> s <events/s>
    REFRESH: <db> <dossiers> dossiers <seconds> s
    REPORT: <db> <dossiers> dossiers <seconds> s
    RSS: <db> <service> <MiB>

`--check` then compares every dossier, letter and figure with `tthc replay` of the same log (slow at a million).
Not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import math
import os
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from bench import PgDatabases, prepare_var
from demo import kafka_answers
from stack import ROOT, SERVICES, Stack, StackError, service_ports

CACHE = ROOT / ".cache" / "bench-scale"
FOLLOW_UP_DAYS = 70  # the simulator's follow-up events of a day reach at most about eight weeks on


# -- the province's log -------------------------------------------------------------------------------
def working_days_before(last: date, count: int) -> list[date]:
    days, day = [], last
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day -= timedelta(days=1)
    return sorted(days)


def _one_day(job: tuple[date, int, int, str]) -> str:
    """One day of the province, its events sorted by event time, as `<occurred_at>\\t<json>` lines."""
    from tthc_sim.day import generate_day

    day, dossiers, seed, folder = job
    events = generate_day(day, dossiers, seed)
    lines = sorted((e["occurred_at"], json.dumps(e, ensure_ascii=False)) for e in events)
    path = Path(folder) / f"{day.isoformat()}.tsv"
    path.write_text("".join(f"{at}\t{text}\n" for at, text in lines), encoding="utf-8")
    return str(path)


def province_log(dossiers: int, per_day: int) -> tuple[Path, date, date]:
    """The log of `dossiers` received over the working days before today (less the follow-up weeks), in
    event-time order (a k-way merge of the days); generated once. Returns (path, first day, last day)."""
    last_receipt = date.today() - timedelta(days=FOLLOW_UP_DAYS)
    days = working_days_before(last_receipt, math.ceil(dossiers / per_day))
    path = CACHE / f"province-{dossiers}-{per_day}-{days[0]}.jsonl"
    if not path.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(dir=CACHE) as work:
            jobs = [(day, min(per_day, dossiers - i * per_day), i + 1, work) for i, day in enumerate(days)]
            with ProcessPoolExecutor() as pool:
                parts = list(pool.map(_one_day, jobs, chunksize=4))
            files = [open(p, encoding="utf-8") for p in parts]  # noqa: SIM115 - closed below
            try:
                with tempfile.NamedTemporaryFile("w", dir=CACHE, delete=False, encoding="utf-8") as out:
                    for line in heapq.merge(*files):  # "<occurred_at>\t": same width, same offset (+07:00)
                        out.write(line.split("\t", 1)[1])
            finally:
                for f in files:
                    f.close()
            os.replace(out.name, path)
        print(f"generated {path.name} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return path, days[0], days[-1]


def batches(path: Path, size: int) -> Iterator[tuple[int, bytes]]:
    """Request bodies of `size` events, made of the log's lines as they are (no parsing)."""
    lines: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            lines.append(line.rstrip("\n"))
            if len(lines) == size:
                yield len(lines), ("[" + ",".join(lines) + "]").encode()
                lines = []
    if lines:
        yield len(lines), ("[" + ",".join(lines) + "]").encode()


def post_all(stack: Stack, path: Path, clients: int) -> tuple[int, int]:
    """Post the log to intake from `clients` threads; returns (events posted, events accepted)."""
    source = batches(path, 1000)
    lock = threading.Lock()
    totals = {"posted": 0, "accepted": 0}
    failure: list[BaseException] = []

    def worker() -> None:
        headers = {"Authorization": f"Bearer {stack.intake_key}", "Content-Type": "application/json"}
        with httpx.Client(timeout=300) as client:
            while not failure:
                with lock:
                    item = next(source, None)
                if item is None:
                    return
                n, body = item
                for attempt in range(30):
                    try:
                        r = client.post(stack.url("intake") + "/v1/events", content=body, headers=headers)
                    except httpx.TransportError:
                        time.sleep(1)
                        continue
                    if r.status_code != 503:
                        break
                    time.sleep(0.5 * (attempt + 1))
                if r.status_code != 202:
                    failure.append(RuntimeError(f"intake: HTTP {r.status_code} {r.text[:300]}"))
                    return
                with lock:
                    totals["posted"] += n
                    totals["accepted"] += r.json()["accepted"]

    threads = [threading.Thread(target=worker, name=f"poster-{i}") for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failure:
        raise failure[0]
    return totals["posted"], totals["accepted"]


# -- waiting for every consumer ---------------------------------------------------------------------------
async def group_lag(bootstrap: str, prefix: str) -> tuple[int, tuple[Any, ...]]:
    """(records not yet committed by the stack's consumer groups, their committed offsets)."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        groups = [g[0] for g in await admin.list_consumer_groups() if g[0].startswith(prefix)]
        lag, positions = 0, []
        for group in sorted(groups):
            offsets = await admin.list_consumer_group_offsets(group)
            partitions = [tp for tp in offsets if tp.topic.startswith(prefix)]
            if not partitions:
                continue
            ends = await consumer.end_offsets(partitions)
            for tp in sorted(partitions):
                committed = offsets[tp].offset
                # a transaction's commit marker takes the last offset of a partition: read, not a record
                lag += max(0, ends[tp] - committed - 1)
                positions.append((group, tp.topic, tp.partition, committed))
        return lag, tuple(positions)
    finally:
        await consumer.stop()
        await admin.close()


def wait_caught_up(stack: Stack, bootstrap: str, received: int, timeout_s: float, t0: float) -> float:
    """Seconds since t0 when every group had read everything and the deadline service held every dossier."""
    deadline = time.monotonic() + timeout_s
    last: tuple[Any, ...] = ()
    still_since = None
    with httpx.Client(timeout=60) as client:
        while time.monotonic() < deadline:
            lag, positions = asyncio.run(group_lag(bootstrap, stack.topic_prefix))
            if lag == 0 and positions == last:
                if still_since is None:
                    still_since = time.monotonic()
                total = client.get(stack.url("deadline") + "/v1/dossiers", params={"page_size": 1}).json()["total"]
                if total >= received and time.monotonic() - still_since >= 3:
                    return still_since - t0
            else:
                still_since = None
            last = positions
            time.sleep(1)
    raise TimeoutError(f"the consumers did not catch up within {timeout_s:.0f} s")


def wait_next_refresh(client: httpx.Client, stack: Stack, after: float, timeout_s: float = 600) -> float:
    """The duration of the first gauge refresh that began after `after` (wall time)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = client.get(stack.url("metrics") + "/metrics").text
        values = {line.split(" ")[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                  if line.startswith(("tthc_index_last_refresh_timestamp_seconds ",
                                      "tthc_index_refresh_duration_seconds "))}
        if values.get("tthc_index_last_refresh_timestamp_seconds", 0) > after:
            return values["tthc_index_refresh_duration_seconds"]
        time.sleep(1)
    raise TimeoutError("no gauge refresh")


def peak_rss_mib(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return None
    return kib / 1024


# -- one run -----------------------------------------------------------------------------------------------
def run_once(args: argparse.Namespace, db: str, kafka: str, log: Path, first: date, last: date) -> int:
    from tthc_sim import province_calendar

    var = (ROOT / "var" / f"bench-scale-{db}").resolve()
    prepare_var(var)
    calendar = var / "calendar.yaml"
    calendar.write_text(province_calendar(), encoding="utf-8")
    admin = args.pg or os.environ.get("TTHC_TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if db == "postgres" and not admin:
        print("--db postgres needs --pg or $TTHC_TEST_DATABASE_URL (an admin URL)", file=sys.stderr)
        return 2
    with ExitStack() as cleanup:
        pg = cleanup.enter_context(PgDatabases(admin)) if db == "postgres" else None
        env = {"DEADLINE_PUBLISH_TICKS": "false", "METRICS_GAUGE_REFRESH_INTERVAL_S": "5"}
        for name in SERVICES:
            env[f"{name.upper()}_LOG_LEVEL"] = "WARNING"
            if name != "intake":
                env[f"{name.upper()}_CALENDAR_FILE"] = str(calendar)
        stack = Stack(kafka_bootstrap=kafka, topic_prefix=f"scale-{secrets.token_hex(4)}.", var_dir=var,
                      ports=service_ports(None), database_urls=pg.urls() if pg else None,
                      extra_env=env, ready_timeout_s=180)
        try:
            cleanup.enter_context(stack)  # stopped on the way out, before its databases are dropped
        except StackError as exc:
            print(f"stack did not start: {exc}", file=sys.stderr)
            return 1
        try:
            t0 = time.monotonic()
            posted, accepted = post_all(stack, log, args.clients)
            posted_s = time.monotonic() - t0
            expected_received = args.dossiers - args.refused_margin
            seconds = wait_caught_up(stack, kafka, expected_received, args.timeout, t0)
            print(f"  (intake took the {posted:,} events in {posted_s:.0f} s: {posted / posted_s:,.0f} events/s)",
                  file=sys.stderr)
            print(f"BACKFILL: {db} {args.dossiers} dossiers {accepted} events {seconds:.1f} s "
                  f"{accepted / seconds:,.0f} events/s", flush=True)
            with httpx.Client(timeout=600) as client:
                refresh = wait_next_refresh(client, stack, time.time())
                print(f"REFRESH: {db} {args.dossiers} dossiers {refresh:.3f} s", flush=True)
                year = date.today().year
                started = time.perf_counter()
                r = client.get(stack.url("metrics") + "/v1/indices",
                               params={"from": f"{year}-01-01", "to": f"{year}-12-31"})
                r.raise_for_status()
                print(f"REPORT: {db} {args.dossiers} dossiers {time.perf_counter() - started:.3f} s", flush=True)
                for name in ("deadline", "apology", "metrics"):
                    text = client.get(stack.url(name) + "/metrics").text
                    sums: dict[str, list[float]] = {}
                    for line in text.splitlines():
                        for part in ("sum", "count"):
                            if line.startswith(f"tthc_consumer_batch_records_{part}{{"):
                                consumer = line.split('consumer="', 1)[1].split('"', 1)[0]
                                sums.setdefault(consumer, [0.0, 0.0])[part == "count"] += float(line.rsplit(" ", 1)[1])
                    for consumer, (total, count) in sorted(sums.items()):
                        print(f"  batches of {consumer}: {count:,.0f}, {total / max(count, 1):,.0f} records each",
                              file=sys.stderr)
                for name in SERVICES:
                    rss = peak_rss_mib(stack.pid(name))
                    print(f"RSS: {db} {name} {rss:.0f}" if rss is not None else f"RSS: {db} {name} ?", flush=True)
                if args.check:
                    from replay_check import differences, replay_view, service_view, tick
                    from tthc_adapters.calendar_file import load_calendar
                    from tthc_core.calendar import CalendarBook

                    with log.open(encoding="utf-8") as lines:
                        events = [json.loads(line) for line in lines]
                    until = datetime.fromisoformat(max(e["occurred_at"] for e in events)) + timedelta(microseconds=1)
                    want = replay_view(events, until, first, until.date(), CalendarBook(load_calendar(calendar)))
                    tick(stack, until)  # the services' time at the end of the log, as replay's --until
                    settle_by = time.monotonic() + 300
                    while True:
                        problems = differences(service_view(client, stack, first, until.date(), until), want)
                        if not problems or time.monotonic() > settle_by:
                            break
                        time.sleep(2)
                    print(f"CHECK: {db} {'same as tthc replay' if not problems else f'{len(problems)} differences'}")
                    for p in problems[:20]:
                        print("  " + p)
        except (TimeoutError, RuntimeError, httpx.HTTPError) as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            print(stack.log_tails(10), file=sys.stderr)
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="deploy/local/bench_scale.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--dossiers", type=int, default=int(os.environ.get("BENCH_DOSSIERS", "100000")))
    p.add_argument("--per-day", type=int, default=4000, help="dossiers received each working day (4000)")
    p.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    p.add_argument("--pg", help="PostgreSQL admin URL (default $TTHC_TEST_DATABASE_URL)")
    p.add_argument("--kafka", help="bootstrap servers (default $KAFKA_BOOTSTRAP_SERVERS)")
    p.add_argument("--clients", type=int, default=4, help="requests to intake at a time (4)")
    p.add_argument("--timeout", type=float, default=7200)
    p.add_argument("--check", action="store_true", help="compare everything with tthc replay afterwards")
    args = p.parse_args(argv)
    args.refused_margin = 0
    if args.check and args.clients != 1:
        # Overlapping requests put events on Kafka out of order: the services then draft letters that a later
        # event cancels, as they would live, and which replay (every event known at once) never makes.
        print("--check posts with one client (events in order), so that the letters compare too",
              file=sys.stderr)
        args.clients = 1
    kafka = args.kafka or os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or "127.0.0.1:9092"
    if not kafka_answers(kafka):
        print(f"no Kafka at {kafka}: set KAFKA_BOOTSTRAP_SERVERS, or run `make bench-scale`", file=sys.stderr)
        return 2
    log, first, last = province_log(args.dossiers, args.per_day)
    with log.open(encoding="utf-8") as lines:
        received = sum(1 for line in lines if '"type": "dossier.received"' in line)
    args.refused_margin = args.dossiers - received  # refused at the desk: never received
    print(f"workload: {log.name}: {args.dossiers:,} dossiers ({received:,} received) from {first} to {last}",
          file=sys.stderr)
    status = 0
    for db in (("sqlite", "postgres") if args.db == "both" else (args.db,)):
        status = max(status, run_once(args, db, kafka, log, first, last))
    return status


if __name__ == "__main__":
    sys.exit(main())

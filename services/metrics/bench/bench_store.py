"""The metrics service's store, in process (no Kafka): events/s through its units and the time of one period
report, beside the same figures of the previous code (prints figures; not a test).

    .venv/bin/python services/metrics/bench/bench_store.py [--dossiers 20000] [--batch 500]
        [--previous REF] [--previous-events 5000] [--database-url sqlite:///...]

Issue 10 measured the previous code at 118 events/s (500 events a transaction) and 2.9-4.6 s for one period
report at 20,000 dossiers.

1. Events: `tthc_sim.generate_days` (receipts over consecutive days, 250 a day, each dossier's later events
   in its story), in arrival order.
2. Now: every event through `units.apply_dossier_events` in batches of `--batch` (one transaction each, as
   a Kafka batch is; the kept counts included), then `queries.indices_report` of the year at the present
   (the watermark: from the kept counts) and of the first month as of its end (a past cut: from the stored
   states, the dossiers changed after it folded from their events). The figures of current periods at
   scale: `bench_figures.py`.
3. Previous (`--previous`, default `e90ea6b^`, the last commit with the per-event writer `store.py`; the
   code before the kept counts is measured by `bench_figures.py`): the metrics package of that commit, in a
   subprocess (its tables are other ones): its per-event writer on the first `--previous-events` events,
   500 a transaction (the whole set would take about ten minutes at its speed), then its report on all
   the dossiers, its tables filled directly from the same events (events, per-dossier summaries, closed
   states: what its writer would have left).

Both run on a fresh SQLite file by default; `--database-url postgresql+psycopg://.../postgres` (an admin
URL) creates a database there per run and drops it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
PER_DAY = 250
PER_EVENT_WRITER = "e90ea6b^"  # the last commit whose metrics package had store.py (one event a call)
FIRST_DAY = date(2026, 1, 5)


def simulated_events(dossiers: int) -> list[dict[str, Any]]:
    from tthc_sim import generate_days

    days = max(1, -(-dossiers // PER_DAY))
    return generate_days(FIRST_DAY, days, dossiers=min(dossiers, PER_DAY), seed=1)


def fresh_database(url: str | None, tmp: Path, name: str) -> tuple[str, Any]:
    """A new empty database (SQLite file, or one made on the PostgreSQL server of `url`) and its cleanup."""
    if url is None or url.startswith("sqlite"):
        return f"sqlite:///{tmp / f'{name}.db'}", lambda: None
    from tests.support.infra import fresh_databases

    manager = fresh_databases(url, [name])
    (database,) = manager.__enter__()
    return database, lambda: manager.__exit__(None, None, None)


def periods() -> tuple[Any, Any]:
    from tthc_core.indices import Period

    return Period(date(2026, 1, 1), date(2026, 12, 31)), Period(date(2026, 1, 1), date(2026, 1, 31))


# -- now ------------------------------------------------------------------------------------------------
def run_now(args: argparse.Namespace, raw: list[dict[str, Any]], tmp: Path) -> dict[str, float]:
    from tthc_adapters.calendar_file import load_calendar
    from tthc_common.batches import Received
    from tthc_common.db import make_engine, run_migrations, session_scope
    from tthc_contracts import parse_dossier_event
    from tthc_core.calendar import CalendarBook
    from tthc_core.indices import facts_basis
    from tthc_metrics import queries, units
    from tthc_metrics.app import MIGRATIONS_DIR

    book = CalendarBook(load_calendar(None))
    basis = facts_basis(book)
    url, cleanup = fresh_database(args.database_url, tmp, "metrics_now")
    try:
        run_migrations(url, MIGRATIONS_DIR)
        engine = make_engine(url)
        with session_scope(engine) as session:  # the start-up pass on an empty store: counted from now on
            assert units.count_dossiers(session, book=book, basis=basis) is None
        items = [Received(parse_dossier_event(e), "dossier-events", i % 4, i) for i, e in enumerate(raw)]
        started = time.perf_counter()
        for start in range(0, len(items), args.batch):
            with session_scope(engine) as session:
                units.apply_dossier_events(session, items[start:start + args.batch], book=book, basis=basis)
        stored_s = time.perf_counter() - started
        year, january = periods()
        started = time.perf_counter()
        with session_scope(engine) as session:
            present = queries.indices_report(session, book, year, None, basis=basis)
        present_s = time.perf_counter() - started
        started = time.perf_counter()
        with session_scope(engine) as session:
            past = queries.indices_report(session, book, january, january.ends_at, basis=basis)
        past_s = time.perf_counter() - started
        engine.dispose()
        return {"events": len(items), "stored_s": stored_s, "report_s": present_s, "past_report_s": past_s,
                "handled": present["total"]["received"], "january_received": past["total"]["received"]}
    finally:
        cleanup()


# -- previous ---------------------------------------------------------------------------------------------
def extract_previous(ref: str, into: Path) -> Path:
    """The metrics package of `ref`, as a directory to put first on sys.path."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "services/metrics/src/tthc_metrics"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "services" / "metrics" / "src"


def run_previous(args: argparse.Namespace, raw: list[dict[str, Any]], tmp: Path) -> dict[str, float]:
    """In a subprocess whose `tthc_metrics` is the previous code."""
    from tthc_adapters.calendar_file import load_calendar
    from tthc_common.db import make_engine, run_migrations, session_scope
    from tthc_contracts import parse_dossier_event
    from tthc_core.calendar import CalendarBook
    from tthc_core.deadlines import fold
    from tthc_metrics import figures, store  # the previous code (sys.path)
    from tthc_metrics.models import DossierSummary, StoredDossierEvent

    import tthc_metrics

    migrations = Path(tthc_metrics.__file__).parent / "migrations"
    assert (migrations.parent / "store.py").exists(), f"not the previous code: {tthc_metrics.__file__}"
    book = CalendarBook(load_calendar(None))
    events = [parse_dossier_event(e) for e in raw]

    # its writer, on the first events
    url, cleanup = fresh_database(args.database_url, tmp, "metrics_previous_writer")
    try:
        run_migrations(url, migrations)
        engine = make_engine(url)
        sample = events[:args.previous_events]
        started = time.perf_counter()
        for start in range(0, len(sample), 500):
            with session_scope(engine) as session:
                for event in sample[start:start + 500]:
                    store.record_dossier_event(session, event=event, book=book)
        stored_s = time.perf_counter() - started
        engine.dispose()
    finally:
        cleanup()

    # its report, on every dossier: its tables as its writer would have left them
    url, cleanup = fresh_database(args.database_url, tmp, "metrics_previous_report")
    try:
        run_migrations(url, migrations)
        engine = make_engine(url)
        logs: dict[str, list[Any]] = {}
        for event in events:
            logs.setdefault(event.dossier_id, []).append(event)
        now = datetime.now().astimezone()
        with session_scope(engine) as session:
            session.add_all(StoredDossierEvent(
                source=e.source, event_id=e.event_id, dossier_id=e.dossier_id, occurred_at=e.occurred_at,
                type=e.type, payload=store.redact(e), stored_at=now) for e in events)
            for dossier_id, log in logs.items():
                state, _ = fold(log, book)
                session.add(DossierSummary(
                    dossier_id=dossier_id, received_at=state and state.received_at,
                    closed_at=state and state.closed_at, event_count=len(log),
                    closed_state=state.to_json() if state is not None and state.closed_at else None))
            store.advance_watermark(session, store.STREAM_DOSSIER, max(e.occurred_at for e in events))
        year, january = periods()
        watermark = store.read_watermark(engine)
        started = time.perf_counter()
        present = figures.indices_report(engine, book, year, figures.cut_for(year, watermark, None))
        present_s = time.perf_counter() - started
        started = time.perf_counter()
        figures.indices_report(engine, book, january, january.ends_at)
        past_s = time.perf_counter() - started
        engine.dispose()
        return {"events": len(sample), "stored_s": stored_s, "report_s": present_s, "past_report_s": past_s,
                "handled": present["total"]["received"]}
    finally:
        cleanup()


# -- the run ----------------------------------------------------------------------------------------------
def print_figures(label: str, figures: dict[str, float], dossiers: int) -> None:
    rate = figures["events"] / figures["stored_s"]
    print(f"STORE: {label} {int(figures['events'])} events {figures['stored_s']:.2f} s {rate:.0f} events/s")
    print(f"REPORT: {label} {dossiers} dossiers year at the present {figures['report_s']:.2f} s; "
          f"January as of its end {figures['past_report_s']:.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dossiers", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--previous", default=PER_EVENT_WRITER, help="git ref of the previous code (default: "
                                                                    "the per-event writer); 'none' to skip")
    parser.add_argument("--previous-events", type=int, default=5_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--implementation", choices=("now", "previous"), default="now",
                        help=argparse.SUPPRESS)
    parser.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO))  # tests.support.infra, for PostgreSQL
    raw = simulated_events(args.dossiers)
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp_name:
        tmp = Path(tmp_name)
        if args.implementation == "previous":
            figures = run_previous(args, raw, tmp)
            Path(args.result).write_text(json.dumps(figures))
            return 0
        dossiers = len({e["dossier_id"] for e in raw})
        print(f"{dossiers} dossiers, {len(raw)} events ({FIRST_DAY:%d/%m/%Y}, {PER_DAY} a day), batches of "
              f"{args.batch}, {args.database_url or 'SQLite'}")
        now = run_now(args, raw, tmp)
        print_figures("now", now, dossiers)
        if (args.previous or "").lower() != "none":
            ref = args.previous
            source = extract_previous(ref, tmp)
            result = tmp / "previous.json"
            path = os.pathsep.join([str(source), os.environ.get("PYTHONPATH", "")])
            env = {**os.environ, "PYTHONPATH": path}
            subprocess.run([sys.executable, __file__, "--implementation", "previous", "--result", str(result),
                            "--dossiers", str(args.dossiers), "--previous-events", str(args.previous_events),
                            *(["--database-url", args.database_url] if args.database_url else [])],
                           check=True, env=env)
            previous = json.loads(result.read_text())
            print_figures(f"previous ({ref[:10]})", previous, dossiers)
            assert previous["handled"] == now["handled"], (previous, now)
    return 0


if __name__ == "__main__":
    sys.exit(main())

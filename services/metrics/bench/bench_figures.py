"""The metrics service's figures of the current periods at scale: one gauge refresh (month + quarter + year)
and one `GET /v1/indices` of the current year, at N stored dossiers, on SQLite and PostgreSQL, beside the
previous code's on the same database (prints figures; not a test).

    .venv/bin/python services/metrics/bench/bench_figures.py [--dossiers 20000,100000,1000000]
        [--databases sqlite,postgres] [--postgres-url postgresql+psycopg://postgres@127.0.0.1:55432/postgres]
        [--previous REF | --previous none] [--previous-max 1000000] [--repeat 3]

The store: a year of a province, dossiers received from 01/01/2026 to the present, 20/12/2026 12:00, with
every event before it (`tthc_sim`: transfers, supplementation, pauses, extensions; the province's calendar
file, so the online figures are not empty), the dossiers still open at the present being open. Half of the
dossiers closed late have an apology letter the day after their due date.

How the rows are made (fast, without consuming events; the consumers' code all the same):
- up to 20,000 distinct dossiers are simulated and folded (`fold`); N dossiers are that many copies of them
  under new ids (same instants, agencies and outcomes: the year's volume grows, its groups do not, as in a
  real province);
- each row is what `units.apply_dossier_events` writes: the state (`Dossier.to_json()`), the figures'
  columns (`units.figure_columns`) and what it counts (`units.Recount.replace`: `units.contribution`),
  shards by Kafka partition (id hash, 4 partitions); `metrics_counts` is written by `Recount.write` (the
  units' upsert) from those contributions, `metrics_counts_basis` says the calendar's `facts_basis`, as the
  start-up pass leaves it. A check then compares the kept counts with the counts from scratch.
- then ANALYZE (PostgreSQL: VACUUM ANALYZE), as a live database's autovacuum would have.

Now: `queries.current_figures` (what `GaugeRefresher` runs) and `queries.indices_report` of the year (what
`GET /v1/indices?from=2026-01-01&to=2026-12-31` runs, before JSON), each `--repeat` times (the median is
printed), and a report of 15/03-31/12 (days around the whole months: read from the dossiers of 15-31/03).
Previous (`--previous`, default the merge base with main): the same two calls of that commit's `queries`
in a subprocess on the same database (its tables are a subset of these), once, up to `--previous-max`
dossiers; its answers must equal ours.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
PRESENT = "2026-12-20T12:00:00+07:00"
FIRST_DAY = date(2026, 1, 1)
DISTINCT = 20_000
PARTITIONS = 4
ROWS_PER_INSERT = 2_000


def calendar_book() -> Any:
    from tthc_core.calendar import CalendarBook
    from tthc_core.calendar_config import parse_calendar
    from tthc_sim import province_calendar

    return CalendarBook(parse_calendar(province_calendar()))


def periods() -> dict[str, Any]:
    from tthc_core.indices import Period

    return {"year": Period(date(2026, 1, 1), date(2026, 12, 31)),
            "days": Period(date(2026, 3, 15), date(2026, 12, 31))}


def result_digest(result: Any) -> str:
    return hashlib.sha256(json.dumps(result, sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- the store ----------------------------------------------------------------------------------------------
def first_apology(state: Any) -> datetime | None:
    """Half of the dossiers closed late (by id) got a letter the day after their due date."""
    from tthc_contracts import parse_ts

    if state.outcome != "late" or sum(state.dossier_id.encode()) % 2:
        return None
    at = state.due_at + timedelta(days=1)
    return at if at < parse_ts(PRESENT) else None


def distinct_states(count: int, book: Any) -> list[Any]:
    """`count` simulated dossiers received over the year up to the present, folded at the present."""
    from tthc_contracts import parse_dossier_event, parse_ts
    from tthc_core.deadlines import fold
    from tthc_sim import generate_day

    present = parse_ts(PRESENT)
    days = (present.date() - FIRST_DAY).days + 1
    per_day = -(-count // days)
    logs: dict[str, list[Any]] = {}
    for i in range(days):
        for raw in generate_day(FIRST_DAY + timedelta(days=i), per_day, seed=11, book=book):
            if parse_ts(raw["occurred_at"]) < present:
                event = parse_dossier_event(raw)
                logs.setdefault(event.dossier_id, []).append(event)
    states = [state for log in logs.values() if (state := fold(log, book)[0]) is not None]
    return states[:count]


def fill_store(url: str, dossiers: int, book: Any, base: list[Any]) -> dict[str, Any]:
    """The rows the units would have left after consuming `dossiers` dossiers (see the module's text)."""
    from sqlalchemy import func, insert, select, text

    from tthc_common.db import make_engine, run_migrations, session_scope
    from tthc_core.indices import facts_basis
    from tthc_metrics import units
    from tthc_metrics.app import MIGRATIONS_DIR
    from tthc_metrics.models import counts_table

    run_migrations(url, MIGRATIONS_DIR)
    engine = make_engine(url)
    basis = facts_basis(book)
    watermark = max(s.last_event[0] for s in base)
    started = time.perf_counter()
    # per distinct dossier, once: its JSON, its figures' columns, its first apology
    prepared = []
    for state in base:
        apology = first_apology(state)
        columns = units.figure_columns(state, units.contribution(state, book, apology, "any"))
        prepared.append((state, state.to_json(), columns, apology))
    recount = units.Recount(book, basis)
    rows: list[dict[str, Any]] = []
    written = 0
    with session_scope(engine) as session:
        for n in range(dossiers):
            state, as_json, columns, apology = prepared[n % len(prepared)]
            copy = n // len(prepared)
            dossier_id = state.dossier_id if copy == 0 else f"{state.dossier_id}-c{copy}"
            shard = f"{units.STREAM_DOSSIER}:{sum(dossier_id.encode()) % PARTITIONS}"
            counted = recount.replace(None, dataclasses.replace(state, dossier_id=dossier_id), apology, shard)
            rows.append({"dossier_id": dossier_id, "state": {**as_json, "dossier_id": dossier_id},
                         "event_count": 3, **columns, "first_apology_at": apology, "counted": counted,
                         "counted_basis": basis})
            if len(rows) == ROWS_PER_INSERT:
                session.execute(insert(units.DOSSIERS), rows)
                written += len(rows)
                rows = []
        if rows:
            session.execute(insert(units.DOSSIERS), rows)
        recount.write(session)
        session.execute(insert(units.WATERMARKS), [{"stream": units.STREAM_DOSSIER, "partition": 0,
                                                    "at": watermark}])
        session.execute(insert(units.BASIS), [{"name": units.COUNTS_BASIS, "fingerprint": basis,
                                               "counted_at": datetime.now().astimezone()}])
    loaded_s = time.perf_counter() - started
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    with session_scope(engine) as session:
        open_dossiers = session.execute(select(func.count()).select_from(units.DOSSIERS).where(
            units.DOSSIERS.c.closed_at.is_(None))).scalar()
        counter_rows = session.execute(select(func.count()).select_from(counts_table)).scalar()
    engine.dispose()
    return {"loaded_s": loaded_s, "open": open_dossiers, "counter_rows": counter_rows}


def check_counts(url: str, book: Any, base: list[Any], dossiers: int) -> None:
    """The kept counts are the counts from scratch (each distinct dossier's facts times its copies)."""
    from collections import Counter, defaultdict

    from sqlalchemy import select

    from tthc_common.db import make_engine, session_scope
    from tthc_metrics import units
    from tthc_metrics.models import COUNT_COLUMNS, counts_table

    copies = Counter(n % len(base) for n in range(dossiers))
    expected: dict[tuple[Any, ...], Counter[str]] = defaultdict(Counter)
    for i, state in enumerate(base):
        counted = units.contribution(state, book, first_apology(state), "any")
        for part in (counted["received"], counted["closed"]):
            if part is not None:
                for name, value in part[1].items():
                    expected[(date.fromisoformat(part[0]), *counted["keys"])][name] += value * copies[i]
    engine = make_engine(url)
    kept: dict[tuple[Any, ...], Counter[str]] = defaultdict(Counter)
    C = counts_table.c
    with session_scope(engine) as session:
        for row in session.execute(select(C.month, C.agency, C.field, C.procedure, C.channel, C.day_length_us,
                                          *(C[c] for c in COUNT_COLUMNS))):
            kept[tuple(row[:6])].update({c: row._mapping[c] for c in COUNT_COLUMNS})
    engine.dispose()
    nonzero = lambda counts: {k: +v for k, v in counts.items() if +v}  # noqa: E731
    assert nonzero(kept) == nonzero(expected), "the kept counts differ from the counts from scratch"


# -- the measures -------------------------------------------------------------------------------------------
def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def measure(url: str, book: Any, repeat: int, *, previous: bool) -> dict[str, Any]:
    """Ours (or, in the previous code's process, its) refresh and year report; seconds and digests."""
    from tthc_common.db import make_engine, session_scope
    from tthc_core.indices import facts_basis
    from tthc_metrics import queries

    engine = make_engine(url)
    extra = {} if previous else {"basis": facts_basis(book)}

    def refresh() -> Any:
        with session_scope(engine) as session:
            return queries.current_figures(session, book, **extra)[0]

    def report(period: Any) -> Callable[[], Any]:
        def run() -> Any:
            with session_scope(engine) as session:
                return queries.indices_report(session, book, period, None, **extra)
        return run

    out: dict[str, Any] = {}
    out["refresh_s"], figures = timed(refresh, repeat)
    out["report_s"], year = timed(report(periods()["year"]), repeat)
    out["refresh"], out["report"] = result_digest(figures), result_digest(year)
    out["handled"] = year["total"]["received"]
    if not previous:
        out["days_s"], days = timed(report(periods()["days"]), repeat)
    engine.dispose()
    return out


def run_previous(ref: str, url: str, tmp: Path) -> dict[str, Any]:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "services/metrics/src/tthc_metrics"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
    source = tmp / "services" / "metrics" / "src"
    result = tmp / "previous.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(source), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, __file__, "--implementation", "previous", "--database-url", url,
                    "--result", str(result)], check=True, env=env)
    return json.loads(result.read_text())


def fresh_database(kind: str, admin_url: str | None, tmp: Path, name: str) -> tuple[str, Callable[[], None]]:
    if kind == "sqlite":
        path = tmp / f"{name}.db"
        return f"sqlite:///{path}", lambda: [p.unlink(missing_ok=True) for p in tmp.glob(f"{name}.db*")]
    from tests.support.infra import fresh_databases

    assert admin_url, "--postgres-url (an admin URL) for PostgreSQL"
    manager = fresh_databases(admin_url, [name])
    (database,) = manager.__enter__()
    return database, lambda: manager.__exit__(None, None, None)


def merge_base() -> str:
    return subprocess.run(["git", "-C", str(REPO), "merge-base", "HEAD", "main"], check=True,
                          capture_output=True, text=True).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dossiers", default="20000,100000,1000000")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--postgres-url", default=os.environ.get("TTHC_TEST_DATABASE_URL"))
    parser.add_argument("--previous", default=None, help="git ref of the previous code (default: merge base "
                                                        "with main); 'none' to skip")
    parser.add_argument("--previous-max", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--implementation", choices=("now", "previous"), default="now",
                        help=argparse.SUPPRESS)
    parser.add_argument("--database-url", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))  # tests.support.infra, for PostgreSQL
    book = calendar_book()

    if args.implementation == "previous":
        import tthc_metrics

        assert (Path(tthc_metrics.__file__).parent / "periods.py").exists(), "not the previous code"
        Path(args.result).write_text(json.dumps(measure(args.database_url, book, 1, previous=True)))
        return 0

    sizes = [int(n) for n in args.dossiers.split(",")]
    started = time.perf_counter()
    base = distinct_states(min(DISTINCT, max(sizes)), book)
    print(f"{len(base)} distinct dossiers simulated and folded in {time.perf_counter() - started:.0f} s; "
          f"present {PRESENT}", flush=True)
    ref = None if (args.previous or "").lower() == "none" else (args.previous or merge_base())
    with tempfile.TemporaryDirectory(prefix="bench-figures-") as tmp_name:
        tmp = Path(tmp_name)
        for kind in args.databases.split(","):
            for dossiers in sizes:
                url, cleanup = fresh_database(kind, args.postgres_url, tmp, f"figures_{kind}_{dossiers}")
                try:
                    store = fill_store(url, dossiers, book, base)
                    check_counts(url, book, base, dossiers)
                    print(f"STORE: {kind} {dossiers} dossiers loaded in {store['loaded_s']:.0f} s; "
                          f"{store['open']} open; {store['counter_rows']} counter rows; counts checked",
                          flush=True)
                    now = measure(url, book, args.repeat, previous=False)
                    before = None
                    if ref is not None and dossiers <= args.previous_max:
                        before = run_previous(ref, url, tmp)
                        assert (before["refresh"], before["report"]) == (now["refresh"], now["report"]), \
                            "the previous code's figures differ"
                    was = lambda key: f"; previous ({ref[:10]}) {before[key]:.2f} s" if before else ""  # noqa
                    print(f"REFRESH: {kind} {dossiers} dossiers {now['refresh_s']:.3f} s{was('refresh_s')}")
                    print(f"REPORT: {kind} {dossiers} dossiers {now['report_s']:.3f} s{was('report_s')}"
                          f" (year; {now['handled']} received); 15/03-31/12 {now['days_s']:.3f} s",
                          flush=True)
                finally:
                    cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

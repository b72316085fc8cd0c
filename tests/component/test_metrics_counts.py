"""Metrics service, its kept counts (`metrics_counts`) and the figures of current periods made from them, on
SQLite and PostgreSQL, through the units and the queries the consumers and the HTTP report run (no Kafka):

- after shuffled, redelivered batches of events (re-judged closes, late transfers, apologies before and
  after the dossier's events), the counts equal counts computed from scratch from every dossier's fold;
- every current-period report (month, quarter, year, any from/to) and the gauges equal `compute_indices`
  over the folded states (what `tthc replay` gives), and what the states path of the service gives;
- the open part, one grouped query over the thresholds columns, equals `open_facts` at any cut after the
  events (a property test over random dossiers);
- a calendar file that changes what a receipt or a close counts makes the start-up pass count every
  dossier again; one that changes only the online marks needs nothing.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, update
from sqlalchemy.engine import Engine

from tthc_common.batches import Received
from tthc_common.db import make_engine, run_migrations, session_scope
from tthc_common.idempotency import ProcessedEvent
from tthc_contracts import apology_event_adapter, format_ts, parse_dossier_event
from tthc_core.calendar import CalendarBook
from tthc_core.calendar_config import parse_calendar
from tthc_core.deadlines import Dossier, fold
from tthc_core.indices import (
    GROUPINGS,
    Period,
    closed_facts,
    compute_indices,
    current_periods,
    facts_basis,
    group_keys,
    month_start,
    open_facts,
    present,
    received_facts,
    tables,
)
from tthc_metrics import queries, units
from tthc_metrics.app import MIGRATIONS_DIR
from tthc_metrics.counting import StartupCounting
from tthc_metrics.models import COUNT_COLUMNS, counts_table
from tthc_sim import generate_days

from tests.support.examples import examples
from tests.support.random_dossiers import CALENDAR, boundaries, dossier_log
from tests.support.schema import migration_differences

BOOK = CalendarBook(parse_calendar(CALENDAR))
BASIS = facts_basis(BOOK)
PARTITIONS = 4
DOSSIERS = units.DOSSIERS


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = (f"sqlite:///{tmp_path / 'metrics.db'}" if request.param == "sqlite"
           else request.getfixturevalue("pg_database_url"))
    run_migrations(url, MIGRATIONS_DIR)
    engine = make_engine(url)
    yield engine
    engine.dispose()


# -- feeding the units ----------------------------------------------------------------------------------
def partition(dossier_id: str) -> int:
    return sum(dossier_id.encode()) % PARTITIONS  # stable, like Kafka's key hash


def deliver(engine: Engine, deliveries: list[dict[str, Any]], rng: random.Random, book: CalendarBook = BOOK,
            ) -> None:
    """Dossier and apology events, in this order, in batches of 1 to 40 records (a batch is one stream)."""
    basis = facts_basis(book)
    deliveries = list(deliveries)
    offset = 0
    while deliveries:
        size = rng.randint(1, 40)
        stream = "apology" if deliveries[0]["type"].startswith("apology.") else "dossier"
        batch = []
        while deliveries and len(batch) < size and deliveries[0]["type"].startswith("apology.") == (
                stream == "apology"):
            batch.append(deliveries.pop(0))
        offset += 1
        with session_scope(engine) as session:
            if stream == "dossier":
                units.apply_dossier_events(session, [
                    Received(parse_dossier_event(e), "dossier", partition(e["dossier_id"]), offset)
                    for e in batch], book=book, basis=basis)
            else:
                units.apply_apology_events(session, [
                    Received(apology_event_adapter.validate_python(e), "apology", partition(e["dossier_id"]),
                             offset) for e in batch], book=book, basis=basis)


def issued(dossier_id: str, at: datetime) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "type": "apology.issued", "schema_version": 1,
            "occurred_at": format_ts(at), "source": "tthc-apology", "dossier_id": dossier_id,
            "data": {"apology_id": str(uuid.uuid4()), "number": "01/PXL", "issued_at": format_ts(at),
                     "new_due_at": format_ts(at + timedelta(days=3))}}


def start(engine: Engine, book: CalendarBook = BOOK) -> None:
    """What the service does at start-up (counting.py), to the end."""
    import asyncio

    counting = StartupCounting(engine, book, facts_basis(book))

    async def run() -> None:
        while await counting.step():
            pass

    asyncio.run(run())
    assert counting.done


# -- the oracle -------------------------------------------------------------------------------------------
def folds(events: list[dict[str, Any]], book: CalendarBook = BOOK) -> dict[str, Dossier]:
    logs: dict[str, list[Any]] = defaultdict(list)
    for e in events:
        if not e["type"].startswith("apology."):
            logs[e["dossier_id"]].append(parse_dossier_event(e))
    return {d: state for d, log in logs.items() if (state := fold(log, book)[0]) is not None}


def first_apologies(events: list[dict[str, Any]]) -> dict[str, datetime]:
    first: dict[str, datetime] = {}
    for e in events:
        if e["type"] == "apology.issued":
            at = datetime.fromisoformat(e["data"]["issued_at"])
            first[e["dossier_id"]] = min(at, first.get(e["dossier_id"], at))
    return first


def counts_from_scratch(states: dict[str, Dossier], apologies: dict[str, datetime],
                        book: CalendarBook = BOOK) -> dict[tuple[Any, ...], dict[str, int]]:
    """(month, agency, field, procedure, channel, day length) -> counts: every receipt's facts under its
    month, every close's under its month."""
    counts: dict[tuple[Any, ...], Counter[str]] = defaultdict(Counter)
    for d in states.values():
        length = d.calendar(book).day_length_us
        facts = [(d.received_at, received_facts(d, book))]
        if d.closed_at is not None:
            facts.append((d.closed_at, closed_facts(d, book, apologies.get(d.dossier_id))))
        for at, tally in facts:
            row = counts[(month_start(at), *group_keys(d), length)]
            row.update(tally.counts)
            row["processing_us"] += sum(tally.processing_us.values())
    return {key: dict(+row) for key, row in counts.items() if +row}


def kept_counts(engine: Engine, shard: str | None = None) -> dict[tuple[Any, ...], dict[str, int]]:
    """metrics_counts summed over the shards (or of one shard), rows of zeros left out."""
    C = counts_table.c
    keys = (C.month, C.agency, C.field, C.procedure, C.channel, C.day_length_us)
    kept: dict[tuple[Any, ...], Counter[str]] = defaultdict(Counter)
    query = select(*keys, *(C[c] for c in COUNT_COLUMNS))
    with session_scope(engine) as session:
        for row in session.execute(query if shard is None else query.where(C.shard == shard)):
            kept[tuple(row[:6])].update({c: int(row._mapping[c]) for c in COUNT_COLUMNS})
    return {key: dict(+row) for key, row in kept.items() if +row}


def report(engine: Engine, period: Period, book: CalendarBook = BOOK,
           basis: str | None = BASIS) -> dict[str, Any]:
    with session_scope(engine) as session:
        return queries.indices_report(session, book, period, None, GROUPINGS, basis=basis)


def oracle(states: dict[str, Dossier], apologies: dict[str, datetime], period: Period, cut: datetime,
           book: CalendarBook = BOOK, groupings: tuple[str, ...] = GROUPINGS) -> dict[str, Any]:
    dossiers = [states[d] for d in sorted(states)]
    return compute_indices(dossiers, period, cut, book, apologies, groupings)


def without_service_fields(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k not in ("cut", "names")}


def periods_to_check(watermark: datetime, first_received: date) -> list[Period]:
    today = (watermark + timedelta(hours=7)).date()
    return [*current_periods(watermark).values(),
            Period(first_received + timedelta(days=3), today + timedelta(days=5)),  # days around months
            Period(today - timedelta(days=9), today),
            Period(today, today),
            Period(first_received.replace(day=1), today.replace(day=28) + timedelta(days=10))]


def assert_current_figures_exact(engine: Engine, states: dict[str, Dossier], apologies: dict[str, datetime],
                                 book: CalendarBook = BOOK) -> int:
    """Every current period's report and the gauges are compute_indices over the folds; returns how many
    reports were checked."""
    with session_scope(engine) as session:
        watermark = queries.read_watermark(session)
        assert queries.read_counts_basis(session) == facts_basis(book)
    assert watermark is not None
    now = present(watermark)
    assert now is not None
    first_received = min(d.received_at for d in states.values()).date()
    checked = 0
    for period in periods_to_check(watermark, first_received):
        cut = period.cut(now)
        if cut < now:
            continue  # a period that ended before the present: the states path, tested elsewhere
        expected = oracle(states, apologies, period, cut, book)
        with session_scope(engine) as session:  # the kept counts, explicitly
            assert tables(queries.period_tallies(session, book, period, cut), period) == expected, period
        fast = report(engine, period, book)
        assert without_service_fields(fast) == expected, period
        assert fast["cut"] == format_ts(cut)
        slow = report(engine, period, book, basis=None)  # the states path of the service
        assert fast == slow, period  # names included
        checked += 1
    with session_scope(engine) as session:
        gauges, at = queries.current_figures(session, book, facts_basis(book))
    assert at == watermark
    assert gauges == {name: oracle(states, apologies, period, now, book, queries.GAUGE_GROUPINGS)
                      for name, period in current_periods(watermark).items()}
    return checked


# -- the events ---------------------------------------------------------------------------------------------
def simulated() -> list[dict[str, Any]]:
    """Six days of a province (transfers, supplementation, pauses, extensions; late and resent posts)."""
    return generate_days(date(2026, 3, 2), 6, dossiers=50, seed=3, late_posts=0.1, resends=0.05)


def with_apologies(events: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """The events and, for most dossiers closed late, one to three apology letters at random instants
    (before the due instant, at the close, days after), anywhere in the stream."""
    out = list(events)
    for d in folds(events).values():
        if d.outcome == "late" and rng.random() < 0.8:
            for _ in range(rng.randint(1, 3)):
                at = d.due_at + timedelta(hours=rng.randint(-30, 24 * 4))
                out.insert(rng.randint(0, len(out)), issued(d.dossier_id, at))
    return out


def shuffled_with_redeliveries(events: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    deliveries = events + rng.sample(events, k=len(events) // 8)
    rng.shuffle(deliveries)
    return deliveries


def spec_example_events() -> list[dict[str, Any]]:
    return [json.loads(line) for e in examples() for line in e.event_lines()]


# -- the tests --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2])
def test_after_shuffled_redelivered_batches_the_counts_are_the_counts_from_scratch(
    engine: Engine, seed: int
) -> None:
    rng = random.Random(f"counts-{seed}")
    events = with_apologies(simulated(), rng)
    start(engine)
    deliver(engine, shuffled_with_redeliveries(events, rng), rng)

    states, apologies = folds(events), first_apologies(events)
    assert kept_counts(engine) == counts_from_scratch(states, apologies)
    assert sum(1 for d in states.values() if d.outcome == "late" and d.dossier_id in apologies) > 5
    # each partition's dossiers are counted in its shard alone (the apologies correct them there): two
    # replicas, reading different partitions, never write one counter row
    for p in range(PARTITIONS):
        assert kept_counts(engine, f"dossier:{p}") == counts_from_scratch(
            {d: state for d, state in states.items() if partition(d) == p}, apologies)
    assert assert_current_figures_exact(engine, states, apologies) >= 4


def test_the_spec_examples_in_one_store_give_the_figures_of_replay(engine: Engine) -> None:
    rng = random.Random("examples")
    events = spec_example_events()
    start(engine)
    deliver(engine, shuffled_with_redeliveries(events, rng), rng)

    states = folds(events)
    assert kept_counts(engine) == counts_from_scratch(states, {})
    assert assert_current_figures_exact(engine, states, {}) >= 4


def test_a_late_event_replaces_what_the_dossier_counted(engine: Engine) -> None:
    """A close re-judged by a pause posted late, a transfer posted after the close, apologies after the
    close: each replaces the dossier's counts in its months; nothing is counted twice."""
    from tests.support.events import AGENCY, event, received

    other = {"code": "000.00.13.H10", "name": "Sở Xây dựng"}
    d1 = [received("D-1", "2026-03-02T09:00", value=2),  # due 04/03 09:00
          event("dossier.resolved", "2026-03-06T10:00", {"result": "approved"}, dossier_id="D-1")]
    late_pause = event("dossier.paused", "2026-03-03T15:00", {"reason": "financial_obligation"},
                       dossier_id="D-1")
    d2 = [received("D-2", "2026-03-02T10:00", value=2),
          event("dossier.resolved", "2026-04-01T10:00", {"result": "approved"}, dossier_id="D-2")]
    late_transfer = event("dossier.transferred", "2026-03-03T09:00", {"to_agency": other}, dossier_id="D-2")
    start(engine)
    rng = random.Random("late")

    def closing_row(agency: str, month: date) -> dict[str, int]:
        return sum((Counter(v) for k, v in kept_counts(engine).items() if k[0] == month and k[1] == agency),
                   Counter())

    deliver(engine, d1 + d2, rng)
    assert closing_row(AGENCY["code"], date(2026, 3, 1))["late"] == 1  # D-1, closed late in March
    assert closing_row(AGENCY["code"], date(2026, 4, 1))["late"] == 1  # D-2, in April

    letter_after_close = issued("D-2", datetime.fromisoformat("2026-04-02T09:00+07:00"))
    deliver(engine, [late_pause, late_transfer, letter_after_close], rng)
    march = closing_row(AGENCY["code"], date(2026, 3, 1))
    assert (march["late"], march["on_time"] + march["early"]) == (0, 1)  # judged at the pause: in time
    assert march["received"] == 1  # D-2's receipt moved to the other agency with it
    assert closing_row(AGENCY["code"], date(2026, 4, 1)) == {}
    assert closing_row(other["code"], date(2026, 4, 1))["late_with_apology"] == 1
    assert closing_row(other["code"], date(2026, 4, 1))["late_apology_timely"] == 0
    # an earlier letter, delivered later, becomes the first apology: before the due instant, timely
    deliver(engine, [issued("D-2", datetime.fromisoformat("2026-03-03T10:00+07:00"))], rng)
    assert closing_row(other["code"], date(2026, 4, 1))["late_apology_timely"] == 1

    events = d1 + d2 + [late_pause, late_transfer]
    apologies = {"D-2": datetime.fromisoformat("2026-03-03T10:00+07:00")}
    assert kept_counts(engine) == counts_from_scratch(folds(events), apologies)
    assert_current_figures_exact(engine, folds(events), apologies)


def test_an_apology_before_the_dossiers_events_is_counted_when_they_come(engine: Engine) -> None:
    from tests.support.events import event, received

    start(engine)
    rng = random.Random("apology-first")
    letter = issued("D-9", datetime.fromisoformat("2026-03-05T08:00+07:00"))
    deliver(engine, [letter], rng)
    d9 = [received("D-9", "2026-03-02T09:00", value=2),
          event("dossier.resolved", "2026-03-06T10:00", {"result": "approved"}, dossier_id="D-9")]
    deliver(engine, d9, rng)

    counted = counts_from_scratch(folds(d9), {"D-9": datetime.fromisoformat(letter["occurred_at"])})
    assert kept_counts(engine) == counted
    assert sum(row.get("late_with_apology", 0) for row in counted.values()) == 1


def test_a_calendar_that_changes_what_is_counted_makes_the_start_count_again(engine: Engine) -> None:
    rng = random.Random("recount")
    events = simulated()
    start(engine)
    deliver(engine, events, rng)
    states = folds(events)
    # the states stay (folded on the old calendar, as the service keeps them); what they count changes
    tolerant = CalendarBook(parse_calendar(CALENDAR.replace("tolerance_hours: 4", "tolerance_hours: 0")
                                           + "extra_days_off: [2026-03-04]\n"))
    assert facts_basis(tolerant) != BASIS
    assert counts_from_scratch(states, {}, tolerant) != counts_from_scratch(states, {})

    # before the start-up pass: the states path, exact on the new calendar
    with session_scope(engine) as session:
        watermark = queries.read_watermark(session)
    year = current_periods(watermark)["year"]
    assert without_service_fields(report(engine, year, tolerant, facts_basis(tolerant))) == oracle(
        states, {}, year, present(watermark), tolerant)

    start(engine, tolerant)
    assert kept_counts(engine) == counts_from_scratch(states, {}, tolerant)
    assert_current_figures_exact(engine, states, {}, tolerant)


def test_online_marks_are_read_with_the_counts_and_need_no_recount(engine: Engine) -> None:
    rng = random.Random("online")
    events = simulated()
    start(engine)
    deliver(engine, events, rng)
    procedures = {d.procedure_code for d in folds(events).values()}
    marked = CalendarBook(parse_calendar("procedures:\n" + "".join(f'  "{p}": {{online: partial}}\n'
                                                                   for p in sorted(procedures))))
    assert facts_basis(marked) == facts_basis(CalendarBook())
    start(engine, CalendarBook())
    with session_scope(engine) as session:
        watermark = queries.read_watermark(session)
    year = current_periods(watermark)["year"]
    result = report(engine, year, marked, facts_basis(marked))
    assert result["total"]["procedures_offered_online"] == len(procedures)
    expected = oracle(folds(events, CalendarBook()), {}, year, present(watermark), marked)
    assert without_service_fields(result) == expected


def test_counts_rebuilt_from_the_states_are_the_kept_counts(engine: Engine) -> None:
    rng = random.Random("rebuild")
    events = with_apologies(simulated(), rng)
    start(engine)
    deliver(engine, shuffled_with_redeliveries(events, rng), rng)
    kept = kept_counts(engine)
    with session_scope(engine) as session:  # forget every count, as a store from before the counts (0002)
        session.execute(delete(counts_table))
        session.execute(delete(units.NAMES))
        session.execute(update(DOSSIERS).values(counted=None, counted_basis=None, overdue_after=None,
                                                i766_late_after=None))
        session.execute(delete(units.BASIS))
    states, apologies = folds(events), first_apologies(events)
    with session_scope(engine) as session:
        watermark = queries.read_watermark(session)
    year = current_periods(watermark)["year"]
    # not counted yet: the figures come from the states, exact all the same
    assert without_service_fields(report(engine, year)) == oracle(states, apologies, year, present(watermark))
    start(engine)
    assert kept_counts(engine) == kept
    assert_current_figures_exact(engine, states, apologies)


# -- the open part by SQL --------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(logs=st.lists(dossier_log(days=20), min_size=1, max_size=8), data=st.data())
def test_the_open_part_by_one_query_is_open_facts_at_any_cut_after_the_events(engine: Engine, logs, data):
    with session_scope(engine) as session:
        for table in (DOSSIERS, units.EVENTS, counts_table, units.NAMES):
            session.execute(delete(table))
        session.execute(delete(ProcessedEvent.__table__))  # type: ignore[attr-defined]
    events = [e for log in logs for e in log]
    deliver(engine, events, random.Random(0))
    states = folds(events)
    last = max(datetime.fromisoformat(e["occurred_at"]) for e in events)
    later = sorted({t for d in states.values() for t in boundaries(d) if t > last})
    cuts = [last + timedelta(microseconds=1), last + timedelta(days=data.draw(st.integers(1, 60))),
            *data.draw(st.lists(st.sampled_from(later), max_size=5) if later else st.just([]))]
    for cut in cuts:
        expected: dict[tuple[str, str, str, str], Counter[str]] = defaultdict(Counter)
        for d in states.values():
            if d.closed_at is None:
                expected[group_keys(d)].update(open_facts(d, cut).counts)
        with session_scope(engine) as session:
            got = queries.handled_tallies(BOOK, queries.open_counts(session, cut))
        assert {k: +t.counts for k, t in got.items()} == {k: +c for k, c in expected.items()}, cut


def test_migrations_create_exactly_the_tables_the_models_describe(tmp_path: Path) -> None:
    assert migration_differences(tmp_path, MIGRATIONS_DIR, {
        "processed_events", "metrics_dossier_events", "metrics_dossiers", "metrics_partition_watermarks",
        "metrics_counts", "metrics_counts_basis", "metrics_group_names"}) == []

"""The deadline service's time sweep (`units.advance_due_batch`) on SQLite and on a REAL PostgreSQL, where
the rows are written a chunk at a time through psycopg's pipeline while the next chunk is computed.

Many dossiers become due at one tick, more than one batch and several chunks of them; afterwards every
row and every queued event must be exactly what the pure domain (`tthc_core.deadlines.fold`) gives for
the same events at the same watermark, in the same order per dossier.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from tthc_common.db import make_engine, run_migrations, session_scope
from tthc_contracts import VN_TZ, parse_dossier_event
from tthc_core.calendar import CalendarBook
from tthc_core.deadlines import fold
from tthc_common.batches import Received
from tthc_contracts.derived import Tick
from tthc_deadline.active_calendar import ActiveCalendar
from tthc_deadline.app import MIGRATIONS_DIR
from tthc_deadline.models import DossierRow
from tthc_deadline.queries import count_by_state, decode_state
from tthc_deadline.units import SWEEP_CHUNK, advance_due_batch, apply_dossier_events, apply_ticks

from tests.support import events
from tests.support.events import AGENCY, CRIMINAL_RECORD

TOPIC = "tthc.deadline.v1"
BATCH = 2 * SWEEP_CHUNK + 7  # several chunks per batch, and a last short one
RECEIVED_FROM = datetime(2026, 3, 2, 8, 0, tzinfo=VN_TZ)  # a Monday


# This module's dossiers: a Phiếu lý lịch tư pháp at the Sở Tư pháp, applied for online.
received = partial(events.received, procedure=CRIMINAL_RECORD, handling_agency=AGENCY, channel="online",
                   applicant="Lê Văn Thử", phone="0912345678")


def dossier_events(count: int) -> list[dict[str, Any]]:
    """Receipts a few minutes apart, of durations whose at-risk and overdue moments fall before or
    after the sweep's watermark (so some dossiers get both moments at once, some one, some none)."""
    units = [(2, "working_days"), (4, "working_hours"), (1, "working_days"), (3, "calendar_days"),
             (10, "working_days")]
    return [received(f"000.00.12.H10-2603-{i:04d}", RECEIVED_FROM + timedelta(minutes=7 * i), *units[i % len(units)])
            for i in range(count)]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'deadline.db'}"
    return request.getfixturevalue("pg_database_url")


def outbox(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [json.loads(p) for p in conn.execute(sa.text("SELECT payload FROM outbox ORDER BY id")).scalars()]


def test_a_tick_that_makes_many_dossiers_due_advances_each_as_the_domain_does(database_url: str) -> None:
    book = CalendarBook()
    calendar = ActiveCalendar(book, "v1")
    raw = dossier_events(3 * BATCH)
    run_migrations(database_url, MIGRATIONS_DIR)
    engine = make_engine(database_url)
    try:
        # Consumed in batches, as from Kafka. A batch spans 30 receipts (203 minutes), less than any of these
        # durations' first moment, so every moment is left to the sweep below.
        for start in range(0, len(raw), 30):
            items = [Received(parse_dossier_event(body), "dossier-events", 0, start + i)
                     for i, body in enumerate(raw[start:start + 30])]
            with session_scope(engine) as session:
                apply_dossier_events(session, items, calendar=calendar, deadline_topic=TOPIC,
                                     dead_letter_topic="dlq", consumer="deadline")
        # One dossier's state was computed under another calendar: the sweep re-folds it from its log.
        stale_id = raw[5]["dossier_id"]
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE deadline_dossiers SET calendar_version = 'v0' WHERE dossier_id = :d"),
                         {"d": stale_id})
        queued_at_receipt = len(outbox(engine))

        watermark = RECEIVED_FROM + timedelta(days=3, hours=2)
        with session_scope(engine) as session:
            apply_ticks(session, [Received(Tick(at=watermark), "ticks", 0, 0)])
        swept: list[str] = []
        while True:
            with session_scope(engine) as session:
                outcome = advance_due_batch(session, calendar=calendar, deadline_topic=TOPIC, limit=BATCH)
            swept += outcome.dossier_ids
            if len(outcome.dossier_ids) < BATCH:
                break

        raw_by_id = {body["dossier_id"]: body for body in raw}
        expected_states, expected_events = {}, []
        for body in raw:
            state, derived = fold([parse_dossier_event(body)], book, advance_to=watermark)
            assert state is not None
            expected_states[state.dossier_id] = state
            expected_events += [json.loads(e.model_dump_json()) for e in derived]
        due = [d for d, s in expected_states.items() if any(k.startswith(("at_risk|", "overdue|")) for k in s.emitted)]
        assert len(due) > BATCH and stale_id in due  # more than a batch, several chunks each
        assert sorted(swept) == sorted(due)

        with Session(engine) as session:
            rows = {r.dossier_id: r for r in session.scalars(sa.select(DossierRow))}
        for dossier_id, expected in expected_states.items():
            row = rows[dossier_id]
            stored, wanted = decode_state(row.state_json).to_json(), expected.to_json()
            if dossier_id not in due:  # not swept: still at the watermark of its own batch
                assert stored.pop("watermark") >= raw_by_id[dossier_id]["occurred_at"]
                wanted.pop("watermark")
            assert stored == wanted, dossier_id
            assert row.state == expected.state_at(watermark), dossier_id
            assert row.next_moment_at == expected.next_moment_at(), dossier_id
            assert row.next_moment_at is None or row.next_moment_at > watermark

        # Every derived event exactly once, each dossier's in the domain's order (at risk before overdue).
        published = outbox(engine)
        assert len(published) == len(expected_events)

        def by_dossier(events: list[dict[str, Any]]) -> dict[str, list[str]]:
            out: dict[str, list[str]] = {}
            for e in events:
                out.setdefault(e["dossier_id"], []).append(e["event_id"])
            return out

        assert by_dossier(published) == by_dossier(expected_events)
        assert {e["event_id"]: e for e in published} == {e["event_id"]: e for e in expected_events}
        assert len(published) - queued_at_receipt >= len(due)

        # The state counts the gauges read were kept by the same transactions.
        with session_scope(engine) as session:
            assert count_by_state(session) == dict(session.execute(
                sa.select(DossierRow.state, sa.func.count()).group_by(DossierRow.state)).all())

        # A second sweep at the same watermark finds nothing: every next moment lies past it.
        with session_scope(engine) as session:
            again = advance_due_batch(session, calendar=calendar, deadline_topic=TOPIC, limit=BATCH)
        assert again.dossier_ids == [] and len(outbox(engine)) == len(published)
    finally:
        engine.dispose()


def test_the_state_counts_migration_counts_the_dossiers_already_stored(database_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    command.upgrade(config, "deadline_0002")  # a database of the previous release, with dossiers in it
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            for i, state in enumerate(["open", "open", "overdue", "closed", "open"]):
                conn.execute(sa.text(
                    "INSERT INTO deadline_dossiers (dossier_id, handling_agency, state, next_moment_at, received_at, "
                    "due_at, state_json, calendar_version, updated_at) VALUES (:d, 'A', :s, NULL, :t, :t, '{}', "
                    "'v1', :t)"), {"d": f"D-{i}", "s": state, "t": RECEIVED_FROM})
        command.upgrade(config, "head")
        with session_scope(engine) as session:
            assert count_by_state(session) == {"open": 3, "overdue": 1, "closed": 1}
            # counts kept per shard from now on: the ones counted by the migration are the sweep's
            assert set(session.scalars(sa.text("SELECT DISTINCT shard FROM deadline_state_counts"))) == {"sweep"}
    finally:
        engine.dispose()

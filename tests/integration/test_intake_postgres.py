"""Intake's migrations, its duplicate check (queries) and its recording of accepted ids and national-portal
progress steps (units), and the shared idempotency and outbox tables, on a REAL PostgreSQL (fresh database per
test from tests/conftest.py's `pg_database_url`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel
from tthc_common.db import make_engine, run_migrations, session_scope
from tthc_common.idempotency import ProcessedEvent, mark_processed
from tthc_common.outbox import OutboxMessage, OutboxRelay, add_to_outbox
from tthc_contracts.dvcqg import ProgressStep, parse_instant
from tthc_intake.queries import already_accepted, kept_steps
from tthc_intake.units import record_accepted

INTAKE_MIGRATIONS = Path(__file__).resolve().parents[2] / "services/intake/src/tthc_intake/migrations"


def _event(event_id: str) -> Any:
    return SimpleNamespace(source="s", event_id=event_id, type="dossier.resolved", dossier_id="D-1")


def test_intake_migrations_queries_and_units_on_postgres(pg_database_url: str) -> None:
    run_migrations(pg_database_url, INTAKE_MIGRATIONS)
    run_migrations(pg_database_url, INTAKE_MIGRATIONS)
    engine = make_engine(pg_database_url)
    try:
        assert "alembic_version_intake" in sa.inspect(engine).get_table_names()
        with session_scope(engine) as session:
            assert record_accepted(session, [_event("e1"), _event("e2")]).rows == 2
        with session_scope(engine) as session:
            record_accepted(session, [_event("e2"), _event("e3")])  # a concurrent request's overlap
            assert already_accepted(session, "s", ["e1", "e3", "e4"]) == {"e1", "e3"}
    finally:
        engine.dispose()


def test_progress_steps_are_kept_per_source_and_dossier_once_each_in_order_of_time(pg_database_url: str) -> None:
    run_migrations(pg_database_url, INTAKE_MIGRATIONS)
    engine = make_engine(pg_database_url)
    fee = ProgressStep(parse_instant("2026-03-18T14:00:00"), 6, {"NguoiXuLy": "Chuyên viên thụ lý"})
    # The same instant sent with another offset is the same step.
    fee_again = ProgressStep(parse_instant("2026-03-18T07:00:00Z"), 6, {"NguoiXuLy": "Chuyên viên thụ lý"})
    earlier = ProgressStep(parse_instant("20260309083000"), 2)
    try:
        with session_scope(engine) as session:
            recorded = record_accepted(session, [_event("e1")], source="s", steps={"D-1": [fee], "D-2": [earlier]})
            assert (recorded.rows, recorded.steps) == (1, 2)
        with session_scope(engine) as session:
            record_accepted(session, [], source="s", steps={"D-1": [fee_again, earlier]})
            record_accepted(session, [], source="other", steps={"D-1": [earlier]})
        with session_scope(engine) as session:
            kept = kept_steps(session, "s", ["D-1", "D-2", "D-3"])
    finally:
        engine.dispose()
    assert kept == {"D-1": [earlier, fee], "D-2": [earlier]}
    assert kept["D-1"][1].details == {"NguoiXuLy": "Chuyên viên thụ lý"}
    assert kept["D-1"][1].at == fee.at


def test_mark_processed_on_postgres_keeps_the_transaction_usable(pg_database_url: str) -> None:
    engine = make_engine(pg_database_url)
    SQLModel.metadata.create_all(engine, tables=[ProcessedEvent.__table__, OutboxMessage.__table__])
    try:
        with session_scope(engine) as session:
            assert mark_processed(session, "c", "s", "e1") is True
            assert mark_processed(session, "c", "s", "e1") is False
            # the conflict did not abort the transaction: more work still commits
            add_to_outbox(session, "t", {"event_id": "x", "dossier_id": "D"})
        with session_scope(engine) as session:
            assert session.scalar(sa.select(sa.func.count()).select_from(OutboxMessage)) == 1
    finally:
        engine.dispose()


async def test_only_one_outbox_relay_leads_per_database(pg_database_url: str) -> None:
    engine = make_engine(pg_database_url)
    first = OutboxRelay(engine, broker=None, name="svc")
    second = OutboxRelay(engine, broker=None, name="svc")
    try:
        assert await asyncio.to_thread(first._try_leadership) is True
        assert await asyncio.to_thread(second._try_leadership) is False
        await asyncio.to_thread(first._release_leadership)
        assert await asyncio.to_thread(second._try_leadership) is True
    finally:
        await asyncio.to_thread(second._release_leadership)
        engine.dispose()

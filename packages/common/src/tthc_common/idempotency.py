"""Processed events: what makes a consumer idempotent.

Kafka delivers at least once, and one-stop software may post the same event twice. A consumer writes
the `(consumer, source, event_id)` row in the SAME transaction as the state change it makes; a second
delivery then finds the row and does nothing. `consumer` lets one database serve several consumers
(e.g. `deadline` for dossier events and `deadline-ticks`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Column, DateTime
from sqlmodel import Field, Session, SQLModel
from tthc_contracts.timefmt import utcnow

from .db import dialect_insert, insert_ignoring_conflict


class ProcessedEvent(SQLModel, table=True):
    __tablename__ = "processed_events"

    consumer: str = Field(primary_key=True, max_length=100)
    source: str = Field(primary_key=True, max_length=64)
    event_id: str = Field(primary_key=True, max_length=64)
    processed_at: datetime = Field(default_factory=utcnow,
                                   sa_column=Column(DateTime(timezone=True), nullable=False))




def mark_processed(session: Session, consumer: str, source: str, event_id: str) -> bool:
    """Record that `consumer` handled `(source, event_id)`, in the caller's transaction.

    Returns True the first time, False when the event was already processed (do nothing then).
    """
    inserted = insert_ignoring_conflict(
        session,
        ProcessedEvent,
        {"consumer": consumer, "source": source, "event_id": event_id, "processed_at": utcnow()},
    )
    return inserted == 1


def mark_processed_many(session: Session, consumer: str,
                        keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Record a batch of `(source, event_id)` as handled by `consumer`, in the caller's transaction, with
    one statement; returns the keys recorded now (the others were processed before: skip them).

    Rows are inserted in sorted order, so that two transactions inserting overlapping batches lock the
    same index entries in the same order.
    """
    unique = sorted(set(keys))
    if not unique:
        return set()
    now = utcnow()
    rows = [{"consumer": consumer, "source": source, "event_id": event_id, "processed_at": now}
            for source, event_id in unique]
    table = ProcessedEvent.__table__  # type: ignore[attr-defined]
    # One statement compiled once (executemany: SQLAlchemy sends the rows in "insertmanyvalues" batches);
    # a row whose key exists is skipped and not returned.
    stmt = dialect_insert(session, table).on_conflict_do_nothing().returning(table.c.source, table.c.event_id)
    return {(source, event_id) for source, event_id in session.execute(stmt, rows)}


def was_processed(session: Session, consumer: str, source: str, event_id: str) -> bool:
    return session.get(ProcessedEvent, (consumer, source, event_id)) is not None

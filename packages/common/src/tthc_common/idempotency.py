"""Processed events: what makes a consumer idempotent.

Kafka delivers at least once, and one-stop software may post the same event twice. A consumer writes
the `(consumer, source, event_id)` row in the SAME transaction as the state change it makes; a second
delivery then finds the row and does nothing. `consumer` lets one database serve several consumers
(e.g. `deadline` for dossier events and `deadline-ticks`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, literal_column
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, Session, SQLModel


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ProcessedEvent(SQLModel, table=True):
    __tablename__ = "processed_events"

    consumer: str = Field(primary_key=True, max_length=100)
    source: str = Field(primary_key=True, max_length=64)
    event_id: str = Field(primary_key=True, max_length=64)
    processed_at: datetime = Field(default_factory=_utcnow,
                                   sa_column=Column(DateTime(timezone=True), nullable=False))


def _insert_ignoring_conflict(session: Session, table: type[SQLModel], values: dict[str, object]) -> int:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING; returns the number of rows inserted (0 or 1).

    RETURNING rather than `rowcount`, which drivers do not report alike for this statement.

    ON CONFLICT rather than catching IntegrityError: on PostgreSQL a failed INSERT aborts the whole
    transaction, and the caller's state change lives in that transaction.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt = postgresql.insert(table).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":  # RETURNING needs SQLite >= 3.35 (2021)
        stmt = sqlite.insert(table).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - only the two databases above are supported
        raise NotImplementedError(f"mark_processed does not support {dialect}")
    inserted = session.execute(stmt.returning(literal_column("1"))).all()
    return len(inserted)


def mark_processed(session: Session, consumer: str, source: str, event_id: str) -> bool:
    """Record that `consumer` handled `(source, event_id)`, in the caller's transaction.

    Returns True the first time, False when the event was already processed (do nothing then).
    """
    inserted = _insert_ignoring_conflict(
        session,
        ProcessedEvent,
        {"consumer": consumer, "source": source, "event_id": event_id, "processed_at": _utcnow()},
    )
    return inserted == 1


def was_processed(session: Session, consumer: str, source: str, event_id: str) -> bool:
    return session.get(ProcessedEvent, (consumer, source, event_id)) is not None

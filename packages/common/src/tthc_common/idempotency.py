"""Processed events: what makes a consumer idempotent.

Kafka delivers at least once, and one-stop software may post the same event twice. A consumer writes
the `(consumer, source, event_id)` row in the SAME transaction as the state change it makes; a second
delivery then finds the row and does nothing. `consumer` lets one database serve several consumers
(e.g. `deadline` for dossier events and `deadline-ticks`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, DateTime
from sqlmodel import Field, Session, SQLModel

from .db import insert_ignoring_conflict


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ProcessedEvent(SQLModel, table=True):
    __tablename__ = "processed_events"

    consumer: str = Field(primary_key=True, max_length=100)
    source: str = Field(primary_key=True, max_length=64)
    event_id: str = Field(primary_key=True, max_length=64)
    processed_at: datetime = Field(default_factory=_utcnow,
                                   sa_column=Column(DateTime(timezone=True), nullable=False))




def mark_processed(session: Session, consumer: str, source: str, event_id: str) -> bool:
    """Record that `consumer` handled `(source, event_id)`, in the caller's transaction.

    Returns True the first time, False when the event was already processed (do nothing then).
    """
    inserted = insert_ignoring_conflict(
        session,
        ProcessedEvent,
        {"consumer": consumer, "source": source, "event_id": event_id, "processed_at": _utcnow()},
    )
    return inserted == 1


def was_processed(session: Session, consumer: str, source: str, event_id: str) -> bool:
    return session.get(ProcessedEvent, (consumer, source, event_id)) is not None

"""Intake's own table: the `(source, event_id)` of every event Kafka acknowledged."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, DateTime
from sqlmodel import Field, SQLModel


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AcceptedEvent(SQLModel, table=True):
    __tablename__ = "intake_accepted_events"

    source: str = Field(primary_key=True, max_length=64)
    event_id: str = Field(primary_key=True, max_length=64)
    type: str = Field(max_length=64)
    dossier_id: str = Field(max_length=64)
    accepted_at: datetime = Field(default_factory=_utcnow,
                                  sa_column=Column(DateTime(timezone=True), nullable=False))

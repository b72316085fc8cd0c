"""Intake's own table: the `(source, event_id)` of every event Kafka acknowledged (the duplicate check).

Intake consumes nothing, so it has no processed-events or outbox table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime
from sqlmodel import Field, SQLModel
from tthc_contracts.timefmt import utcnow


class AcceptedEvent(SQLModel, table=True):
    __tablename__ = "intake_accepted_events"

    source: str = Field(primary_key=True, max_length=64)
    event_id: str = Field(primary_key=True, max_length=64)
    type: str = Field(max_length=64)
    dossier_id: str = Field(max_length=64)
    accepted_at: datetime = Field(default_factory=utcnow,
                                  sa_column=Column(DateTime(timezone=True), nullable=False))

"""Tables of the apology service (Alembic history in migrations/).

- `apology_dossiers`: per dossier, what a letter needs from its receipt (personal data: the applicant),
  the extensions seen so far, and whether the one apology the law allows was already given;
- `apologies`: one row per draft, exactly one per (dossier, kind, due_at), also a unique constraint;
- `apology_number_counters`: the last "NN/PXL" number handed out per (agency, year), never reused;
- plus the common `processed_events` and `outbox` tables (tthc_common).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel
from tthc_common.idempotency import ProcessedEvent  # noqa: F401  (registers the table in SQLModel.metadata)
from tthc_common.outbox import OutboxMessage  # noqa: F401
from tthc_common.types import UtcDateTime
from tthc_contracts.timefmt import utcnow


def _ts(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(UtcDateTime(), nullable=nullable))


class ApologyDossier(SQLModel, table=True):
    __tablename__ = "apology_dossiers"

    dossier_id: str = Field(primary_key=True, max_length=64)
    # The winning dossier.received (tthc_core.deadlines.receipt_winner) as its JSON: personal data,
    # served to the agency's officers in letters, never logged.
    received_event: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    received_event_id: str | None = Field(default=None, max_length=64)
    received_occurred_at: datetime | None = _ts()
    # dossier.extended events seen so far (JSON list): re-applied after a deadline event dated before
    # them, because the dossier and deadline topics are not ordered with each other.
    extensions: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    # The one apology the law allows: dossier.extended or an issued letter, whichever came first.
    apology_given_at: datetime | None = _ts()


class Apology(SQLModel, table=True):
    __tablename__ = "apologies"
    __table_args__ = (
        UniqueConstraint("dossier_id", "kind", "due_at", name="uq_apologies_dossier_kind_due"),
        UniqueConstraint("agency_code", "number_year", "number", name="uq_apologies_agency_year_number"),
        Index("ix_apologies_agency_status_due", "agency_code", "status", "due_at"),
    )

    apology_id: str = Field(primary_key=True, max_length=64)
    dossier_id: str = Field(max_length=64, index=True)
    kind: str = Field(max_length=16)
    due_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    agency_code: str = Field(max_length=64)
    agency_name: str = Field(sa_column=Column(Text, nullable=False))
    proposed_due_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    status: str = Field(max_length=16)  # draft | cancelled | issued
    drafted_at: datetime | None = _ts()  # event time of the trigger
    cancel_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    cancelled_at: datetime | None = _ts()  # event time of the cancellation (migration 0003)
    number: str | None = Field(default=None, max_length=32)
    number_year: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    issued_at: datetime | None = _ts()
    new_due_at: datetime | None = _ts()
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    issued_by_key: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))


class ApologyNumberCounter(SQLModel, table=True):
    """The last number an agency issued in a year: "05/PXL" -> 5. Locked while a number is taken."""

    __tablename__ = "apology_number_counters"

    agency_code: str = Field(primary_key=True, max_length=64)
    year: int = Field(primary_key=True)
    last_number: int = Field(default=0)

"""Tables of the apology service (Alembic history in services/apology/migrations).

- `apology_dossiers`: per dossier, what a letter needs from its receipt (personal data: the applicant)
  and whether the one apology the law allows was already given;
- `apologies`: one row per draft, exactly one per (dossier, kind, due_at) — also a unique constraint;
- `apology_number_counters`: the last "NN/PXL" number handed out per (agency, year), never reused;
- plus the common `processed_events` and `outbox` tables (tthc_common).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Column, Index, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from tthc_common.types import UtcDateTime
from tthc_common.idempotency import ProcessedEvent  # noqa: F401  (registers the table in SQLModel.metadata)
from tthc_common.outbox import OutboxMessage  # noqa: F401
from tthc_contracts.events import Agency
from tthc_core.apology import Draft


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _ts(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(UtcDateTime(), nullable=nullable))


class ApologyDossier(SQLModel, table=True):
    __tablename__ = "apology_dossiers"

    dossier_id: str = Field(primary_key=True, max_length=64)
    # The winning dossier.received (earliest occurred_at, then event_id) as its JSON: personal data,
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
    number: str | None = Field(default=None, max_length=32)
    number_year: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    issued_at: datetime | None = _ts()
    new_due_at: datetime | None = _ts()
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    issued_by_key: str | None = Field(default=None, sa_column=Column(String(16), nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))

    def to_draft(self) -> Draft:
        return Draft(
            apology_id=self.apology_id,
            dossier_id=self.dossier_id,
            kind=self.kind,
            due_at=self.due_at,
            agency=Agency(code=self.agency_code, name=self.agency_name),
            proposed_due_at=self.proposed_due_at,
            status=self.status,  # type: ignore[arg-type]
            drafted_at=self.drafted_at,
            cancel_reason=self.cancel_reason,
            number=self.number,
            issued_at=self.issued_at,
            new_due_at=self.new_due_at,
            reason=self.reason,
        )

    @classmethod
    def from_draft(cls, draft: Draft) -> Apology:
        row = cls(
            apology_id=draft.apology_id,
            dossier_id=draft.dossier_id,
            kind=draft.kind,
            due_at=draft.due_at,
            agency_code=draft.agency.code,
            agency_name=draft.agency.name,
            proposed_due_at=draft.proposed_due_at,
            status=draft.status,
            drafted_at=draft.drafted_at,
        )
        row.copy_progress(draft)
        return row

    def copy_progress(self, draft: Draft) -> bool:
        """Take the draft's mutable fields; True when anything changed."""
        changed = False
        for name in ("status", "cancel_reason", "number", "issued_at", "new_due_at", "reason"):
            value = getattr(draft, name)
            if getattr(self, name) != value:
                setattr(self, name, value)
                changed = True
        if changed:
            self.updated_at = utcnow()
        return changed


class ApologyNumberCounter(SQLModel, table=True):
    """The last number an agency issued in a year: "05/PXL" -> 5. Locked while a number is taken."""

    __tablename__ = "apology_number_counters"

    agency_code: str = Field(primary_key=True, max_length=64)
    year: int = Field(primary_key=True)
    last_number: int = Field(default=0)

"""The metrics service's tables.

- `metrics_dossier_events`: every dossier event once (the per-dossier event log the figures are folded
  from), applicant data removed (`store.redact`);
- `metrics_dossier_summaries`: per dossier the instants that decide whether it can matter for a period
  (`received_at`, `closed_at`), so a report folds only the dossiers handled in its period, and the
  state of a closed dossier (`closed_state`), which never changes after its close;
- `metrics_first_apologies`: the first `apology.issued` instant per dossier (indices.md, apology figures);
- `metrics_watermarks`: the latest event time seen per stream (the service's watermark is their max);
- `processed_events` (tthc_common.idempotency): what makes every consumer idempotent.

Instants are stored in UTC (`UtcDateTime`): compared in SQL, they must mean the same thing whatever
offset the event carried.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, String
from sqlmodel import Field, SQLModel

from tthc_common.types import UtcDateTime
from tthc_common.idempotency import ProcessedEvent  # noqa: F401  (registers processed_events)


class StoredDossierEvent(SQLModel, table=True):
    __tablename__ = "metrics_dossier_events"
    __table_args__ = (
        Index("ix_metrics_dossier_events_dossier_time", "dossier_id", "occurred_at"),
        Index("ix_metrics_dossier_events_occurred_at", "occurred_at"),
    )

    source: str = Field(primary_key=True, max_length=64)
    event_id: str = Field(primary_key=True, max_length=64)
    dossier_id: str = Field(max_length=64)
    occurred_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    type: str = Field(max_length=64)
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    stored_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))


class DossierSummary(SQLModel, table=True):
    __tablename__ = "metrics_dossier_summaries"
    __table_args__ = (
        Index("ix_metrics_dossier_summaries_received_at", "received_at"),
        Index("ix_metrics_dossier_summaries_closed_at", "closed_at"),
    )

    dossier_id: str = Field(primary_key=True, max_length=64)
    # the first dossier.received in event order (deadlines.md §7); null while none arrived
    received_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))
    # the first closing event at or after the receipt (deadlines.md §8); null while open
    closed_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))
    # Dossier.to_json() of the closed dossier: its state at any cut after closed_at
    closed_state: dict[str, Any] | None = Field(default=None,
                                                 sa_column=Column(JSON(none_as_null=True), nullable=True))
    event_count: int = 0


class FirstApology(SQLModel, table=True):
    __tablename__ = "metrics_first_apologies"

    dossier_id: str = Field(primary_key=True, max_length=64)
    issued_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    apology_id: str = Field(max_length=64)


class StreamWatermark(SQLModel, table=True):
    __tablename__ = "metrics_watermarks"

    stream: str = Field(sa_column=Column(String(32), primary_key=True))
    at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))

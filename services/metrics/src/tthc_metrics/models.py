"""The metrics service's tables.

- `metrics_dossier_events`: every dossier event once, applicant data removed (`units.redact`): the
  per-dossier log a dossier is re-folded from when an event arrives out of order, and a report as of
  a past instant folds the dossiers that changed after it from;
- `metrics_dossiers`: one row per dossier seen on any stream: its folded state (`Dossier.to_json()`,
  null while its events are held before their receipt), kept incrementally, and beside it the columns
  the figures need, taken from that state in the same transaction (`units.figure_columns`), and the
  first `apology.issued` instant (indices.md, apology figures);
- `metrics_watermarks`: the latest event time seen per stream and Kafka partition (the service's
  watermark is their max); one row per partition, so that replicas never wait on each other's row;
- `processed_events` (tthc_common.idempotency): what makes every consumer idempotent.

Instants are stored in UTC (`UtcDateTime`): compared in SQL, they must mean the same thing whatever
offset the event carried.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Integer, String
from sqlmodel import Field, SQLModel

from tthc_common.idempotency import ProcessedEvent  # noqa: F401  (registers processed_events)
from tthc_common.types import UtcDateTime


def _instant(*, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UtcDateTime(), nullable=True, index=index))


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


class DossierRow(SQLModel, table=True):
    __tablename__ = "metrics_dossiers"

    dossier_id: str = Field(primary_key=True, max_length=64)
    # Dossier.to_json() of the fold of every stored event; null while no dossier.received arrived
    state: dict[str, Any] | None = Field(default=None,
                                         sa_column=Column(JSON(none_as_null=True), nullable=True))
    event_count: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    # -- taken from `state` (units.figure_columns): null while there is none ---------------------------
    received_at: datetime | None = _instant(index=True)  # the receipt (first dossier.received, §7)
    closed_at: datetime | None = _instant(index=True)  # the first closing event after it (§8)
    last_event_at: datetime | None = _instant()  # the instant of the last event folded into `state`
    handling_agency: str | None = Field(default=None, max_length=64)  # as the state stands
    handling_agency_name: str | None = Field(default=None, max_length=300)
    field_code: str | None = Field(default=None, max_length=64)
    field_name: str | None = Field(default=None, max_length=300)
    procedure_code: str | None = Field(default=None, max_length=64)
    procedure_name: str | None = Field(default=None, max_length=500)
    channel: str | None = Field(default=None, max_length=32)
    outcome: str | None = Field(default=None, max_length=16)  # early, on_time, late once closed
    judged_close: datetime | None = _instant()
    due_at_receipt: datetime | None = _instant()
    due_at: datetime | None = _instant()
    at_risk_at: datetime | None = _instant()
    extended_due_at: datetime | None = _instant()
    first_extension_at: datetime | None = _instant()  # the first dossier.extended: an apology too
    clock: str | None = Field(default=None, max_length=32)  # running, awaiting_supplement, paused
    stopped_at: datetime | None = _instant()  # start of the stop the clock is in (null while running)
    supplement_requests: int | None = None  # before the close (indices.md)
    processing_days: float | None = None  # office time start -> judged close, stops excluded (closed)
    # -- from the apology stream -------------------------------------------------------------------
    first_apology_at: datetime | None = _instant()  # the earliest apology.issued instant
    first_apology_id: str | None = Field(default=None, max_length=64)


class PartitionWatermark(SQLModel, table=True):
    __tablename__ = "metrics_partition_watermarks"

    stream: str = Field(sa_column=Column(String(32), primary_key=True))
    partition: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))

"""The metrics service's tables.

- `metrics_dossier_events`: every dossier event once, applicant data removed (`units.redact`): the
  per-dossier log a dossier is re-folded from when an event arrives out of order, and a report as of
  a past instant folds the dossiers that changed after it from;
- `metrics_dossiers`: one row per dossier seen on any stream: its folded state (`Dossier.to_json()`,
  null while its events are held before their receipt), kept incrementally, and beside it the columns
  the figures need, taken from that state in the same transaction (`units.figure_columns`), the first
  `apology.issued` instant (indices.md, apology figures), and what the dossier adds to `metrics_counts`
  now (`counted`, so that a change subtracts exactly that);
- `metrics_counts`: the receipts' and the closes' facts (`tthc_core.indices.received_facts`,
  `closed_facts`) added up per month of the fact (local), group (agency, field, procedure, channel),
  working-day length and shard (the Kafka partition that added them: replicas never wait on one row);
  a current period's figures are the sum of its months' rows plus its open dossiers counted at the cut;
- `metrics_counts_basis`: the fingerprint (`tthc_core.indices.facts_basis`) every `counted` agrees with,
  once all of them do (until then the figures are read from the states);
- `metrics_group_names`: per shard, grouping and code, the name the latest received dossier gives it;
- `metrics_watermarks`: the latest event time seen per stream and Kafka partition (the service's
  watermark is their max); one row per partition, so that replicas never wait on each other's row;
- `processed_events` (tthc_common.idempotency): what makes every consumer idempotent.

Instants are stored in UTC (`UtcDateTime`): compared in SQL, they must mean the same thing whatever
offset the event carried.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Date, Index, Integer, String, Table, text
from sqlmodel import Field, SQLModel

from tthc_common.idempotency import ProcessedEvent  # noqa: F401  (registers processed_events)
from tthc_common.types import UtcDateTime
from tthc_core.indices import COUNTS


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


# The open dossiers (received, not closed), with what their open facts at a cut need: the one grouped
# query of `queries.open_counts` reads this index alone.
OPEN_DOSSIERS = "closed_at IS NULL AND received_at IS NOT NULL"
OPEN_INDEX = "ix_metrics_dossiers_open"
OPEN_INDEX_COLUMNS = ("handling_agency", "field_code", "procedure_code", "channel", "overdue_after",
                      "i766_late_after")


class DossierRow(SQLModel, table=True):
    __tablename__ = "metrics_dossiers"
    __table_args__ = (
        Index(OPEN_INDEX, *OPEN_INDEX_COLUMNS, postgresql_where=text(OPEN_DOSSIERS),
              sqlite_where=text(OPEN_DOSSIERS)),
    )

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
    # tthc_core.indices.open_thresholds (null once closed): open facts at any cut after the last event
    overdue_after: datetime | None = _instant()  # overdue at a cut after it; null: not overdue
    i766_late_after: datetime | None = _instant()  # 766 late at a cut after it; null: on time
    # what the dossier adds to metrics_counts now (units.contribution), and the facts_basis it was counted on
    counted: dict[str, Any] | None = Field(default=None,
                                           sa_column=Column(JSON(none_as_null=True), nullable=True))
    counted_basis: str | None = Field(default=None, max_length=64)
    # -- from the apology stream -------------------------------------------------------------------
    first_apology_at: datetime | None = _instant()  # the earliest apology.issued instant
    first_apology_id: str | None = Field(default=None, max_length=64)


class PartitionWatermark(SQLModel, table=True):
    __tablename__ = "metrics_partition_watermarks"

    stream: str = Field(sa_column=Column(String(32), primary_key=True))
    partition: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))


# -- kept counts -----------------------------------------------------------------------------------------
COUNT_KEYS = ("month", "agency", "field", "procedure", "channel", "day_length_us", "shard")
COUNT_COLUMNS = (*COUNTS, "processing_us")  # processing_us: office µs, summed (closed facts)

counts_table = Table(
    "metrics_counts",
    SQLModel.metadata,
    Column("month", Date, primary_key=True),  # the first day of the local month of the facts
    Column("agency", String(64), primary_key=True),
    Column("field", String(64), primary_key=True),
    Column("procedure", String(64), primary_key=True),
    Column("channel", String(32), primary_key=True),
    Column("day_length_us", BigInteger, primary_key=True, autoincrement=False),
    Column("shard", String(32), primary_key=True),
    *(Column(name, BigInteger, nullable=False, server_default="0") for name in COUNT_COLUMNS),
)


COUNTS_BASIS = "counts"  # metrics_counts_basis.name of the one row


class CountsBasis(SQLModel, table=True):
    __tablename__ = "metrics_counts_basis"

    name: str = Field(primary_key=True, max_length=32)
    fingerprint: str = Field(max_length=64)
    counted_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))


class GroupName(SQLModel, table=True):
    __tablename__ = "metrics_group_names"

    shard: str = Field(primary_key=True, max_length=32)
    grouping: str = Field(primary_key=True, max_length=16)  # agency, field, procedure
    code: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=500)
    # the dossier that gave the name: the latest received (then the greatest id) wins
    received_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    dossier_id: str = Field(max_length=64)

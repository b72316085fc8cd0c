"""The deadline service's tables.

- `deadline_event_log`: every dossier event consumed, the input of the re-fold (a late, out-of-order or
  held event is simply one more row; the dossier's state is recomputed from all of them);
- `deadline_dossiers`: each received dossier's state (`Dossier.to_json()`) with the columns the HTTP list
  filters on and the `next_moment_at` the watermark sweep scans by index;
- `deadline_state_counts`: how many dossiers are in each state (`DossierRow.state`), changed in the
  transaction that changes a dossier's state, so the state gauges need not count a million rows. Kept
  per shard (the Kafka partition of the consumer that changed them, or `sweep`) and summed when read, so
  replicas consuming different partitions never wait on each other's counter rows;
- `deadline_watermark`: the event time the service has reached: one row per Kafka partition of the dossier
  events (`p<n>`, moved once per batch by the replica that owns the partition) and one for the latest tick
  (`tick`); the service's time is the latest of them;
- `deadline_receipt_conflicts`: the dead-letter record of a second `dossier.received` (events.md), with
  `published_at` once it is queued on the outbox for the dead-letter topic (in the transaction that
  records it; NULL only in a record left by a version that published them itself, queued at start-up).

The common tables `processed_events` and `outbox` come from tthc_common.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from tthc_common.idempotency import ProcessedEvent  # noqa: F401  (registers the table)
from tthc_common.outbox import OutboxMessage  # noqa: F401  (registers the table)
from tthc_common.types import UtcDateTime
from tthc_contracts.timefmt import utcnow

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
_BigId = BigInteger().with_variant(Integer(), "sqlite")

TICK_ROW = "tick"  # the latest wall-clock tick seen
SWEEP_SHARD = "sweep"  # the state counts changed by the time sweep and the calendar re-fold


def partition_row(partition: int) -> str:
    """The watermark row (and the state-count shard) of a dossier-events partition."""
    return f"p{partition}"


class DossierEventRow(SQLModel, table=True):
    __tablename__ = "deadline_event_log"
    __table_args__ = (UniqueConstraint("source", "event_id", name="uq_deadline_event_log_source_event"),)

    id: int | None = Field(default=None, sa_column=Column(_BigId, primary_key=True, autoincrement=True))
    dossier_id: str = Field(max_length=64, index=True)
    source: str = Field(max_length=64)
    event_id: str = Field(max_length=64)
    type: str = Field(max_length=64)
    occurred_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    # The event as validated (contract v1 JSON). It holds the applicant's data: never logged.
    payload: str = Field(sa_column=Column(Text, nullable=False))
    # A conflicting second dossier.received is kept, marked, and changes nothing.
    ignored: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, default=False))
    ignored_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    kafka_topic: str | None = Field(default=None, max_length=255)
    kafka_partition: int | None = None
    kafka_offset: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))


class DossierRow(SQLModel, table=True):
    __tablename__ = "deadline_dossiers"
    __table_args__ = (
        Index("ix_deadline_dossiers_agency_state", "handling_agency", "state"),
        Index("ix_deadline_dossiers_state", "state"),
        Index("ix_deadline_dossiers_next_moment_at", "next_moment_at"),
        Index("ix_deadline_dossiers_partition_next_moment_at", "event_partition", "next_moment_at"),
    )

    dossier_id: str = Field(primary_key=True, max_length=64)
    handling_agency: str = Field(max_length=64)
    # The state at the watermark when the row was last written; refreshed on every event and every
    # moment (at risk, overdue), which are the only instants it can change.
    state: str = Field(max_length=32)
    # The next instant at which time alone would emit something; NULL when nothing is pending.
    next_moment_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime(), nullable=True))
    received_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    due_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    state_json: str = Field(sa_column=Column(Text, nullable=False))  # Dossier.to_json(), emitted keys included
    # The calendar the state was computed under (active_calendar.py); another one means "re-fold me".
    calendar_version: str = Field(max_length=64)
    # The Kafka partition of the dossier's events (they are keyed by dossier_id): the dossier lives on that
    # partition's time (see `queries.EventTimes`). NULL for a row written before partitions were kept.
    event_partition: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))


class StateCountRow(SQLModel, table=True):
    __tablename__ = "deadline_state_counts"

    shard: str = Field(primary_key=True, max_length=32)
    state: str = Field(primary_key=True, max_length=32)
    dossiers: int = Field(sa_column=Column(BigInteger, nullable=False))


class WatermarkRow(SQLModel, table=True):
    __tablename__ = "deadline_watermark"

    name: str = Field(primary_key=True, max_length=32)
    at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))


class ReceiptConflictRow(SQLModel, table=True):
    __tablename__ = "deadline_receipt_conflicts"
    __table_args__ = (UniqueConstraint("source", "event_id", name="uq_deadline_receipt_conflicts_source_event"),)

    id: int | None = Field(default=None, sa_column=Column(_BigId, primary_key=True, autoincrement=True))
    dossier_id: str = Field(max_length=64, index=True)
    source: str = Field(max_length=64)  # the ignored receipt
    event_id: str = Field(max_length=64)
    winner_source: str = Field(max_length=64)  # the receipt that counts
    winner_event_id: str = Field(max_length=64)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    payload: str = Field(sa_column=Column(Text, nullable=False))  # the ignored event, for the dead-letter topic
    kafka_topic: str | None = Field(default=None, max_length=255)
    kafka_partition: int | None = None
    kafka_offset: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=False))
    published_at: datetime | None = Field(default=None, sa_column=Column(UtcDateTime(), nullable=True,
                                                                        index=True))

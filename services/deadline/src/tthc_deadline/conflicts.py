"""The dead-letter records of conflicting receipts (events.md: a second `dossier.received` is "kept in a
dead-letter record with its reason").

The record is written in the consumer's transaction (`deadline_receipt_conflicts`) and, in that same
transaction, queued on the common outbox for the dead-letter topic in the shape of
`tthc_common.dead_letter` (value = the event, reason and origin in `x-dead-letter-*` headers); its
`published_at` is then the moment it was queued. The outbox relay publishes it with the derived events.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlmodel import Session

from tthc_common.dead_letter import (
    HEADER_CONSUMER,
    HEADER_ERROR,
    HEADER_FAILED_AT,
    HEADER_OFFSET,
    HEADER_PARTITION,
    HEADER_REASON,
    HEADER_TOPIC,
)
from tthc_common.outbox import add_payload_to_outbox
from tthc_contracts import format_ts

from .models import ReceiptConflictRow, utcnow

logger = logging.getLogger("tthc.deadline.conflicts")

CONFLICT_ERROR = "ReceiptConflict"


def conflict_headers(row: ReceiptConflictRow, consumer: str) -> dict[str, str]:
    """The `x-dead-letter-*` headers of a conflict's record (the JSON content-type comes with the outbox)."""
    headers = {
        HEADER_REASON: row.reason,
        HEADER_ERROR: CONFLICT_ERROR,
        HEADER_CONSUMER: consumer,
        HEADER_FAILED_AT: format_ts(row.recorded_at) or "",
    }
    if row.kafka_topic is not None:
        headers[HEADER_TOPIC] = row.kafka_topic
        headers[HEADER_PARTITION] = str(row.kafka_partition)
        headers[HEADER_OFFSET] = str(row.kafka_offset)
    return headers


def queue_conflict(session: Session, row: ReceiptConflictRow, *, topic: str, consumer: str) -> dict[str, str]:
    """Put the record of `row` on the outbox for the dead-letter `topic` and mark it published; returns
    what to log once the transaction committed (`log_dead_lettered`)."""
    add_payload_to_outbox(session, topic, row.payload, key=row.dossier_id, headers=conflict_headers(row, consumer))
    row.published_at = utcnow()
    session.add(row)
    return {"dossier_id": row.dossier_id, "event_id": row.event_id, "source": row.source}


def queue_unpublished_conflicts(session: Session, *, topic: str, consumer: str) -> list[dict[str, str]]:
    """At start-up: queue the records that a version publishing them itself left unpublished."""
    rows = session.scalars(
        select(ReceiptConflictRow).where(ReceiptConflictRow.published_at.is_(None))  # type: ignore[union-attr]
        .order_by(ReceiptConflictRow.id).with_for_update(skip_locked=True)  # type: ignore[arg-type]
    ).all()
    return [queue_conflict(session, row, topic=topic, consumer=consumer) for row in rows]


def log_dead_lettered(conflicts: list[dict[str, str]]) -> None:
    for fields in conflicts:
        logger.warning("conflicting dossier.received dead-lettered", extra=fields)

"""Publishes the dead-letter records of conflicting receipts (events.md: a second `dossier.received`
is "kept in a dead-letter record with its reason").

The record is written in the consumer's transaction (`deadline_receipt_conflicts`); this publisher
then puts it on the dead-letter topic in the same shape as `tthc_common.dead_letter` (value = the
event, reason and origin in `x-dead-letter-*` headers) and marks it published. A crash in between
publishes it again on restart: a dead-letter consumer sees the same event id twice, harmlessly.

(It is a small outbox of its own because the common outbox rows carry no headers yet.)
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import anyio.to_thread
from sqlalchemy.engine import Engine

from tthc_common.db import run_in_transaction, session_scope
from tthc_common.dead_letter import (
    HEADER_CONSUMER,
    HEADER_ERROR,
    HEADER_FAILED_AT,
    HEADER_OFFSET,
    HEADER_PARTITION,
    HEADER_REASON,
    HEADER_TOPIC,
)
from tthc_common.publish import JSON_HEADERS
from tthc_contracts import format_ts

from .models import ReceiptConflictRow
from .store import mark_conflicts_published, pending_conflicts

logger = logging.getLogger("tthc.deadline.conflicts")

CONFLICT_ERROR = "ReceiptConflict"


def conflict_headers(row: ReceiptConflictRow, consumer: str) -> dict[str, str]:
    headers = dict(JSON_HEADERS)
    headers.update({
        HEADER_REASON: row.reason,
        HEADER_ERROR: CONFLICT_ERROR,
        HEADER_CONSUMER: consumer,
        HEADER_FAILED_AT: format_ts(row.recorded_at) or "",
    })
    if row.kafka_topic is not None:
        headers[HEADER_TOPIC] = row.kafka_topic
        headers[HEADER_PARTITION] = str(row.kafka_partition)
        headers[HEADER_OFFSET] = str(row.kafka_offset)
    return headers


class ConflictPublisher:
    def __init__(self, engine: Engine, broker: Any, *, topic: str, consumer: str, poll_interval_s: float = 5.0,
                 publish_timeout_s: float = 10.0) -> None:
        self.engine = engine
        self.broker = broker
        self.topic = topic
        self.consumer = consumer
        self.poll_interval_s = poll_interval_s
        self.publish_timeout_s = publish_timeout_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _pending(self) -> list[ReceiptConflictRow]:
        with session_scope(self.engine) as session:
            return pending_conflicts(session)

    async def publish_pending(self) -> int:
        rows = await anyio.to_thread.run_sync(self._pending)
        if not rows:
            return 0
        async with asyncio.timeout(self.publish_timeout_s):
            for row in rows:
                await self.broker.publish(row.payload.encode("utf-8"), self.topic,
                                          key=row.dossier_id.encode("utf-8"),
                                          headers=conflict_headers(row, self.consumer))
        ids = [row.id for row in rows if row.id is not None]
        await run_in_transaction(self.engine, lambda session: mark_conflicts_published(session, ids))
        for row in rows:
            logger.warning("conflicting dossier.received dead-lettered",
                           extra={"dossier_id": row.dossier_id, "event_id": row.event_id, "source": row.source})
        return len(rows)

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                while await self.publish_pending():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Kafka or the database away: try again later
                logger.warning("dead-letter records not published yet", extra={"error": type(exc).__name__})
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval_s)
            except TimeoutError:
                pass

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="deadline-conflicts")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

"""Transactional outbox: a handler writes its state and its outgoing events in ONE transaction;
the relay publishes the rows afterwards, in id order, and deletes them once Kafka acknowledged them.

A crash between publishing and deleting publishes those rows again on restart. That is harmless:
derived events carry deterministic ids (`tthc_contracts.derived_id`) and every consumer is idempotent
on `(source, event_id)`.

On PostgreSQL several replicas of a service may run; a session-level advisory lock elects one relay,
the others wait (so events of one dossier are never published by two relays out of order).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from datetime import datetime
from typing import Any

import anyio.to_thread
from pydantic import BaseModel
from sqlalchemy import Column, DateTime, Identity, Integer, Text, delete, insert, select, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Field, Session, SQLModel
from tthc_contracts.timefmt import utcnow

from .background import BackgroundLoop
from .db import Pipeline, session_scope, values_rows_sql
from .publish import OutgoingMessage, PublishError, encode_event, event_json_dict, publish_messages

logger = logging.getLogger("tthc.outbox")


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox"

    id: int | None = Field(default=None, sa_column=Column(Integer, Identity(), primary_key=True))
    topic: str = Field(max_length=255)
    key: str | None = Field(default=None, max_length=255)
    payload: str = Field(sa_column=Column(Text, nullable=False))  # the event's JSON, UTF-8, NFC
    created_at: datetime = Field(default_factory=utcnow,
                                 sa_column=Column(DateTime(timezone=True), nullable=False))
    # Kafka headers to send besides the JSON content-type, as a JSON object; NULL: none (outbox v2).
    headers: str | None = Field(default=None, sa_column=Column(Text, nullable=True))

    def outgoing(self) -> OutgoingMessage:
        return OutgoingMessage(topic=self.topic, key=self.key, value=self.payload.encode("utf-8"),
                               headers=None if self.headers is None else json.loads(self.headers))


def add_to_outbox(session: Session, topic: str, event: BaseModel | dict[str, Any],
                  key: str | None = None, headers: dict[str, str] | None = None) -> OutboxMessage:
    """Queue `event` for `topic` in the caller's transaction. The key defaults to its `dossier_id`;
    `headers` are sent besides the JSON content-type."""
    data = event_json_dict(event)
    return add_payload_to_outbox(session, topic, encode_event(data).decode("utf-8"),
                                 key=key if key is not None else data.get("dossier_id"), headers=headers)


def outbox_values(topic: str, event: BaseModel | dict[str, Any], key: str | None = None) -> dict[str, Any]:
    """The outbox row of `event` for `topic` as column values (key: its `dossier_id` by default)."""
    if key is None:
        key = getattr(event, "dossier_id", None) if isinstance(event, BaseModel) else event.get("dossier_id")
    return {"topic": topic, "key": key, "payload": encode_event(event).decode("utf-8"),
            "created_at": utcnow(), "headers": None}


OUTBOX_COLUMNS = ("topic", "key", "payload", "created_at", "headers")


def add_many_to_outbox(session: Session, rows: list[dict[str, Any]]) -> None:
    """Queue many `outbox_values` rows in the caller's transaction with one INSERT (executemany, in
    list order), without an ORM object per row."""
    if rows:
        session.execute(insert(OutboxMessage.__table__), rows)  # type: ignore[attr-defined]


def send_to_outbox(pipe: Pipeline, rows: list[dict[str, Any]]) -> None:
    """The same through a PostgreSQL `Pipeline`: one multi-row INSERT, sent at once, ids in list order."""
    if rows:
        pipe.send(f"INSERT INTO outbox ({', '.join(OUTBOX_COLUMNS)}) VALUES "
                  + values_rows_sql(len(OUTBOX_COLUMNS), len(rows)),
                  [row[c] for row in rows for c in OUTBOX_COLUMNS])


def add_payload_to_outbox(session: Session, topic: str, payload: str, *, key: str | None,
                          headers: dict[str, str] | None = None) -> OutboxMessage:
    """Queue a JSON text already encoded (sent exactly as given) for `topic` in the caller's transaction."""
    row = OutboxMessage(topic=topic, key=key, payload=payload,
                        headers=None if headers is None else json.dumps(headers, ensure_ascii=False))
    session.add(row)
    return row


def _advisory_lock_id(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class OutboxRelay:
    """Publishes pending outbox rows. `start()` in the app's startup (after the broker), `stop()` at
    shutdown, `wake()` after a transaction that added rows (so they leave at once, not at the next poll).
    """

    def __init__(self, engine: Engine, broker: Any, *, name: str, poll_interval_s: float = 0.5,
                 batch_size: int = 200, publish_timeout_s: float = 10.0, retry_delay_s: float = 1.0) -> None:
        self.engine = engine
        self.broker = broker
        self.name = name
        self.poll_interval_s = poll_interval_s
        self.batch_size = batch_size
        self.publish_timeout_s = publish_timeout_s
        self.retry_delay_s = retry_delay_s
        self._lock_connection: Connection | None = None
        self._leader = False
        self._loop = BackgroundLoop(f"outbox-relay-{name}", self._step, interval_s=poll_interval_s,
                                    retry_delay_s=retry_delay_s, logger=logger, failure_message=None,
                                    on_error=self._failed)

    def wake(self) -> None:
        self._loop.wake()

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        self._leader = False
        if self._lock_connection is not None:
            await anyio.to_thread.run_sync(self._release_leadership)

    # ---- one batch --------------------------------------------------------------------------

    def _pending(self) -> list[OutboxMessage]:
        with session_scope(self.engine) as session:
            query = select(OutboxMessage).order_by(OutboxMessage.id).limit(self.batch_size)  # type: ignore[arg-type]
            return list(session.scalars(query))

    def _delete(self, ids: list[int]) -> None:
        with session_scope(self.engine) as session:
            session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(ids)))  # type: ignore[union-attr]

    async def relay_once(self) -> int:
        """Publish one batch of pending rows; return how many were published."""
        rows = await anyio.to_thread.run_sync(self._pending)
        if not rows:
            return 0
        await publish_messages(self.broker, [r.outgoing() for r in rows], timeout_s=self.publish_timeout_s)
        await anyio.to_thread.run_sync(self._delete, [r.id for r in rows if r.id is not None])
        return len(rows)

    async def drain(self) -> int:
        """Publish until nothing is pending (tests, shutdown)."""
        total = 0
        while n := await self.relay_once():
            total += n
        return total

    # ---- the loop -----------------------------------------------------------------------------

    def _try_leadership(self) -> bool:
        if self.engine.dialect.name != "postgresql":
            return True  # SQLite: one process owns the file
        if self._lock_connection is None:
            self._lock_connection = self.engine.connect()
        got = self._lock_connection.execute(
            text("SELECT pg_try_advisory_lock(:id)"), {"id": _advisory_lock_id(f"outbox:{self.name}")}
        ).scalar()
        self._lock_connection.commit()
        return bool(got)

    def _release_leadership(self) -> None:
        connection, self._lock_connection = self._lock_connection, None
        if connection is not None:
            # invalidate, not close: close() would return the session, lock and all, to the pool.
            # Ending the database session is what releases a session-level advisory lock.
            connection.invalidate()
            connection.close()

    async def _step(self) -> bool:
        if not self._leader:
            self._leader = await anyio.to_thread.run_sync(self._try_leadership)
            if not self._leader:
                await asyncio.sleep(max(self.poll_interval_s, 5.0))
                return True  # try again
        published = await self.relay_once()
        if published:
            logger.debug("outbox rows published", extra={"rows": published})
        return bool(published)  # there may be more

    async def _failed(self, exc: Exception) -> None:
        if isinstance(exc, PublishError):
            logger.warning("outbox publish failed, will retry", extra={"error": str(exc)})
            return
        # database trouble: give up leadership (its connection may be broken) and keep the relay alive
        logger.warning("outbox relay failed, will retry", extra={"error": type(exc).__name__})
        if self._leader:
            await anyio.to_thread.run_sync(self._release_leadership)
            self._leader = False

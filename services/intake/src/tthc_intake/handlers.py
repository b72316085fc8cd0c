"""`POST /v1/events` (interfaces.md): authenticate, bound the size, validate all, drop duplicates,
publish, record. All or nothing: a request is either refused whole, or every new event of it is in
Kafka before the 202 leaves.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine
from tthc_common.db import session_scope
from tthc_common.logging import event_log_fields
from tthc_common.publish import PublishError, message_for, publish_messages

from .auth import bearer_key, source_for_key
from .config import IntakeSettings
from .metrics import IntakeMetrics, RejectReason
from .store import already_accepted, record_accepted
from .validation import (
    BODY,
    MalformedBody,
    Problem,
    foreign_sources,
    raw_events,
    split_duplicates,
    validate_events,
)

logger = logging.getLogger("tthc.intake")


class BodyTooLarge(Exception):
    pass


async def read_body_capped(request: Request, limit: int) -> bytes:
    """The body, refusing early: by Content-Length when given, else while streaming."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def events_router(*, settings: IntakeSettings, engine: Engine, broker: Any, metrics: IntakeMetrics) -> APIRouter:
    router = APIRouter(tags=["intake"])
    topic = settings.topics.dossier_events

    def refuse(status: int, reason: RejectReason, **body: Any) -> JSONResponse:
        metrics.rejected.labels(reason.value).inc()
        logger.info("request refused", extra={"status": status, "reason": reason.value})
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(body, status_code=status, headers=headers)

    def problems(status: int, reason: RejectReason, found: list[Problem]) -> JSONResponse:
        return refuse(status, reason, errors=[p.as_json() for p in found])

    @router.post("/v1/events", status_code=202)
    async def post_events(request: Request) -> JSONResponse:
        source = source_for_key(bearer_key(request.headers.get("authorization")), settings.source_keys)
        if source is None:
            return refuse(401, RejectReason.UNAUTHORIZED, detail="a valid source key is required (Bearer)")

        try:
            body = await read_body_capped(request, settings.max_body_bytes)
        except BodyTooLarge:
            return refuse(413, RejectReason.TOO_LARGE, detail=f"the body exceeds {settings.max_body_bytes} bytes")
        try:
            raws = raw_events(body)
        except MalformedBody as exc:
            return problems(422, RejectReason.MALFORMED, [Problem(None, BODY, str(exc))])
        if len(raws) > settings.max_events_per_request:
            return refuse(413, RejectReason.TOO_LARGE,
                          detail=f"at most {settings.max_events_per_request} events per request")

        if wrong := foreign_sources(raws, source):
            return problems(403, RejectReason.WRONG_SOURCE, wrong)
        events, invalid = validate_events(raws)
        if invalid:
            metrics.invalid_events.inc(len({p.index for p in invalid}))
            return problems(422, RejectReason.INVALID, invalid)

        try:
            seen = await anyio.to_thread.run_sync(_already_accepted, engine, source, events)
        except Exception as exc:  # noqa: BLE001 - any database failure is "unavailable" to the sender
            logger.warning("duplicate check failed", extra={"error": type(exc).__name__})
            return refuse(503, RejectReason.DATABASE_UNAVAILABLE, detail="database unavailable, retry later")
        new, duplicates = split_duplicates(events, seen)

        try:
            await publish_messages(broker, [message_for(topic, e, key=e.dossier_id) for e in new],
                                   timeout_s=settings.kafka_publish_timeout_s)
        except PublishError as exc:
            # Nothing is recorded: the sender retries the whole request. Any event that did reach
            # Kafka anyway is published again then, which consumers absorb by (source, event_id).
            return refuse(503, RejectReason.KAFKA_UNAVAILABLE, detail=f"Kafka unavailable: {exc}")

        try:
            await anyio.to_thread.run_sync(_record_accepted, engine, new)
        except Exception as exc:  # noqa: BLE001
            # The events ARE durably in Kafka, so 202 is the truth. Only the duplicate check is
            # weakened: a retry of this request would publish them again, and every consumer
            # ignores a (source, event_id) it has already processed.
            logger.error("accepted events published but not recorded", extra={"error": type(exc).__name__,
                                                                           "count": len(new)})

        for event in new:
            metrics.accepted.labels(event.type).inc()
            logger.debug("event accepted", extra={"source": source, **event_log_fields(event)})
        for event in duplicates:
            metrics.duplicates.labels(event.type).inc()
            logger.debug("duplicate event ignored", extra={"source": source, **event_log_fields(event)})
        metrics.batch_size.observe(len(events))
        logger.info("events accepted", extra={"source": source, "accepted": len(new),
                                              "duplicates": len(duplicates)})
        return JSONResponse({"accepted": len(new), "duplicates": len(duplicates)}, status_code=202)

    return router


def _already_accepted(engine: Engine, source: str, events: list[Any]) -> set[str]:
    with session_scope(engine) as session:
        return already_accepted(session, source, (e.event_id for e in events))


def _record_accepted(engine: Engine, events: list[Any]) -> None:
    with session_scope(engine) as session:
        record_accepted(session, events)

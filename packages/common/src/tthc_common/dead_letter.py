"""The dead-letter topic: a message that can never be processed is set aside with its reason, so that the
messages behind it go on (events.md: "it never stops the messages behind it").

Which messages go there is decided where they are handled (`tthc_common.batches`): one that cannot be
parsed at once; one whose processing keeps failing (a value the domain cannot hold, a bug) after a bounded
number of attempts. An error of the infrastructure (database or broker unreachable) never sends a message
here: it is retried until the infrastructure is back.

Dead-letter record (value = the original bytes, key = the original key), headers:
  x-dead-letter-reason       what was wrong (field names and rules, never the input values)
  x-dead-letter-error        the exception class, e.g. `EventValidationError`
  x-dead-letter-consumer     the consumer group that gave up
  x-dead-letter-topic / -partition / -offset   where the original sits
  x-dead-letter-failed-at    RFC 3339 UTC
  x-dead-letter-content-type the original content-type
plus the original message's other headers. The record's own content-type is `application/octet-stream`:
a reader gets the bytes as they were.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from tthc_contracts.events import EventValidationError
from tthc_contracts.timefmt import utcnow

from .logging import event_log_fields

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

logger = logging.getLogger("tthc.dead_letter")

MAX_REASON_CHARS = 1000

HEADER_REASON = "x-dead-letter-reason"
HEADER_ERROR = "x-dead-letter-error"
HEADER_CONSUMER = "x-dead-letter-consumer"
HEADER_TOPIC = "x-dead-letter-topic"
HEADER_PARTITION = "x-dead-letter-partition"
HEADER_OFFSET = "x-dead-letter-offset"
HEADER_FAILED_AT = "x-dead-letter-failed-at"
HEADER_CONTENT_TYPE = "x-dead-letter-content-type"


class PermanentError(Exception):
    """Raised by a parser: this message can never be processed (reading it again would fail again).

    The message text becomes the dead-letter reason: name fields and rules, never applicant data.
    """


def _format_error_list(errors: Sequence[Any]) -> str:
    parts = []
    for err in errors:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{loc or '(message)'}: {err.get('msg', '')}")
    return "; ".join(parts)


def failure_reason(exc: BaseException) -> str:
    """Why the message failed, without echoing the input (which may hold an applicant's name)."""
    if isinstance(exc, ValidationError):
        reason = _format_error_list(exc.errors(include_url=False, include_input=False))
    elif isinstance(exc, EventValidationError):
        reason = str(exc)
    elif isinstance(exc, json.JSONDecodeError):
        reason = f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    elif isinstance(exc, UnicodeDecodeError):
        reason = f"not valid {exc.encoding}: {exc.reason} at byte {exc.start}"
    elif isinstance(exc, RecursionError):
        reason = "nested too deeply"
    else:
        reason = str(exc) or type(exc).__name__
    return reason[:MAX_REASON_CHARS]


@dataclass(frozen=True)
class Rejected:
    """A record to set aside, and why."""

    record: Any  # aiokafka ConsumerRecord (topic, partition, offset, key, value, headers)
    error: str  # the exception class
    reason: str


def _event_fields(value: bytes | None) -> dict[str, Any]:
    try:
        return event_log_fields(json.loads(value)) if value else {}
    except (ValueError, TypeError, RecursionError):
        return {}


class DeadLetters:
    """Publishes rejected records to the dead-letter topic and waits for Kafka's acknowledgement.

    If publishing fails, the error propagates: the batch is read again, nothing is committed without being
    either processed or dead-lettered.
    """

    def __init__(self, *, topic: str, consumer: str, publish_timeout_s: float = 10.0,
                 registry: CollectorRegistry | None = None) -> None:
        self.topic = topic
        self.consumer = consumer
        self.publish_timeout_s = publish_timeout_s
        self.broker: Any = None  # set once the router exists (make_kafka_router)
        self.counter = None
        if registry is not None:
            from prometheus_client import Counter

            self.counter = Counter(
                "tthc_dead_lettered_messages",
                "Messages set aside on the dead-letter topic, by consumer, source topic and error class",
                ["consumer", "topic", "error"], registry=registry)

    async def send(self, rejected: Sequence[Rejected], consumer: str | None = None) -> None:
        if not rejected:
            return
        if self.broker is None:  # pragma: no cover - a wiring mistake; never commit what was not set aside
            raise RuntimeError("dead letters have no broker to publish with")
        consumer = consumer or self.consumer
        failed_at = utcnow().isoformat(timespec="seconds")
        async with asyncio.timeout(self.publish_timeout_s):
            for item in rejected:
                record = item.record
                headers = {k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
                           for k, v in (getattr(record, "headers", None) or ())}
                original_content_type = headers.pop("content-type", "")
                headers.update({
                    "content-type": "application/octet-stream",
                    HEADER_CONTENT_TYPE: original_content_type,
                    HEADER_REASON: item.reason[:MAX_REASON_CHARS],
                    HEADER_ERROR: item.error,
                    HEADER_CONSUMER: consumer,
                    HEADER_TOPIC: str(record.topic),
                    HEADER_PARTITION: str(record.partition),
                    HEADER_OFFSET: str(record.offset),
                    HEADER_FAILED_AT: failed_at,
                })
                await self.broker.publish(record.value if record.value is not None else b"", self.topic,
                                          key=record.key or None, headers=headers)
                logger.warning("message dead-lettered", extra={
                    "error": item.error, "topic": record.topic, "partition": record.partition,
                    "offset": record.offset, "consumer": consumer, **_event_fields(record.value)})
                if self.counter is not None:
                    self.counter.labels(consumer, record.topic, item.error).inc()

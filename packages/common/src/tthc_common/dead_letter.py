"""Dead-letter topic: a message that can never be processed is set aside with its reason, then acked.

Errors split in two (architecture.md):

- permanent (`PermanentError`, a validation error, undecodable JSON or UTF-8): reading the message
  again would fail again. The middleware publishes the ORIGINAL bytes and key to `Topics.dead_letter`
  with headers saying where it came from and why, waits for Kafka's acknowledgement, and suppresses
  the error so that FastStream acks (commits) the message and the consumer moves on;
- anything else (database down, Kafka hiccup, a bug): the error propagates, FastStream nacks, which on
  Kafka seeks back so the same message is read again after `retry_delay_s`.

If publishing to the dead-letter topic itself fails, that error propagates and the message is nacked:
nothing is ever committed without being either processed or dead-lettered.

This relies on the subscriber's ack policy being `AckPolicy.NACK_ON_ERROR` (manual offset commits:
ack = commit, nack = seek back). `make_kafka_router` makes it the default and `consumer_options`
spells it out. With the default `ACK_FIRST`, Kafka auto-commits before the handler runs and a passing
failure would lose the message.

Dead-letter record (value = original bytes, key = original key), headers:
  x-dead-letter-reason       what was wrong (field names and messages, never the input values)
  x-dead-letter-error        the exception class, e.g. `EventValidationError`
  x-dead-letter-consumer     the consumer group (or service) that gave up
  x-dead-letter-topic / -partition / -offset   where the original sits
  x-dead-letter-failed-at    RFC 3339 UTC
  x-dead-letter-content-type the original content-type
plus the original message's other headers. The record's own content-type is
`application/octet-stream`: a reader gets the bytes as they were, and a body that was not JSON does
not fail the dead-letter reader too. A message that fails permanently while being read FROM the
dead-letter topic is logged and acked, never dead-lettered again (that would loop).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from faststream.exceptions import IgnoredException
from faststream.middlewares import BaseMiddleware
from pydantic import ValidationError
from tthc_contracts.events import EventValidationError

from .logging import event_log_fields

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord
    from faststream._internal.context.repository import ContextRepo
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
    """This message can never be processed (reading it again would fail again): dead-letter it.

    The message text becomes the dead-letter reason: name fields and rules, never applicant data.
    """


def _fastapi_validation_error() -> tuple[type[BaseException], ...]:
    # Inside FastStream's FastAPI integration a mistyped message body raises FastAPI's exception.
    try:
        from fastapi.exceptions import ValidationException
    except ImportError:  # pragma: no cover
        return ()
    return (ValidationException,)


PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    PermanentError,
    EventValidationError,
    ValidationError,
    json.JSONDecodeError,
    UnicodeDecodeError,
    *_fastapi_validation_error(),
)


def is_permanent(exc: BaseException) -> bool:
    return isinstance(exc, PERMANENT_ERRORS)


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
    elif hasattr(exc, "errors") and not isinstance(exc, EventValidationError) and callable(exc.errors):
        try:
            reason = _format_error_list(list(exc.errors()))
        except Exception:  # noqa: BLE001 - a reason is best effort
            reason = type(exc).__name__
    elif isinstance(exc, json.JSONDecodeError):
        reason = f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    elif isinstance(exc, UnicodeDecodeError):
        reason = f"not valid {exc.encoding}: {exc.reason} at byte {exc.start}"
    else:
        reason = str(exc) or type(exc).__name__
    return reason[:MAX_REASON_CHARS]


def _records(msg: Any) -> tuple[ConsumerRecord[Any, Any], ...]:
    return tuple(msg) if isinstance(msg, (tuple, list)) else (msg,)


def _event_fields(value: bytes | None) -> dict[str, Any]:
    try:
        return event_log_fields(json.loads(value)) if value else {}
    except (ValueError, TypeError):
        return {}


class DeadLetterMiddleware:
    """Broker middleware factory: `KafkaRouter(..., middlewares=(DeadLetterMiddleware(...), ...))`.

    `default_consumer` names the consumer in the dead-letter headers when the subscriber has no
    consumer group. `registry` (optional) gets the counter `tthc_dead_lettered_messages_total`.
    """

    def __init__(
        self,
        *,
        dead_letter_topic: str,
        default_consumer: str,
        retry_delay_s: float = 1.0,
        publish_timeout_s: float = 10.0,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.dead_letter_topic = dead_letter_topic
        self.default_consumer = default_consumer
        self.retry_delay_s = retry_delay_s
        self.publish_timeout_s = publish_timeout_s
        self.broker: Any = None  # set by make_kafka_router; the message context's broker wins
        self.dead_lettered = None
        if registry is not None:
            from prometheus_client import Counter

            self.dead_lettered = Counter(
                "tthc_dead_lettered_messages",
                "Messages set aside on the dead-letter topic, by consumer, source topic and error class",
                ["consumer", "topic", "error"],
                registry=registry,
            )

    def __call__(self, msg: Any, /, *, context: ContextRepo) -> _DeadLetterScope:
        return _DeadLetterScope(msg, context=context, config=self)


class _DeadLetterScope(BaseMiddleware):
    __slots__ = ("config",)

    def __init__(self, msg: Any, /, *, context: ContextRepo, config: DeadLetterMiddleware) -> None:
        super().__init__(msg, context=context)
        self.config = config

    async def after_processed(
        self,
        exc_type: type[BaseException] | None = None,
        exc_val: BaseException | None = None,
        exc_tb: Any = None,
    ) -> bool | None:
        if exc_val is None or not isinstance(exc_val, Exception) or isinstance(exc_val, IgnoredException):
            # success, cancellation, or FastStream's own Ack/Nack/Reject/Stop signals: not ours
            return False
        if not is_permanent(exc_val):
            logger.warning(
                "message processing failed, it will be read again",
                extra={"error": type(exc_val).__name__, **self._where()},
            )
            if self.config.retry_delay_s > 0:
                await asyncio.sleep(self.config.retry_delay_s)
            return False
        if self._from_dead_letter_topic():
            logger.error("a dead-letter record could not be processed; skipped",
                         extra={"error": type(exc_val).__name__, **self._where()})
            return True
        await self._dead_letter(exc_val)
        return True  # suppressed: FastStream acks and the consumer moves on

    def _from_dead_letter_topic(self) -> bool:
        return any(getattr(r, "topic", None) == self.config.dead_letter_topic for r in _records(self.msg))

    def _consumer(self) -> str:
        subscriber = self.context.get_local("handler_")
        return getattr(subscriber, "group_id", None) or self.config.default_consumer

    def _where(self) -> dict[str, Any]:
        first = _records(self.msg)[0]
        return {"topic": getattr(first, "topic", None), "partition": getattr(first, "partition", None),
                "offset": getattr(first, "offset", None), "consumer": self._consumer()}

    async def _dead_letter(self, exc: Exception) -> None:
        broker = self.context.get_local("broker") or self.config.broker
        if broker is None:  # pragma: no cover - configuration error; nack rather than lose it
            raise RuntimeError("dead-letter middleware has no broker to publish with") from exc
        consumer = self._consumer()
        reason = failure_reason(exc)
        failed_at = datetime.now(UTC).isoformat(timespec="seconds")
        async with asyncio.timeout(self.config.publish_timeout_s):
            for record in _records(self.msg):
                headers = {k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
                           for k, v in (record.headers or ())}
                original_content_type = headers.pop("content-type", "")
                headers.update({
                    "content-type": "application/octet-stream",
                    HEADER_CONTENT_TYPE: original_content_type,
                    HEADER_REASON: reason,
                    HEADER_ERROR: type(exc).__name__,
                    HEADER_CONSUMER: consumer,
                    HEADER_TOPIC: record.topic,
                    HEADER_PARTITION: str(record.partition),
                    HEADER_OFFSET: str(record.offset),
                    HEADER_FAILED_AT: failed_at,
                })
                await broker.publish(record.value if record.value is not None else b"",
                                     self.config.dead_letter_topic, key=record.key or None,
                                     headers=headers)
                logger.warning(
                    "message dead-lettered",
                    extra={"error": type(exc).__name__, "topic": record.topic,
                           "partition": record.partition, "offset": record.offset, "consumer": consumer,
                           **_event_fields(record.value)},
                )
                if self.config.dead_lettered is not None:
                    self.config.dead_lettered.labels(consumer, record.topic, type(exc).__name__).inc()

"""Batch consumption, the same in every consuming service: one transaction and one offset commit per batch
of Kafka records, and no message that can stop the ones behind it.

    runner = BatchRunner("deadline.dossier-events", engine=engine, parse=parse_dossier_record,
                         unit=units.apply_dossier_events, dead_letters=dead_letters, metrics=metrics)

    @router.subscriber(topic, **batch_options(settings))
    async def on_dossier_events(msg: KafkaMessage) -> None:
        deps.after_dossier_events(await runner.run(msg.raw_message))

`run(records)`:
1. parses every record (`parse(record) -> item | None`; None: a record this consumer does not use). A record
   that does not parse is permanent: it is set aside on the dead-letter topic with the reason;
2. runs `unit(session, items)` on the parsed ones in ONE transaction (`fn(session, items) -> outcome`, from
   the service's `units.py`; it marks the events processed, so a batch read again changes nothing twice);
3. if the unit fails because the database or the broker is unreachable (`is_infrastructure_error`), the
   error propagates: the broker middleware waits (growing back-off, a log line a minute) and the batch is
   read again, without end. Any other failure (a value the domain cannot hold, a bug) looks for the culprit:
   each item is retried on its own, in order, `attempts` times with back-off; one that still fails is set
   aside with its reason, and the others are processed;
4. publishes what was set aside, then returns the outcomes; the subscriber then commits the batch's offsets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlmodel import Session

from .db import run_in_transaction
from .dead_letter import DeadLetters, Rejected, failure_reason
from .publish import PublishError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

logger = logging.getLogger("tthc.batches")

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Received(Generic[T]):
    """A parsed record and where it sits in Kafka (`record`: the original, for the dead-letter topic)."""

    event: T
    topic: str
    partition: int
    offset: int
    record: Any = field(default=None, repr=False, compare=False)


def is_infrastructure_error(exc: BaseException) -> bool:
    """The database or the broker is unreachable or refused to work now: retry later, without end.

    Everything else a unit raises (IntegrityError, ValueError, OverflowError, a bug) is about the
    message or the code, and is retried a bounded number of times before the message is set aside.
    """
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
                        sa_exc.TimeoutError, sa_exc.ResourceClosedError, PublishError, ConnectionError,
                        TimeoutError)):
        return True
    try:
        from aiokafka.errors import KafkaError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, KafkaError)


class ConsumerMetrics:
    """Counters every consuming service exposes (one set per app registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Counter, Histogram

        self.batches = Histogram(
            "tthc_consumer_batch_records", "Records per batch handed to a consumer", ["consumer"],
            buckets=(1, 5, 25, 100, 250, 500, 1000, 2500, 5000), registry=registry)
        self.retried = Counter(
            "tthc_consumer_retries", "Units of work run again, by consumer and cause (poison: a message whose "
            "processing failed; infrastructure: the database or the broker was unreachable)",
            ["consumer", "cause"], registry=registry)


class BatchRunner(Generic[T, R]):
    def __init__(self, name: str, *, engine: Engine, parse: Callable[[Any], T | None],
                 unit: Callable[[Session, list[Received[T]]], R], dead_letters: DeadLetters,
                 metrics: ConsumerMetrics | None = None, attempts: int = 3, backoff_s: float = 0.2) -> None:
        self.name = name
        self.engine = engine
        self.parse = parse
        self.unit = unit
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s

    def _parsed(self, records: Sequence[Any]) -> tuple[list[Received[T]], list[Rejected]]:
        items: list[Received[T]] = []
        rejected: list[Rejected] = []
        for record in records:
            try:
                event = self.parse(record)
            except Exception as exc:  # noqa: BLE001 - whatever a parser raises, the message is unreadable
                rejected.append(Rejected(record, type(exc).__name__, failure_reason(exc)))
                continue
            if event is not None:
                items.append(Received(event, record.topic, record.partition, record.offset, record))
        return items, rejected

    async def _transaction(self, items: list[Received[T]]) -> R:
        return await run_in_transaction(self.engine, partial(self.unit, items=items))

    async def run(self, records: Sequence[Any]) -> list[R]:
        if self.metrics is not None:
            self.metrics.batches.labels(self.name).observe(len(records))
        items, rejected = self._parsed(records)
        outcomes: list[R] = []
        if items:
            try:
                outcomes.append(await self._transaction(items))
            except Exception as exc:
                if is_infrastructure_error(exc):
                    if self.metrics is not None:
                        self.metrics.retried.labels(self.name, "infrastructure").inc()
                    raise
                logger.warning("a batch failed; processing its messages one by one",
                               extra={"consumer": self.name, "error": type(exc).__name__, "count": len(items)})
                outcomes.extend(await self._one_by_one(items, rejected))
        # Published before the offsets are committed (the subscriber acks after this returns).
        await self.dead_letters.send(rejected, self.name)
        return outcomes

    async def _one_by_one(self, items: list[Received[T]], rejected: list[Rejected]) -> list[R]:
        outcomes: list[R] = []
        for item in items:
            for attempt in range(1, self.attempts + 1):
                try:
                    outcomes.append(await self._transaction([item]))
                    break
                except Exception as exc:
                    if is_infrastructure_error(exc):
                        raise
                    if self.metrics is not None:
                        self.metrics.retried.labels(self.name, "poison").inc()
                    if attempt < self.attempts:
                        await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
                        continue
                    logger.error("a message failed every attempt; setting it aside",
                                 extra={"consumer": self.name, "error": type(exc).__name__,
                                        "topic": item.topic, "partition": item.partition, "offset": item.offset})
                    rejected.append(Rejected(
                        item.record, type(exc).__name__,
                        f"processing failed {self.attempts} times: {type(exc).__name__}: {failure_reason(exc)}"))
        return outcomes



class Runners:
    """Makes the `BatchRunner`s of one service with its engine, dead-letter publisher, metrics and settings:
    `runners(name, parse=..., unit=...)`."""

    def __init__(self, *, engine: Engine, dead_letters: DeadLetters, metrics: ConsumerMetrics,
                 attempts: int, backoff_s: float) -> None:
        self.engine = engine
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.attempts = attempts
        self.backoff_s = backoff_s

    def __call__(self, name: str, *, parse: Callable[[Any], T | None],
                 unit: Callable[[Session, list[Received[T]]], R]) -> BatchRunner[T, R]:
        return BatchRunner(name, engine=self.engine, parse=parse, unit=unit, dead_letters=self.dead_letters,
                           metrics=self.metrics, attempts=self.attempts, backoff_s=self.backoff_s)


def make_runners(settings: Any, *, engine: Engine, broker: Any, registry: CollectorRegistry) -> Runners:
    """The service's `Runners`: dead letters go to the settings' dead-letter topic through `broker`."""
    dead_letters = DeadLetters(topic=settings.topics.dead_letter, consumer=settings.consumer_group,
                               publish_timeout_s=settings.kafka_publish_timeout_s, registry=registry)
    dead_letters.broker = broker
    return Runners(engine=engine, dead_letters=dead_letters, metrics=ConsumerMetrics(registry),
                   attempts=settings.poison_attempts, backoff_s=settings.poison_backoff_s)


def record_json(record: Any) -> Any:
    """The JSON value of a record, for parsers (`json.loads`: an unreadable value raises, and is set aside)."""
    import json

    value = record.value
    if value is None:
        raise ValueError("the record has no value")
    return json.loads(value)

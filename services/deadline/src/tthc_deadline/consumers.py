"""The two inputs of the deadline service: dossier events and its own ticks.

Thin handlers: validate (an invalid message raises a permanent error and the dead-letter middleware
sets it aside with the reason), run one transaction of `store`, then wake the relays and, when the
watermark reached some dossier's next moment, the sweeper.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy.engine import Engine

from tthc_common.background import BackgroundLoop
from tthc_common.db import run_in_transaction
from tthc_common.logging import event_log_fields
from tthc_common.outbox import OutboxRelay
from tthc_contracts import parse_dossier_event
from tthc_contracts.derived import Tick

from .conflicts import log_dead_lettered, queue_unpublished_conflicts
from .metrics import DeadlineMetrics
from .store import (
    ActiveCalendar,
    KafkaPosition,
    advance_by_tick,
    count_by_state,
    process_dossier_event,
    read_watermark,
)
from .sweeper import DueSweeper

logger = logging.getLogger("tthc.deadline.consumers")


def kafka_position(message: Any) -> KafkaPosition:
    record = getattr(message, "raw_message", None)
    return KafkaPosition(getattr(record, "topic", None), getattr(record, "partition", None),
                         getattr(record, "offset", None))


class DeadlineConsumers:
    def __init__(self, engine: Engine, calendar: ActiveCalendar, *, deadline_topic: str, metrics: DeadlineMetrics,
                 relay: OutboxRelay, sweeper: DueSweeper, dead_letter_topic: str, consumer: str,
                 max_event_lead: timedelta | None = None) -> None:
        """`dead_letter_topic`, `consumer`: where the records of conflicting receipts go, and the consumer
        group they name."""
        self.engine = engine
        self.calendar = calendar
        self.deadline_topic = deadline_topic
        self.metrics = metrics
        self.relay = relay
        self.sweeper = sweeper
        self.dead_letter_topic = dead_letter_topic
        self.consumer = consumer
        self.max_event_lead = max_event_lead
        self._watermark: datetime | None = None
        # Ticks and sweeps wake this loop rather than wait for the count (a few rows of
        # deadline_state_counts, kept by the writers); events show in it at the next tick.
        self.state_gauges = BackgroundLoop("deadline-state-gauges", self._refresh_state_gauges_step,
                                           interval_s=300.0, logger=logger,
                                           failure_message="state gauges not refreshed, will retry")

    def _saw_watermark(self, at: datetime | None) -> None:
        if at is not None and (self._watermark is None or at > self._watermark):
            self._watermark = at
            self.metrics.set_watermark(at)

    async def on_dossier_event(self, body: bytes, position: KafkaPosition = KafkaPosition()) -> None:
        event = parse_dossier_event(json.loads(body))  # invalid: permanent error -> dead-letter topic
        outcome = await run_in_transaction(self.engine, partial(
            process_dossier_event, calendar=self.calendar, event=event, deadline_topic=self.deadline_topic,
            dead_letter_topic=self.dead_letter_topic, consumer=self.consumer, position=position,
            max_lead=self.max_event_lead))
        if outcome.duplicate:
            self.metrics.duplicates.inc()
            logger.info("duplicate dossier event skipped", extra=event_log_fields(event))
            return
        self.metrics.consumed.labels(event.type).inc()
        if outcome.ahead_of_ticks:
            self.metrics.ahead_of_ticks.inc()
            logger.warning("event dated past the latest tick: it does not move the service's time",
                           extra=event_log_fields(event))
        if outcome.held:
            self.metrics.held.inc()
            logger.info("dossier event held until its dossier.received", extra=event_log_fields(event))
        if outcome.conflicts:
            self.metrics.conflicts.inc(len(outcome.conflicts))
            log_dead_lettered(outcome.conflicts)
        if outcome.derived:
            self.metrics.count_derived(outcome.derived)
        if outcome.conflicts or outcome.derived:
            self.relay.wake()
        self._saw_watermark(outcome.watermark)
        if outcome.moments_due:
            self.sweeper.request()

    async def on_tick(self, body: bytes) -> None:
        tick = Tick.model_validate_json(body)  # invalid: permanent error -> dead-letter topic
        before, after = await run_in_transaction(self.engine, partial(advance_by_tick, at=tick.at))
        self._saw_watermark(after)
        if before is None or after > before:
            self.sweeper.request()
        self.state_gauges.wake()

    async def _refresh_state_gauges_step(self) -> bool:
        await self.refresh_state_gauges()
        return False

    async def refresh_state_gauges(self) -> None:
        counts = await run_in_transaction(self.engine, count_by_state)
        self.metrics.set_state_counts(counts)

    async def catch_up(self) -> None:
        """At start-up: show the stored watermark and the state counts, and queue the dead-letter records
        an older version left unpublished. (The sweeper's first run re-folds the open dossiers if the
        calendar changed and finishes a sweep a crash cut short.)"""
        self._saw_watermark(await run_in_transaction(self.engine, read_watermark))
        await self.refresh_state_gauges()
        queued = await run_in_transaction(self.engine, partial(
            queue_unpublished_conflicts, topic=self.dead_letter_topic, consumer=self.consumer))
        if queued:
            log_dead_lettered(queued)
            self.relay.wake()

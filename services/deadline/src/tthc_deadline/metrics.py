"""The deadline service's own Prometheus figures (FastStream's consumer metrics sit beside them).

Labels are bounded sets (event types, states): never a dossier, agency or applicant.
"""

from __future__ import annotations

import logging
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy.engine import Engine

from tthc_common.background import BackgroundLoop
from tthc_common.db import run_in_transaction

from tthc_core.deadlines import STATES

from .queries import count_by_state

logger = logging.getLogger("tthc.deadline.metrics")


class DeadlineMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.consumed = Counter(
            "tthc_deadline_consumed_events", "Dossier events applied (first delivery only), by type",
            ["type"], registry=registry,
        )
        self.duplicates = Counter(
            "tthc_deadline_duplicate_events", "Dossier events delivered again and skipped", registry=registry,
        )
        self.refolded = Counter(
            "tthc_deadline_refolded_dossiers",
            "Dossiers re-folded from their event log (an event out of order, a receipt after held events)",
            registry=registry,
        )
        self.held = Counter(
            "tthc_deadline_held_events", "Dossier events stored while their dossier.received has not arrived",
            registry=registry,
        )
        self.conflicts = Counter(
            "tthc_deadline_receipt_conflicts",
            "Second dossier.received for an already received dossier (dead-lettered, ignored)", registry=registry,
        )
        self.ahead_of_ticks = Counter(
            "tthc_deadline_events_ahead_of_ticks",
            "Dossier events dated beyond the latest tick + DEADLINE_MAX_EVENT_LEAD_S (they did not move time)",
            registry=registry,
        )
        self.derived = Counter(
            "tthc_deadline_derived_events", "Derived deadline events queued for publishing, by type",
            ["type"], registry=registry,
        )
        self.ticks_published = Counter(
            "tthc_deadline_ticks_published", "Wall-clock ticks published", registry=registry,
        )
        self.moments_swept = Counter(
            "tthc_deadline_dossiers_advanced", "Dossiers advanced because the watermark passed their next moment",
            registry=registry,
        )
        self.calendar_rebased = Counter(
            "tthc_deadline_calendar_rebased_dossiers", "Open dossiers re-folded because the calendar changed",
            registry=registry,
        )
        self.open_dossiers = Gauge(
            "tthc_deadline_open_dossiers", "Received dossiers not closed (refreshed at every tick)",
            registry=registry,
        )
        self.dossiers = Gauge(
            "tthc_deadline_dossiers", "Received dossiers by state at the watermark (refreshed at every tick)",
            ["state"], registry=registry,
        )
        self.watermark = Gauge(
            "tthc_deadline_watermark_seconds", "Event time the service has reached (unix seconds)",
            registry=registry,
        )

    def set_watermark(self, at: datetime | None) -> None:
        if at is not None:
            self.watermark.set(at.timestamp())

    def set_state_counts(self, counts: dict[str, int]) -> None:
        for state in STATES:
            self.dossiers.labels(state).set(counts.get(state, 0))
        self.open_dossiers.set(sum(n for s, n in counts.items() if s != "closed"))

    def count_derived(self, derived: list) -> None:
        for event in derived:
            self.derived.labels(event.type).inc()


class StateGauges:
    """`tthc_deadline_dossiers{state}` from the kept counts (a few rows), refreshed in the background when
    woken (after a batch, a tick or a sweep; at most every `min_interval_s`) and every five minutes."""

    def __init__(self, engine: Engine, metrics: DeadlineMetrics, min_interval_s: float = 1.0) -> None:
        self.engine = engine
        self.metrics = metrics
        self._loop = BackgroundLoop("deadline-state-gauges", self._step, interval_s=300.0,
                                    min_interval_s=min_interval_s, logger=logger,
                                    failure_message="state gauges not refreshed, will retry")

    async def refresh(self) -> None:
        self.metrics.set_state_counts(await run_in_transaction(self.engine, count_by_state))

    async def _step(self) -> bool:
        await self.refresh()
        return False

    def wake(self) -> None:
        self._loop.wake()

    @property
    def idle(self) -> bool:
        return not (self._loop.woken or self._loop.busy)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

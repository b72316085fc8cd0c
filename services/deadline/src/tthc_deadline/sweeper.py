"""Time passing, in the background: when the watermark moves, the dossiers whose next moment (at risk,
overdue) it passed are advanced; at start-up, the open dossiers computed under another calendar are
re-folded first.

It runs beside the consumers, never inside them, so a watermark jump over thousands of moments does
not hold a Kafka consumer past its poll interval. Each batch is one transaction (state + outbox rows of
a bounded number of dossiers), found by an index range scan on `next_moment_at`; row locks keep it
and the consumers apart. It also wakes every `poll_interval_s` on its own, so a failed run is retried.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine

from tthc_common.background import BackgroundLoop
from tthc_common.db import run_in_transaction
from tthc_common.outbox import OutboxRelay

from .active_calendar import ActiveCalendar
from .metrics import DeadlineMetrics
from .units import advance_due_batch, rebase_calendar_batch

logger = logging.getLogger("tthc.deadline.sweeper")


class DueSweeper:
    def __init__(self, engine: Engine, calendar: ActiveCalendar, *, deadline_topic: str, batch_size: int,
                 metrics: DeadlineMetrics, relay: OutboxRelay, poll_interval_s: float = 5.0,
                 retry_delay_s: float = 1.0, on_advanced: Callable[[], None] | None = None) -> None:
        """`on_advanced`: called after a sweep or re-fold that changed dossiers (the state gauges)."""
        self.engine = engine
        self.calendar = calendar
        self.deadline_topic = deadline_topic
        self.batch_size = batch_size
        self.metrics = metrics
        self.relay = relay
        self.poll_interval_s = poll_interval_s
        self.retry_delay_s = retry_delay_s
        self.on_advanced = on_advanced
        self._lock = asyncio.Lock()
        self._rebase_pending = True
        self._loop = BackgroundLoop("deadline-sweeper", self._step, interval_s=poll_interval_s,
                                    retry_delay_s=retry_delay_s, logger=logger,
                                    failure_message="due sweep failed, will retry")

    # -- the background loop ------------------------------------------------------------------------
    def request(self) -> None:
        """The watermark moved: sweep soon."""
        self._loop.wake()

    @property
    def idle(self) -> bool:
        return not self._loop.woken and not self._loop.busy and not self._rebase_pending

    def start(self) -> None:
        self._loop.start()  # its first round runs at once: the calendar re-fold, then a sweep

    async def stop(self) -> None:
        await self._loop.stop()

    async def _step(self) -> None:
        # If it fails (the database away), the loop runs it again after `retry_delay_s`.
        if self._rebase_pending:
            await self.rebase_calendar()
            self._rebase_pending = False
        await self.sweep()

    # -- the work -----------------------------------------------------------------------------------
    async def sweep(self) -> int:
        """Advance every dossier due at the stored watermark; returns how many were advanced."""
        async with self._lock:
            total = 0
            seen: set[str] = set()
            while True:
                outcome = await run_in_transaction(self.engine, partial(
                    advance_due_batch, calendar=self.calendar, deadline_topic=self.deadline_topic,
                    limit=self.batch_size))
                self._published(outcome.derived)
                ids = outcome.dossier_ids
                total += len(ids)
                self.metrics.moments_swept.inc(len(ids))
                if len(ids) < self.batch_size:
                    self._advanced(total)
                    return total
                if seen.issuperset(ids):
                    # Advancing must move every next moment past the watermark; if it did not, stop
                    # rather than spin (the next wake retries).
                    logger.error("due sweep made no progress", extra={"count": len(ids)})
                    self._advanced(total)
                    return total
                seen.update(ids)

    async def rebase_calendar(self) -> int:
        """Re-fold every open dossier computed under another calendar; returns how many."""
        async with self._lock:
            total, after = 0, ""
            while True:
                outcome = await run_in_transaction(self.engine, partial(
                    rebase_calendar_batch, calendar=self.calendar, deadline_topic=self.deadline_topic,
                    limit=self.batch_size, after=after))
                self._published(outcome.derived)
                total += len(outcome.dossier_ids)
                self.metrics.calendar_rebased.inc(len(outcome.dossier_ids))
                if len(outcome.dossier_ids) < self.batch_size:
                    if total:
                        logger.info("open dossiers re-folded under the new calendar", extra={"count": total})
                    self._advanced(total)
                    return total
                after = outcome.dossier_ids[-1]

    def _published(self, derived: list[Any]) -> None:
        if derived:
            self.metrics.count_derived(derived)
            self.relay.wake()

    def _advanced(self, count: int) -> None:
        if count and self.on_advanced is not None:
            self.on_advanced()

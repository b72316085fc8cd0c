"""The start-up passes over the stored dossiers, in the background (the consumers and HTTP run meanwhile):

1. dossiers stored before the service kept states (migration 0002) get theirs, folded from their logs;
2. dossiers not counted on this calendar (stored before the kept counts, migration 0003, or the calendar
   file changed what a receipt or a close counts: `tthc_core.indices.facts_basis`) are counted again from
   their states (`units.count_dossiers`).

A chunk of 500 dossiers a transaction, under the same locks as the consumers (a dossier they change
meanwhile is counted by them, on this calendar). Until the second pass is done the figures of current
periods are computed from the stored states (queries.py), so they stay exact throughout. Nothing is
done when the store already agrees with the calendar: one read at start.
"""

from __future__ import annotations

import logging
from functools import partial

from sqlalchemy.engine import Engine

from tthc_common.background import BackgroundLoop
from tthc_common.db import run_in_transaction
from tthc_core.calendar import CalendarBook

from . import queries, units

logger = logging.getLogger("tthc.metrics.counting")

RETRY_DELAY_S = 5.0
# Once done, a round only notes that there is nothing to do (the loop needs an interval).
IDLE_INTERVAL_S = 3600.0


class StartupCounting:
    def __init__(self, engine: Engine, book: CalendarBook, basis: str) -> None:
        self.engine, self.book, self.basis = engine, book, basis
        self._folding = True
        self._after: str | None = None  # the last dossier id counted; None before the pass or once done
        self._counted_chunks = 0
        self.done = False
        self._loop = BackgroundLoop("metrics-startup-counting", self.step, interval_s=IDLE_INTERVAL_S,
                                    retry_delay_s=RETRY_DELAY_S, logger=logger,
                                    failure_message="counting the stored dossiers failed, will retry")

    async def step(self) -> bool:
        """One chunk; true while there is more to do."""
        if self.done:
            return False
        if self._folding:
            try:
                folded = await run_in_transaction(self.engine, partial(
                    units.fold_stateless_dossiers, book=self.book, basis=self.basis))
            # a dossier the fold cannot take: its next event is dead-lettered with the reason
            except Exception:
                logger.exception("folding the stored dossiers stopped")
                folded = 0
            if folded:
                logger.info("dossier states folded from the stored events", extra={"count": folded})
                return True
            self._folding = False
        if self._after is None:
            if await run_in_transaction(self.engine, queries.read_counts_basis) == self.basis:
                self.done = True
                return False
            self._after = ""
        self._after = await run_in_transaction(self.engine, partial(
            units.count_dossiers, book=self.book, basis=self.basis, after=self._after))
        self._counted_chunks += 1
        if self._after is None:
            self.done = True
            logger.info("dossiers counted on this calendar", extra={"chunks": self._counted_chunks})
            return False
        return True

    async def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

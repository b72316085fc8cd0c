"""What the HTTP routes and the consumers share: one object per app, on `app.state.apology`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial

from fastapi import Request
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from tthc_common.db import run_in_transaction
from tthc_common.outbox import OutboxRelay
from tthc_contracts.timefmt import VN_TZ
from tthc_contracts.topics import Topics
from tthc_core.calendar import CalendarBook

from .config import ApologySettings
from .documents import Letters
from .issuing import IssueRefused, IssueRequest, issue
from .ledger_store import Published
from .metrics import ApologyMetrics
from .models import Apology
from .officer_keys import Officer, OfficerKeys


@dataclass
class ApologyRuntime:
    settings: ApologySettings
    engine: Engine
    topics: Topics
    book: CalendarBook
    keys: OfficerKeys
    letters: Letters
    metrics: ApologyMetrics
    relay: OutboxRelay

    def committed(self, published: list[Published]) -> None:
        """After a transaction that queued apology events: count them and let the relay send them now."""
        if published:
            self.metrics.count(published)
            self.relay.wake()

    async def issue(self, apology_id: str, officer: Officer, request: IssueRequest,
                    now: datetime | None = None) -> Apology:
        now = now or datetime.now(VN_TZ).replace(microsecond=0)
        try:
            result = await run_in_transaction(
                self.engine, partial(issue, apology_id=apology_id, officer=officer, request=request, now=now,
                                     apology_topic=self.topics.apology_events))
        except IntegrityError:
            # The unique (agency, year, number) constraint: someone took this number a moment ago.
            raise IssueRefused(409, "the number was taken by another letter just now; try again",
                               "Số này vừa được một phiếu khác dùng; hãy thử lại.") from None
        self.committed(result.published)
        return result.row


def runtime_of(request: Request) -> ApologyRuntime:
    return request.app.state.apology  # type: ignore[no-any-return]

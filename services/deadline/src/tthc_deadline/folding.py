"""The service's use of the pure domain (tthc_core.deadlines): re-fold a dossier's whole event log,
or let time pass on a stored state. No date arithmetic here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from tthc_core.calendar import CalendarBook
from tthc_core.deadlines import Dossier, event_order_key, fold, reschedule



def refold(
    book: CalendarBook,
    events: Iterable[Any],
    emitted: Iterable[str],
    watermark: datetime | None,
    *,
    calendar_changed_from: Dossier | None = None,
) -> tuple[Dossier | None, list[Any]]:
    """The dossier's state from all its events, advanced to `watermark`, and the derived events whose
    keys are not in `emitted` (those were published before). None while no dossier.received is in.

    `calendar_changed_from`: the stored state, computed under another calendar: one
    `deadline.scheduled` with basis `calendar_change`, dated at the watermark, announces the moved
    due and at-risk instants instead of the history's own schedules under the new calendar.
    """
    if calendar_changed_from is not None and watermark is not None:
        return reschedule(events, book, calendar_changed_from, watermark)
    return fold(events, book, emitted=emitted, advance_to=watermark)


def receipt_winner(receipts: Sequence[Any]) -> Any:
    """deadlines.md §7: the first dossier.received in event order wins."""
    return min(receipts, key=event_order_key)

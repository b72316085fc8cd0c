"""The service's use of the pure domain (tthc_core.deadlines): re-fold a dossier's whole event log,
or let time pass on a stored state. No date arithmetic here.

`fold_live` and `reschedule` are proposed for tthc_core.deadlines (exact diff in the service's
report); until they land they live here, built only from the domain's public pieces and
`DossierMachine._schedule`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from tthc_core.calendar import CalendarBook
from tthc_core.deadlines import Dossier, DossierMachine, dedupe_and_sort, event_order_key

CALENDAR_CHANGE = "calendar_change"


def fold_live(
    events: Iterable[Any], book: CalendarBook, now: datetime | None, emitted: Iterable[str] = ()
) -> tuple[Dossier | None, list[Any]]:
    """Like `fold`, for a live service: EVERY event is applied (`fold(until=...)` would drop the ones
    at the watermark instant itself), then time is let pass to `now`, the service watermark, which may
    lie past the dossier's own last event.
    """
    emitted = set(emitted)
    ordered = dedupe_and_sort(events)
    if not ordered:
        return None, []
    machine = DossierMachine(book, ordered[0].dossier_id, emitted)
    for event in ordered:
        machine.apply(event)
    if machine.state is None:
        return None, []
    if now is not None:
        machine.advance(now)
    # Keys published earlier stay published, even if the new history would not produce them again
    # (a late closing event after an overdue moment): they must never be sent twice.
    machine.state.emitted |= emitted
    return machine.state, machine.out


def reschedule(book: CalendarBook, state: Dossier, basis: str, at: datetime) -> list[Any]:
    """`deadline.scheduled` for the state's current due and at-risk instants (once per key)."""
    machine = DossierMachine(book, state.dossier_id, state.emitted)
    machine.state = state
    machine._schedule(basis, at)  # proposed public as DossierMachine.reschedule(basis, at)
    return machine.out


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

    `calendar_changed_from`: the stored state, computed under another calendar. The re-fold's own
    schedules would re-tell history under the new calendar (basis `received`, dated at the receipt);
    instead one `deadline.scheduled` with basis `calendar_change`, dated at the watermark, announces
    the moved due and at-risk instants (nothing when they did not move).
    """
    state, out = fold_live(events, book, watermark, emitted)
    previous = calendar_changed_from
    if state is None or previous is None or watermark is None:
        return state, out
    out = [e for e in out if e.type != "deadline.scheduled"]  # their keys stay in state.emitted
    moved = (state.due_at, state.at_risk_at) != (previous.due_at, previous.at_risk_at)
    if moved and not state.is_closed:
        out = reschedule(book, state, CALENDAR_CHANGE, watermark) + out
    return state, out


def advance_stored(book: CalendarBook, state: Dossier, now: datetime) -> list[Any]:
    """Let event time pass to `now` on a stored state (in place); returns the new derived events."""
    machine = DossierMachine(book, state.dossier_id, state.emitted)
    machine.state = state
    machine.advance(now)
    return machine.out


def receipt_winner(receipts: Sequence[Any]) -> Any:
    """deadlines.md §7: the first dossier.received in event order wins."""
    return min(receipts, key=event_order_key)

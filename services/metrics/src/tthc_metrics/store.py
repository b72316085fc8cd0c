"""What the consumers write and the figures read. Synchronous; each writer runs inside the caller's
transaction (`tthc_common.db.run_in_transaction`), together with its processed-event row.

The figures of a period need every dossier "handled" in it (indices.md): received before the cut and
not closed before P0. `metrics_dossier_summaries` keeps those two instants per dossier so that a
report loads only the dossiers that can matter, and the folded state of each closed dossier, which
is its state at every cut after its close (the fold ignores what happens to a closed dossier), so
that only the dossiers still open at the cut are folded from their events.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from tthc_common.db import insert_ignoring_conflict
from tthc_common.db import session_scope
from tthc_common.idempotency import mark_processed
from tthc_contracts import CLOSING_TYPES, parse_dossier_event
from tthc_core.calendar import CalendarBook
from tthc_core.deadlines import Dossier, fold

from .models import DossierSummary, FirstApology, StoredDossierEvent, StreamWatermark

logger = logging.getLogger("tthc.metrics.store")

# processed_events.consumer of each subscription
CONSUMER_DOSSIER = "metrics-dossier-events"
CONSUMER_DEADLINE = "metrics-deadline-events"
CONSUMER_APOLOGY = "metrics-apology-events"
# Dossiers whose close the live counter has counted (processed_events rows keyed by dossier id): the
# deadline service publishes a close again, corrected, when a late event re-judges it.
COUNTED_CLOSES = "metrics-counted-closes"

# metrics_watermarks.stream
STREAM_DOSSIER = "dossier"
STREAM_DEADLINE = "deadline"
STREAM_APOLOGY = "apology"

REDACTED = "(redacted)"
RECEIVED = "dossier.received"


def _utcnow() -> datetime:
    return datetime.now(UTC)


# -- personal data stays out of the metrics store -----------------------------------------------------
def _declared_fields(value: Any) -> Any:
    """The value with only the fields the contract declares (unknown ones may hold anything)."""
    if isinstance(value, BaseModel):
        return {name: _declared_fields(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, (list, tuple)):
        return [_declared_fields(v) for v in value]
    return to_jsonable_python(value)


def redact(event: Any) -> dict[str, Any]:
    """The event as stored: declared fields only, and no applicant beyond its kind.

    The figures never need the applicant; `dossier.received` requires one, so a placeholder name
    keeps the stored event valid for `parse_dossier_event`.
    """
    payload = _declared_fields(event)
    data = payload.get("data") or {}
    applicant = data.get("applicant")
    if isinstance(applicant, dict):
        if event.type == RECEIVED:
            data["applicant"] = {"kind": applicant.get("kind"), "name": REDACTED,
                                 "address": None, "phone": None, "email": None}
        else:
            data.pop("applicant")
    return payload


# -- writers ------------------------------------------------------------------------------------------
def advance_watermark(session: Session, stream: str, at: datetime) -> None:
    """metrics_watermarks[stream] = max(itself, at), safe against concurrent consumers."""
    W = StreamWatermark
    # no ORM session synchronisation: nothing in the session holds a watermark row
    move = (update(W).where(W.stream == stream, W.at < at).values(at=at)
            .execution_options(synchronize_session=False))
    if session.execute(move).rowcount == 0 and session.get(W, stream) is None:  # type: ignore[attr-defined]
        insert_ignoring_conflict(session, W, {"stream": stream, "at": at})
        session.execute(move)  # another consumer may have inserted a later instant meanwhile


def record_dossier_event(session: Session, event: Any, book: CalendarBook) -> bool:
    """Store one dossier event and refresh its dossier's summary. False: already stored (duplicate)."""
    if not mark_processed(session, CONSUMER_DOSSIER, event.source, event.event_id):
        return False
    session.add(StoredDossierEvent(
        source=event.source, event_id=event.event_id, dossier_id=event.dossier_id,
        occurred_at=event.occurred_at, type=event.type, payload=redact(event), stored_at=_utcnow(),
    ))
    session.flush()
    refresh_summary(session, event.dossier_id, book)
    advance_watermark(session, STREAM_DOSSIER, event.occurred_at)
    return True


def refresh_summary(session: Session, dossier_id: str, book: CalendarBook) -> DossierSummary:
    """Recompute the dossier's summary from its stored events (a late event may move any of it)."""
    E = StoredDossierEvent
    of_dossier = E.dossier_id == dossier_id
    received_at, count = session.execute(
        select(func.min(case((E.type == RECEIVED, E.occurred_at))), func.count()).where(of_dossier)).one()
    closed_at = None
    if received_at is not None:
        # deadlines.md §7-8: events dated before the receipt change nothing; the first closing event closes
        closed_at = session.execute(
            select(func.min(E.occurred_at)).where(
                of_dossier, E.type.in_(sorted(CLOSING_TYPES)), E.occurred_at >= received_at)
        ).scalar()
    summary = session.get(DossierSummary, dossier_id)
    if summary is None:
        summary = DossierSummary(dossier_id=dossier_id)
        session.add(summary)
    summary.received_at = received_at
    summary.closed_at = closed_at
    summary.event_count = count
    summary.closed_state = _closed_state(session, dossier_id, book) if closed_at is not None else None
    return summary


def _closed_state(session: Session, dossier_id: str, book: CalendarBook) -> dict[str, Any] | None:
    events = [parse_dossier_event(p) for p in session.execute(
        select(StoredDossierEvent.payload).where(StoredDossierEvent.dossier_id == dossier_id)).scalars()]
    try:
        state, _ = fold(events, book)
    except Exception:
        logger.exception("closed dossier could not be folded", extra={"dossier_id": dossier_id})
        return None
    if state is None or state.closed_at is None:
        return None
    return state.to_json()


def record_apology_event(session: Session, event: Any) -> bool:
    """Keep the first `apology.issued` instant per dossier. False: duplicate."""
    if not mark_processed(session, CONSUMER_APOLOGY, event.source, event.event_id):
        return False
    if event.type == "apology.issued":
        issued_at = event.data.issued_at
        first = session.get(FirstApology, event.dossier_id)
        if first is None:
            session.add(FirstApology(dossier_id=event.dossier_id, issued_at=issued_at,
                                     apology_id=event.data.apology_id))
        elif issued_at < first.issued_at:
            first.issued_at, first.apology_id = issued_at, event.data.apology_id
    advance_watermark(session, STREAM_APOLOGY, event.occurred_at)
    return True


@dataclass(frozen=True)
class DeadlineEventRecorded:
    new: bool  # False: a redelivery, nothing recorded
    first_close: bool = False  # the dossier's first deadline.closed (a re-judged close is not)


def record_deadline_event(session: Session, event: Any) -> DeadlineEventRecorded:
    """Deadline events only feed live counters and the watermark."""
    if not mark_processed(session, CONSUMER_DEADLINE, event.source, event.event_id):
        return DeadlineEventRecorded(new=False)
    advance_watermark(session, STREAM_DEADLINE, event.occurred_at)
    first_close = event.type == "deadline.closed" and mark_processed(
        session, COUNTED_CLOSES, event.source, event.dossier_id)
    return DeadlineEventRecorded(new=True, first_close=first_close)


# -- readers ------------------------------------------------------------------------------------------
def read_watermark(engine: Engine) -> datetime | None:
    """The latest event time seen on any stream (None before the first event)."""
    with session_scope(engine) as session:
        return session.execute(select(func.max(StreamWatermark.at))).scalar()


def _handled(p0: datetime, cut: datetime) -> Any:
    """indices.md: received before the cut and not closed before P0."""
    S = DossierSummary
    return and_(S.received_at.is_not(None), S.received_at < cut,
                or_(S.closed_at.is_(None), S.closed_at >= p0))


def _closed_before(cut: datetime) -> Any:
    S = DossierSummary
    return and_(S.closed_at.is_not(None), S.closed_at < cut, S.closed_state.is_not(None))


BATCH = 1000


def _group_by_dossier(rows: Iterator[Any]) -> Iterator[list[Any]]:
    current: list[Any] = []
    current_id = None
    for dossier_id, payload in rows:
        if dossier_id != current_id and current:
            yield current
            current = []
        current_id = dossier_id
        current.append(parse_dossier_event(payload))
    if current:
        yield current


def dossiers_at_cut(
    engine: Engine, book: CalendarBook, p0: datetime, cut: datetime, *, use_closed_states: bool = True
) -> tuple[list[Dossier], dict[str, datetime]]:
    """Every dossier handled in [p0, cut) as it stood at the cut, and the first apology.issued before it.

    A dossier closed before the cut comes from its stored closed state; the others are folded from
    their events before the cut (`fold(events, book, until=cut)`).
    """
    S, E = DossierSummary, StoredDossierEvent
    handled = _handled(p0, cut)
    dossiers: list[Dossier] = []
    with Session(engine) as session:
        to_fold = select(E.dossier_id, E.payload).join(S, S.dossier_id == E.dossier_id).where(
            handled, E.occurred_at < cut).order_by(E.dossier_id, E.occurred_at)
        if use_closed_states:
            for state in session.execute(select(S.closed_state).where(handled, _closed_before(cut))
                                         .execution_options(yield_per=BATCH)).scalars():
                dossiers.append(Dossier.from_json(state))
            to_fold = to_fold.where(~_closed_before(cut))
        for events in _group_by_dossier(iter(session.execute(to_fold.execution_options(yield_per=BATCH)))):
            state, _ = fold(events, book, until=cut)
            if state is not None:
                dossiers.append(state)
        issued = dict(session.execute(
            select(FirstApology.dossier_id, FirstApology.issued_at)
            .join(S, S.dossier_id == FirstApology.dossier_id)
            .where(handled, FirstApology.issued_at < cut)
        ).all())
    return dossiers, issued

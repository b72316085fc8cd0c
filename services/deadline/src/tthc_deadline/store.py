"""Units of work of the deadline service. Each function runs inside ONE transaction (the caller's
`session`, from `tthc_common.db.run_in_transaction`): state, processed-event row, event log and outbox
commit together or not at all.

Locks (PostgreSQL), always taken in this order so that replicas never deadlock:
watermark row -> dossier row. The sweeps lock dossier rows only, with SKIP LOCKED: a row a consumer
holds is brought up to date by that consumer's own re-fold.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import pydantic_core
from sqlalchemy import bindparam, func, select, update
from sqlmodel import Session

from tthc_common.db import increment_counters, insert_ignoring_conflict, pipeline, values_rows_sql
from tthc_common.idempotency import mark_processed
from tthc_common.outbox import add_many_to_outbox, add_to_outbox, outbox_values, send_to_outbox
from tthc_contracts import dossier_event_adapter, format_ts, to_vn
from tthc_core.calendar import CalendarBook
from tthc_core.deadlines import Dossier, advance

from .conflicts import queue_conflict
from .folding import receipt_winner, refold
from .models import (
    TICK_ROW,
    WATERMARK_ROW,
    DossierEventRow,
    DossierRow,
    ReceiptConflictRow,
    StateCountRow,
    WatermarkRow,
    utcnow,
)

# processed_events.consumer for dossier events (one database may serve several consumers).
EVENTS_CONSUMER = "deadline"

_WATERMARK = WatermarkRow.__table__  # type: ignore[attr-defined]
_DOSSIERS = DossierRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ActiveCalendar:
    """The calendars in force and their fingerprint (`calendar_version.calendar_version`)."""

    book: CalendarBook
    version: str


@dataclass(frozen=True)
class KafkaPosition:
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None


@dataclass
class EventOutcome:
    duplicate: bool = False
    held: bool = False  # no dossier.received yet: the event waits in the log
    derived: list[Any] = field(default_factory=list)
    # The dead-letter records of conflicting receipts queued on the outbox (`conflicts.log_dead_lettered`).
    conflicts: list[dict[str, str]] = field(default_factory=list)
    watermark: datetime | None = None
    # Some dossier's next moment is at or before the (advanced) watermark: a sweep has work to do.
    moments_due: bool = False
    # occurred_at lay too far past the latest tick to move the watermark (event_time_limit).
    ahead_of_ticks: bool = False


@dataclass
class SweepOutcome:
    dossier_ids: list[str] = field(default_factory=list)
    derived: list[Any] = field(default_factory=list)


# -- watermark --------------------------------------------------------------------------------------
def read_watermark(session: Session, name: str = WATERMARK_ROW) -> datetime | None:
    return session.scalar(select(WatermarkRow.at).where(WatermarkRow.name == name))


def advance_watermark(session: Session, at: datetime, name: str = WATERMARK_ROW) -> tuple[datetime | None, datetime]:
    """watermark := max(watermark, at), under the row's lock. Returns (before, after), in +07:00.

    Core statements, not ORM objects: it runs on every event and every tick.
    """
    at = to_vn(at)
    locked = select(_WATERMARK.c.at).where(_WATERMARK.c.name == name).with_for_update()
    before = session.execute(locked).scalar_one_or_none()
    if before is None:
        # The very first event: insert-or-ignore, in case a replica is doing the same right now.
        if insert_ignoring_conflict(session, WatermarkRow, {"name": name, "at": at, "updated_at": utcnow()}):
            return None, at
        before = session.execute(locked).scalar_one()
    if at <= before:
        return before, before
    session.execute(update(_WATERMARK).where(_WATERMARK.c.name == name).values(at=at, updated_at=utcnow()))
    return before, at


def advance_by_tick(session: Session, at: datetime) -> tuple[datetime | None, datetime]:
    """A wall-clock tick: remember the latest tick instant, and move the watermark."""
    advance_watermark(session, at, TICK_ROW)
    return advance_watermark(session, at)


def event_time_limit(session: Session, max_lead: timedelta | None) -> datetime | None:
    """How far one event may push the watermark: the latest tick plus `max_lead` (None: no limit).

    A mistyped occurred_at (2062 for 2026) must not make every open dossier overdue at once; it
    still counts for its own dossier. Without ticks (a replay) event time alone rules.
    """
    if max_lead is None:
        return None
    tick = read_watermark(session, TICK_ROW)
    return None if tick is None else tick + max_lead


def any_moment_due(session: Session, watermark: datetime) -> bool:
    """One index probe: is there a dossier whose next moment the watermark has reached?"""
    return session.scalar(
        select(DossierRow.dossier_id).where(DossierRow.next_moment_at <= watermark).limit(1)  # type: ignore[operator]
    ) is not None


# -- dossier rows -------------------------------------------------------------------------------------
# pydantic_core's JSON codec: the same compact UTF-8 JSON as json.dumps(..., ensure_ascii=False,
# separators=(",", ":")), read and written about twice as fast (a tick decodes and encodes every
# due dossier's state).
def _encode_state(state: Dossier) -> str:
    return pydantic_core.to_json(state.to_json()).decode("utf-8")


def decode_state(text: str) -> Dossier:
    return Dossier.from_json(pydantic_core.from_json(text))


def _state_columns(state: Dossier, now: datetime | None, calendar_version: str) -> dict[str, Any]:
    """The dossier row's columns: the state and what is derived from it (at the watermark `now`)."""
    return {
        "dossier_id": state.dossier_id,
        "handling_agency": state.handling_agency.code,
        "state": state.state_at(now),
        "next_moment_at": state.next_moment_at(),
        "received_at": state.received_at,
        "due_at": state.due_at,
        "state_json": _encode_state(state),
        "calendar_version": calendar_version,
        "updated_at": utcnow(),
    }


def _save_state(session: Session, row: DossierRow | None, state: Dossier, now: datetime | None,
                calendar_version: str, moved: Counter[str]) -> None:
    """Write the state and the columns derived from it (at the watermark `now`); a change of the
    `state` column is added to `moved` (see `_count_states`)."""
    values = _state_columns(state, now, calendar_version)
    _moved(moved, row.state if row is not None else None, values["state"])
    if row is None:
        row = DossierRow(**values)
    else:
        for name, value in values.items():
            setattr(row, name, value)
    session.add(row)


def _moved(moved: Counter[str], before: str | None, after: str) -> None:
    if before != after:
        if before is not None:
            moved[before] -= 1
        moved[after] += 1


def _count_states(session: Session, moved: Counter[str]) -> None:
    """Apply the state changes of this transaction to `deadline_state_counts`. Called last, so the
    counter rows (which every writer updates) are locked only from here to the commit."""
    increment_counters(session, StateCountRow, dict(moved), key="state", value="dossiers")


def _queue(session: Session, topic: str, derived: list[Any]) -> None:
    for event in derived:
        add_to_outbox(session, topic, event)


def _lock_dossier(session: Session, dossier_id: str) -> DossierRow | None:
    return session.scalars(
        select(DossierRow).where(DossierRow.dossier_id == dossier_id).with_for_update()
    ).one_or_none()


def _event_log(session: Session, dossier_id: str) -> tuple[list[DossierEventRow], dict[int, Any]]:
    log = list(session.scalars(
        select(DossierEventRow).where(DossierEventRow.dossier_id == dossier_id).order_by(DossierEventRow.id)
    ))
    return log, {r.id: dossier_event_adapter.validate_json(r.payload) for r in log}  # type: ignore[misc]


def _refold_row(session: Session, calendar: ActiveCalendar, row: DossierRow | None, events: Any,
                watermark: datetime, deadline_topic: str,
                moved: Counter[str]) -> tuple[Dossier | None, list[Any]]:
    """Re-fold one dossier from its log, store the state and queue the new derived events."""
    stored = decode_state(row.state_json) if row is not None else None
    stale = stored if row is not None and row.calendar_version != calendar.version else None
    state, derived = refold(calendar.book, events, stored.emitted if stored else (), watermark,
                            calendar_changed_from=stale)
    if state is not None:
        _save_state(session, row, state, watermark, calendar.version, moved)
        _queue(session, deadline_topic, derived)
    return state, derived


# -- one dossier event ------------------------------------------------------------------------------
def _conflict_reason(loser: Any, winner: Any) -> str:
    return (
        f"conflicting dossier.received: dossier {winner.dossier_id} was already received by event "
        f"{winner.event_id} (source {winner.source}, occurred_at {format_ts(winner.occurred_at)}); "
        f"the first receipt in event order wins and this one ({loser.event_id}, occurred_at "
        f"{format_ts(loser.occurred_at)}) is ignored"
    )


def _record_conflicts(session: Session, log: list[DossierEventRow], parsed: dict[int, Any], *,
                      dead_letter_topic: str, consumer: str) -> list[dict[str, str]]:
    """Mark every receipt but the winner ignored, with a dead-letter record for each new loser, queued on
    the outbox for `dead_letter_topic`."""
    receipts = [r for r in log if r.type == "dossier.received"]
    if len(receipts) < 2:
        return []
    winner = receipt_winner([parsed[r.id] for r in receipts])  # type: ignore[index]
    queued = []
    for row in receipts:
        event = parsed[row.id]  # type: ignore[index]
        if event is winner or row.ignored:
            continue
        reason = _conflict_reason(event, winner)
        row.ignored, row.ignored_reason = True, reason
        session.add(row)
        conflict = ReceiptConflictRow(
            dossier_id=row.dossier_id, source=row.source, event_id=row.event_id,
            winner_source=winner.source, winner_event_id=winner.event_id, reason=reason, payload=row.payload,
            kafka_topic=row.kafka_topic, kafka_partition=row.kafka_partition, kafka_offset=row.kafka_offset,
        )
        queued.append(queue_conflict(session, conflict, topic=dead_letter_topic, consumer=consumer))
    return queued


def process_dossier_event(
    session: Session,
    *,
    calendar: ActiveCalendar,
    event: Any,
    deadline_topic: str,
    dead_letter_topic: str,
    consumer: str,
    position: KafkaPosition = KafkaPosition(),
    max_lead: timedelta | None = None,
) -> EventOutcome:
    """Record one dossier event and re-fold its dossier at the advanced watermark.

    A second delivery of `(source, event_id)` finds the processed-event row and changes nothing.
    """
    if not mark_processed(session, EVENTS_CONSUMER, event.source, event.event_id):
        return EventOutcome(duplicate=True)
    limit = event_time_limit(session, max_lead)
    ahead = limit is not None and event.occurred_at > limit
    before, watermark = advance_watermark(session, limit if ahead else event.occurred_at)  # type: ignore[arg-type]
    session.add(DossierEventRow(
        dossier_id=event.dossier_id, source=event.source, event_id=event.event_id, type=event.type,
        occurred_at=event.occurred_at, payload=json.dumps(event.model_dump(mode="json"), ensure_ascii=False),
        kafka_topic=position.topic, kafka_partition=position.partition, kafka_offset=position.offset,
    ))
    session.flush()
    row = _lock_dossier(session, event.dossier_id)
    log, parsed = _event_log(session, event.dossier_id)
    conflicts = (_record_conflicts(session, log, parsed, dead_letter_topic=dead_letter_topic, consumer=consumer)
                 if event.type == "dossier.received" else [])
    moved: Counter[str] = Counter()
    state, derived = _refold_row(session, calendar, row, parsed.values(), watermark, deadline_topic, moved)
    outcome = EventOutcome(conflicts=conflicts, watermark=watermark, held=state is None, derived=derived,
                           ahead_of_ticks=ahead)
    if before is None or watermark > before:
        session.flush()
        outcome.moments_due = any_moment_due(session, watermark)
    _count_states(session, moved)
    return outcome


# -- time passing ------------------------------------------------------------------------------------
# What advancing time changes on a dossier row; the rest (agency, received_at, due_at, calendar) only
# an event or a calendar change moves.
_UPDATE_ADVANCED = (
    update(_DOSSIERS)
    .where(_DOSSIERS.c.dossier_id == bindparam("b_dossier_id"))
    .values({c: bindparam(f"b_{c}") for c in ("state", "next_moment_at", "state_json", "updated_at")})
)
# Dossiers advanced, then written, per chunk: on PostgreSQL a chunk's statements run while the next
# chunk is computed. Small enough to overlap most of the writing, large enough that a statement's
# round trip is shared by many rows.
SWEEP_CHUNK = 25


@lru_cache(maxsize=64)
def _update_advanced_sql(rows: int) -> str:
    """PostgreSQL: `_UPDATE_ADVANCED` for `rows` dossiers in one statement (a VALUES list joined by id)."""
    return (
        "UPDATE deadline_dossiers AS d SET state = v.state, next_moment_at = v.next_moment_at, "
        "state_json = v.state_json, updated_at = v.updated_at FROM (VALUES "
        + values_rows_sql(5, rows, ("", "", "timestamptz", "", "timestamptz"))
        + ") AS v(dossier_id, state, next_moment_at, state_json, updated_at) WHERE d.dossier_id = v.dossier_id"
    )


# (dossier rows, outbox rows) of one chunk of advanced dossiers
Chunk = tuple[list[tuple[Any, ...]], list[dict[str, Any]]]


def _advanced_chunks(due: list[Any], calendar: ActiveCalendar, watermark: datetime, deadline_topic: str,
                     outcome: SweepOutcome, moved: Counter[str],
                     ) -> Iterator[Chunk]:
    """Advance the due dossiers (domain `advance`) a chunk at a time: (dossier rows, outbox rows)."""
    now = utcnow()
    rows: list[tuple[Any, ...]] = []
    queued: list[dict[str, Any]] = []
    for dossier_id, state_json, before in due:
        state = decode_state(state_json)
        derived = advance(state, calendar.book, watermark)
        after = state.state_at(watermark)
        _moved(moved, before, after)
        rows.append((dossier_id, after, state.next_moment_at(), _encode_state(state), now))
        queued.extend(outbox_values(deadline_topic, event) for event in derived)
        outcome.dossier_ids.append(dossier_id)
        outcome.derived.extend(derived)
        if len(rows) == SWEEP_CHUNK:
            yield rows, queued
            rows, queued = [], []
    if rows:
        yield rows, queued


def _write_advanced(session: Session, chunks: Iterator[Chunk]) -> None:
    with pipeline(session) as pipe:
        for rows, queued in chunks:
            if pipe is not None:  # PostgreSQL: sent now, executed while the next chunk is computed
                pipe.send(_update_advanced_sql(len(rows)), [value for row in rows for value in row])
                send_to_outbox(pipe, queued)
            else:
                session.execute(_UPDATE_ADVANCED, [
                    {"b_dossier_id": i, "b_state": st, "b_next_moment_at": n, "b_state_json": j, "b_updated_at": u}
                    for i, st, n, j, u in rows
                ])
                add_many_to_outbox(session, queued)


def advance_due_batch(session: Session, *, calendar: ActiveCalendar, deadline_topic: str,
                      limit: int) -> SweepOutcome:
    """Advance up to `limit` dossiers whose next moment is at or before the watermark.

    An index range scan on `next_moment_at`, oldest first; each advanced dossier's next moment moves
    past the watermark (or to NULL), so repeated batches drain the range. The rows are read as columns
    and written back a chunk at a time, with no ORM object per dossier, while the next chunk is
    computed, so a tick costs about what the domain's `advance` of its due dossiers costs.
    """
    outcome = SweepOutcome()
    watermark = read_watermark(session)
    if watermark is None:
        return outcome
    query = (
        select(_DOSSIERS.c.dossier_id, _DOSSIERS.c.state_json, _DOSSIERS.c.state, _DOSSIERS.c.calendar_version)
        .where(_DOSSIERS.c.next_moment_at <= watermark)
        .order_by(_DOSSIERS.c.next_moment_at, _DOSSIERS.c.dossier_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    due = session.execute(query).all()
    moved: Counter[str] = Counter()
    current = [(dossier_id, text, state) for dossier_id, text, state, version in due
               if version == calendar.version]
    _write_advanced(session, _advanced_chunks(current, calendar, watermark, deadline_topic, outcome, moved))
    for dossier_id, _, _, version in due:
        if version != calendar.version:  # computed under another calendar: re-fold it from its log
            row = session.get(DossierRow, dossier_id)  # locked by the query above
            _, derived = _refold_row(session, calendar, row, _event_log(session, dossier_id)[1].values(),
                                     watermark, deadline_topic, moved)
            outcome.dossier_ids.append(dossier_id)
            outcome.derived.extend(derived)
    _count_states(session, moved)
    return outcome


def rebase_calendar_batch(session: Session, *, calendar: ActiveCalendar, deadline_topic: str, limit: int,
                          after: str = "") -> SweepOutcome:
    """Re-fold up to `limit` open dossiers computed under another calendar (dossier_id > `after`)."""
    outcome = SweepOutcome()
    watermark = read_watermark(session)
    if watermark is None:
        return outcome
    query = (
        select(DossierRow)
        .where(DossierRow.calendar_version != calendar.version, DossierRow.state != "closed",
               DossierRow.dossier_id > after)
        .order_by(DossierRow.dossier_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    moved: Counter[str] = Counter()
    for row in session.scalars(query):
        _, derived = _refold_row(session, calendar, row, _event_log(session, row.dossier_id)[1].values(),
                                 watermark, deadline_topic, moved)
        outcome.dossier_ids.append(row.dossier_id)
        outcome.derived.extend(derived)
    _count_states(session, moved)
    return outcome


# -- reads -------------------------------------------------------------------------------------------
@dataclass
class DossierLookup:
    state: Dossier | None
    held_events: int
    watermark: datetime | None


def get_dossier(session: Session, dossier_id: str) -> DossierLookup:
    row = session.get(DossierRow, dossier_id)
    watermark = read_watermark(session)
    if row is not None:
        return DossierLookup(decode_state(row.state_json), 0, watermark)
    held = session.scalar(
        select(func.count()).select_from(DossierEventRow).where(DossierEventRow.dossier_id == dossier_id)
    ) or 0
    return DossierLookup(None, held, watermark)


def list_dossiers(
    session: Session, *, agency: str | None, state: str | None, offset: int, limit: int
) -> tuple[list[Dossier], int, datetime | None]:
    conditions = []
    if agency:
        conditions.append(DossierRow.handling_agency == agency)
    if state:
        conditions.append(DossierRow.state == state)
    total = session.scalar(select(func.count()).select_from(DossierRow).where(*conditions)) or 0
    rows = session.scalars(
        select(DossierRow.state_json).where(*conditions).order_by(DossierRow.dossier_id).offset(offset).limit(limit)
    )
    return [decode_state(text) for text in rows], total, read_watermark(session)


def count_by_state(session: Session) -> dict[str, int]:
    """How many dossiers are in each state (`deadline_state_counts`, kept by the writers): a few rows,
    whatever the number of dossiers."""
    return {state: n for state, n in session.execute(select(StateCountRow.state, StateCountRow.dossiers)) if n}


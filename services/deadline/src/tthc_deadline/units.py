"""Units of work of the deadline service: each function runs inside ONE transaction (the caller's
`session`, from `tthc_common.db.run_in_transaction` or a `BatchRunner`): processed-event rows, event log,
dossier states, state counts and outbox commit together or not at all. These are the only functions that
mark events processed or write the outbox.

- `apply_dossier_events`: a batch of dossier events (one Kafka poll), grouped by dossier: each dossier's
  row is locked and read once, its new events applied to its stored state when they come after everything
  it has (`tthc_core.deadlines.apply_in_order`), or its log re-folded when one arrives out of order;
- `apply_ticks`: a batch of the service's own wall-clock ticks;
- `advance_due_batch`: time passing: the dossiers whose next moment their partition's time reached
  (`queries.EventTimes`);
- `rebase_calendar_batch`: open dossiers computed under another calendar, re-folded;
- `queue_unpublished_conflicts`: at start-up, conflict records an older version left unpublished.

Locks (PostgreSQL): a batch locks its dossiers' rows in dossier-id order; watermark rows are per Kafka
partition (one consumer owns a partition) and state counts per shard, both written last: two replicas in
one consumer group never wait on each other. The sweeps lock dossier rows with SKIP LOCKED: a row a
consumer holds is brought up to date by that consumer.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import pydantic_core
from sqlalchemy import bindparam, insert, select, update
from sqlmodel import Session

from tthc_common.batches import Received
from tthc_common.db import add_to_counters, dialect_insert, pipeline, values_rows_sql
from tthc_common.dead_letter import (
    HEADER_CONSUMER,
    HEADER_ERROR,
    HEADER_FAILED_AT,
    HEADER_OFFSET,
    HEADER_PARTITION,
    HEADER_REASON,
    HEADER_TOPIC,
)
from tthc_common.outbox import add_many_to_outbox, add_payload_to_outbox, outbox_values, send_to_outbox
from tthc_contracts import dossier_event_adapter, format_ts, to_vn
from tthc_contracts.timefmt import utcnow
from tthc_core.deadlines import Dossier, advance, apply_in_order, fold, in_order, receipt_winner, reschedule

from .active_calendar import ActiveCalendar
from .models import (
    SWEEP_SHARD,
    TICK_ROW,
    DossierEventRow,
    DossierRow,
    ReceiptConflictRow,
    StateCountRow,
    WatermarkRow,
    partition_row,
)
from .queries import EventTimes, any_moment_due, decode_state, read_event_times, read_tick, read_watermark

RECEIVED = "dossier.received"
CONFLICT_ERROR = "ReceiptConflict"

_WATERMARK = WatermarkRow.__table__  # type: ignore[attr-defined]
_DOSSIERS = DossierRow.__table__  # type: ignore[attr-defined]
_EVENT_LOG = DossierEventRow.__table__  # type: ignore[attr-defined]


@dataclass
class EventsOutcome:
    """What a batch of dossier events did (counted and acted on after the commit)."""

    applied: Counter[str] = field(default_factory=Counter)  # first deliveries, by type
    duplicates: int = 0
    held: int = 0  # events of dossiers whose dossier.received has not arrived: they wait in the log
    refolded: int = 0  # dossiers re-folded from their log (an event out of order, a receipt after others)
    ahead_of_ticks: int = 0  # occurred_at too far past the latest tick to move the watermark
    derived: list[Any] = field(default_factory=list)
    # The dead-letter records of conflicting receipts queued on the outbox (logged after the commit).
    conflicts: list[dict[str, str]] = field(default_factory=list)
    watermark: datetime | None = None
    # Some dossier's next moment is at or before the (advanced) watermark: a sweep has work to do.
    moments_due: bool = False


@dataclass
class TicksOutcome:
    before: datetime | None
    after: datetime | None

    @property
    def moved(self) -> bool:
        return self.after is not None and (self.before is None or self.after > self.before)


@dataclass
class SweepOutcome:
    dossier_ids: list[str] = field(default_factory=list)
    derived: list[Any] = field(default_factory=list)


# -- the service's time ------------------------------------------------------------------------------
def _advance_row(session: Session, name: str, at: datetime) -> None:
    """watermark row `name` := max(itself, at); safe when another transaction does the same."""
    at = to_vn(at)
    moved = session.execute(update(_WATERMARK).where(_WATERMARK.c.name == name, _WATERMARK.c.at < at)
                            .values(at=at, updated_at=utcnow()))
    if moved.rowcount == 0:  # type: ignore[attr-defined]
        session.execute(dialect_insert(session, _WATERMARK).values(name=name, at=at, updated_at=utcnow())
                        .on_conflict_do_nothing())


def event_time_limit(session: Session, max_lead: timedelta | None) -> datetime | None:
    """How far one event may push the watermark: the latest tick plus `max_lead` (None: no limit).

    A mistyped occurred_at (2062 for 2026) must not make every open dossier overdue at once; it
    still counts for its own dossier. Without ticks (a replay) event time alone rules.
    """
    if max_lead is None:
        return None
    tick = read_tick(session)
    return None if tick is None else tick + max_lead


def apply_ticks(session: Session, items: list[Received[Any]]) -> TicksOutcome:
    """The latest of a batch of wall-clock ticks moves the tick row, and so the service's time."""
    before = read_watermark(session)
    _advance_row(session, TICK_ROW, max(item.event.at for item in items))
    return TicksOutcome(before, read_watermark(session))


# -- dossier rows ------------------------------------------------------------------------------------
def encode_state(state: Dossier) -> str:
    # pydantic_core's JSON: the same compact UTF-8 JSON as json.dumps(..., ensure_ascii=False,
    # separators=(",", ":")), read and written about twice as fast.
    return pydantic_core.to_json(state.to_json()).decode("utf-8")


def _state_columns(state: Dossier, now: datetime | None, calendar_version: str,
                   partition: int | None) -> dict[str, Any]:
    """The dossier row's columns: the state and what is derived from it (at its partition's time `now`)."""
    return {
        "dossier_id": state.dossier_id,
        "event_partition": partition,
        "handling_agency": state.handling_agency.code,
        "state": state.state_at(now),
        "next_moment_at": state.next_moment_at(),
        "received_at": state.received_at,
        "due_at": state.due_at,
        "state_json": encode_state(state),
        "calendar_version": calendar_version,
        "updated_at": utcnow(),
    }


class _StateCounts:
    """Changes of the `state` column made in this transaction, per shard (`deadline_state_counts`)."""

    def __init__(self) -> None:
        self.deltas: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: {"dossiers": 0})

    def moved(self, shard: str, before: str | None, after: str) -> None:
        if before != after:
            if before is not None:
                self.deltas[(shard, before)]["dossiers"] -= 1
            self.deltas[(shard, after)]["dossiers"] += 1

    def write(self, session: Session) -> None:
        """Called last: the counter rows are locked only from here to the commit."""
        add_to_counters(session, StateCountRow, self.deltas, keys=("shard", "state"))


_UPDATE_DOSSIER = (
    update(_DOSSIERS)
    .where(_DOSSIERS.c.dossier_id == bindparam("b_dossier_id"))
    .values({c: bindparam(f"b_{c}") for c in ("handling_agency", "state", "next_moment_at", "received_at",
                                                "due_at", "state_json", "calendar_version", "updated_at",
                                                "event_partition")})
)


def _write_dossiers(session: Session, inserted: list[dict[str, Any]], updated: list[dict[str, Any]]) -> None:
    if inserted:
        session.execute(insert(_DOSSIERS), inserted)
    if updated:
        session.execute(_UPDATE_DOSSIER, [{f"b_{k}": v for k, v in row.items()} for row in updated])


def _event_logs(session: Session, dossier_ids: list[str], parsed: dict[tuple[str, str], Any]) -> dict[str, list[Any]]:
    """The logged events of these dossiers, in the order they were logged; `parsed`: events at hand
    (this batch's), by (source, event_id), not parsed again."""
    logs: dict[str, list[Any]] = defaultdict(list)
    if dossier_ids:
        rows = session.execute(select(_EVENT_LOG.c.dossier_id, _EVENT_LOG.c.source, _EVENT_LOG.c.event_id,
                                      _EVENT_LOG.c.payload)
                               .where(_EVENT_LOG.c.dossier_id.in_(dossier_ids))
                               .order_by(_EVENT_LOG.c.dossier_id, _EVENT_LOG.c.id))
        for dossier_id, source, event_id, payload in rows:
            event = parsed.get((source, event_id))
            logs[dossier_id].append(event if event is not None else dossier_event_adapter.validate_json(payload))
    return logs


def _refold(calendar: ActiveCalendar, events: list[Any], stored: Dossier | None, stored_version: str | None,
            watermark: datetime | None) -> tuple[Dossier | None, list[Any]]:
    """A dossier's state from its whole log, advanced to the watermark, and the derived events not published
    before (`stored.emitted`). Under another calendar than the stored state's: one `deadline.scheduled` with
    basis `calendar_change` announces the moved instants (`reschedule`)."""
    if stored is not None and stored_version != calendar.version and watermark is not None:
        return reschedule(events, calendar.book, stored, watermark)
    return fold(events, calendar.book, emitted=stored.emitted if stored else (), advance_to=watermark)


# -- receipt conflicts (events.md: a second dossier.received is "kept in a dead-letter record") ---------
def _conflict_reason(loser: Any, winner: Any) -> str:
    return (
        f"conflicting dossier.received: dossier {winner.dossier_id} was already received by event "
        f"{winner.event_id} (source {winner.source}, occurred_at {format_ts(winner.occurred_at)}); "
        f"the first receipt in event order wins and this one ({loser.event_id}, occurred_at "
        f"{format_ts(loser.occurred_at)}) is ignored"
    )


def conflict_headers(row: ReceiptConflictRow, consumer: str) -> dict[str, str]:
    """The `x-dead-letter-*` headers of a conflict's record (the JSON content-type comes with the outbox)."""
    headers = {
        HEADER_REASON: row.reason,
        HEADER_ERROR: CONFLICT_ERROR,
        HEADER_CONSUMER: consumer,
        HEADER_FAILED_AT: format_ts(row.recorded_at) or "",
    }
    if row.kafka_topic is not None:
        headers[HEADER_TOPIC] = row.kafka_topic
        headers[HEADER_PARTITION] = str(row.kafka_partition)
        headers[HEADER_OFFSET] = str(row.kafka_offset)
    return headers


def _queue_conflict(session: Session, row: ReceiptConflictRow, *, topic: str, consumer: str) -> dict[str, str]:
    """The record of `row` on the outbox for the dead-letter `topic`, marked published; returns what to log
    once the transaction committed."""
    add_payload_to_outbox(session, topic, row.payload, key=row.dossier_id, headers=conflict_headers(row, consumer))
    row.published_at = utcnow()
    session.add(row)
    return {"dossier_id": row.dossier_id, "event_id": row.event_id, "source": row.source}


def _record_conflicts(session: Session, dossier_ids: list[str], *, dead_letter_topic: str,
                      consumer: str) -> list[dict[str, str]]:
    """For dossiers that got a new receipt: mark every receipt but the winner ignored, with a dead-letter
    record for each new loser, queued on the outbox."""
    receipts: dict[str, list[DossierEventRow]] = defaultdict(list)
    for row in session.scalars(select(DossierEventRow).where(DossierEventRow.dossier_id.in_(dossier_ids),
                                                             DossierEventRow.type == RECEIVED)
                               .order_by(DossierEventRow.id)):  # type: ignore[arg-type]
        receipts[row.dossier_id].append(row)
    queued = []
    for rows in receipts.values():
        if len(rows) < 2:
            continue
        parsed = {row.id: dossier_event_adapter.validate_json(row.payload) for row in rows}
        winner = receipt_winner(parsed.values())
        for row in rows:
            event = parsed[row.id]
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
            queued.append(_queue_conflict(session, conflict, topic=dead_letter_topic, consumer=consumer))
    session.flush()
    return queued


def queue_unpublished_conflicts(session: Session, *, topic: str, consumer: str) -> list[dict[str, str]]:
    """At start-up: queue the records that a version publishing them itself left unpublished."""
    rows = session.scalars(
        select(ReceiptConflictRow).where(ReceiptConflictRow.published_at.is_(None))  # type: ignore[union-attr]
        .order_by(ReceiptConflictRow.id).with_for_update(skip_locked=True)  # type: ignore[arg-type]
    ).all()
    return [_queue_conflict(session, row, topic=topic, consumer=consumer) for row in rows]


# -- a batch of dossier events ---------------------------------------------------------------------------
def apply_dossier_events(
    session: Session,
    items: list[Received[Any]],
    *,
    calendar: ActiveCalendar,
    deadline_topic: str,
    dead_letter_topic: str,
    consumer: str,
    max_lead: timedelta | None = None,
) -> EventsOutcome:
    """Record a batch of dossier events and bring each of their dossiers to its partition's time.

    The event log is the record of what was processed: its row of `(source, event_id)` is written in this
    transaction, with the state it changes, and a second delivery finds it there and changes nothing (one
    insert serves as the log and as the processed-event row).
    """
    outcome = EventsOutcome()
    recorded = utcnow()
    unique: dict[tuple[str, str], Received[Any]] = {}
    for item in items:
        unique.setdefault((item.event.source, item.event.event_id), item)  # a copy inside the batch: a duplicate
    stmt = dialect_insert(session, _EVENT_LOG).on_conflict_do_nothing().returning(
        _EVENT_LOG.c.source, _EVENT_LOG.c.event_id)
    new = set(session.execute(stmt, [{
        "dossier_id": i.event.dossier_id, "source": i.event.source, "event_id": i.event.event_id,
        "type": i.event.type, "occurred_at": i.event.occurred_at, "payload": i.event.model_dump_json(),
        "ignored": False, "ignored_reason": None, "kafka_topic": i.topic, "kafka_partition": i.partition,
        "kafka_offset": i.offset, "recorded_at": recorded,
    } for i in unique.values()]))
    fresh = [item for key, item in unique.items() if key in new]
    outcome.duplicates = len(items) - len(fresh)
    if not fresh:
        return outcome

    # Time: each partition's row moves to its latest event (capped past the latest tick).
    limit = event_time_limit(session, max_lead)
    latest: dict[int, datetime] = {}
    for item in fresh:
        at = item.event.occurred_at
        if limit is not None and at > limit:
            at = limit
            outcome.ahead_of_ticks += 1
        if item.partition not in latest or at > latest[item.partition]:
            latest[item.partition] = at
    for partition, at in sorted(latest.items()):
        _advance_row(session, partition_row(partition), at)
    times = read_event_times(session)
    outcome.watermark = times.latest

    by_dossier: dict[str, list[Received[Any]]] = defaultdict(list)
    for item in fresh:
        by_dossier[item.event.dossier_id].append(item)
        outcome.applied[item.event.type] += 1
    ids = sorted(by_dossier)
    stored = {row.dossier_id: row for row in session.execute(
        select(_DOSSIERS.c.dossier_id, _DOSSIERS.c.state, _DOSSIERS.c.state_json, _DOSSIERS.c.calendar_version)
        .where(_DOSSIERS.c.dossier_id.in_(ids)).order_by(_DOSSIERS.c.dossier_id).with_for_update())}

    with_receipt = [d for d in ids if any(i.event.type == RECEIVED for i in by_dossier[d])]
    if with_receipt:
        outcome.conflicts = _record_conflicts(session, with_receipt, dead_letter_topic=dead_letter_topic,
                                              consumer=consumer)

    # Which dossiers take their new events as they are, which need their log.
    states: dict[str, Dossier] = {}
    to_refold: list[str] = []
    for dossier_id in ids:
        row = stored.get(dossier_id)
        events = [i.event for i in by_dossier[dossier_id]]
        if row is None:
            if dossier_id in with_receipt:
                to_refold.append(dossier_id)  # its held events, if any, come with the receipt
            else:
                outcome.held += len(events)
            continue
        state = decode_state(row.state_json)
        states[dossier_id] = state
        if row.calendar_version != calendar.version or not in_order(state, events):
            to_refold.append(dossier_id)

    logs = _event_logs(session, to_refold, {(i.event.source, i.event.event_id): i.event for i in fresh})
    counts = _StateCounts()
    inserted: list[dict[str, Any]] = []
    updated: list[dict[str, Any]] = []
    queued: list[dict[str, Any]] = []
    for dossier_id in ids:
        row = stored.get(dossier_id)
        state = states.get(dossier_id)
        partition = by_dossier[dossier_id][-1].partition
        now = times.of(partition)  # the dossier's time: its partition's (see queries.EventTimes)
        if dossier_id in to_refold:
            state, derived = _refold(calendar, logs[dossier_id], state, row.calendar_version if row else None, now)
            outcome.refolded += 1
        elif state is not None:
            derived = apply_in_order(state, [i.event for i in by_dossier[dossier_id]], calendar.book,
                                     advance_to=now)
        else:
            continue  # held
        if state is None:
            continue
        columns = _state_columns(state, now, calendar.version, partition)
        counts.moved(partition_row(partition), row.state if row else None, columns["state"])
        (updated if row is not None else inserted).append(columns)
        queued.extend(outbox_values(deadline_topic, event) for event in derived)
        outcome.derived.extend(derived)

    _write_dossiers(session, inserted, updated)
    add_many_to_outbox(session, queued)
    outcome.moments_due = any_moment_due(session, times, set(latest))
    counts.write(session)
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


def _advanced_chunks(due: list[Any], calendar: ActiveCalendar, deadline_topic: str,
                     outcome: SweepOutcome, counts: _StateCounts) -> Iterator[Chunk]:
    """Advance the due dossiers (domain `advance`, each to its partition's time) a chunk at a time: (dossier
    rows, outbox rows)."""
    now = utcnow()
    rows: list[tuple[Any, ...]] = []
    queued: list[dict[str, Any]] = []
    for dossier_id, state_json, before, to in due:
        state = decode_state(state_json)
        derived = advance(state, calendar.book, to)
        after = state.state_at(to)
        counts.moved(SWEEP_SHARD, before, after)
        rows.append((dossier_id, after, state.next_moment_at(), encode_state(state), now))
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


def _refold_stored(session: Session, calendar: ActiveCalendar, dossier_ids: list[str], times: EventTimes,
                   deadline_topic: str, outcome: SweepOutcome, counts: _StateCounts) -> None:
    """Re-fold these (locked) dossiers from their logs under the active calendar, and store them."""
    rows = {row.dossier_id: row for row in session.execute(
        select(_DOSSIERS.c.dossier_id, _DOSSIERS.c.state, _DOSSIERS.c.state_json, _DOSSIERS.c.calendar_version,
               _DOSSIERS.c.event_partition)
        .where(_DOSSIERS.c.dossier_id.in_(dossier_ids)))}
    logs = _event_logs(session, dossier_ids, {})
    updated, queued = [], []
    for dossier_id in dossier_ids:
        row = rows[dossier_id]
        now = times.of(row.event_partition)
        state, derived = _refold(calendar, logs[dossier_id], decode_state(row.state_json), row.calendar_version,
                                 now)
        if state is None:
            continue
        columns = _state_columns(state, now, calendar.version, row.event_partition)
        counts.moved(SWEEP_SHARD, row.state, columns["state"])
        updated.append(columns)
        queued.extend(outbox_values(deadline_topic, event) for event in derived)
        outcome.derived.extend(derived)
    _write_dossiers(session, [], updated)
    add_many_to_outbox(session, queued)


def advance_due_batch(session: Session, *, calendar: ActiveCalendar, deadline_topic: str,
                      limit: int) -> SweepOutcome:
    """Advance up to `limit` dossiers whose next moment their partition's time has reached.

    Index range scans on (`event_partition`, `next_moment_at`), oldest first; each advanced dossier's next
    moment moves past its time (or to NULL), so repeated batches drain the ranges. The rows are read as
    columns and written back a chunk at a time, with no ORM object per dossier, while the next chunk is
    computed, so a tick costs about what the domain's `advance` of its due dossiers costs.
    """
    outcome = SweepOutcome()
    times = read_event_times(session)
    if times.latest is None:
        return outcome
    columns = (_DOSSIERS.c.dossier_id, _DOSSIERS.c.state_json, _DOSSIERS.c.state, _DOSSIERS.c.calendar_version)
    due: list[tuple[Any, ...]] = []
    # every partition's dossiers at its own time, and the rows kept before partitions were (at the latest)
    for partition in [*sorted(times.partitions), None]:
        now = times.of(partition)
        if now is None or len(due) >= limit:
            continue
        same = (_DOSSIERS.c.event_partition.is_(None) if partition is None
                else _DOSSIERS.c.event_partition == partition)
        query = (select(*columns).where(same, _DOSSIERS.c.next_moment_at <= now)
                 .order_by(_DOSSIERS.c.next_moment_at, _DOSSIERS.c.dossier_id)
                 .limit(limit - len(due)).with_for_update(skip_locked=True))
        due.extend((*row, now) for row in session.execute(query))
    counts = _StateCounts()
    current = [(dossier_id, text, state, now) for dossier_id, text, state, version, now in due
               if version == calendar.version]
    _write_advanced(session, _advanced_chunks(current, calendar, deadline_topic, outcome, counts))
    stale = [dossier_id for dossier_id, _, _, version, _ in due if version != calendar.version]
    if stale:  # computed under another calendar: re-fold them from their logs
        _refold_stored(session, calendar, stale, times, deadline_topic, outcome, counts)
        outcome.dossier_ids.extend(stale)
    counts.write(session)
    return outcome


def rebase_calendar_batch(session: Session, *, calendar: ActiveCalendar, deadline_topic: str, limit: int,
                          after: str = "") -> SweepOutcome:
    """Re-fold up to `limit` open dossiers computed under another calendar (dossier_id > `after`)."""
    outcome = SweepOutcome()
    times = read_event_times(session)
    if times.latest is None:
        return outcome
    ids = list(session.scalars(
        select(_DOSSIERS.c.dossier_id)
        .where(_DOSSIERS.c.calendar_version != calendar.version, _DOSSIERS.c.state != "closed",
               _DOSSIERS.c.dossier_id > after)
        .order_by(_DOSSIERS.c.dossier_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ))
    counts = _StateCounts()
    _refold_stored(session, calendar, ids, times, deadline_topic, outcome, counts)
    outcome.dossier_ids.extend(ids)
    counts.write(session)
    return outcome

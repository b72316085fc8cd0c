"""Units of work of the metrics service: the only functions that write. Each runs inside ONE transaction
given by the caller (a batch of Kafka records is one unit, `tthc_common.batches.BatchRunner`).

A batch of dossier events is grouped by dossier; each dossier's row is loaded once, its new events are
applied to its stored state when they come after everything folded into it (`in_order` ->
`apply_in_order`), and only a dossier that receives an event out of order, or that had no state (its
events held before their receipt), is folded again from its stored log (`fold`). The state therefore is
always `fold` of every event stored for the dossier, whatever order they came in. Each changed row is
written once, with the figures' columns taken from its state in the same statement; all processed ids
are marked in one statement; the watermark moves once per batch, on the rows of the batch's partitions.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from sqlalchemy import case, exists, insert, or_, select
from sqlmodel import Session

from tthc_common.batches import Received
from tthc_common.db import dialect_insert
from tthc_common.idempotency import mark_processed_many
from tthc_contracts import parse_dossier_event
from tthc_contracts.timefmt import utcnow
from tthc_core.calendar import CalendarBook
from tthc_core.deadlines import Dossier, apply_in_order, fold, in_order
from tthc_core.indices import closed_facts

from .models import DossierRow, PartitionWatermark, StoredDossierEvent

# processed_events.consumer of each subscription
CONSUMER_DOSSIER = "metrics-dossier-events"
CONSUMER_DEADLINE = "metrics-deadline-events"
CONSUMER_APOLOGY = "metrics-apology-events"
# Dossiers whose close the live counter has counted (processed_events rows keyed by dossier id): the
# deadline service publishes a close again, corrected, when a late event re-judges it.
COUNTED_CLOSES = "metrics-counted-closes"

# metrics_partition_watermarks.stream
STREAM_DOSSIER = "dossier"
STREAM_DEADLINE = "deadline"
STREAM_APOLOGY = "apology"

RECEIVED = "dossier.received"
REDACTED = "(redacted)"
UNKNOWN_AGENCY = "unknown"

DOSSIERS = DossierRow.__table__  # type: ignore[attr-defined]
EVENTS = StoredDossierEvent.__table__  # type: ignore[attr-defined]
WATERMARKS = PartitionWatermark.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Stored:
    """What a unit did, for the service's counters (counted after the transaction committed)."""

    stream: str
    new_by_type: dict[str, int] = field(default_factory=dict)  # events stored now, by type
    duplicates: int = 0  # redelivered or re-posted events, ignored
    first_closes: tuple[tuple[str, str], ...] = ()  # (agency, outcome) of each dossier's first close


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


# -- the figures' columns -----------------------------------------------------------------------------
FIGURE_COLUMNS = (
    "received_at", "closed_at", "last_event_at", "handling_agency", "handling_agency_name", "field_code",
    "field_name", "procedure_code", "procedure_name", "channel", "outcome", "judged_close", "due_at_receipt",
    "due_at", "at_risk_at", "extended_due_at", "first_extension_at", "clock", "stopped_at",
    "supplement_requests", "processing_days",
)  # fmt: skip


def figure_columns(state: Dossier | None, book: CalendarBook) -> dict[str, Any]:
    """The per-dossier inputs of the index figures that do not depend on the period, from its state."""
    if state is None:
        return dict.fromkeys(FIGURE_COLUMNS)
    supplement_requests, processing_days = state.supplement_requests, None
    if state.closed_at is not None:
        # what the dossier contributes to any period its close falls in (indices.md)
        closed = closed_facts(state, book)
        supplement_requests = len([t for t in state.supplement_requested_at if t < state.closed_at])
        processing_days = sum(us / length for length, us in closed.processing_us.items())
    last_event = state.last_event
    return {
        "received_at": state.received_at,
        "closed_at": state.closed_at,
        "last_event_at": None if last_event is None else last_event[0],
        "handling_agency": state.handling_agency.code,
        "handling_agency_name": state.handling_agency.name,
        "field_code": state.field_code,
        "field_name": state.field_name,
        "procedure_code": state.procedure_code,
        "procedure_name": state.procedure_name,
        "channel": state.channel,
        "outcome": state.outcome,
        "judged_close": state.judged_close,
        "due_at_receipt": state.due_at_receipt,
        "due_at": state.due_at,
        "at_risk_at": state.at_risk_at,
        "extended_due_at": state.extended_due_at,
        "first_extension_at": state.extended_at[0] if state.extended_at else None,
        "clock": state.clock,
        "stopped_at": state.stops[-1].start if state.clock != "running" else None,
        "supplement_requests": supplement_requests,
        "processing_days": processing_days,
    }


# -- shared steps -------------------------------------------------------------------------------------
def _new_items(session: Session, consumer: str, items: Sequence[Received[Any]]) -> list[Received[Any]]:
    """The items never processed before, each once (a batch may hold the same event twice)."""
    new = mark_processed_many(session, consumer, ((i.event.source, i.event.event_id) for i in items))
    fresh: list[Received[Any]] = []
    for item in items:
        key = (item.event.source, item.event.event_id)
        if key in new:
            new.discard(key)
            fresh.append(item)
    return fresh


def _advance_watermarks(session: Session, stream: str, items: Iterable[Received[Any]]) -> None:
    """metrics_partition_watermarks[stream, partition] = max(itself, the batch's latest event there): one
    row per partition, so that replicas of the service (which read different partitions) never wait on
    each other's row."""
    latest: dict[int, datetime] = {}
    for item in items:
        partition = item.partition if item.partition is not None else -1
        at = item.event.occurred_at
        if partition not in latest or at > latest[partition]:
            latest[partition] = at
    if not latest:
        return
    stmt = dialect_insert(session, WATERMARKS)
    stmt = stmt.on_conflict_do_update(
        index_elements=["stream", "partition"],
        set_={"at": case((stmt.excluded.at > WATERMARKS.c.at, stmt.excluded.at), else_=WATERMARKS.c.at)})
    session.execute(stmt, [{"stream": stream, "partition": p, "at": latest[p]} for p in sorted(latest)])


def _stored(stream: str, items: Sequence[Received[Any]], fresh: Sequence[Received[Any]],
            first_closes: tuple[tuple[str, str], ...] = ()) -> Stored:
    return Stored(stream, dict(Counter(i.event.type for i in fresh)), len(items) - len(fresh), first_closes)


# -- dossier events ------------------------------------------------------------------------------------
def apply_dossier_events(session: Session, items: list[Received[Any]], *, book: CalendarBook) -> Stored:
    """Store a batch of dossier events (redacted) and bring each of their dossiers' state up to date."""
    fresh = _new_items(session, CONSUMER_DOSSIER, items)
    if not fresh:
        return _stored(STREAM_DOSSIER, items, fresh)
    stored_at = utcnow()
    session.execute(insert(EVENTS), [
        {"source": e.source, "event_id": e.event_id, "dossier_id": e.dossier_id, "occurred_at": e.occurred_at,
         "type": e.type, "payload": redact(e), "stored_at": stored_at}
        for e in (i.event for i in fresh)])
    by_dossier: dict[str, list[Any]] = defaultdict(list)
    for item in fresh:
        by_dossier[item.event.dossier_id].append(item.event)
    ids = sorted(by_dossier)
    # Locked in one order (PostgreSQL; SQLite's writer holds the whole database): no deadlock with another
    # unit touching the same dossiers (the apology stream, a replica during a rebalance).
    known = {dossier_id: (state, count) for dossier_id, state, count in session.execute(
        select(DOSSIERS.c.dossier_id, DOSSIERS.c.state, DOSSIERS.c.event_count)
        .where(DOSSIERS.c.dossier_id.in_(ids)).order_by(DOSSIERS.c.dossier_id).with_for_update())}

    states: dict[str, Dossier | None] = {}
    out_of_order: list[str] = []
    for dossier_id in ids:
        events = by_dossier[dossier_id]
        if dossier_id not in known:
            # No row: nothing of this dossier was stored before this batch, its log is these events.
            states[dossier_id] = fold(events, book)[0]
            continue
        stored = known[dossier_id][0]
        state = Dossier.from_json(stored) if stored is not None else None
        if state is not None and in_order(state, events):
            apply_in_order(state, events, book)
            states[dossier_id] = state
        else:
            out_of_order.append(dossier_id)
    for dossier_id, log in _logs(session, out_of_order).items():
        states[dossier_id] = fold(log, book)[0]

    counts = {d: (known[d][1] if d in known else 0) + len(by_dossier[d]) for d in ids}
    _write_states(session, states, book, counts)
    _advance_watermarks(session, STREAM_DOSSIER, fresh)
    return _stored(STREAM_DOSSIER, items, fresh)


def _logs(session: Session, dossier_ids: Sequence[str]) -> dict[str, list[Any]]:
    """The stored events of each dossier (this transaction's included)."""
    logs: dict[str, list[Any]] = {d: [] for d in dossier_ids}
    for start in range(0, len(dossier_ids), 500):
        chunk = dossier_ids[start:start + 500]
        for dossier_id, payload in session.execute(
                select(EVENTS.c.dossier_id, EVENTS.c.payload).where(EVENTS.c.dossier_id.in_(chunk))):
            logs[dossier_id].append(parse_dossier_event(payload))
    return logs


def _write_states(session: Session, states: dict[str, Dossier | None], book: CalendarBook,
                  counts: dict[str, int] | None = None) -> None:
    """One upsert for every changed dossier: its state and the figures' columns (never the apology's)."""
    if not states:
        return
    rows = []
    for dossier_id in sorted(states):
        state = states[dossier_id]
        row = {"dossier_id": dossier_id, "state": None if state is None else state.to_json(),
               **figure_columns(state, book)}
        if counts is not None:
            row["event_count"] = counts[dossier_id]
        rows.append(row)
    stmt = dialect_insert(session, DOSSIERS)
    stmt = stmt.on_conflict_do_update(
        index_elements=["dossier_id"],
        set_={name: stmt.excluded[name] for name in rows[0] if name != "dossier_id"})
    session.execute(stmt, rows)


def fold_stateless_dossiers(session: Session, *, book: CalendarBook, limit: int = 500) -> int:
    """Fold, from their logs, up to `limit` dossiers that have a receipt stored but no state (rows made by
    the 0002 migration from an older store); returns how many. Run at start-up until it returns 0."""
    received = exists().where(EVENTS.c.dossier_id == DOSSIERS.c.dossier_id, EVENTS.c.type == RECEIVED)
    ids = list(session.execute(
        select(DOSSIERS.c.dossier_id).where(DOSSIERS.c.state.is_(None), received)
        .order_by(DOSSIERS.c.dossier_id).limit(limit).with_for_update()).scalars())
    _write_states(session, {d: fold(log, book)[0] for d, log in _logs(session, ids).items()}, book)
    return len(ids)


# -- apology events ------------------------------------------------------------------------------------
def apply_apology_events(session: Session, items: list[Received[Any]]) -> Stored:
    """Keep the first `apology.issued` instant per dossier (indices.md: the first apology)."""
    fresh = _new_items(session, CONSUMER_APOLOGY, items)
    first: dict[str, tuple[datetime, str]] = {}
    for event in (i.event for i in fresh):
        if event.type != "apology.issued":
            continue
        issued = (event.data.issued_at, event.data.apology_id)
        if event.dossier_id not in first or issued[0] < first[event.dossier_id][0]:
            first[event.dossier_id] = issued
    if first:
        stmt = dialect_insert(session, DOSSIERS)
        earlier = or_(DOSSIERS.c.first_apology_at.is_(None),
                      stmt.excluded.first_apology_at < DOSSIERS.c.first_apology_at)
        stmt = stmt.on_conflict_do_update(index_elements=["dossier_id"], set_={
            name: case((earlier, stmt.excluded[name]), else_=DOSSIERS.c[name])
            for name in ("first_apology_at", "first_apology_id")})
        session.execute(stmt, [{"dossier_id": d, "event_count": 0, "first_apology_at": first[d][0],
                                "first_apology_id": first[d][1]} for d in sorted(first)])
    _advance_watermarks(session, STREAM_APOLOGY, fresh)
    return _stored(STREAM_APOLOGY, items, fresh)


# -- deadline events -----------------------------------------------------------------------------------
def apply_deadline_events(session: Session, items: list[Received[Any]]) -> Stored:
    """Deadline events feed the live counters (each dossier's first close, once) and the watermark."""
    fresh = _new_items(session, CONSUMER_DEADLINE, items)
    closes = [i.event for i in fresh if i.event.type == "deadline.closed"]
    first_closes: list[tuple[str, str]] = []
    if closes:
        counted = mark_processed_many(session, COUNTED_CLOSES, ((e.source, e.dossier_id) for e in closes))
        for event in closes:  # in the batch's order: the first close of a dossier is the one counted
            key = (event.source, event.dossier_id)
            if key in counted:
                counted.discard(key)
                agency = event.data.handling_agency.code if event.data.handling_agency else UNKNOWN_AGENCY
                first_closes.append((agency, event.data.outcome))
    _advance_watermarks(session, STREAM_DEADLINE, fresh)
    return _stored(STREAM_DEADLINE, items, fresh, tuple(first_closes))

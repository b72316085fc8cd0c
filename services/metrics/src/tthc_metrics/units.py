"""Units of work of the metrics service: the only functions that write. Each runs inside ONE transaction
given by the caller (a batch of Kafka records is one unit, `tthc_common.batches.BatchRunner`).

A batch of dossier events is grouped by dossier; each dossier's row is loaded once, its new events are
applied to its stored state when they come after everything folded into it (`in_order` ->
`apply_in_order`), and only a dossier that receives an event out of order, or that had no state (its
events held before their receipt), is folded again from its stored log (`fold`). The state therefore is
always `fold` of every event stored for the dossier, whatever order they came in. Each changed row is
written once, with the figures' columns taken from its state in the same statement; all processed ids
are marked in one statement; the watermark moves once per batch, on the rows of the batch's partitions.

Kept counts (`metrics_counts`): whenever a dossier's state or its first apology changes, what it adds
there (`contribution`: its receipt's facts under the month of its receipt, its close's under the month of
its close) is computed again; the unit subtracts what the row says it added before (`counted`) and adds
the new one, in the same transaction, under the shard of the unit (the Kafka partition of its records),
so that replicas reading other partitions never write the same counter row. A re-judged close, a late
transfer (another agency), a first apology after the close: each is one such replacement.

Locks: a unit first makes the rows of its dossiers that do not exist yet, then locks them all, in dossier
order; the counter rows last, in key order. Any two units (the dossier and the apology streams, replicas
during a rebalance) therefore take their locks in one order and never deadlock.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from sqlalchemy import and_, case, exists, or_, select
from sqlmodel import Session

from tthc_common.batches import Received
from tthc_common.db import add_to_counters, dialect_insert
from tthc_common.idempotency import mark_processed_many
from tthc_contracts import parse_dossier_event
from tthc_contracts.timefmt import utcnow
from tthc_core.calendar import CalendarBook
from tthc_core.deadlines import Dossier, apply_in_order, fold, in_order
from tthc_core.indices import (
    Tally,
    closed_facts,
    facts_basis,
    group_keys,
    month_start,
    open_thresholds,
    received_facts,
)

from .models import (
    COUNT_KEYS,
    COUNTS_BASIS,
    CountsBasis,
    DossierRow,
    GroupName,
    PartitionWatermark,
    StoredDossierEvent,
    counts_table,
)

# processed_events.consumer of the apology and deadline subscriptions (the dossier events are recorded by
# their own stored row)
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
BASIS = CountsBasis.__table__  # type: ignore[attr-defined]
NAMES = GroupName.__table__  # type: ignore[attr-defined]
STARTUP_SHARD = "startup"  # counted by a pass at start-up, not by a consumer
COUNTER_ROWS_PER_STATEMENT = 500  # 27 values a row: far below SQLite's and psycopg's parameter limits


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
    "supplement_requests", "processing_days", "overdue_after", "i766_late_after",
)  # fmt: skip


def figure_columns(state: Dossier | None, counted: Mapping[str, Any] | None) -> dict[str, Any]:
    """The per-dossier inputs of the index figures that do not depend on the period, from its state and
    what it counts (`contribution`)."""
    if state is None:
        return dict.fromkeys(FIGURE_COLUMNS)
    supplement_requests, processing_days = state.supplement_requests, None
    overdue_after = i766_late_after = None
    if state.closed_at is None:
        thresholds = open_thresholds(state)
        overdue_after, i766_late_after = thresholds.overdue_after, thresholds.i766_late_after
    else:
        supplement_requests = len([t for t in state.supplement_requested_at if t < state.closed_at])
        if counted is not None and counted["closed"] is not None:  # its close's facts (closed_facts)
            processing_days = counted["closed"][1].get("processing_us", 0) / counted["keys"][4]
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
        "overdue_after": overdue_after,
        "i766_late_after": i766_late_after,
    }


# -- what a dossier adds to metrics_counts ------------------------------------------------------------
def _counts(tally: Tally) -> dict[str, int]:
    counts = {name: n for name, n in sorted(tally.counts.items()) if n}
    processing_us = sum(tally.processing_us.values())
    if processing_us:
        counts["processing_us"] = processing_us
    return counts


def contribution(state: Dossier, book: CalendarBook, first_apology_at: datetime | None,
                 shard: str) -> dict[str, Any]:
    """What the dossier adds to metrics_counts, as kept on its row (`counted`): its group and working-day
    length (`keys`), its receipt's facts under the month of `received_at`, its close's (if closed) under
    the month of `closed_at`, and the shard they are added under; and the names it gives its group's
    codes (metrics_group_names)."""
    closed = None
    if state.closed_at is not None:
        closed = [month_start(state.closed_at).isoformat(),
                  _counts(closed_facts(state, book, first_apology_at))]
    return {"shard": shard, "keys": [*group_keys(state), state.calendar(book).day_length_us],
            "names": [state.handling_agency.name, state.field_name, state.procedure_name],
            "received": [month_start(state.received_at).isoformat(), _counts(received_facts(state, book))],
            "closed": closed}


class Recount:
    """The changes a unit makes to metrics_counts (and to the group names), written once at its end."""

    def __init__(self, book: CalendarBook, basis: str) -> None:
        self.book, self.basis = book, basis
        self.deltas: dict[tuple[Any, ...], Counter[str]] = defaultdict(Counter)
        self.names: dict[tuple[str, str, str], tuple[datetime, str, str]] = {}

    def replace(self, counted: Mapping[str, Any] | None, state: Dossier | None,
                first_apology_at: datetime | None, shard: str) -> dict[str, Any] | None:
        """The dossier adds what `state` says instead of `counted` (what it added before); returns the
        new `counted`."""
        new = None if state is None else contribution(state, self.book, first_apology_at, shard)
        if new == counted:
            return new  # most events of an open dossier: nothing it counts changes
        self._add(counted, -1)
        self._add(new, +1)
        if state is not None and (counted is None or (counted["keys"], counted.get("names")) != (
                new["keys"], new["names"])):  # type: ignore[index]
            self._name(state, shard)  # received now, or another agency (a transfer): its names count
        return new

    def _add(self, counted: Mapping[str, Any] | None, sign: int) -> None:
        if counted is None:
            return
        agency, field_code, procedure, channel, day_length_us = counted["keys"]
        for part in (counted["received"], counted["closed"]):
            if part is None:
                continue
            month, counts = part
            key = (date.fromisoformat(month), agency, field_code, procedure, channel, day_length_us,
                   counted["shard"])
            row = self.deltas[key]
            for name, n in counts.items():
                row[name] += sign * n

    def _name(self, state: Dossier, shard: str) -> None:
        for grouping, code, name in (("agency", state.handling_agency.code, state.handling_agency.name),
                                     ("field", state.field_code, state.field_name),
                                     ("procedure", state.procedure_code, state.procedure_name)):
            given = (state.received_at, state.dossier_id, name)
            key = (shard, grouping, code)
            if key not in self.names or given[:2] >= self.names[key][:2]:
                self.names[key] = given

    def write(self, session: Session) -> None:
        keys = sorted(k for k, row in self.deltas.items() if any(row.values()))
        for start in range(0, len(keys), COUNTER_ROWS_PER_STATEMENT):  # in key order: one lock order
            chunk = keys[start:start + COUNTER_ROWS_PER_STATEMENT]
            add_to_counters(session, counts_table, {k: self.deltas[k] for k in chunk}, keys=COUNT_KEYS)
        if self.names:
            stmt = dialect_insert(session, NAMES)
            later = or_(stmt.excluded.received_at > NAMES.c.received_at,
                        and_(stmt.excluded.received_at == NAMES.c.received_at,
                             stmt.excluded.dossier_id >= NAMES.c.dossier_id))
            stmt = stmt.on_conflict_do_update(
                index_elements=["shard", "grouping", "code"],
                set_={c: case((later, stmt.excluded[c]), else_=NAMES.c[c])
                      for c in ("name", "received_at", "dossier_id")})
            session.execute(stmt, [
                {"shard": shard, "grouping": grouping, "code": code, "received_at": at, "dossier_id": d,
                 "name": name} for (shard, grouping, code), (at, d, name) in sorted(self.names.items())])


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
ROW_COLUMNS = ("dossier_id", "state", "event_count", "first_apology_at", "counted")


@dataclass(frozen=True)
class _NewRow:
    """The row of a dossier nothing was stored of before this unit (ROW_COLUMNS)."""

    dossier_id: str
    state: None = None
    event_count: int = 0
    first_apology_at: None = None
    counted: None = None


def _lock_rows(session: Session, dossier_ids: Sequence[str]) -> dict[str, Any]:
    """The rows of these dossiers (sorted ids), locked in dossier order, a missing one as new.

    PostgreSQL: the missing rows are made first, then all are locked; so a unit of another stream that
    makes the same row meanwhile waits for this one, or this one for it, and never counts a dossier
    without the other's part (its state, its first apology). SQLite: the writer holds the whole
    database from the transaction's start, nothing can be made meanwhile."""
    if session.get_bind().dialect.name == "postgresql":
        made = dialect_insert(session, DOSSIERS).on_conflict_do_nothing(index_elements=["dossier_id"])
        session.execute(made, [{"dossier_id": d, "event_count": 0} for d in dossier_ids])
    rows: dict[str, Any] = {row.dossier_id: row for row in session.execute(
        select(*(DOSSIERS.c[c] for c in ROW_COLUMNS)).where(DOSSIERS.c.dossier_id.in_(dossier_ids))
        .order_by(DOSSIERS.c.dossier_id).with_for_update())}
    return {d: rows[d] if d in rows else _NewRow(d) for d in dossier_ids}


def _shard(stream: str, item: Received[Any]) -> str:
    """The shard of a dossier's counts written by a unit of this stream: its Kafka partition."""
    return f"{stream}:{item.partition if item.partition is not None else -1}"


def _kept_shard(row: Any, otherwise: str) -> str:
    """The shard the dossier's counts are in, for a unit that only corrects them (an apology, a count on
    another calendar): they stay where the dossier's own partition put them; `otherwise` if none."""
    return row.counted["shard"] if row.counted is not None else otherwise


def apply_dossier_events(session: Session, items: list[Received[Any]], *, book: CalendarBook,
                         basis: str | None = None) -> Stored:
    """Store a batch of dossier events (redacted) and bring each of their dossiers' state, and what it adds to
    metrics_counts, up to date. `basis`: `facts_basis(book)`, computed once by the caller."""
    # The stored event is the record of what was processed (one insert serves as both): a redelivered one is
    # already there and is skipped.
    stored_at = utcnow()
    unique: dict[tuple[str, str], Received[Any]] = {}
    for item in items:
        unique.setdefault((item.event.source, item.event.event_id), item)
    stmt = dialect_insert(session, EVENTS).on_conflict_do_nothing().returning(EVENTS.c.source, EVENTS.c.event_id)
    new = set(session.execute(stmt, [
        {"source": e.source, "event_id": e.event_id, "dossier_id": e.dossier_id, "occurred_at": e.occurred_at,
         "type": e.type, "payload": redact(e), "stored_at": stored_at}
        for e in (i.event for i in unique.values())]))
    fresh = [item for key, item in unique.items() if key in new]
    if not fresh:
        return _stored(STREAM_DOSSIER, items, fresh)
    by_dossier: dict[str, list[Any]] = defaultdict(list)
    shards: dict[str, str] = {}
    for item in fresh:
        by_dossier[item.event.dossier_id].append(item.event)
        shards.setdefault(item.event.dossier_id, _shard(STREAM_DOSSIER, item))
    ids = sorted(by_dossier)
    rows = _lock_rows(session, ids)

    states: dict[str, Dossier | None] = {}
    out_of_order: list[str] = []
    for dossier_id in ids:
        events, row = by_dossier[dossier_id], rows[dossier_id]
        if row.state is None and row.event_count == 0:
            # Nothing of this dossier's events was stored before this batch: its log is these events.
            states[dossier_id] = fold(events, book)[0]
            continue
        state = Dossier.from_json(row.state) if row.state is not None else None
        if state is not None and in_order(state, events):
            apply_in_order(state, events, book)
            states[dossier_id] = state
        else:
            out_of_order.append(dossier_id)
    for dossier_id, log in _logs(session, out_of_order).items():
        states[dossier_id] = fold(log, book)[0]

    counts = {d: rows[d].event_count + len(by_dossier[d]) for d in ids}
    recount = Recount(book, basis or facts_basis(book))
    _write_states(session, states, rows, recount, shards, counts)
    recount.write(session)
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


def _write_states(session: Session, states: Mapping[str, Dossier | None], rows: Mapping[str, Any],
                  recount: Recount, shards: Mapping[str, str], counts: Mapping[str, int] | None = None,
                  *, with_state: bool = True) -> None:
    """One upsert for every changed dossier: its state (unless `with_state` is false), the figures' columns
    and what it adds to metrics_counts (the change of which goes to `recount`); never the apology's."""
    if not states:
        return
    values = []
    for dossier_id in sorted(states):
        state, row = states[dossier_id], rows[dossier_id]
        counted = recount.replace(row.counted, state, row.first_apology_at, shards[dossier_id])
        value = {"dossier_id": dossier_id, **figure_columns(state, counted), "counted": counted,
                 "counted_basis": None if counted is None else recount.basis}
        if with_state:
            value["state"] = None if state is None else state.to_json()
        if counts is not None:
            value["event_count"] = counts[dossier_id]
        values.append(value)
    stmt = dialect_insert(session, DOSSIERS)
    stmt = stmt.on_conflict_do_update(
        index_elements=["dossier_id"],
        set_={name: stmt.excluded[name] for name in values[0] if name != "dossier_id"})
    session.execute(stmt, values)


def fold_stateless_dossiers(session: Session, *, book: CalendarBook, basis: str | None = None,
                            limit: int = 500) -> int:
    """Fold, from their logs, up to `limit` dossiers that have a receipt stored but no state (rows made by
    the 0002 migration from an older store); returns how many. Run at start-up until it returns 0."""
    received = exists().where(EVENTS.c.dossier_id == DOSSIERS.c.dossier_id, EVENTS.c.type == RECEIVED)
    ids = list(session.execute(
        select(DOSSIERS.c.dossier_id).where(DOSSIERS.c.state.is_(None), received)
        .order_by(DOSSIERS.c.dossier_id).limit(limit)).scalars())
    if not ids:
        return 0
    rows = _lock_rows(session, ids)
    recount = Recount(book, basis or facts_basis(book))
    _write_states(session, {d: fold(log, book)[0] for d, log in _logs(session, ids).items()}, rows, recount,
                  dict.fromkeys(ids, STARTUP_SHARD))
    recount.write(session)
    return len(ids)


# -- kept counts at start-up ---------------------------------------------------------------------------
def count_dossiers(session: Session, *, book: CalendarBook, basis: str, after: str = "",
                   limit: int = 500) -> str | None:
    """Count again, from their stored states, up to `limit` dossiers (ids after `after`) whose `counted` was
    not counted on `basis` (rows from before the kept counts, or a calendar file that changed what a
    receipt or a close counts); returns the last id counted, or None when none is left: then
    metrics_counts_basis says `basis`, and the figures of current periods are read from the counts.

    Run at start-up, in chunks, until it returns None; the consumers may run meanwhile (a dossier they
    change is counted on `basis` by them: the same replacement, under the same locks)."""
    stale = or_(DOSSIERS.c.counted_basis.is_(None), DOSSIERS.c.counted_basis != basis)
    ids = list(session.execute(
        select(DOSSIERS.c.dossier_id)
        .where(DOSSIERS.c.dossier_id > after, DOSSIERS.c.state.is_not(None), stale)
        .order_by(DOSSIERS.c.dossier_id).limit(limit)).scalars())
    if ids:
        rows = _lock_rows(session, ids)
        recount = Recount(book, basis)
        states = {d: Dossier.from_json(rows[d].state) for d in ids if rows[d].state is not None}
        shards = {d: _kept_shard(rows[d], STARTUP_SHARD) for d in ids}
        _write_states(session, states, rows, recount, shards, with_state=False)
        recount.write(session)
    if len(ids) == limit:
        return ids[-1]
    stmt = dialect_insert(session, BASIS).values(name=COUNTS_BASIS, fingerprint=basis, counted_at=utcnow())
    session.execute(stmt.on_conflict_do_update(index_elements=["name"], set_={
        "fingerprint": stmt.excluded.fingerprint, "counted_at": stmt.excluded.counted_at}))
    return None


# -- apology events ------------------------------------------------------------------------------------
def apply_apology_events(session: Session, items: list[Received[Any]], *, book: CalendarBook,
                         basis: str | None = None) -> Stored:
    """Keep the first `apology.issued` instant per dossier (indices.md: the first apology); a dossier closed
    late whose first apology changes adds its close to metrics_counts again."""
    fresh = _new_items(session, CONSUMER_APOLOGY, items)
    first: dict[str, tuple[datetime, str, str]] = {}
    for item in fresh:
        event = item.event
        if event.type != "apology.issued":
            continue
        issued = (event.data.issued_at, event.data.apology_id, _shard(STREAM_APOLOGY, item))
        if event.dossier_id not in first or issued[0] < first[event.dossier_id][0]:
            first[event.dossier_id] = issued
    if first:
        ids = sorted(first)
        rows = _lock_rows(session, ids)
        recount = Recount(book, basis or facts_basis(book))
        values = []
        for dossier_id in ids:
            row, (issued_at, apology_id, apology_shard) = rows[dossier_id], first[dossier_id]
            if row.first_apology_at is not None and row.first_apology_at <= issued_at:
                continue  # an apology as early or earlier is already the first
            counted, basis = row.counted, None
            if row.state is not None:
                counted = recount.replace(row.counted, Dossier.from_json(row.state), issued_at,
                                          _kept_shard(row, apology_shard))
                basis = recount.basis
            values.append({"dossier_id": dossier_id, "event_count": 0, "first_apology_at": issued_at,
                           "first_apology_id": apology_id, "counted": counted, "counted_basis": basis})
        if values:  # in dossier order; a row made now holds only the apology (its events come later)
            stmt = dialect_insert(session, DOSSIERS)
            session.execute(stmt.on_conflict_do_update(index_elements=["dossier_id"], set_={
                name: stmt.excluded[name]
                for name in ("first_apology_at", "first_apology_id", "counted", "counted_basis")}), values)
        recount.write(session)
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

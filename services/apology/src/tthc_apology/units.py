"""Units of work of the apology service: `fn(session, ...) -> outcome`, each inside ONE transaction given by
the caller, and the only code that writes: processed events, letters, number counters, the outbox.

A batch of Kafka messages is one unit. It is grouped by dossier; each dossier's row is locked once (in
sorted order, so that the two consumers and an officer issuing a letter never deadlock and never
interleave on one dossier), its letters are loaded once, its events are applied in the order they came
(Kafka keeps one dossier's events in order), each changed row is written once, and every processed id is
recorded with one statement. No lock is shared by all dossiers: two replicas of the service in one
consumer group work side by side. SQLite needs no row lock: its transactions begin IMMEDIATE.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlmodel import Session
from tthc_common.batches import Received
from tthc_common.db import dialect_insert
from tthc_common.idempotency import mark_processed_many
from tthc_common.keys import KeyHolder
from tthc_common.outbox import add_many_to_outbox, outbox_values
from tthc_contracts.events import dossier_event_adapter
from tthc_contracts.timefmt import format_ts, to_vn, utcnow
from tthc_core.apology import ApologyLedger, Draft
from tthc_core.calendar import CalendarBook
from tthc_core.deadlines import receipt_winner

from .appointments import refusal
from .models import Apology, ApologyDossier
from .numbering import normalize_number, number_taken, take_next_number
from .queries import draft_of

DOSSIER_CONSUMER = "apology.dossier-events"
DEADLINE_CONSUMER = "apology.deadline-events"

# Ids per IN (...) list and rows per INSERT: far below SQLite's 32,766 bound parameters.
_CHUNK = 1000


@dataclass(frozen=True)
class Published:
    """An apology event written to the outbox, with the labels its metric needs."""

    type: str
    kind: str
    agency_code: str


@dataclass(frozen=True)
class Applied:
    """What a unit queued for publication: counted by the metrics once the transaction committed."""

    published: tuple[Published, ...] = ()


@dataclass(frozen=True)
class Issued(Applied):
    apology_id: str = ""


class IssueRefused(Exception):
    """An officer's issue request that changes nothing: `reason` for the JSON API, `vi` for the page
    (the same text where the officer must read it in both, as for the new appointment)."""

    def __init__(self, status: int, reason: str, vi: str, *, field: str | None = None,
                 proposed: datetime | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.vi = vi
        self.field = field
        self.proposed = proposed


# ---- one dossier's letters, loaded once per unit -----------------------------------------------------

class StoredReceipt(NamedTuple):
    """The kept receipt as `receipt_winner` compares it (no need to parse its JSON)."""

    occurred_at: datetime
    event_id: str
    type: str = "dossier.received"


@dataclass
class DossierLetters:
    dossier: ApologyDossier
    ledger: ApologyLedger
    rows: dict[str, Apology]
    events: list[Any] = field(default_factory=list)  # apology events to publish, in order
    _raw_extensions: list[Any] | None = None
    _extension_events: list[Any] | None = None
    _extensions_changed: bool = False

    def extension_events(self) -> list[Any]:
        if self._extension_events is None:
            self._extension_events = [dossier_event_adapter.validate_python(raw) for raw in self._raw()]
        return self._extension_events

    def _raw(self) -> list[Any]:
        if self._raw_extensions is None:
            self._raw_extensions = json.loads(self.dossier.extensions)
        return self._raw_extensions

    def changed_extensions(self) -> str | None:
        """The extensions' JSON to store, when this unit added one."""
        return json.dumps(self._raw(), ensure_ascii=False) if self._extensions_changed else None

    def add_extension(self, event: Any) -> None:
        self._raw().append(event.model_dump(mode="json"))
        self._extension_events = None
        self._extensions_changed = True
        self.events += self.ledger.on_extended(event)

    def apply_deadline_event(self, book: CalendarBook, event: Any) -> None:
        known = {d.apology_id for d in self.ledger.drafts}
        self.events += self.ledger.on_deadline_event(book, event)
        self.events += self._extensions_dated_after(event, known)

    def _extensions_dated_after(self, event: Any, known: set[str]) -> list[Any]:
        """The two topics are not ordered with each other: a deadline event may arrive after a
        dossier.extended that happened later than it. In event order the extension would have come
        second and cancelled what this event drafted, so apply it to those new drafts now (a derived
        moment at the same instant comes first, as in `tthc replay`)."""
        new_drafts = [d for d in self.ledger.drafts if d.apology_id not in known and d.status == "draft"]
        if not new_drafts:
            return []
        later = [e for e in self.extension_events() if e.occurred_at >= event.occurred_at]
        if not later:
            return []
        scope = ApologyLedger(self.ledger.dossier_id, drafts=new_drafts)  # shares the Draft objects
        return scope.on_extended(min(later, key=lambda e: (e.occurred_at, e.event_id)))

    def draft(self, apology_id: str) -> Draft:
        return next(d for d in self.ledger.drafts if d.apology_id == apology_id)


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start:start + _CHUNK]


def lock_dossiers(session: Session, dossier_ids: Iterable[str]) -> dict[str, ApologyDossier]:
    """The dossiers' rows, created on first sight and locked for the rest of the transaction, in sorted
    order (every unit locks that way: no deadlock between the consumers and the issuing officers)."""
    ids = sorted(set(dossier_ids))
    table = ApologyDossier.__table__  # type: ignore[attr-defined]
    found: dict[str, ApologyDossier] = {}
    for chunk in _chunks(ids):
        session.execute(dialect_insert(session, table).on_conflict_do_nothing(),
                        [{"dossier_id": d, "extensions": "[]"} for d in chunk])
        query = (select(ApologyDossier).where(ApologyDossier.dossier_id.in_(chunk))  # type: ignore[attr-defined]
                 .order_by(ApologyDossier.dossier_id).with_for_update())
        found.update((row.dossier_id, row) for row in session.scalars(query))
    return found


def load_letters(session: Session, dossiers: dict[str, ApologyDossier]) -> dict[str, DossierLetters]:
    """Each dossier's letters (locked dossiers only), with one query per chunk of dossiers."""
    rows: dict[str, list[Apology]] = {d: [] for d in dossiers}
    for chunk in _chunks(sorted(dossiers)):
        query = (select(Apology).where(Apology.dossier_id.in_(chunk))  # type: ignore[attr-defined]
                 .order_by(Apology.dossier_id, Apology.created_at, Apology.apology_id))
        for row in session.scalars(query):
            rows[row.dossier_id].append(row)
    return {
        dossier_id: DossierLetters(
            dossier=dossier,
            ledger=ApologyLedger(dossier_id, drafts=[draft_of(r) for r in rows[dossier_id]],
                                 apology_given_at=dossier.apology_given_at),
            rows={r.apology_id: r for r in rows[dossier_id]},
        )
        for dossier_id, dossier in dossiers.items()
    }


_PROGRESS = ("status", "cancel_reason", "number", "issued_at", "new_due_at", "reason")


def _new_row(draft: Draft) -> Apology:
    return Apology(apology_id=draft.apology_id, dossier_id=draft.dossier_id, kind=draft.kind, due_at=draft.due_at,
                   agency_code=draft.agency.code, agency_name=draft.agency.name,
                   proposed_due_at=draft.proposed_due_at, drafted_at=draft.drafted_at,
                   **{name: getattr(draft, name) for name in _PROGRESS})


def _copy_progress(row: Apology, draft: Draft) -> None:
    changed = False
    for name in _PROGRESS:
        value = getattr(draft, name)
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    if changed:
        row.updated_at = utcnow()


def save(session: Session, letters: Iterable[DossierLetters], apology_topic: str) -> tuple[Published, ...]:
    """Write what the domain created or changed (each row once, at the flush) and queue its events."""
    outbox: list[dict[str, Any]] = []
    published: list[Published] = []
    for item in letters:
        cancelled_at = {e.data.apology_id: e.occurred_at for e in item.events if e.type == "apology.cancelled"}
        for draft in item.ledger.drafts:
            row = item.rows.get(draft.apology_id)
            if row is None:
                row = item.rows[draft.apology_id] = _new_row(draft)
                session.add(row)
            else:
                _copy_progress(row, draft)
            if draft.apology_id in cancelled_at and row.cancelled_at is None:
                row.cancelled_at = cancelled_at[draft.apology_id]
        if item.dossier.apology_given_at != item.ledger.apology_given_at:
            item.dossier.apology_given_at = item.ledger.apology_given_at
        if (extensions := item.changed_extensions()) is not None:
            item.dossier.extensions = extensions
        for event in item.events:
            outbox.append(outbox_values(apology_topic, event))
            draft = item.draft(event.data.apology_id)
            published.append(Published(event.type, draft.kind, draft.agency.code))
    session.flush()  # a broken constraint surfaces here, inside the transaction
    add_many_to_outbox(session, outbox)
    return tuple(published)


# ---- batches of consumed events -----------------------------------------------------------------------

def _new_events(session: Session, consumer: str, items: list[Received[Any]]) -> list[Any]:
    """The batch's events not processed before, each once, in batch order; all recorded as processed."""
    events = [item.event for item in items]
    new = mark_processed_many(session, consumer, [(e.source, e.event_id) for e in events])
    fresh: list[Any] = []
    for event in events:
        key = (event.source, event.event_id)
        if key in new:
            new.discard(key)  # a second copy in the same batch is a redelivery too
            fresh.append(event)
    return fresh


def _by_dossier(events: list[Any]) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for event in events:
        grouped.setdefault(event.dossier_id, []).append(event)
    return grouped


def _keep_receipt(dossier: ApologyDossier, receipts: list[Any]) -> None:
    """The first dossier.received in event order is the receipt (`receipt_winner`, as the deadline fold)."""
    candidates: list[Any] = []
    if dossier.received_event is not None and dossier.received_occurred_at is not None:
        # first: on a tie the receipt already kept stays
        candidates.append(StoredReceipt(dossier.received_occurred_at, dossier.received_event_id or ""))
    candidates += receipts
    winner = receipt_winner(candidates)
    if isinstance(winner, StoredReceipt):
        return
    dossier.received_event = json.dumps(winner.model_dump(mode="json"), ensure_ascii=False)
    dossier.received_event_id = winner.event_id
    dossier.received_occurred_at = winner.occurred_at


def apply_dossier_events(session: Session, items: list[Received[Any]], *, apology_topic: str) -> Applied:
    """dossier.received (the receipt letters are written from) and dossier.extended (the apology was
    recorded by the one-stop software: the dossier's drafts are cancelled)."""
    by_dossier = _by_dossier(_new_events(session, DOSSIER_CONSUMER, items))
    if not by_dossier:
        return Applied()
    dossiers = lock_dossiers(session, by_dossier)
    extended = {d: dossiers[d] for d, events in by_dossier.items()
                if any(e.type == "dossier.extended" for e in events)}
    letters = load_letters(session, extended)
    for dossier_id, events in by_dossier.items():
        receipts = [e for e in events if e.type == "dossier.received"]
        if receipts:
            _keep_receipt(dossiers[dossier_id], receipts)
        for event in events:
            if event.type == "dossier.extended":
                letters[dossier_id].add_extension(event)
    return Applied(save(session, letters.values(), apology_topic))


def apply_deadline_events(session: Session, items: list[Received[Any]], *, book: CalendarBook,
                          apology_topic: str) -> Applied:
    """deadline.* -> drafts and cancellations (`ApologyLedger.on_deadline_event`)."""
    by_dossier = _by_dossier(_new_events(session, DEADLINE_CONSUMER, items))
    if not by_dossier:
        return Applied()
    letters = load_letters(session, lock_dossiers(session, by_dossier))
    for dossier_id, events in by_dossier.items():
        for event in events:
            letters[dossier_id].apply_deadline_event(book, event)
    return Applied(save(session, [letters[d] for d in by_dossier], apology_topic))


# ---- an officer issues a letter ------------------------------------------------------------------------

def issue_letter(session: Session, apology_id: str, officer: KeyHolder, *, reason: str, new_due_at: datetime,
                 number: str | None, now: datetime, book: CalendarBook, apology_topic: str) -> Issued:
    """Reason, new appointment and number -> `apology.issued`, once. Raises `IssueRefused` (404, 403, 409,
    422) and changes nothing then."""
    if not reason:
        raise IssueRefused(422, "must not be empty", "Cần nhập lý do chậm trễ.", field="reason")
    if number is not None and not number:
        raise IssueRefused(422, "must not be empty (leave it out to take the next number)",
                           "Số phiếu không được để trống (bỏ trống ô để lấy số tiếp theo).", field="number")
    found = session.execute(
        select(Apology.dossier_id, Apology.agency_code).where(Apology.apology_id == apology_id)
    ).first()
    if found is None:
        raise IssueRefused(404, "no such apology", "Không tìm thấy phiếu xin lỗi này.")
    dossier_id, agency_code = found
    if agency_code != officer.name:
        raise IssueRefused(403, "this apology belongs to another agency", "Phiếu này thuộc cơ quan khác.")

    # Locks the dossier: one issue at a time per dossier, never interleaved with its consumers.
    letters = load_letters(session, lock_dossiers(session, [dossier_id]))[dossier_id]
    row = letters.rows[apology_id]
    if row.status == "issued":
        raise IssueRefused(409, f"already issued as {row.number} at {format_ts(row.issued_at)}",
                           f"Phiếu đã được ban hành, số {row.number}.")
    if row.status == "cancelled":
        raise IssueRefused(409, f"the draft was cancelled: {row.cancel_reason}", "Dự thảo này đã bị hủy.")
    refused = refusal(book.for_agency(agency_code), new_due_at, now=now, missed_due_at=row.due_at)
    if refused is not None:
        raise IssueRefused(422, refused.reason, refused.reason, field="new_due_at", proposed=refused.proposed)

    year = to_vn(now).year
    if number is not None:
        number = normalize_number(number)
        if number_taken(session, agency_code, year, number):
            raise IssueRefused(409, f"number {number} is already used by agency {agency_code} in {year}",
                               f"Số {number} đã được dùng trong năm {year}.", field="number")
    else:
        number = take_next_number(session, agency_code, year)

    letters.events.append(letters.ledger.issue(apology_id, number, now, new_due_at, reason))
    row.number_year = year
    row.issued_by_key = officer.key_id
    return Issued(published=save(session, [letters], apology_topic), apology_id=apology_id)

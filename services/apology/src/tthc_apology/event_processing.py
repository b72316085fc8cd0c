"""What the apology service does with one consumed event, as one unit of work (`fn(session)`).

Each function writes the processed-event row, the state change and the outgoing apology events
(outbox) in the caller's transaction, and returns what it published (for the metrics, counted after
the commit). A message that can never be processed raises `PermanentError` (dead-lettered).
"""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session

from tthc_common.dead_letter import PermanentError
from tthc_common.idempotency import mark_processed
from tthc_contracts.derived import DEADLINE_EVENT_MODELS, deadline_event_adapter
from tthc_contracts.events import parse_dossier_event
from tthc_core.apology import ApologyLedger
from tthc_core.calendar import CalendarBook

from .ledger_store import LoadedLedger, Published, load_ledger, lock_dossier

DOSSIER_CONSUMER = "apology.dossier-events"
DEADLINE_CONSUMER = "apology.deadline-events"

# The dossier events that matter here; the others are acknowledged without being read further.
DOSSIER_TYPES = frozenset({"dossier.received", "dossier.extended"})
DEADLINE_TYPES = frozenset(m.model_fields["type"].default for m in DEADLINE_EVENT_MODELS)


def decode_object(body: bytes) -> dict[str, Any]:
    raw = json.loads(body)  # JSONDecodeError / UnicodeDecodeError: permanent
    if not isinstance(raw, dict):
        raise PermanentError("an event must be a JSON object")
    return raw


def event_type(raw: dict[str, Any]) -> str | None:
    value = raw.get("type")
    return value if isinstance(value, str) else None


def parse_dossier_message(body: bytes) -> Any | None:
    """The typed dossier event if it is one the apology service uses, else None."""
    raw = decode_object(body)
    if event_type(raw) not in DOSSIER_TYPES:
        return None
    return parse_dossier_event(raw)  # EventValidationError: permanent


def parse_deadline_message(body: bytes) -> Any | None:
    """The typed deadline event, or None for a type this version does not know (a newer producer)."""
    raw = decode_object(body)
    kind = event_type(raw)
    if kind is None:
        raise PermanentError("type: missing")
    if kind not in DEADLINE_TYPES:
        return None
    event = deadline_event_adapter.validate_python(raw)  # ValidationError: permanent
    if event.type == "deadline.overdue" and event.data.handling_agency is None and not event.data.extended:
        raise PermanentError("data.handling_agency: required to address an overdue apology")
    return event


# ---- dossier events ----------------------------------------------------------------------------

def apply_dossier_event(session: Session, event: Any, apology_topic: str) -> list[Published]:
    if not mark_processed(session, DOSSIER_CONSUMER, event.source, event.event_id):
        return []
    if event.type == "dossier.received":
        _keep_receipt(session, event)
        return []
    return _apply_extension(session, event, apology_topic)


def _keep_receipt(session: Session, event: Any) -> None:
    """The first dossier.received in event order wins, as in the deadline fold (events.md §7)."""
    dossier = lock_dossier(session, event.dossier_id)
    if dossier.received_event is not None and dossier.received_occurred_at is not None:
        if (dossier.received_occurred_at, dossier.received_event_id or "") <= (event.occurred_at, event.event_id):
            return
    dossier.received_event = json.dumps(event.model_dump(mode="json"), ensure_ascii=False)
    dossier.received_event_id = event.event_id
    dossier.received_occurred_at = event.occurred_at
    session.add(dossier)


def _apply_extension(session: Session, event: Any, apology_topic: str) -> list[Published]:
    loaded = load_ledger(session, event.dossier_id)
    extensions = json.loads(loaded.dossier.extensions)
    extensions.append(event.model_dump(mode="json"))
    loaded.dossier.extensions = json.dumps(extensions, ensure_ascii=False)
    session.add(loaded.dossier)
    events = loaded.ledger.on_extended(event)
    loaded.save(session, events, apology_topic)
    return loaded.published


# ---- deadline events ---------------------------------------------------------------------------

def apply_deadline_event(session: Session, event: Any, book: CalendarBook, apology_topic: str) -> list[Published]:
    if not mark_processed(session, DEADLINE_CONSUMER, event.source, event.event_id):
        return []
    loaded = load_ledger(session, event.dossier_id)
    known = {d.apology_id for d in loaded.ledger.drafts}
    events = loaded.ledger.on_deadline_event(book, event)
    events += _extensions_dated_after(loaded, event, known)
    loaded.save(session, events, apology_topic)
    return loaded.published


def _extensions_dated_after(loaded: LoadedLedger, event: Any, known: set[str]) -> list[Any]:
    """The two topics are not ordered with each other: a deadline event may arrive after a
    dossier.extended that happened later than it. In event order the extension would have come
    second and cancelled what this event drafted, so apply it to those new drafts now (a derived
    moment at the same instant comes first, as in `tthc replay`)."""
    later = [e for e in loaded.extension_events() if e.occurred_at >= event.occurred_at]
    new_drafts = [d for d in loaded.ledger.drafts if d.apology_id not in known and d.status == "draft"]
    if not later or not new_drafts:
        return []
    scope = ApologyLedger(loaded.ledger.dossier_id, drafts=new_drafts)  # shares the Draft objects
    return scope.on_extended(min(later, key=lambda e: (e.occurred_at, e.event_id)))

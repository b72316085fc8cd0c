"""Reading and writing accepted event ids (the duplicate check)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from .models import AcceptedEvent


def already_accepted(session: Session, source: str, event_ids: Iterable[str]) -> set[str]:
    ids = sorted(set(event_ids))
    if not ids:
        return set()
    query = select(AcceptedEvent.event_id).where(AcceptedEvent.source == source,  # type: ignore[arg-type]
                                                 AcceptedEvent.event_id.in_(ids))  # type: ignore[attr-defined]
    return set(session.scalars(query))


def record_accepted(session: Session, events: Sequence[Any]) -> None:
    """Insert the ids; a concurrent request that recorded one first is not an error."""
    if not events:
        return
    now = datetime.now(UTC)
    rows = [{"source": e.source, "event_id": e.event_id, "type": e.type, "dossier_id": e.dossier_id,
             "accepted_at": now} for e in events]
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(insert(AcceptedEvent).values(rows).on_conflict_do_nothing())

"""Reads: which events of a request were accepted before (the duplicate check)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, select
from sqlmodel import Session

from .models import AcceptedEvent


def already_accepted(session: Session, source: str, event_ids: Iterable[str]) -> set[str]:
    ids = sorted(set(event_ids))
    if not ids:
        return set()
    # An expanding IN: one compiled statement whatever the number of ids.
    query = select(AcceptedEvent.event_id).where(AcceptedEvent.source == source,  # type: ignore[arg-type]
                                                 AcceptedEvent.event_id.in_(bindparam("ids", expanding=True)))  # type: ignore[attr-defined]
    return set(session.scalars(query, {"ids": ids}))

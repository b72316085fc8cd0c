"""Units of work: recording the events Kafka acknowledged, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session
from tthc_common.db import dialect_insert
from tthc_contracts.timefmt import utcnow

from .models import AcceptedEvent


@dataclass(frozen=True)
class Recorded:
    rows: int


def record_accepted(session: Session, events: Sequence[Any]) -> Recorded:
    """Insert the `(source, event_id)` of `events`; one a concurrent request recorded first is not an error."""
    if not events:
        return Recorded(0)
    now = utcnow()
    rows = [{"source": e.source, "event_id": e.event_id, "type": e.type, "dossier_id": e.dossier_id,
             "accepted_at": now} for e in events]
    # executemany of one statement compiled once (a multi-row VALUES is compiled anew for every size)
    session.execute(dialect_insert(session, AcceptedEvent).on_conflict_do_nothing(), rows)
    return Recorded(len(rows))

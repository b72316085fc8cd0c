"""Units of work: recording what Kafka acknowledged, in the caller's transaction: the accepted event ids and,
for the national portal's progress bodies, the steps they brought."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from sqlmodel import Session
from tthc_common.db import dialect_insert
from tthc_contracts.dvcqg import ProgressStep
from tthc_contracts.timefmt import utcnow

from .models import AcceptedEvent, DvcqgProgressStep


@dataclass(frozen=True)
class Recorded:
    rows: int
    steps: int = 0


def record_accepted(session: Session, events: Sequence[Any], *, source: str = "",
                    steps: Mapping[str, Sequence[ProgressStep]] | None = None) -> Recorded:
    """Insert the `(source, event_id)` of `events`, and keep the progress `steps` of `source` by MaHoSo (the
    steps of a request are kept only with its events: the caller runs this once Kafka took them). A row a
    concurrent request recorded first is not an error."""
    now = utcnow()
    if events:
        rows = [{"source": e.source, "event_id": e.event_id, "type": e.type, "dossier_id": e.dossier_id,
                 "accepted_at": now} for e in events]
        # executemany of one statement compiled once (a multi-row VALUES is compiled anew for every size)
        session.execute(dialect_insert(session, AcceptedEvent).on_conflict_do_nothing(), rows)
    step_rows = [{"source": source, "dossier_id": dossier_id, "at": step.at.astimezone(UTC),
                  "status": step.status, "step": step.to_json(), "accepted_at": now, "position": position}
                 for dossier_id, kept in (steps or {}).items() for position, step in enumerate(kept)]
    if step_rows:
        session.execute(dialect_insert(session, DvcqgProgressStep).on_conflict_do_nothing(), step_rows)
    return Recorded(len(events), len(step_rows))

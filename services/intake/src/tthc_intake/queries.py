"""Reads: which events of a request were accepted before (the duplicate check), and the progress steps kept
for the dossiers of a national-portal progress body."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, select
from sqlmodel import Session
from tthc_contracts.dvcqg import ProgressStep

from .models import AcceptedEvent, DvcqgProgressStep


def already_accepted(session: Session, source: str, event_ids: Iterable[str]) -> set[str]:
    ids = sorted(set(event_ids))
    if not ids:
        return set()
    # An expanding IN: one compiled statement whatever the number of ids.
    query = select(AcceptedEvent.event_id).where(AcceptedEvent.source == source,  # type: ignore[arg-type]
                                                 AcceptedEvent.event_id.in_(bindparam("ids", expanding=True)))  # type: ignore[attr-defined]
    return set(session.scalars(query, {"ids": ids}))


def kept_steps(session: Session, source: str, dossier_ids: Iterable[str]) -> dict[str, list[ProgressStep]]:
    """{MaHoSo: its kept steps in order of ThoiDiemXuLy} for those of `dossier_ids` that have any."""
    ids = sorted(set(dossier_ids))
    if not ids:
        return {}
    table = DvcqgProgressStep
    query = (select(table.dossier_id, table.step)
             .where(table.source == source, table.dossier_id.in_(ids))  # type: ignore[arg-type,attr-defined]
             # steps of one instant in the order they came (translate sorts by instant, keeping that order)
             .order_by(table.dossier_id, table.at, table.accepted_at, table.position))  # type: ignore[arg-type]
    steps: dict[str, list[ProgressStep]] = {}
    for dossier_id, step in session.execute(query):
        steps.setdefault(dossier_id, []).append(ProgressStep.from_json(step))
    return steps

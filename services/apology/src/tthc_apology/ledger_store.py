"""Loading a dossier's `ApologyLedger` from the database and saving what the domain changed.

Every unit of work on a dossier first locks its `apology_dossiers` row (created on first sight), so
the dossier-events consumer, the deadline-events consumer and an officer issuing a letter never
interleave on one dossier. SQLite needs no row lock: its transactions begin IMMEDIATE (tthc_common.db).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from tthc_common.db import insert_ignoring_conflict
from tthc_common.outbox import add_to_outbox
from tthc_core.apology import ApologyLedger, Draft

from .models import Apology, ApologyDossier


def lock_dossier(session: Session, dossier_id: str) -> ApologyDossier:
    insert_ignoring_conflict(session, ApologyDossier, {"dossier_id": dossier_id, "extensions": "[]"})
    query = select(ApologyDossier).where(ApologyDossier.dossier_id == dossier_id).with_for_update()
    return session.scalars(query).one()


@dataclass(frozen=True)
class Published:
    """An apology event written to the outbox, with the labels its metric needs."""

    type: str
    kind: str
    agency_code: str


@dataclass
class LoadedLedger:
    dossier: ApologyDossier
    ledger: ApologyLedger
    rows: dict[str, Apology]
    published: list[Published] = field(default_factory=list)

    def extension_events(self) -> list[Any]:
        from tthc_contracts.events import dossier_event_adapter

        return [dossier_event_adapter.validate_python(raw) for raw in json.loads(self.dossier.extensions)]

    def draft(self, apology_id: str) -> Draft:
        return next(d for d in self.ledger.drafts if d.apology_id == apology_id)

    def save(self, session: Session, events: list[Any], topic: str) -> None:
        """Persist the drafts the domain created or changed, and queue its events (same transaction)."""
        for draft in self.ledger.drafts:
            row = self.rows.get(draft.apology_id)
            if row is None:
                row = Apology.from_draft(draft)
                session.add(row)
                self.rows[draft.apology_id] = row
            elif row.copy_progress(draft):
                session.add(row)
        if self.dossier.apology_given_at != self.ledger.apology_given_at:
            self.dossier.apology_given_at = self.ledger.apology_given_at
            session.add(self.dossier)
        for event in events:
            add_to_outbox(session, topic, event)
            draft = self.draft(event.data.apology_id)
            self.published.append(Published(event.type, draft.kind, draft.agency.code))
        session.flush()  # a broken constraint surfaces here, inside the transaction


def load_ledger(session: Session, dossier_id: str) -> LoadedLedger:
    dossier = lock_dossier(session, dossier_id)
    query = select(Apology).where(Apology.dossier_id == dossier_id).order_by(Apology.created_at, Apology.apology_id)
    rows = {row.apology_id: row for row in session.scalars(query)}
    ledger = ApologyLedger(
        dossier_id,
        drafts=[row.to_draft() for row in rows.values()],
        apology_given_at=dossier.apology_given_at,
    )
    return LoadedLedger(dossier, ledger, rows)

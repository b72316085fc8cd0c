"""Read side: the apologies an officer may see, and how they are shown (JSON and the inbox)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import case, select
from sqlmodel import Session

from tthc_contracts.timefmt import format_ts

from .documents import applicant_summary
from .models import Apology, ApologyDossier

Status = Literal["draft", "cancelled", "issued"]


@dataclass
class ApologyEntry:
    row: Apology
    dossier: ApologyDossier | None

    def view(self) -> dict[str, Any]:
        r = self.row
        return {
            "apology_id": r.apology_id,
            "dossier_id": r.dossier_id,
            "kind": r.kind,
            "status": r.status,
            "agency": r.agency_code,
            "agency_name": r.agency_name,
            "due_at": format_ts(r.due_at),
            "proposed_due_at": format_ts(r.proposed_due_at),
            "drafted_at": format_ts(r.drafted_at),
            "cancel_reason": r.cancel_reason,
            "number": r.number,
            "issued_at": format_ts(r.issued_at),
            "new_due_at": format_ts(r.new_due_at),
            "reason": r.reason,
            # the letter can be written once the dossier's receipt has arrived
            "letter_ready": self.dossier is not None and self.dossier.received_event is not None,
            **applicant_summary(self.dossier),
            "document_url": f"/v1/apologies/{r.apology_id}.docx",
            "pdf_url": f"/v1/apologies/{r.apology_id}.pdf",
        }


def list_entries(session: Session, agency_code: str, status: Status | None, *, offset: int,
                 limit: int, newest_issued_first: bool = False) -> list[ApologyEntry]:
    """Drafts first, then issued, then cancelled; within each the earliest due date (the most overdue)
    first. `newest_issued_first`: the latest issued first (the inbox's "recently issued" table)."""
    status_rank = case((Apology.status == "draft", 0), (Apology.status == "issued", 1), else_=2)
    query = (
        select(Apology, ApologyDossier)
        .join(ApologyDossier, ApologyDossier.dossier_id == Apology.dossier_id, isouter=True)
        .where(Apology.agency_code == agency_code)
    )
    if status is not None:
        query = query.where(Apology.status == status)
    if newest_issued_first:
        query = query.order_by(Apology.issued_at.desc(), Apology.apology_id)
    else:
        query = query.order_by(status_rank, Apology.due_at, Apology.dossier_id, Apology.kind)
    return [ApologyEntry(row, dossier) for row, dossier in session.execute(query.offset(offset).limit(limit))]


def get_entry(session: Session, apology_id: str) -> ApologyEntry | None:
    found = session.execute(
        select(Apology, ApologyDossier)
        .join(ApologyDossier, ApologyDossier.dossier_id == Apology.dossier_id, isouter=True)
        .where(Apology.apology_id == apology_id)
    ).first()
    return None if found is None else ApologyEntry(found[0], found[1])

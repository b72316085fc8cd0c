"""Reads for the HTTP API and the inbox: the letters an officer may see. Never write."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Select, case, func, select
from sqlmodel import Session
from tthc_contracts.events import Agency
from tthc_core.apology import Draft

from .models import Apology, ApologyDossier

Status = Literal["draft", "cancelled", "issued"]


def draft_of(row: Apology) -> Draft:
    """The stored letter as the domain's `Draft`."""
    return Draft(
        apology_id=row.apology_id,
        dossier_id=row.dossier_id,
        kind=row.kind,
        due_at=row.due_at,
        agency=Agency(code=row.agency_code, name=row.agency_name),
        proposed_due_at=row.proposed_due_at,
        status=row.status,  # type: ignore[arg-type]
        drafted_at=row.drafted_at,
        cancel_reason=row.cancel_reason,
        number=row.number,
        issued_at=row.issued_at,
        new_due_at=row.new_due_at,
        reason=row.reason,
    )


@dataclass(frozen=True)
class Applicant:
    """What the officer's list shows of a dossier's receipt (personal data: responses only, never logs)."""

    applicant_name: str | None = None
    procedure_name: str | None = None


def applicant_of(dossier: ApologyDossier | None) -> Applicant:
    if dossier is None or dossier.received_event is None:
        return Applicant()
    data = json.loads(dossier.received_event)["data"]
    return Applicant(applicant_name=data["applicant"]["name"], procedure_name=data["procedure"]["name"])


@dataclass(frozen=True)
class Entry:
    """A letter and its dossier's receipt row (None until a dossier event of it arrived)."""

    row: Apology
    dossier: ApologyDossier | None

    @property
    def letter_ready(self) -> bool:
        """The letter can be written once the dossier's receipt has arrived."""
        return self.dossier is not None and self.dossier.received_event is not None


def _with_dossier() -> Select[Any]:
    return select(Apology, ApologyDossier).join(
        ApologyDossier, ApologyDossier.dossier_id == Apology.dossier_id, isouter=True)


def _filtered(query: Select[Any], agency_code: str, status: Status | None, year: int | None) -> Select[Any]:
    query = query.where(Apology.agency_code == agency_code)
    if status is not None:
        query = query.where(Apology.status == status)
    if year is not None:
        query = query.where(Apology.number_year == year)
    return query


def list_entries(session: Session, agency_code: str, status: Status | None = None, *, year: int | None = None,
                 offset: int = 0, limit: int = 50, newest_issued_first: bool = False) -> list[Entry]:
    """Drafts first, then issued, then cancelled; within each the earliest due date (the most overdue)
    first. `year`: issued letters numbered in that year. `newest_issued_first`: the latest issued first."""
    query = _filtered(_with_dossier(), agency_code, status, year)
    if newest_issued_first:
        # issued_at is to the second; updated_at (the row's write, to the microsecond) breaks its ties
        query = query.order_by(Apology.issued_at.desc(), Apology.updated_at.desc(), Apology.apology_id)
    else:
        status_rank = case((Apology.status == "draft", 0), (Apology.status == "issued", 1), else_=2)
        query = query.order_by(status_rank, Apology.due_at, Apology.dossier_id, Apology.kind)
    return [Entry(row, dossier) for row, dossier in session.execute(query.offset(offset).limit(limit))]


def count_entries(session: Session, agency_code: str, status: Status | None = None, *,
                  year: int | None = None) -> int:
    query = _filtered(select(func.count()).select_from(Apology), agency_code, status, year)
    return int(session.execute(query).scalar_one())


def get_entry(session: Session, apology_id: str) -> Entry | None:
    found = session.execute(_with_dossier().where(Apology.apology_id == apology_id)).first()
    return None if found is None else Entry(found[0], found[1])


def dossier_entries(session: Session, dossier_id: str) -> list[Entry]:
    """Every letter of a dossier, in the order its story happened (drafted, then due date)."""
    query = _with_dossier().where(Apology.dossier_id == dossier_id).order_by(
        Apology.drafted_at, Apology.due_at, Apology.kind)
    return [Entry(row, dossier) for row, dossier in session.execute(query)]


def holding_agency(entries: list[Entry]) -> Agency | None:
    """The agency holding the dossier as its letters tell: the agency of its latest letter (each is
    addressed from the agency holding the dossier when it was drafted, the last transfer target)."""
    if not entries:
        return None
    latest = max(entries, key=lambda e: (e.row.drafted_at or e.row.due_at, e.row.due_at))
    return Agency(code=latest.row.agency_code, name=latest.row.agency_name)


def agency_name(session: Session, agency_code: str) -> str | None:
    """The agency's name as its latest letter carries it (the events name agencies; the keys only code them)."""
    query = (select(Apology.agency_name).where(Apology.agency_code == agency_code)
             .order_by(Apology.updated_at.desc()).limit(1))
    return session.execute(query).scalar_one_or_none()


def issued_years(session: Session, agency_code: str) -> list[tuple[int, int]]:
    """(year, letters issued) of an agency, the latest year first."""
    query = (select(Apology.number_year, func.count())
             .where(Apology.agency_code == agency_code, Apology.status == "issued",
                    Apology.number_year.is_not(None))  # type: ignore[union-attr]
             .group_by(Apology.number_year).order_by(Apology.number_year.desc()))  # type: ignore[union-attr]
    return [(int(year), int(n)) for year, n in session.execute(query)]

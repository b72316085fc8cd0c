"""What goes into an apology letter, from the dossier and its receipt (`spec/apology.md`).

The events carry no parent agency, place name or signer: the deployment may configure them
(`LetterDefaults`); otherwise they are read off the agency's name ("Sở Tư pháp tỉnh Lạng Sơn" →
"UBND TỈNH LẠNG SƠN", "Lạng Sơn"), which is how provincial agencies are named. The officer edits
the draft before signing it anyway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .apology import Draft
from .deadlines import Dossier
from .letter.render import LetterFields

_PLACE = re.compile(r"\b(tỉnh|thành phố|Thành phố|Tỉnh)\s+(.+)$")
DRAFT_REASON = "…………………………………………"


@dataclass(frozen=True)
class LetterDefaults:
    parent_agency: str | None = None
    place: str | None = None
    one_stop_unit_name: str = "Trung tâm Phục vụ hành chính công"
    signer_position: str = "THỦ TRƯỞNG CƠ QUAN"


def _place_of(agency_name: str) -> tuple[str | None, str | None]:
    m = _PLACE.search(agency_name)
    if not m:
        return None, None
    place = m.group(2).strip()
    kind = "TỈNH" if m.group(1).lower() == "tỉnh" else "THÀNH PHỐ"
    return f"UBND {kind} {place.upper()}", place


def letter_for_draft(
    draft: Draft,
    dossier: Dossier,
    received: Any,
    defaults: LetterDefaults = LetterDefaults(),
    reason: str | None = None,
    number: str | None = None,
    issued_on: Any = None,
    new_due_at: Any = None,
) -> LetterFields:
    parent, place = _place_of(draft.agency.name)
    applicant = received.data.applicant
    return LetterFields(
        parent_agency=defaults.parent_agency or parent or "",
        agency_name=draft.agency.name,
        agency_code=draft.agency.code,
        place=defaults.place or place or "…………",
        number=number or "…",
        issued_on=issued_on,
        applicant_kind=applicant.kind,
        applicant_name=applicant.name,
        dossier_id=draft.dossier_id,
        procedure_name=dossier.procedure_name,
        received_at=dossier.received_at,
        due_at=draft.due_at,
        reason=reason or DRAFT_REASON,
        new_due_at=new_due_at or draft.proposed_due_at,
        one_stop_unit_name=defaults.one_stop_unit_name,
        signer_position=defaults.signer_position,
    )

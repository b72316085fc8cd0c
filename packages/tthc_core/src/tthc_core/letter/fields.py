"""What an apology letter (Mẫu 04) says, as the apology service knows it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

ApplicantKind = Literal["citizen", "organization"]
APPLICANT_KINDS: frozenset[str] = frozenset({"citizen", "organization"})


@dataclass(frozen=True)
class LetterFields:
    parent_agency: str  # cơ quan chủ quản, printed upper case above the issuing agency
    agency_name: str  # the issuing (handling) agency, as written in running text
    agency_code: str  # identifies the agency (and its deployment template); not printed by the default
    place: str  # địa danh of the date line, e.g. "Hòa Bình"
    number: str  # số of the letter; "…" while it is a draft
    issued_on: date | None  # None for a draft: the date line gets dotted blanks
    applicant_kind: ApplicantKind
    applicant_name: str
    dossier_id: str
    procedure_name: str
    received_at: datetime
    due_at: datetime
    reason: str
    new_due_at: datetime
    one_stop_unit_name: str
    signer_position: str

    def __post_init__(self) -> None:
        if self.applicant_kind not in APPLICANT_KINDS:
            raise ValueError(f"applicant_kind must be one of {sorted(APPLICANT_KINDS)}: {self.applicant_kind!r}")
        for name in ("received_at", "due_at", "new_due_at"):
            value = getattr(self, name)
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError(f"{name} must be timezone-aware: {value!r}")
        if isinstance(self.issued_on, datetime):
            # a datetime is a date too; refuse it so a UTC timestamp cannot print the wrong day
            raise TypeError("issued_on must be a date, not a datetime")

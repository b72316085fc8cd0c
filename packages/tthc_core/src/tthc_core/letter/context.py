"""The values a letter template may use: the placeholders of every Mẫu 04 template."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, fields

from .fields import LetterFields
from .vn_format import nd30_date_parts, vn_appointment, vn_date

APPLICANT_TITLES = {"citizen": "Ông/Bà", "organization": "Tổ chức"}


@dataclass(frozen=True)
class LetterContext:
    """Display strings, one per placeholder; templates apply their own case (`|upper`)."""

    number: str
    place: str
    dd: str
    mm: str
    yyyy: str
    # The head and the signer may hold line breaks (ND 30 breaks a long agency name, and writes "KT." over
    # the position): docxtpl prints them as line breaks.
    parent_agency: str  # "" when the agency has no parent line
    issuing_agency: str
    agency_name: str
    agency_code: str
    applicant_title: str
    applicant_name: str
    dossier_id: str
    procedure_name: str
    received_on: str  # dd/mm/yyyy
    due_at: str  # hh giờ mm phút, ngày dd/mm/yyyy
    reason: str
    new_due_at: str  # hh giờ mm phút, ngày dd/mm/yyyy
    one_stop_unit_name: str
    signer_position: str

    def as_dict(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in _NAMES}  # flat strings: no need for asdict's deep copy


_NAMES = tuple(f.name for f in fields(LetterContext))
PLACEHOLDERS: frozenset[str] = frozenset(_NAMES)
# Without these a letter is not the apology ND 61/2018 Điều 19 khoản 9 asks for: who, which dossier,
# the missed appointment, why, and the new one; the number is how an issued letter is referred to.
REQUIRED_PLACEHOLDERS: frozenset[str] = frozenset(
    {"number", "applicant_name", "dossier_id", "due_at", "reason", "new_due_at"}
)


_LINE_BREAKS = re.compile(r"\s*[\r\n\t\v\f\x1c-\x1f\x85\u2028\u2029]+\s*")
_CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f]")  # Unicode's category Cc, all of it


def clean_text(text: str) -> str:
    """NFC (Word and fonts expect precomposed Vietnamese); one line, because a newline inside a run is
    not a line break in Word; no control characters, which make the document XML invalid. Ordinary
    spaces inside the text are kept as they are."""
    text = _LINE_BREAKS.sub(" ", unicodedata.normalize("NFC", text))
    return _CONTROL_CHARACTERS.sub("", text).strip()


def clean_lines(text: str) -> str:
    """`clean_text` of each line, the lines kept (empty ones dropped)."""
    lines = (clean_text(line) for line in unicodedata.normalize("NFC", text).splitlines())
    return "\n".join(line for line in lines if line)


def letter_context(f: LetterFields) -> LetterContext:
    dd, mm, yyyy = nd30_date_parts(f.issued_on)
    # The template already ends the "Lý do: …" sentence with a full stop.
    reason = clean_text(f.reason).rstrip(".").rstrip()
    return LetterContext(
        number=clean_text(f.number),
        place=clean_text(f.place),
        dd=dd,
        mm=mm,
        yyyy=yyyy,
        parent_agency=clean_lines(f.parent_agency),
        issuing_agency=clean_lines(f.issuing_agency),
        agency_name=clean_text(f.agency_name),
        agency_code=clean_text(f.agency_code),
        applicant_title=APPLICANT_TITLES[f.applicant_kind],
        applicant_name=clean_text(f.applicant_name),
        dossier_id=clean_text(f.dossier_id),
        procedure_name=clean_text(f.procedure_name),
        received_on=vn_date(f.received_at),
        due_at=vn_appointment(f.due_at),
        reason=reason,
        new_due_at=vn_appointment(f.new_due_at),
        one_stop_unit_name=clean_text(f.one_stop_unit_name),
        signer_position=clean_lines(f.signer_position),
    )

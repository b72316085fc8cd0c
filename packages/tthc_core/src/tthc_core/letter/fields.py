"""What goes into an apology letter (Mẫu 04), and where each part of it comes from (`spec/apology.md`).

`LetterFields` is what one letter says; `letter_for_draft` fills it from the draft, the dossier and its
receipt. The events carry no letter head, place name or signer. The deployment configures them per agency
(`LetterHeader`, in `LetterDefaults.agencies`) or for all agencies (`LetterDefaults`); what it leaves out is
read off the agency's name, the way agencies of a province are named, and written as Nghị định 30/2020
Phụ lục I writes a letter head: the direct parent agency on the first line (its common words may be
abbreviated: "UBND"), the issuing agency under it in bold, the place under neither twice:

    "Sở Tư pháp tỉnh Lạng Sơn"   -> "UBND TỈNH LẠNG SƠN" over "SỞ TƯ PHÁP", "Lạng Sơn", signed "GIÁM ĐỐC"
    "UBND xã Hữu Lũng"           -> no parent line, "ỦY BAN NHÂN DÂN" / "XÃ HỮU LŨNG", "Hữu Lũng",
                                    signed "TM. ỦY BAN NHÂN DÂN" / "CHỦ TỊCH"
    "Thuế tỉnh Lạng Sơn"         -> no parent line (not an agency of the province), "THUẾ TỈNH LẠNG SƠN"

The running text keeps the agency's full name ("Sở Tư pháp tỉnh Lạng Sơn tiếp nhận hồ sơ ..."). The officer
edits the draft before signing it anyway.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal, Mapping

if TYPE_CHECKING:
    from ..apology import Draft
    from ..deadlines import Dossier

ApplicantKind = Literal["citizen", "organization"]
APPLICANT_KINDS: frozenset[str] = frozenset({"citizen", "organization"})

# An issued letter's number carries its symbol ("01/PXL", or whatever the officer typed); a draft has none
# yet and prints the blank of the form.
NUMBER_SYMBOL = "/PXL"
DRAFT_NUMBER = "…" + NUMBER_SYMBOL
DRAFT_REASON = "…………………………………………"
BLANK_PLACE = "…………"


@dataclass(frozen=True)
class LetterFields:
    parent_agency: str  # cơ quan chủ quản trực tiếp, first header line (printed upper case); "" for none
    issuing_agency: str  # the issuing agency as the header names it, under the parent (upper case, bold);
    # the head lines and the signer may hold line breaks ("Ủy ban nhân dân\nxã Hữu Lũng")
    agency_name: str  # the issuing (handling) agency's full name, as the running text writes it
    agency_code: str  # identifies the agency (and its deployment template); not printed by the default
    place: str  # địa danh of the date line, e.g. "Lạng Sơn"
    number: str  # số, printed as given: "01/PXL" once issued, `DRAFT_NUMBER` for a draft
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
    signer_position: str  # one line per line of the signature block: "KT. GIÁM ĐỐC\nPHÓ GIÁM ĐỐC"

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


@dataclass(frozen=True)
class LetterHeader:
    """How one agency heads and signs its letters. None: the deployment's default, else read off the name.

    `parent_agency=""` prints no parent line (an agency with no parent, such as a People's Committee).
    """

    parent_agency: str | None = None  # e.g. "UBND TỈNH LẠNG SƠN"
    issuing_agency: str | None = None  # e.g. "SỞ TƯ PHÁP"
    place: str | None = None  # e.g. "Lạng Sơn"
    signer_position: str | None = None  # e.g. "GIÁM ĐỐC", or "KT. GIÁM ĐỐC\nPHÓ GIÁM ĐỐC"
    one_stop_unit_name: str | None = None  # the "Nơi nhận" line, e.g. "Trung tâm Phục vụ hành chính công tỉnh"


@dataclass(frozen=True)
class LetterDefaults:
    """The deployment's letter settings: for every agency, then per agency code (which wins)."""

    parent_agency: str | None = None
    place: str | None = None
    one_stop_unit_name: str | None = None
    signer_position: str | None = None
    agencies: Mapping[str, LetterHeader] = field(default_factory=dict)

    def header_for(self, agency_code: str, agency_name: str) -> LetterHeader:
        """Every line of the agency's letter head, from its own settings, the deployment's, or its name."""
        own = self.agencies.get(agency_code, LetterHeader())
        derived = derive_header(agency_name)

        def pick(name: str) -> str:
            for source in (own, self, derived):
                value = getattr(source, name, None)
                if value is not None:
                    return value
            raise AssertionError(name)  # derive_header fills every line

        parent = pick("parent_agency")
        issuing = own.issuing_agency
        if issuing is None:
            # The short name ("Sở Tư pháp") only under a parent line, which then names the province.
            issuing = _nfc(agency_name) if derived.parent_agency and not parent else derived.issuing_agency
        return LetterHeader(parent, issuing, pick("place"), pick("signer_position"), pick("one_stop_unit_name"))


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


# The administrative unit at the end of an agency's name: "... tỉnh Lạng Sơn", "UBND xã Hữu Lũng".
_UNIT = re.compile(r"(?:^|\s)(tỉnh|thành phố|đặc khu|thị xã|thị trấn|xã|phường|huyện|quận)\s+(\S.*)$",
                   re.IGNORECASE)
_PEOPLES_COMMITTEE = re.compile(r"^(?:UBND|Ủy ban nhân dân|Uỷ ban nhân dân)\s+", re.IGNORECASE)
# Agencies of a province or commune (their direct parent is its People's Committee), by the first words of
# their name, with the title of their head. Other agencies (tax, police, social insurance, branches of
# ministries) belong to a ministry: no parent line is guessed for them.
_UNDER_PEOPLES_COMMITTEE = (
    ("Sở ", "GIÁM ĐỐC"),
    ("Ban ", "TRƯỞNG BAN"),
    ("Thanh tra ", "CHÁNH THANH TRA"),
    ("Văn phòng ", "CHÁNH VĂN PHÒNG"),
    ("Trung tâm ", "GIÁM ĐỐC"),
    ("Phòng ", "TRƯỞNG PHÒNG"),
)
_HEAD_OF = (("Chi cục ", "CHI CỤC TRƯỞNG"), ("Cục ", "CỤC TRƯỞNG"), ("Chi nhánh ", "GIÁM ĐỐC"),
            ("Công an ", "GIÁM ĐỐC"), ("Bảo hiểm xã hội ", "GIÁM ĐỐC"))
_GENERIC_SIGNER = "THỦ TRƯỞNG CƠ QUAN"
_ONE_STOP = "Trung tâm Phục vụ hành chính công"


def _place_name(unit: str, name: str) -> str:
    # ND 30 Phụ lục I: a place named after a person is written with its unit in full.
    return f"Thành phố {name}" if unit.lower() == "thành phố" and name == "Hồ Chí Minh" else name


@functools.lru_cache(maxsize=4096)  # a province has a few hundred agencies, each with thousands of letters
def derive_header(agency_name: str) -> LetterHeader:
    """The letter head read off an agency's name (see the module's docstring); every line filled."""
    name = _nfc(agency_name)
    unit_match = _UNIT.search(name)
    unit = unit_match.group(1).lower() if unit_match else None
    place = _place_name(unit, unit_match.group(2).strip()) if unit_match else BLANK_PLACE
    one_stop = f"{_ONE_STOP} {unit} {unit_match.group(2).strip()}" if unit_match else _ONE_STOP
    if _PEOPLES_COMMITTEE.match(name):
        full = _PEOPLES_COMMITTEE.sub("Ủy ban nhân dân\n", name)  # ND 30 writes the unit on a line of its own
        return LetterHeader("", full, place, "TM. ỦY BAN NHÂN DÂN\nCHỦ TỊCH", one_stop)
    for prefix, head in _UNDER_PEOPLES_COMMITTEE:
        if name.lower().startswith(prefix.lower()) and unit_match:
            short = name[:unit_match.start()].strip()
            return LetterHeader(f"UBND {unit.upper()} {unit_match.group(2).strip().upper()}", short, place, head,
                                one_stop)
    head = next((h for prefix, h in _UNDER_PEOPLES_COMMITTEE + _HEAD_OF if name.lower().startswith(prefix.lower())),
                _GENERIC_SIGNER)
    return LetterHeader("", name, place, head, one_stop)


def letter_for_draft(
    draft: Draft,
    dossier: Dossier,
    received: Any,
    defaults: LetterDefaults = LetterDefaults(),
    reason: str | None = None,
    number: str | None = None,
    issued_on: date | None = None,
    new_due_at: datetime | None = None,
) -> LetterFields:
    """The letter of `draft`; with `number`, `issued_on`, `reason` and `new_due_at` once it is issued."""
    header = defaults.header_for(draft.agency.code, draft.agency.name)
    applicant = received.data.applicant
    return LetterFields(
        parent_agency=header.parent_agency or "",
        issuing_agency=header.issuing_agency or draft.agency.name,
        agency_name=draft.agency.name,
        agency_code=draft.agency.code,
        place=header.place or BLANK_PLACE,
        number=number or DRAFT_NUMBER,
        issued_on=issued_on,
        applicant_kind=applicant.kind,
        applicant_name=applicant.name,
        dossier_id=draft.dossier_id,
        procedure_name=dossier.procedure_name,
        received_at=dossier.received_at,
        due_at=draft.due_at,
        reason=reason or DRAFT_REASON,
        new_due_at=new_due_at or draft.proposed_due_at,
        one_stop_unit_name=header.one_stop_unit_name or _ONE_STOP,
        signer_position=header.signer_position or _GENERIC_SIGNER,
    )


# A letter with every kind of trouble a name can bring: what the template check renders, and what a
# compiled template renders once to learn which parts of the package never change.
SAMPLE_FIELDS = LetterFields(
    parent_agency="UBND tỉnh Mẫu",
    issuing_agency="Sở Mẫu & Thử <nghiệm>",
    agency_name="Sở Mẫu & Thử <nghiệm> tỉnh Mẫu",
    agency_code="000.00.00.H00",
    place="Mẫu",
    number="01" + NUMBER_SYMBOL,
    issued_on=date(2026, 2, 5),
    applicant_kind="organization",
    applicant_name='Công ty "Mẫu"',
    dossier_id="000.00.00.H00-260205-0001",
    procedure_name="Thủ tục mẫu",
    received_at=datetime.fromisoformat("2026-01-20T08:00:00+07:00"),
    due_at=datetime.fromisoformat("2026-02-05T16:30:00+07:00"),
    reason="Lý do mẫu",
    new_due_at=datetime.fromisoformat("2026-02-09T16:30:00+07:00"),
    one_stop_unit_name="Bộ phận Một cửa mẫu",
    signer_position="KT. GIÁM ĐỐC\nPHÓ GIÁM ĐỐC",
)

"""Settings of the apology service (environment prefix `APOLOGY_`)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from tthc_common.settings import ServiceSettings, service_settings_config

OFFICER_KEYS_SETTING = "APOLOGY_OFFICER_KEYS"


class AgencyLetterHead(BaseModel):
    """How one agency heads and signs its letters (Mẫu 04; ND 30/2020 Phụ lục I). Left out: derived from the
    agency's name ("Sở Tư pháp tỉnh Lạng Sơn" → "UBND TỈNH LẠNG SƠN" over "SỞ TƯ PHÁP", signed "GIÁM ĐỐC")."""

    model_config = ConfigDict(extra="forbid")

    parent_agency: str | None = Field(default=None, max_length=200,
                                      description='e.g. "UBND TỈNH LẠNG SƠN"; "" for no parent line')
    issuing_agency: str | None = Field(default=None, max_length=200, description='e.g. "SỞ TƯ PHÁP"')
    place: str | None = Field(default=None, max_length=100, description='the date line\'s place, e.g. "Lạng Sơn"')
    signer_position: str | None = Field(default=None, max_length=200,
                                        description='e.g. "GIÁM ĐỐC", or "KT. GIÁM ĐỐC\\nPHÓ GIÁM ĐỐC"')
    one_stop_unit_name: str | None = Field(default=None, max_length=200,
                                           description="the one-stop unit of the \"Nơi nhận\" list")


class ApologySettings(ServiceSettings):
    model_config = service_settings_config("APOLOGY_")
    service_name: ClassVar[str] = "apology"
    http_port: int = 8003

    # Rendered letters (DOCX, PDF previews) are cached here; they can always be rendered again.
    documents_dir: Path = Path("var/apologies")
    # Same file as the deadline service's: proposed appointments and the officers' new appointments are
    # counted and checked on the agency's calendar.
    calendar_file: Path | None = None
    # `<agency code>=sha256:<64 hex>,...` (tthc_common.keys; `python -m tthc_apology hash-key KEY`).
    # Empty: nobody can use the HTTP API or the inbox. Parsed when the app is built (a malformed value
    # refuses the start with one line naming the entry).
    officer_keys: str = ""
    # `<templates_dir>/<agency_code>.docx` replaces the bundled Mẫu 04 for that agency.
    templates_dir: Path | None = None

    # What the events do not carry; empty means "read it off the agency's name" (tthc_core.letter.fields):
    # for every agency, then per agency code in `APOLOGY_LETTER_HEADS`, a JSON object
    # {"000.00.12.H10": {"parent_agency": "UBND TỈNH LẠNG SƠN", "issuing_agency": "SỞ TƯ PHÁP",
    #                     "signer_position": "GIÁM ĐỐC"}, ...} (AgencyLetterHead), which wins.
    letter_parent_agency: str | None = None
    letter_place: str | None = None
    letter_one_stop_unit_name: str | None = None
    letter_signer_position: str | None = None
    letter_heads: dict[str, AgencyLetterHead] = Field(default_factory=dict)

    # LibreOffice is slow and memory-hungry: a few conversions at a time, each with a time limit.
    pdf_timeout_s: float = 60.0
    pdf_concurrency: int = 2

    @field_validator("calendar_file", "templates_dir", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

"""An officer issues a draft: reason, new appointment, number -> `apology.issued` (once)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlmodel import Session

from tthc_contracts.timefmt import format_ts, to_vn

from .ledger_store import Published, load_ledger
from .models import Apology
from .numbering import MAX_NUMBER_CHARS, normalize_number, number_taken, take_next_number
from .officer_keys import Officer


def _clean(text: str) -> str:
    return unicodedata.normalize("NFC", text).strip()


CleanText = Annotated[str, AfterValidator(_clean)]


class IssueRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[CleanText, Field(max_length=2000)]
    new_due_at: AwareDatetime
    number: Annotated[CleanText | None, Field(default=None, max_length=MAX_NUMBER_CHARS)] = None


class IssueRefused(Exception):
    """`detail` for the JSON API, `vi` for the officer's page."""

    def __init__(self, status_code: int, detail: str, vi: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.vi = vi


@dataclass
class IssueResult:
    row: Apology
    published: list[Published]


def validate_request(request: IssueRequest) -> None:
    if not request.reason:
        raise IssueRefused(422, "reason: must not be empty", "Cần nhập lý do chậm trễ.")
    if request.number is not None and not request.number:
        raise IssueRefused(422, "number: must not be empty (leave it out to take the next number)",
                           "Số phiếu không được để trống (bỏ trống ô để lấy số tiếp theo).")


def issue(session: Session, apology_id: str, officer: Officer, request: IssueRequest, now: datetime,
          apology_topic: str) -> IssueResult:
    """One transaction. Raises `IssueRefused` (404/403/409/422) and changes nothing then."""
    validate_request(request)
    found = session.execute(
        select(Apology.dossier_id, Apology.agency_code).where(Apology.apology_id == apology_id)
    ).first()
    if found is None:
        raise IssueRefused(404, "no such apology", "Không tìm thấy phiếu xin lỗi này.")
    dossier_id, agency_code = found
    if agency_code != officer.agency_code:
        raise IssueRefused(403, "this apology belongs to another agency", "Phiếu này thuộc cơ quan khác.")

    loaded = load_ledger(session, dossier_id)  # locks the dossier: one issue at a time per dossier
    row = loaded.rows[apology_id]
    if row.status == "issued":
        raise IssueRefused(409, f"already issued as {row.number} at {format_ts(row.issued_at)}",
                           f"Phiếu đã được ban hành, số {row.number}.")
    if row.status == "cancelled":
        raise IssueRefused(409, f"the draft was cancelled: {row.cancel_reason}", "Dự thảo này đã bị hủy.")
    if request.new_due_at <= row.due_at:
        raise IssueRefused(422, f"new_due_at: must be later than the missed appointment {format_ts(row.due_at)}",
                           f"Ngày hẹn lại phải sau thời hạn đã lỡ ({to_vn(row.due_at):%H:%M %d/%m/%Y}).")

    year = to_vn(now).year
    if request.number is not None:
        number = normalize_number(request.number)
        if number_taken(session, agency_code, year, number):
            raise IssueRefused(409, f"number {number} is already used by agency {agency_code} in {year}",
                               f"Số {number} đã được dùng trong năm {year}.")
    else:
        number = take_next_number(session, agency_code, year)

    event = loaded.ledger.issue(apology_id, number, now, request.new_due_at, request.reason)
    row.number_year = year
    row.issued_by_key = officer.key_id
    loaded.save(session, [event], apology_topic)
    return IssueResult(row=row, published=loaded.published)


"""The JSON API (interfaces.md): list, read, download, issue. An officer key is bound to one agency: its
officers see and act on that agency's letters only, and on every letter of a dossier it holds.

Every refusal has the one error shape (`tthc_common.errors`); every route documents its answers in the
OpenAPI document (`/docs`, `/openapi.json`).

No `from __future__ import annotations` here: FastAPI reads the routes' annotations, some of which are
local to `router()`.
"""

import logging
import unicodedata
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Annotated, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Security
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from tthc_adapters.pdf import PdfConversionError
from tthc_common.db import run_in_transaction
from tthc_common.errors import ApiError, Page, PageRequest, error_responses, page_request, require_json
from tthc_common.keys import KeyHolder
from tthc_contracts.events import Agency
from tthc_contracts.timefmt import format_ts, now_vn

from . import queries, units
from .auth import COOKIE_NAME
from .documents import LetterNotReady, PdfUnavailable, download_name
from .numbering import MAX_NUMBER_CHARS
from .queries import Entry, Status

if TYPE_CHECKING:
    from pathlib import Path

    from .app import Deps

logger = logging.getLogger("tthc.apology.http")

DOCX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
NOT_READY = ("the dossier's receipt (dossier.received) has not arrived yet, so the letter cannot be written; "
             "try again later")
PDF_FAILED = "LibreOffice could not convert the letter to PDF just now; download the DOCX instead"
NO_PDF = ("PDF preview needs LibreOffice (soffice), which is not installed on this server; download the DOCX "
          "instead")
NO_KEY = "a valid officer key is required (Authorization: Bearer <key>)"
# Request bodies (an issue request, the inbox's forms) are a few kilobytes of text at most: anything larger is
# refused (413) before it is read.
MAX_BODY_BYTES = 64 * 1024

# Identifiers are at most 64 characters (events.md) and printable: anything else names nothing.
Identifier = Annotated[str, PathParam(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]


# ---- request and response bodies -------------------------------------------------------------------------

def _clean(text: str) -> str:
    text = unicodedata.normalize("NFC", text).strip()
    if any(unicodedata.category(c) == "Cc" and c not in "\n\r\t" for c in text):
        raise ValueError("must not contain control characters")
    return text


def _one_line(text: str) -> str:
    if any(c in text for c in "\n\r\t"):
        raise ValueError("must be one line")
    return text


class IssueRequest(BaseModel):
    """What the officer decides when issuing a draft."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"reason": "Hồ sơ cần xác minh thêm tại UBND xã", "new_due_at": "2027-03-16T17:00:00+07:00"},
        {"reason": "Chờ ý kiến của Sở Tài chính", "new_due_at": "2027-03-18T10:30:00+07:00", "number": "15"},
    ]})

    # The length is checked on the text as sent (before trimming), so the refusal reads "String should have at
    # most 2000 characters", not pydantic's "Value should have at most 2000 items after validation".
    reason: Annotated[str, Field(max_length=2000, description="why the result is late (printed in the letter); "
                                                              "NFC, trimmed, not empty"), AfterValidator(_clean)]
    new_due_at: Annotated[AwareDatetime, Field(description=(
        "the new appointment, RFC 3339 with an offset: after the issuing instant and the missed due date, "
        "inside the agency's office time on its working calendar (an interval's end, e.g. 17:00, counts); "
        "otherwise 422 with the nearest acceptable instant in the reason"))]
    number: Annotated[str, Field(max_length=MAX_NUMBER_CHARS), AfterValidator(_clean),
                      AfterValidator(_one_line)] | None = Field(
        default=None, description=("the letter's number; digits (\"7\") become \"07/PXL\"; left out: the agency's "
                                   "next number of the year. A number already used this year is refused (409)"))


class ApologyView(BaseModel):
    """One letter: a draft, a cancelled draft or an issued letter. Timestamps RFC 3339 in +07:00."""

    apology_id: str
    dossier_id: str
    kind: Literal["at_risk", "overdue", "late_result"]
    status: Literal["draft", "cancelled", "issued"]
    agency: str = Field(description="code of the agency the letter is addressed from")
    agency_name: str
    due_at: str = Field(description="the missed (or about to be missed) appointment")
    proposed_due_at: str = Field(description="the new appointment proposed in the draft")
    drafted_at: str | None = Field(description="event time of the trigger")
    cancel_reason: str | None
    cancelled_at: str | None = Field(description="event time of the cancellation")
    number: str | None = Field(description="e.g. 01/PXL, once issued")
    issued_at: str | None
    new_due_at: str | None = Field(description="the appointment promised in the issued letter")
    reason: str | None
    letter_ready: bool = Field(description="false until the dossier's receipt arrived (the letter needs it)")
    applicant_name: str | None
    procedure_name: str | None
    document_url: str
    pdf_url: str


class DossierLetters(BaseModel):
    """Every letter of a dossier, in the order its story happened."""

    dossier_id: str
    holding_agency: Agency = Field(description="the agency holding the dossier, as its latest letter says")
    applicant_name: str | None
    procedure_name: str | None
    items: list[ApologyView]


def view(entry: Entry) -> ApologyView:
    r = entry.row
    applicant = queries.applicant_of(entry.dossier)
    return ApologyView(
        apology_id=r.apology_id, dossier_id=r.dossier_id, kind=r.kind, status=r.status,  # type: ignore[arg-type]
        agency=r.agency_code, agency_name=r.agency_name, due_at=format_ts(r.due_at) or "",
        proposed_due_at=format_ts(r.proposed_due_at) or "", drafted_at=format_ts(r.drafted_at),
        cancel_reason=r.cancel_reason, cancelled_at=format_ts(r.cancelled_at), number=r.number,
        issued_at=format_ts(r.issued_at), new_due_at=format_ts(r.new_due_at), reason=r.reason,
        letter_ready=entry.letter_ready, applicant_name=applicant.applicant_name,
        procedure_name=applicant.procedure_name,
        document_url=f"/v1/apologies/{r.apology_id}.docx", pdf_url=f"/v1/apologies/{r.apology_id}.pdf",
    )


# ---- what the API and the inbox share -------------------------------------------------------------------

def not_found() -> ApiError:
    return ApiError(404, "no such apology")


def other_agency() -> ApiError:
    return ApiError(403, "this apology belongs to another agency")


async def entry_for(deps: "Deps", apology_id: str, officer: KeyHolder) -> Entry:
    entry = await run_in_transaction(deps.engine, partial(queries.get_entry, apology_id=apology_id))
    if entry is None:
        raise not_found()
    if entry.row.agency_code != officer.name:
        raise other_agency()
    return entry


async def dossier_letters(deps: "Deps", dossier_id: str, officer: KeyHolder) -> tuple[Agency, list[Entry]]:
    """The dossier's letters, for an officer of the agency holding it (404 without letters, 403 otherwise)."""
    entries = await run_in_transaction(deps.engine, partial(queries.dossier_entries, dossier_id=dossier_id))
    holder = queries.holding_agency(entries)
    if holder is None:
        raise ApiError(404, "no letter for this dossier")
    if holder.code != officer.name:
        raise ApiError(403, "the dossier is held by another agency")
    return holder, entries


async def issue(deps: "Deps", apology_id: str, officer: KeyHolder, *, reason: str, new_due_at: datetime,
                number: str | None) -> units.Issued:
    """Issue in one transaction, then count it and wake the relay. Raises `units.IssueRefused`."""
    try:
        issued = await run_in_transaction(deps.engine, partial(
            units.issue_letter, apology_id=apology_id, officer=officer, reason=reason, new_due_at=new_due_at,
            number=number, now=now_vn(), book=deps.book, apology_topic=deps.topics.apology_events))
    except IntegrityError:
        # The unique (agency, year, number) constraint: someone took this number a moment ago.
        raise units.IssueRefused(409, "the number was taken by another letter just now; try again",
                                 "Số này vừa được một phiếu khác dùng; hãy thử lại.", field="number") from None
    deps.after([issued])
    return issued


async def docx_of(deps: "Deps", entry: Entry) -> "Path":
    try:
        return await anyio.to_thread.run_sync(deps.letters.docx, entry.row, entry.dossier)
    except LetterNotReady:
        raise ApiError(409, NOT_READY) from None


async def pdf_of(deps: "Deps", entry: Entry) -> "Path":
    path = await docx_of(deps, entry)
    try:
        return await deps.letters.pdf(path)
    except PdfUnavailable:
        raise ApiError(501, NO_PDF) from None
    except PdfConversionError:
        logger.warning("PDF conversion failed", exc_info=True)
        raise ApiError(503, PDF_FAILED) from None


# ---- routes -----------------------------------------------------------------------------------------------

_BEARER = HTTPBearer(auto_error=False, scheme_name="officerKey",
                     description="An officer key, bound to one agency (APOLOGY_OFFICER_KEYS holds its digest)")
_COOKIE = APIKeyCookie(name=COOKIE_NAME, auto_error=False, scheme_name="inboxCookie",
                       description="Set by the officers' page (/inbox) at login, so its links work in a browser")
_FILE = {"content": {DOCX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
         "description": "the letter as an editable Word file"}
_PDF = {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
        "description": "the letter converted by LibreOffice"}


def router(deps: "Deps") -> APIRouter:
    api = APIRouter(tags=["apologies"])

    def _officer(key: str | None) -> KeyHolder:
        officer = deps.keys.identify(key)
        if officer is None:
            raise ApiError(401, NO_KEY, headers={"WWW-Authenticate": "Bearer"})
        return officer

    def any_officer(credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)],
                    cookie: Annotated[str | None, Security(_COOKIE)]) -> KeyHolder:
        """The bearer key, else the inbox's cookie (so the page's download links work in a browser)."""
        return _officer(credentials.credentials if credentials is not None else cookie)

    def bearer_officer(credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)]) -> KeyHolder:
        """Issuing takes the bearer key only: a cookie could be sent by another site's form."""
        return _officer(credentials.credentials if credentials is not None else None)

    Officer = Annotated[KeyHolder, Depends(any_officer)]

    @api.get("/v1/apologies", response_model=Page[ApologyView], responses=error_responses(401, 403, 422),
             summary="The letters of the officer's agency")
    async def list_apologies(
        officer: Officer,
        paging: Annotated[PageRequest, Depends(page_request)],
        agency: Annotated[str | None, Query(max_length=64, description="agency code; only the officer's own")] = None,
        status: Annotated[Status | None, Query(description="draft, cancelled or issued")] = None,
        year: Annotated[int | None, Query(ge=2000, le=9999, description="issued letters numbered in this year")] = None,
    ) -> Page[ApologyView]:
        """Drafts first (the most overdue first), then issued, then cancelled letters."""
        agency = agency or officer.name
        if agency != officer.name:
            raise ApiError(403, "officers see the apologies of their own agency only", field="agency")
        entries, total = await run_in_transaction(deps.engine, lambda session: (
            queries.list_entries(session, agency, status, year=year, offset=paging.offset, limit=paging.page_size),
            queries.count_entries(session, agency, status, year=year)))
        return Page[ApologyView](items=[view(e) for e in entries], page=paging.page, page_size=paging.page_size,
                                 total=total)

    @api.get("/v1/apologies/{apology_id}.docx", response_class=FileResponse, summary="The letter (DOCX)",
             responses={200: _FILE, **error_responses(401, 403, 404, 409, 422)})
    async def get_docx(apology_id: Identifier, officer: Officer) -> FileResponse:
        """Rendered from the dossier's receipt; 409 until that receipt arrived. An issued letter is named
        after its number (`01-PXL-<dossier>.docx`)."""
        entry = await entry_for(deps, apology_id, officer)
        path = await docx_of(deps, entry)
        return FileResponse(path, media_type=DOCX_MEDIA_TYPE, filename=download_name(entry.row, ".docx"))

    @api.get("/v1/apologies/{apology_id}.pdf", response_class=FileResponse, summary="The letter (PDF)",
             responses={200: _PDF, **error_responses(401, 403, 404, 409, 422, 501, 503)})
    async def get_pdf(apology_id: Identifier, officer: Officer) -> FileResponse:
        """The DOCX converted by LibreOffice (501 when it is not installed on the server)."""
        entry = await entry_for(deps, apology_id, officer)
        path = await pdf_of(deps, entry)
        return FileResponse(path, media_type="application/pdf", filename=download_name(entry.row, ".pdf"))

    @api.get("/v1/apologies/{apology_id}", response_model=ApologyView, summary="One letter",
             responses=error_responses(401, 403, 404, 422))
    async def get_apology(apology_id: Identifier, officer: Officer) -> ApologyView:
        return view(await entry_for(deps, apology_id, officer))

    @api.post("/v1/apologies/{apology_id}/issue", response_model=ApologyView, summary="Issue a draft",
              responses=error_responses(401, 403, 404, 409, 413, 415, 422))
    async def issue_apology(apology_id: Identifier, body: IssueRequest,
                            officer: Annotated[KeyHolder, Depends(bearer_officer)],
                            _json: Annotated[None, Depends(require_json)]) -> ApologyView:
        """Gives the draft its number (NN/PXL, per agency and year) and publishes `apology.issued`, once:
        409 when it was already issued or cancelled, or the number is taken."""
        try:
            await issue(deps, apology_id, officer, reason=body.reason, new_due_at=body.new_due_at,
                        number=body.number)
        except units.IssueRefused as refused:
            raise ApiError(refused.status, refused.reason, field=refused.field) from None
        return view(await entry_for(deps, apology_id, officer))

    @api.get("/v1/dossiers/{dossier_id}/apologies", response_model=DossierLetters,
             summary="Every letter of a dossier", responses=error_responses(401, 403, 404, 422))
    async def get_dossier_letters(dossier_id: Identifier, officer: Officer) -> DossierLetters:
        """Drafts, cancelled drafts (with the reason) and issued letters of a dossier, for an officer of
        the agency holding it (the agency of its latest letter)."""
        holder, entries = await dossier_letters(deps, dossier_id, officer)
        applicant = queries.applicant_of(entries[-1].dossier)
        return DossierLetters(dossier_id=dossier_id, holding_agency=holder,
                              applicant_name=applicant.applicant_name, procedure_name=applicant.procedure_name,
                              items=[view(e) for e in entries])

    return api

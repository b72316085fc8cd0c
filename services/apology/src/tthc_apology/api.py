"""HTTP API (interfaces.md): list, documents, issue. Officers see and act on their own agency only."""

from __future__ import annotations

import logging
from functools import partial
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse

from tthc_common.db import run_in_transaction

from .auth import require_officer
from tthc_adapters.pdf import PdfConversionError

from .documents import LetterNotReady, PdfUnavailable
from .issuing import IssueRefused, IssueRequest
from .officer_keys import Officer
from .queries import ApologyEntry, Status, get_entry, list_entries
from .runtime import runtime_of

DOCX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
NOT_READY = "the dossier's receipt (dossier.received) has not arrived yet, so the letter cannot be written; try again later"
PDF_FAILED = "LibreOffice could not convert the letter to PDF just now; download the DOCX instead"
NO_PDF = "PDF preview needs LibreOffice (soffice), which is not installed on this server; download the DOCX instead"


def officer_any(request: Request) -> Officer:
    """Bearer key, or the inbox cookie (so the inbox's download links work in a browser)."""
    return require_officer(request, runtime_of(request).keys, allow_cookie=True)


def officer_bearer(request: Request) -> Officer:
    return require_officer(request, runtime_of(request).keys, allow_cookie=False)


AnyOfficer = Annotated[Officer, Depends(officer_any)]
BearerOfficer = Annotated[Officer, Depends(officer_bearer)]

router = APIRouter(tags=["apologies"])
logger = logging.getLogger("tthc.apology.api")


async def entry_for(request: Request, apology_id: str, officer: Officer) -> ApologyEntry:
    rt = runtime_of(request)
    entry = await run_in_transaction(rt.engine, partial(get_entry, apology_id=apology_id))
    if entry is None:
        raise HTTPException(404, "no such apology")
    if entry.row.agency_code != officer.agency_code:
        raise HTTPException(403, "this apology belongs to another agency")
    return entry


@router.get("/v1/apologies")
async def list_apologies(
    request: Request,
    officer: AnyOfficer,
    agency: str | None = None,
    status: Status | None = None,
    page: Annotated[int, Query(ge=1)] = 1,
) -> dict[str, Any]:
    agency = agency or officer.agency_code
    if agency != officer.agency_code:
        raise HTTPException(403, "officers see the apologies of their own agency only")
    rt = runtime_of(request)
    size = rt.settings.page_size
    entries = await run_in_transaction(
        rt.engine, partial(list_entries, agency_code=agency, status=status, offset=(page - 1) * size, limit=size + 1))
    return {
        "agency": agency,
        "status": status,
        "page": page,
        "next_page": page + 1 if len(entries) > size else None,
        "items": [e.view() for e in entries[:size]],
    }


async def docx_of(request: Request, entry: ApologyEntry) -> Any:
    try:
        return await anyio.to_thread.run_sync(runtime_of(request).letters.docx, entry.row, entry.dossier)
    except LetterNotReady:
        raise HTTPException(409, NOT_READY) from None


def download_name(entry: ApologyEntry, suffix: str) -> str:
    return f"phieu-xin-loi-{entry.row.dossier_id}-{entry.row.kind}{suffix}"


@router.get("/v1/apologies/{apology_id}.docx", response_class=FileResponse)
async def get_docx(request: Request, apology_id: str, officer: AnyOfficer) -> FileResponse:
    entry = await entry_for(request, apology_id, officer)
    path = await docx_of(request, entry)
    return FileResponse(path, media_type=DOCX_MEDIA_TYPE, filename=download_name(entry, ".docx"))


@router.get("/v1/apologies/{apology_id}.pdf", response_class=FileResponse)
async def get_pdf(request: Request, apology_id: str, officer: AnyOfficer) -> Any:
    entry = await entry_for(request, apology_id, officer)
    letters = runtime_of(request).letters
    path = await docx_of(request, entry)
    try:
        pdf = await letters.pdf(path)
    except PdfUnavailable:
        return JSONResponse({"detail": NO_PDF}, status_code=501)
    except PdfConversionError:
        logger.warning("PDF conversion failed", exc_info=True)
        return JSONResponse({"detail": PDF_FAILED}, status_code=503)
    return FileResponse(pdf, media_type="application/pdf", filename=download_name(entry, ".pdf"))


@router.get("/v1/apologies/{apology_id}")
async def get_apology(request: Request, apology_id: str, officer: AnyOfficer) -> dict[str, Any]:
    return (await entry_for(request, apology_id, officer)).view()


@router.post("/v1/apologies/{apology_id}/issue")
async def issue_apology(request: Request, apology_id: str, body: IssueRequest,
                        officer: BearerOfficer) -> dict[str, Any]:
    rt = runtime_of(request)
    try:
        await rt.issue(apology_id, officer, body)
    except IssueRefused as refused:
        raise HTTPException(refused.status_code, refused.detail) from None
    entry = await run_in_transaction(rt.engine, partial(get_entry, apology_id=apology_id))
    assert entry is not None
    return entry.view()

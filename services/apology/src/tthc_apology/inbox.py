"""`GET /inbox`: the agency's apology drafts as a small server-rendered Vietnamese page (no JavaScript).

The key comes as a bearer header, a `key` query parameter (then moved into an HttpOnly, SameSite=Strict
cookie and taken out of the address bar by a redirect) or that cookie. Issuing is a plain form POST;
SameSite=Strict plus an Origin check keeps other sites from posting it with the officer's cookie.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, StrictUndefined
from pydantic import ValidationError

from tthc_common.db import run_in_transaction
from tthc_contracts.timefmt import VN_TZ, to_vn

from .auth import COOKIE_NAME, officer_from
from .issuing import IssueRefused, IssueRequest
from .officer_keys import Officer
from .queries import ApologyEntry, get_entry, list_entries
from .runtime import runtime_of

KIND_LABELS = {
    "at_risk": "Sắp trễ hạn",
    "overdue": "Đã quá hạn",
    "late_result": "Trả kết quả trễ hạn",
}
STATUS_LABELS = {"draft": "Dự thảo", "issued": "Đã ban hành", "cancelled": "Đã hủy"}
MAX_FORM_BYTES = 16_384
ISSUED_SHOWN = 50

_environment = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _template(name: str) -> Any:
    text = resources.files(__package__).joinpath("templates", name).read_text(encoding="utf-8")
    return _environment.from_string(text)


def vn_datetime(ts: datetime | None) -> str:
    return "" if ts is None else f"{to_vn(ts):%H:%M %d/%m/%Y}"


def local_input(ts: datetime | None) -> str:
    """Value of an <input type="datetime-local">, in Vietnam time."""
    return "" if ts is None else f"{to_vn(ts):%Y-%m-%dT%H:%M}"


def _row(entry: ApologyEntry, now: datetime) -> dict[str, Any]:
    view = entry.view()
    r = entry.row
    return {
        **view,
        "kind_label": KIND_LABELS.get(r.kind, r.kind),
        "status_label": STATUS_LABELS.get(r.status, r.status),
        "due_text": vn_datetime(r.due_at),
        "past_due": r.due_at <= now,
        "proposed_text": vn_datetime(r.proposed_due_at),
        "proposed_input": local_input(r.proposed_due_at),
        "issued_text": vn_datetime(r.issued_at),
        "new_due_text": vn_datetime(r.new_due_at),
    }


def _page(officer: Officer, drafts: list[ApologyEntry], issued: list[ApologyEntry], *, notice: str | None = None,
          error: str | None = None, form: dict[str, str] | None = None, form_for: str | None = None) -> str:
    now = datetime.now(VN_TZ)
    draft_rows = [_row(e, now) for e in drafts]
    # Overdue first: past their due date before those still ahead, each by due date.
    draft_rows.sort(key=lambda row: (not row["past_due"], row["due_at"]))
    return _template("inbox.html").render(
        agency=officer.agency_code,
        drafts=draft_rows,
        issued=[_row(e, now) for e in issued],
        notice=notice,
        error=error,
        form=form or {},
        form_for=form_for,
    )


def _login_page(message: str | None) -> str:
    return _template("login.html").render(message=message)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


def _parse_local(text: str) -> datetime:
    ts = datetime.fromisoformat(text.strip())
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=VN_TZ)


def inbox_router() -> APIRouter:
    router = APIRouter(tags=["inbox"], include_in_schema=False)

    async def render(request: Request, officer: Officer, status_code: int = 200, **kwargs: Any) -> HTMLResponse:
        rt = runtime_of(request)
        drafts = await run_in_transaction(rt.engine, partial(
            list_entries, agency_code=officer.agency_code, status="draft", offset=0, limit=1000))
        issued = await run_in_transaction(rt.engine, partial(
            list_entries, agency_code=officer.agency_code, status="issued", offset=0, limit=ISSUED_SHOWN,
            newest_issued_first=True))
        return HTMLResponse(_page(officer, drafts, issued, **kwargs), status_code=status_code)

    def with_cookie(response: Response, request: Request, key: str) -> Response:
        response.set_cookie(COOKIE_NAME, key, httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https")
        return response

    @router.get("/inbox", response_class=HTMLResponse)
    async def inbox(request: Request, key: str | None = None, issued: str | None = None) -> Response:
        rt = runtime_of(request)
        if key is not None:
            # As the login form's Origin check: a link on another site must not log the officer in with
            # that site's key. Fetch metadata: typed or bookmarked ("none") or from this page only.
            if request.headers.get("sec-fetch-site", "none") not in ("none", "same-origin"):
                return HTMLResponse(_login_page("Yêu cầu không xuất phát từ trang này."), status_code=403)
            officer = rt.keys.identify(key)
            if officer is None:
                return HTMLResponse(_login_page("Khóa truy cập không đúng."), status_code=401)
            # Keep the key out of the address bar, the history and access logs from now on.
            return with_cookie(RedirectResponse("/inbox", status_code=303), request, key)
        officer = officer_from(request, rt.keys, allow_cookie=True)
        if officer is None:
            return HTMLResponse(_login_page(None), status_code=401)
        notice = None
        if issued:
            entry = await run_in_transaction(rt.engine, partial(get_entry, apology_id=issued))
            if entry is not None and entry.row.agency_code == officer.agency_code and entry.row.number:
                notice = f"Đã ban hành phiếu số {entry.row.number} (hồ sơ {entry.row.dossier_id})."
        return await render(request, officer, notice=notice)

    @router.post("/inbox/login")
    async def login(request: Request) -> Response:
        if not _same_origin(request):  # another site must not log the officer in with its own key
            return HTMLResponse(_login_page("Yêu cầu không xuất phát từ trang này."), status_code=403)
        form = await _form(request)
        key = form.get("key", "").strip()
        if runtime_of(request).keys.identify(key) is None:
            return HTMLResponse(_login_page("Khóa truy cập không đúng."), status_code=401)
        return with_cookie(RedirectResponse("/inbox", status_code=303), request, key)

    @router.post("/inbox/logout")
    async def logout() -> Response:
        response = RedirectResponse("/inbox", status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/")
        return response

    @router.post("/inbox/apologies/{apology_id}/issue")
    async def issue_from_form(request: Request, apology_id: str) -> Response:
        rt = runtime_of(request)
        officer = officer_from(request, rt.keys, allow_cookie=True)
        if officer is None:
            return HTMLResponse(_login_page(None), status_code=401)
        if not _same_origin(request):
            return HTMLResponse(_login_page("Yêu cầu không xuất phát từ trang này."), status_code=403)
        form = await _form(request)
        try:
            body = IssueRequest(
                reason=form.get("reason", ""),
                new_due_at=_parse_local(form.get("new_due_at", "")),
                number=form.get("number", "").strip() or None,
            )
            await rt.issue(apology_id, officer, body)
        except (ValueError, ValidationError):
            return await render(request, officer, 422, form=form, form_for=apology_id,
                                error="Cần nhập lý do và ngày giờ hẹn lại hợp lệ.")
        except IssueRefused as refused:
            return await render(request, officer, refused.status_code, form=form, form_for=apology_id,
                                error=_refusal_text(refused))
        return RedirectResponse(f"/inbox?issued={apology_id}", status_code=303)

    return router


def _refusal_text(refused: IssueRefused) -> str:
    return f"Không ban hành được: {refused.vi}"

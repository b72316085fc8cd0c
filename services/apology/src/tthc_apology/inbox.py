"""The officers' inbox: small server-rendered Vietnamese pages, no JavaScript, usable on a phone.

- `GET /inbox`: the agency (by name) and its drafts, past-due first, each with its letter (DOCX, PDF) and
  a form to issue it; then the register of letters issued in a year, with their numbers.
- `GET /inbox/dossiers/{dossier_id}`: every letter of a dossier (drafts, cancelled ones with the reason,
  issued ones), for an officer of the agency holding it: the story of a late dossier on one page.

Dates read `dd/mm/yyyy HH:MM` (24 h) everywhere; the new appointment is typed the same way and parsed
strictly here, so day and month cannot swap as with a browser's date picker that follows its locale.

The key comes as a bearer header, a `key` query parameter (then moved into an HttpOnly, SameSite=Strict
cookie and taken out of the address bar by a redirect) or that cookie. Issuing is a plain form POST;
SameSite=Strict plus an Origin check keeps other sites from posting it with the officer's cookie.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined
from pydantic import ValidationError
from tthc_common.db import run_in_transaction
from tthc_common.errors import ApiError
from tthc_common.keys import KeyHolder
from tthc_contracts.timefmt import VN_TZ, now_vn, to_vn

from . import http, queries, units
from .appointments import vn_datetime
from .auth import COOKIE_NAME, officer_from
from .documents import download_name
from .queries import Entry

if TYPE_CHECKING:
    from .app import Deps

KIND_LABELS = {
    "at_risk": "Xin lỗi trước hạn (sắp trễ hạn)",
    "overdue": "Xin lỗi khi đã trễ hạn",
    "late_result": "Xin lỗi khi trả kết quả trễ hạn",
}
STATUS_LABELS = {"draft": "Dự thảo, chưa ban hành", "issued": "Đã ban hành", "cancelled": "Đã hủy"}
# The domain's reasons (tthc_core.apology) as an officer reads them.
CANCEL_REASONS = {
    "the dossier closed early": "Hồ sơ đã được giải quyết trước hạn.",
    "the dossier closed on time": "Hồ sơ đã được giải quyết đúng hạn.",
    "the due date moved": "Thời hạn giải quyết đã thay đổi (bổ sung hồ sơ, tạm dừng hoặc thay đổi lịch "
                          "làm việc), nên phiếu soạn cho thời hạn cũ không còn cần.",
    "the apology was recorded with the extension": "Phần mềm một cửa đã ghi nhận việc xin lỗi và gia hạn "
                                                   "(chỉ được xin lỗi, hẹn lại một lần).",
}
FORM_FIELDS = {"reason": "Lý do chậm trễ", "new_due_at": "Hẹn lại ngày trả kết quả", "number": "Số phiếu"}
DATE_HINT = "ngày/tháng/năm giờ:phút, 24 giờ, ví dụ 16/03/2026 17:00"
MAX_FORM_BYTES = 16_384
MAX_LISTED = 1000
_VN_INPUT = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{4})\s+(\d{1,2}):(\d{2})\s*$")
_ID = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")

_environment = Environment(loader=PackageLoader(__package__, "templates"), autoescape=True,
                           undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _template(name: str) -> Any:
    return _environment.get_template(name)


def vn_text(ts: datetime | None) -> str:
    return "" if ts is None else vn_datetime(ts)


def parse_vn_datetime(text: str) -> datetime:
    """`16/03/2026 17:00` (day first, 24 h) in Vietnam time; ValueError for anything else."""
    match = _VN_INPUT.match(text)
    if match is None:
        raise ValueError(text)
    day, month, year, hour, minute = map(int, match.groups())
    return datetime(year, month, day, hour, minute, tzinfo=VN_TZ)  # ValueError: 31/02, 24:00, 12:60


# ---- what a page shows of a letter ---------------------------------------------------------------------

def deadline_state(entry: Entry, now: datetime) -> tuple[str, bool]:
    """What happened to the dossier's due date, in words that never contradict the letter's kind."""
    r = entry.row
    if r.kind == "late_result":
        return "Đã trả kết quả, trễ hạn", True
    if r.due_at <= now:
        if r.kind == "at_risk" and r.status == "draft":
            return "Đã quá hạn: phiếu soạn trước hạn nhưng chưa ban hành", True
        return "Đã quá hạn", True
    return "Chưa đến hạn", False


def letter_view(entry: Entry, now: datetime) -> dict[str, Any]:
    r = entry.row
    applicant = queries.applicant_of(entry.dossier)
    state, past_due = deadline_state(entry, now)
    return {
        "apology_id": r.apology_id,
        "dossier_id": r.dossier_id,
        "dossier_url": f"/inbox/dossiers/{quote(r.dossier_id, safe='')}",
        "applicant_name": applicant.applicant_name,
        "procedure_name": applicant.procedure_name,
        "agency_name": r.agency_name,
        "kind_label": KIND_LABELS.get(r.kind, r.kind),
        "status": r.status,
        "status_label": STATUS_LABELS.get(r.status, r.status),
        "due_text": vn_text(r.due_at),
        "past_due": past_due,
        "state_label": state,
        "proposed_text": vn_text(r.proposed_due_at),
        "drafted_text": vn_text(r.drafted_at),
        "cancelled_text": vn_text(r.cancelled_at),
        "cancel_reason": CANCEL_REASONS.get(r.cancel_reason or "", r.cancel_reason or ""),
        "number": r.number,
        "issued_text": vn_text(r.issued_at),
        "new_due_text": vn_text(r.new_due_at),
        "reason": r.reason,
        "letter_ready": entry.letter_ready,
        "docx_url": f"/v1/apologies/{r.apology_id}.docx",
        "pdf_url": f"/v1/apologies/{r.apology_id}.pdf",
        "docx_name": download_name(r, ".docx"),
        "pdf_name": download_name(r, ".pdf"),
    }


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


def _form_problem(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        name = str(error["loc"][0]) if error["loc"] else ""
        label = FORM_FIELDS.get(name, name)
        if error["type"] == "string_too_long":
            problems.append(f"{label}: quá dài (tối đa {error['ctx']['max_length']} ký tự).")
        else:
            problems.append(f"{label}: không hợp lệ (có ký tự điều khiển hoặc nhiều dòng).")
    return " ".join(problems)


def _year(text: str | None) -> int | None:
    if text is None or not (text.isascii() and text.isdigit()):
        return None
    return int(text) if 2000 <= int(text) <= 9999 else None


def router(deps: Deps) -> APIRouter:
    inbox = APIRouter(tags=["inbox"], include_in_schema=False)

    def officer_of(request: Request) -> KeyHolder | None:
        return officer_from(deps.keys, authorization=request.headers.get("authorization"),
                            cookie=request.cookies.get(COOKIE_NAME))

    def with_cookie(response: Response, request: Request, key: str) -> Response:
        response.set_cookie(COOKIE_NAME, key, httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https")
        return response

    async def render(officer: KeyHolder, *, year: int | None = None, status_code: int = 200,
                     notice: str | None = None, error: str | None = None, form: dict[str, str] | None = None,
                     form_for: str | None = None) -> HTMLResponse:
        code = officer.name

        def read(session: Any) -> dict[str, Any]:
            years = queries.issued_years(session, code)
            shown = year or (years[0][0] if years else to_vn(now_vn()).year)
            return {
                "agency_name": queries.agency_name(session, code) or code,
                "drafts": queries.list_entries(session, code, "draft", limit=MAX_LISTED),
                "years": years,
                "year": shown,
                "issued": queries.list_entries(session, code, "issued", year=shown, limit=MAX_LISTED,
                                               newest_issued_first=True),
            }

        data = await run_in_transaction(deps.engine, read)
        now = now_vn()
        drafts = [letter_view(e, now) for e in data["drafts"]]
        # Past their due date first, then those still ahead; each by due date.
        drafts.sort(key=lambda row: not row["past_due"])
        html = _template("inbox.html").render(
            agency={"code": code, "name": data["agency_name"]}, drafts=drafts,
            issued=[letter_view(e, now) for e in data["issued"]], years=data["years"], year=data["year"],
            issued_count=dict(data["years"]).get(data["year"], 0), notice=notice, error=error, form=form or {},
            form_for=form_for, date_hint=DATE_HINT)
        return HTMLResponse(html, status_code=status_code)

    @inbox.get("/inbox", response_class=HTMLResponse)
    async def inbox_page(request: Request, key: str | None = None, issued: str | None = None,
                         year: str | None = None) -> Response:
        if key is not None:
            # As the login form's Origin check: a link on another site must not log the officer in with
            # that site's key. Fetch metadata: typed or bookmarked ("none") or from this page only.
            if request.headers.get("sec-fetch-site", "none") not in ("none", "same-origin"):
                return HTMLResponse(_login_page("Yêu cầu không xuất phát từ trang này."), status_code=403)
            if deps.keys.identify(key) is None:
                return HTMLResponse(_login_page("Khóa truy cập không đúng."), status_code=401)
            # Keep the key out of the address bar, the history and access logs from now on.
            return with_cookie(RedirectResponse("/inbox", status_code=303), request, key)
        officer = officer_of(request)
        if officer is None:
            return HTMLResponse(_login_page(None), status_code=401)
        notice = None
        if issued and _ID.match(issued):
            entry = await run_in_transaction(deps.engine, partial(queries.get_entry, apology_id=issued))
            if entry is not None and entry.row.agency_code == officer.name and entry.row.number:
                notice = f"Đã ban hành phiếu số {entry.row.number} (hồ sơ {entry.row.dossier_id})."
        return await render(officer, year=_year(year), notice=notice)

    @inbox.get("/inbox/dossiers/{dossier_id}", response_class=HTMLResponse)
    async def dossier_page(request: Request, dossier_id: str) -> Response:
        officer = officer_of(request)
        if officer is None:
            return HTMLResponse(_login_page(None), status_code=401)
        if not _ID.match(dossier_id):
            return HTMLResponse(_message_page("Không có phiếu xin lỗi nào của hồ sơ này."), status_code=404)
        try:
            holder, entries = await http.dossier_letters(deps, dossier_id, officer)
        except ApiError as refused:
            message = ("Hồ sơ này do cơ quan khác đang giữ: chỉ cán bộ của cơ quan đó xem được các phiếu."
                       if refused.status == 403 else "Không có phiếu xin lỗi nào của hồ sơ này.")
            return HTMLResponse(_message_page(message), status_code=refused.status)
        now = now_vn()
        applicant = queries.applicant_of(entries[-1].dossier)
        html = _template("dossier.html").render(
            dossier_id=dossier_id, holder=holder, applicant=applicant,
            letters=[letter_view(e, now) for e in entries])
        return HTMLResponse(html)

    @inbox.post("/inbox/login")
    async def login(request: Request) -> Response:
        if not _same_origin(request):  # another site must not log the officer in with its own key
            return HTMLResponse(_login_page("Yêu cầu không xuất phát từ trang này."), status_code=403)
        form = await _form(request)
        key = form.get("key", "").strip()
        if deps.keys.identify(key) is None:
            return HTMLResponse(_login_page("Khóa truy cập không đúng."), status_code=401)
        return with_cookie(RedirectResponse("/inbox", status_code=303), request, key)

    @inbox.post("/inbox/logout")
    async def logout() -> Response:
        response = RedirectResponse("/inbox", status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/")
        return response

    @inbox.post("/inbox/apologies/{apology_id}/issue")
    async def issue_from_form(request: Request, apology_id: str) -> Response:
        officer = officer_of(request)
        if officer is None:
            return HTMLResponse(_login_page(None), status_code=401)
        if not _same_origin(request):
            return HTMLResponse(_login_page("Yêu cầu không xuất phát từ trang này."), status_code=403)
        form = await _form(request)

        async def refuse(status: int, error: str) -> Response:
            return await render(officer, status_code=status, form=form, form_for=apology_id,
                                error=f"Không ban hành được: {error}")

        if not _ID.match(apology_id):
            return await refuse(404, "Không tìm thấy phiếu xin lỗi này.")
        try:
            new_due_at = parse_vn_datetime(form.get("new_due_at", ""))
        except ValueError:
            return await refuse(422, f"Hẹn lại ngày trả kết quả phải viết theo dạng {DATE_HINT}.")
        try:
            body = http.IssueRequest(reason=form.get("reason", ""), new_due_at=new_due_at,
                                     number=form.get("number", "").strip() or None)
        except ValidationError as exc:
            return await refuse(422, _form_problem(exc))
        try:
            await http.issue(deps, apology_id, officer, reason=body.reason, new_due_at=body.new_due_at,
                             number=body.number)
        except units.IssueRefused as refused:
            return await refuse(refused.status, refused.vi)
        return RedirectResponse(f"/inbox?issued={quote(apology_id, safe='')}", status_code=303)

    return inbox


def _message_page(message: str) -> str:
    return _template("message.html").render(message=message)

"""The officers' inbox (`GET /inbox`) in a real headless Chromium, against the real apology service.

The service runs as `python -m tthc_apology` (uvicorn on a free port, a subprocess) on the real Kafka
broker and a fresh PostgreSQL database. The events it drafts from go in through Kafka, as the intake and
deadline services publish them: some before it starts (it catches up), the rest while it runs.

The browser is the system's Chromium (Debian's `chromium`, installed by `make browser`), driven by
Playwright through `executable_path`: nothing is downloaded. JavaScript is off in the officers' browsers,
as the page promises to work without it. Without Chromium or Playwright the test is skipped, and fails
when CI is set. The PDF links need LibreOffice (`make office`), under the same rule.

The test fails when the page shows the agency's code instead of its name, a date not as dd/mm/yyyy HH:MM,
or a wrong issued number, and when the page is wider than a 390 px phone. It writes the pictures of
`docs/images/`: inbox-desktop.png, inbox-phone.png and dossier-letters.png (the data and dates are fixed
but for the issuing date, today's).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import unicodedata
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import docx
import httpx
import pytest
from tthc_common.keys import hash_key
from tthc_contracts import VN_TZ, parse_ts
from tthc_contracts.derived import DeadlineAtRisk, DeadlineOverdue
from tthc_contracts.events import Agency, Duration
from tthc_contracts.timefmt import now_vn
from tthc_contracts.topics import Topics
from tthc_core.apology import apology_id_for
from tthc_core.calendar import CalendarBook

from tests.support import events
from tests.support.events import CRIMINAL_RECORD, at_risk, overdue, scheduled
from tests.support.infra import unavailable

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images"
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PHONE = {"width": 390, "height": 844}
VN_DATE_TIME = re.compile(r"^\d\d/\d\d/\d{4} \d\d:\d\d$")

AGENCY_A = Agency(code="000.00.12.H10", name="Sở Tư pháp tỉnh Lạng Sơn")
AGENCY_B = Agency(code="000.00.15.H10", name="Sở Xây dựng tỉnh Lạng Sơn")
KEY_A, KEY_B = f"officer-a-{uuid.uuid4().hex}", f"officer-b-{uuid.uuid4().hex}"
DURATION = Duration(value=5, unit="working_days")
CALENDAR = CalendarBook().for_agency(AGENCY_A.code)


def vn(year: int, month: int, day: int, hour: int = 17, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=VN_TZ)


def vn_text(ts: datetime | str) -> str:
    """dd/mm/yyyy HH:MM, Vietnam time: how every date of the page reads."""
    moment = parse_ts(ts) if isinstance(ts, str) else ts
    return f"{moment.astimezone(VN_TZ):%d/%m/%Y %H:%M}"


@dataclass(frozen=True)
class Case:
    dossier_id: str
    agency: Agency
    kind: str  # at_risk | overdue
    due: datetime
    applicant: str | None  # None: the dossier's receipt never arrives
    applicant_kind: str = "citizen"
    procedure: str = "Cấp Phiếu lý lịch tư pháp"
    send_nfd: bool = False  # the one-stop software sends the name decomposed (NFD)

    @property
    def apology_id(self) -> str:
        return apology_id_for(self.dossier_id, self.kind, self.due)


# Fed out of order on purpose; the inbox must list past-due drafts first, each group by due date.
A_CASES = [
    Case("LS-TP-0001", AGENCY_A, "at_risk", vn(2099, 1, 6), "Trần Văn Đức & Cộng sự <Đội 7>"),
    Case("LS-TP-0003", AGENCY_A, "at_risk", vn(2026, 3, 10), "Nguyễn Thị Ánh Tuyết & <Bé Ốc>", send_nfd=True),
    Case("LS-TP-0002", AGENCY_A, "overdue", vn(2026, 3, 6), 'Công ty TNHH Hoa & Lá <Việt> "Số 1"',
         applicant_kind="organization", procedure="Đăng ký khai sinh có yếu tố nước ngoài"),
    Case("LS-TP-0004", AGENCY_A, "overdue", vn(2026, 2, 27), None),
]
B_CASES = [
    Case("LS-XD-0001", AGENCY_B, "overdue", vn(2026, 3, 9), "Hợp tác xã Xây dựng Hưng Thịnh & Con <HTX>",
         applicant_kind="organization", procedure="Cấp giấy phép xây dựng"),
    Case("LS-XD-0002", AGENCY_B, "at_risk", vn(2099, 1, 5), "Lê Thị Hồng Nhung"),
]
A_ORDER = ["LS-TP-0004", "LS-TP-0002", "LS-TP-0003", "LS-TP-0001"]  # due 27/02, 06/03, 10/03/2026, 2099
assert all(unicodedata.is_normalized("NFC", c.applicant or "") for c in A_CASES + B_CASES)
ISSUED = A_CASES[2]  # LS-TP-0002, overdue; an at-risk draft of it was cancelled when its due date moved
FIRST_DUE = vn(2026, 3, 4)  # LS-TP-0002's due date before a supplementation moved it to 06/03
ISSUE_REASON = "Chờ ý kiến của Sở Tài chính & UBND xã <Tân Lập>"
KIND_LABELS = {"at_risk": "Xin lỗi trước hạn (sắp trễ hạn)", "overdue": "Xin lỗi khi đã trễ hạn"}


def new_appointment() -> datetime:
    """A new appointment the service accepts: a working day two weeks ahead, 16:00."""
    day = CALENDAR.next_working_day((now_vn() + timedelta(days=14)).date())
    return vn(day.year, day.month, day.day, 16)


def closed_day_before(moment: datetime) -> datetime:
    """A weekend or holiday morning before `moment`, 09:00 (the agency is closed then)."""
    day = moment.date() - timedelta(days=1)
    while CALENDAR.is_working_day(day):
        day -= timedelta(days=1)
    return vn(day.year, day.month, day.day, 9)


# ---- what the other services publish ------------------------------------------------------------

def receipt(case: Case) -> dict[str, Any]:
    assert case.applicant is not None
    name = unicodedata.normalize("NFD", case.applicant) if case.send_nfd else case.applicant
    return events.received(
        case.dossier_id, (case.due - timedelta(days=7)).replace(hour=9), DURATION.value, DURATION.unit,
        procedure=CRIMINAL_RECORD | {"name": case.procedure}, agency=case.agency, handling_agency=case.agency,
        applicant=name, applicant_kind=case.applicant_kind, phone="0912345678")


def deadline_event(case: Case) -> DeadlineAtRisk | DeadlineOverdue:
    build = at_risk if case.kind == "at_risk" else overdue
    return build(case.dossier_id, case.due, agency=case.agency)


def earlier_story(case: Case) -> list[Any]:
    """An at-risk moment for the first due date, then a supplementation that moved it (the draft is
    cancelled): what the dossier's letters page tells."""
    moved = scheduled(case.dossier_id, case.due, FIRST_DUE - timedelta(hours=7), agency=case.agency)
    return [at_risk(case.dossier_id, FIRST_DUE, agency=case.agency), moved]


Message = tuple[str, str, bytes]  # topic, key (the dossier id), value


def receipts(topics: Topics, cases: list[Case]) -> list[Message]:
    return [(topics.dossier_events, c.dossier_id, json.dumps(receipt(c), ensure_ascii=False).encode())
            for c in cases if c.applicant is not None]


def deadline_events(topics: Topics, cases: list[Case]) -> list[Message]:
    events = [e for c in cases for e in ((earlier_story(c) if c == ISSUED else []) + [deadline_event(c)])]
    return [(topics.deadline_events, e.dossier_id, e.model_dump_json().encode()) for e in events]


def produce(bootstrap: str, batch: list[Message]) -> None:
    """Publish with aiokafka, on a loop of its own in a worker thread (the test itself is synchronous:
    Playwright's sync API must not run inside an event loop, and pytest-asyncio's must stay untouched)."""
    from aiokafka import AIOKafkaProducer

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for topic, key, value in batch:
                await producer.send_and_wait(topic, value, key=key.encode())
        finally:
            await producer.stop()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, send()).result(timeout=60)


# ---- the browser ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    wanted = os.environ.get("TTHC_CHROMIUM")  # a path or a name; else the first of CHROMIUM_CANDIDATES
    executable = next((p for p in map(shutil.which, [wanted] if wanted else CHROMIUM_CANDIDATES) if p), None)
    if executable is None:
        unavailable(f"no Chromium ({wanted or ', '.join(CHROMIUM_CANDIDATES)}): run `make browser` "
                     "(Debian's chromium package)")
    if shutil.which("soffice") is None and shutil.which("libreoffice") is None:
        unavailable("no LibreOffice for the PDF links: run `make office` (Debian's libreoffice-writer-nogui)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is missing: uv sync --all-packages (dev group)")
    with sync_playwright() as p:
        # Playwright gives every launch a fresh temporary profile (--user-data-dir) and removes it.
        launched = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


# ---- the service ---------------------------------------------------------------------------------

@dataclass
class Service:
    url: str
    log: Path

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture
def apology_service(kafka_bootstrap: str, topic_prefix: str, pg_database_url: str, free_port: int,
                    tmp_path: Path) -> Iterator[Service]:
    # Receipts and agency A's deadline events are in Kafka before the service starts (it catches up
    # from the earliest offset, and the topics exist when it subscribes); agency B's come in live.
    topics = Topics(topic_prefix)
    produce(kafka_bootstrap, receipts(topics, A_CASES + B_CASES) + deadline_events(topics, A_CASES))

    env = {k: v for k, v in os.environ.items() if not k.startswith("APOLOGY_")}
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TTHC_TOPIC_PREFIX": topic_prefix,
        "APOLOGY_CONSUMER_GROUP": f"{topic_prefix}tthc-apology",
        "APOLOGY_DATABASE_URL": pg_database_url,
        "APOLOGY_HTTP_HOST": "127.0.0.1",
        "APOLOGY_HTTP_PORT": str(free_port),
        "APOLOGY_OFFICER_KEYS": f"{AGENCY_A.code}={hash_key(KEY_A)},{AGENCY_B.code}={hash_key(KEY_B)}",
        "APOLOGY_DOCUMENTS_DIR": str(tmp_path / "documents"),
        "APOLOGY_LOG_FORMAT": "text",
        "APOLOGY_RETRY_DELAY_S": "0.2",
    })
    service = Service(url=f"http://127.0.0.1:{free_port}", log=tmp_path / "apology.log")
    with service.log.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "tthc_apology"], env=env, cwd=tmp_path,
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"the apology service exited with {process.returncode}:\n{service.tail()}")
            try:
                if httpx.get(service.url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the apology service was not ready within 60 s:\n{service.tail()}")
            time.sleep(0.2)
        produce(kafka_bootstrap, deadline_events(topics, B_CASES))  # consumed live
        yield service
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal: -15 is a clean stop.
    assert process.returncode in (0, -signal.SIGTERM), f"exit {process.returncode}:\n{service.tail()}"
    assert "Application shutdown complete" in service.tail(), service.tail()


def wait_for_drafts(service: Service, key: str, cases: list[Case], timeout_s: float = 60) -> dict[str, Any]:
    """GET /v1/apologies?status=draft until every case has its draft, with the letter ready once its
    receipt is in."""
    want = {c.apology_id: c.applicant is not None for c in cases}
    end = time.monotonic() + timeout_s
    got: dict[str, Any] = {}
    while time.monotonic() < end:
        r = httpx.get(service.url + "/v1/apologies", params={"status": "draft"},
                      headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert r.status_code == 200, r.text
        got = {i["apology_id"]: i for i in r.json()["items"]}
        if {a: i["letter_ready"] for a, i in got.items()} == want:
            return got
        time.sleep(0.25)
    pytest.fail(f"drafts {sorted(got)} (ready: {[i['letter_ready'] for i in got.values()]}), "
                f"expected {want}\n{service.tail()}")


# ---- reading the page ----------------------------------------------------------------------------

def table_rows(page: Any, table_id: str) -> list[list[str]]:
    """The cells of a table as the browser renders them (innerText, one list per row)."""
    rows = page.locator(f"#{table_id} > tbody > tr")
    return [[cell.inner_text().strip() for cell in row.locator("td").all()] for row in rows.all()]


def docx_text(content: bytes) -> str:
    document = docx.Document(io.BytesIO(content))
    parts = [p.text for p in document.paragraphs]
    parts += [cell.text for table in document.tables for row in table.rows for cell in row.cells]
    return "\n".join(parts)


def pdf_text(content: bytes) -> str:
    done = subprocess.run(["pdftotext", "-layout", "-", "-"], input=content, capture_output=True, check=True)
    return " ".join(done.stdout.decode("utf-8").split())


def login_with_form(page: Any, service: Service, key: str) -> None:
    first = page.goto(service.url + "/inbox")
    assert first is not None and first.status == 401
    assert page.get_by_role("heading", level=1).inner_text() == "Phiếu xin lỗi và hẹn lại ngày trả kết quả"
    page.get_by_label("Khóa truy cập").fill("khong-phai-khoa")
    page.get_by_role("button", name="Đăng nhập").click()
    assert page.get_by_role("alert").inner_text() == "Khóa truy cập không đúng."
    page.get_by_label("Khóa truy cập").fill(key)
    with page.expect_navigation(url=service.url + "/inbox") as navigation:
        page.get_by_role("button", name="Đăng nhập").click()
    assert navigation.value.status == 200


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", header[16:24])


def screenshot(page: Any, name: str, width: int) -> Path:
    """A full-page picture under docs/images/; it is as wide as the viewport only when nothing overflows."""
    path = IMAGES / name
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    shot_width, height = png_size(path)
    assert shot_width == width, f"{name}: the page is {shot_width} px wide in a {width} px window"
    assert height >= 400 and path.stat().st_size > 20_000, f"{name} looks empty"
    return path


def download(page: Any, link: Any) -> tuple[str, bytes]:
    with page.expect_download() as info:
        link.click()
    got = info.value
    return got.suggested_filename, Path(got.path()).read_bytes()


# ---- the test ------------------------------------------------------------------------------------

def test_officer_reviews_downloads_and_issues_drafts_in_chromium(browser: Any, apology_service: Service) -> None:
    service = apology_service
    api_a = wait_for_drafts(service, KEY_A, A_CASES)
    api_b = wait_for_drafts(service, KEY_B, B_CASES)
    by_id = {c.dossier_id: c for c in A_CASES}
    now = now_vn()

    context_a = browser.new_context(java_script_enabled=False, locale="en-US", accept_downloads=True,
                                    viewport={"width": 1280, "height": 900})
    try:
        page = context_a.new_page()
        login_with_form(page, service, KEY_A)
        assert page.url == service.url + "/inbox"  # the key never shows in the address bar
        (cookie,) = context_a.cookies()
        assert (cookie["name"], cookie["value"], cookie["httpOnly"], cookie["sameSite"]) == (
            "apology_key", KEY_A, True, "Strict")
        assert page.locator("html").get_attribute("lang") == "vi"
        # The agency by its name (the code only beside it), in the title and the header.
        assert page.title() == f"Phiếu xin lỗi – {AGENCY_A.name}"
        assert page.locator("#agency").inner_text() == f"Cơ quan: {AGENCY_A.name} (mã {AGENCY_A.code})"

        # Only agency A's drafts, past-due first, each with its due date and proposed new appointment.
        rows = table_rows(page, "drafts")
        assert [r[0].split("\n")[0] for r in rows] == A_ORDER
        assert page.get_by_role("heading", name=f"Dự thảo cần ban hành ({len(A_CASES)}), quá hạn trước").is_visible()
        body_text = page.locator("body").inner_text()
        for case in B_CASES:
            assert case.dossier_id not in body_text and str(case.applicant) not in body_text
        for cells in rows:
            case = by_id[cells[0].split("\n")[0]]
            item = api_a[case.apology_id]
            assert cells[1] == KIND_LABELS[case.kind]
            due_text, state = cells[2].split("\n")
            assert due_text == vn_text(case.due) and VN_DATE_TIME.match(due_text)
            if case.due > now:
                assert state == "Chưa đến hạn"
            elif case.kind == "at_risk":  # drafted before its due date, which has passed since
                assert state == "Đã quá hạn: phiếu soạn trước hạn nhưng chưa ban hành"
            else:
                assert state == "Đã quá hạn"
            assert cells[3] == vn_text(item["proposed_due_at"]) and VN_DATE_TIME.match(cells[3])
            if case.applicant is None:
                assert cells[0] == case.dossier_id
                assert cells[4] == "Chưa có thông tin tiếp nhận hồ sơ"
            else:
                # The name exactly as sent: `&` and `<` as text, not markup; the one sent in NFD shows
                # composed (case.applicant is NFC).
                assert cells[0].split("\n") == [case.dossier_id, case.applicant, case.procedure]
                assert cells[4].startswith("Tải DOCX") and "Tải PDF" in cells[4]
        past_due = page.locator("#drafts > tbody > tr.past-due")
        assert past_due.count() == sum(c.due < now for c in A_CASES) == 3
        injected = page.locator(
            "xpath=//tbody//*[local-name()='việt' or local-name()='htx' or local-name()='đội']")
        assert injected.count() == 0  # `<Việt>` did not become an element
        for field in page.locator("input").all():
            assert field.get_attribute("type") in ("text", "password", None)  # no locale-dependent date picker

        # Downloads: a draft's letter says what it is; DOCX and PDF.
        target = ISSUED
        name, content = download(page, page.get_by_role("link", name=f"Tải DOCX hồ sơ {target.dossier_id}"))
        assert name == f"phieu-xin-loi-{target.dossier_id}-{target.kind}.docx"
        assert content[:2] == b"PK"
        letter = docx_text(content)
        assert target.applicant in letter and target.dossier_id in letter and "01/PXL" not in letter
        name, content = download(page, page.get_by_role("link", name=f"Tải PDF hồ sơ {target.dossier_id}"))
        assert name == f"phieu-xin-loi-{target.dossier_id}-{target.kind}.pdf" and content.startswith(b"%PDF")
        assert target.dossier_id in pdf_text(content)

        # Issue it through the form. A day the agency is closed is refused with the nearest valid instant.
        row = page.locator("#drafts > tbody > tr", has_text=target.dossier_id)
        row.locator("summary", has_text="Ban hành phiếu").click()
        row.get_by_label("Lý do chậm trễ").fill(ISSUE_REASON)
        due_field = row.get_by_label("Hẹn lại ngày trả kết quả")
        assert due_field.input_value() == vn_text(api_a[target.apology_id]["proposed_due_at"])
        appointment = new_appointment()
        closed_day = closed_day_before(appointment)
        due_field.fill(vn_text(closed_day))
        with page.expect_navigation() as navigation:
            row.get_by_role("button", name="Ban hành", exact=True).click()
        assert navigation.value.status == 422
        refusal = page.get_by_role("alert").inner_text()
        assert refusal.startswith("Không ban hành được: Ngày hẹn lại phải là ngày làm việc của cơ quan")
        proposed = re.search(r"Thời điểm hợp lệ gần nhất: (\d\d/\d\d/\d{4} \d\d:\d\d)\.$", refusal)
        assert proposed is not None, refusal
        row = page.locator("#drafts > tbody > tr", has_text=target.dossier_id)
        assert row.get_by_label("Hẹn lại ngày trả kết quả").input_value() == vn_text(closed_day)  # kept
        row.get_by_label("Hẹn lại ngày trả kết quả").fill(vn_text(appointment))
        with page.expect_navigation(url=f"{service.url}/inbox?issued={target.apology_id}") as navigation:
            row.get_by_role("button", name="Ban hành", exact=True).click()
        assert navigation.value.status == 200
        assert page.get_by_role("status").inner_text() == (
            f"Đã ban hành phiếu số 01/PXL (hồ sơ {target.dossier_id}).")
        assert [r[0].split("\n")[0] for r in table_rows(page, "drafts")] == [
            d for d in A_ORDER if d != target.dossier_id]

        # The register of the year: its number, when, the new appointment, all as dd/mm/yyyy HH:MM.
        assert page.get_by_role("heading", name=f"Phiếu đã ban hành năm {now.year} (1)").is_visible()
        (issued,) = table_rows(page, "issued")
        assert issued[0] == "01/PXL"
        assert issued[1].split("\n") == [target.dossier_id, target.applicant, target.procedure]
        assert VN_DATE_TIME.match(issued[2]) and issued[2][:10] == f"{now_vn():%d/%m/%Y}"
        assert issued[3] == vn_text(appointment)
        state = httpx.get(f"{service.url}/v1/apologies/{target.apology_id}",
                          headers={"Authorization": f"Bearer {KEY_A}"}, timeout=10).json()
        assert (state["status"], state["number"], state["reason"], state["new_due_at"]) == (
            "issued", "01/PXL", ISSUE_REASON, appointment.isoformat())
        assert issued[2] == vn_text(state["issued_at"])
        screenshot(page, "inbox-desktop.png", 1280)

        # The issued letter, named after its number, says it.
        issued_row = page.locator("#issued > tbody > tr", has_text=target.dossier_id)
        name, content = download(page, issued_row.get_by_role("link", name=re.compile("^Tải DOCX")))
        assert name == f"01-PXL-{target.dossier_id}.docx"
        letter = docx_text(content)
        assert "01/PXL" in letter and ISSUE_REASON in letter
        assert f"{appointment:%H} giờ {appointment:%M} phút, ngày {appointment:%d/%m/%Y}" in letter
        name, content = download(page, issued_row.get_by_role("link", name=re.compile("^Tải PDF")))
        assert name == f"01-PXL-{target.dossier_id}.pdf"
        text = pdf_text(content)
        assert "01/PXL" in text and target.dossier_id in text

        # The dossier's letters on one page: the draft cancelled when its due date moved, and the letter.
        with page.expect_navigation():
            issued_row.get_by_role("link", name=target.dossier_id, exact=True).click()
        assert page.get_by_role("heading", level=1).inner_text() == f"Hồ sơ {target.dossier_id}: các phiếu xin lỗi"
        assert page.locator("#agency").inner_text() == f"Cơ quan đang giữ hồ sơ: {AGENCY_A.name} (mã {AGENCY_A.code})"
        letters = table_rows(page, "letters")
        assert [(cells[1].split("\n")[0], cells[2]) for cells in letters] == [
            (KIND_LABELS["at_risk"], vn_text(FIRST_DUE)), (KIND_LABELS["overdue"], vn_text(target.due))]
        assert letters[0][3].startswith("Đã hủy ngày ") and "Lý do hủy: Thời hạn giải quyết đã thay đổi" in letters[0][3]
        assert letters[1][3].startswith(f"Đã ban hành số 01/PXL ngày {issued[2]}")
        assert letters[1][4] == vn_text(appointment)
        screenshot(page, "dossier-letters.png", 1280)

        # On a 390 px phone the same page fits: every row a card, nothing wider than the screen.
        phone = browser.new_context(java_script_enabled=False, locale="vi-VN", viewport=PHONE,
                                    device_scale_factor=1, is_mobile=True, has_touch=True)
        try:
            page_p = phone.new_page()
            response = page_p.goto(f"{service.url}/inbox?key={KEY_A}")
            assert response is not None and response.status == 200
            assert page_p.locator("#agency").inner_text() == f"Cơ quan: {AGENCY_A.name} (mã {AGENCY_A.code})"
            for table in ("drafts", "issued"):
                cards = page_p.locator(f"#{table} > tbody > tr").all()
                assert cards
                for card in cards:
                    box = card.bounding_box()
                    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
                    # A card: its cells stacked, each under its column's name.
                    tops = [cell.bounding_box()["y"] for cell in card.locator("td").all()]  # type: ignore[index]
                    assert tops == sorted(tops) and len(set(tops)) == len(tops)
            assert table_rows(page_p, "issued")[0][0] == "01/PXL"
            screenshot(page_p, "inbox-phone.png", PHONE["width"])
        finally:
            phone.close()

        # Agency B's officer (logging in with ?key=) sees B's drafts only, and none of A's letters.
        context_b = browser.new_context(java_script_enabled=False, locale="vi-VN")
        try:
            page_b = context_b.new_page()
            response = page_b.goto(f"{service.url}/inbox?key={KEY_B}")
            assert response is not None and response.status == 200 and page_b.url == service.url + "/inbox"
            assert page_b.locator("#agency").inner_text() == f"Cơ quan: {AGENCY_B.name} (mã {AGENCY_B.code})"
            rows_b = table_rows(page_b, "drafts")
            assert [r[0].split("\n")[0] for r in rows_b] == ["LS-XD-0001", "LS-XD-0002"]
            assert rows_b[0][0].split("\n")[1] == B_CASES[0].applicant
            assert table_rows(page_b, "issued") == [[f"Chưa có phiếu nào được ban hành trong năm {now.year}."]]
            text_b = page_b.locator("body").inner_text()
            for case in A_CASES:
                assert case.dossier_id not in text_b
                assert case.applicant is None or case.applicant not in text_b
            for case in A_CASES:
                letter_url = f"{service.url}/v1/apologies/{case.apology_id}.docx"
                assert context_b.request.get(letter_url).status == 403
            assert context_b.request.get(f"{service.url}/inbox/dossiers/{ISSUED.dossier_id}").status == 403
            assert set(api_b) == {c.apology_id for c in B_CASES}
        finally:
            context_b.close()

        # Logging out drops the cookie: the inbox asks for the key again.
        page.goto(service.url + "/inbox")
        page.get_by_role("button", name="Đăng xuất").click()
        page.wait_for_url(service.url + "/inbox")
        assert page.get_by_label("Khóa truy cập").is_visible()
        assert context_a.cookies() == []
    finally:
        context_a.close()

"""The officers' inbox (`GET /inbox`) in a real headless Chromium, against the real apology service.

The service runs as `python -m tthc_apology` (uvicorn on a free port, a subprocess) on the real Kafka
broker and a fresh PostgreSQL database. The events it drafts from go in through Kafka, as the intake and
deadline services publish them: some before it starts (it catches up), the rest while it runs.

The browser is the system's Chromium (Debian's `chromium`, installed by `make browser`), driven by
Playwright through `executable_path`: nothing is downloaded. JavaScript is off in the officers' browsers,
as the page promises to work without it. Without Chromium or Playwright the test is skipped, and fails
when CI is set. It also writes `docs/images/inbox-drafts.png` (agency A's drafts; the data and dates are
fixed, so the picture only changes when the page does).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
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
from typing import Any, NoReturn

import docx
import httpx
import pytest

from tthc_common.keys import hash_key
from tthc_contracts import VN_TZ, derived_id, parse_ts
from tthc_contracts.derived import AtRiskData, DeadlineAtRisk, DeadlineOverdue, OverdueData
from tthc_contracts.events import Agency, Duration
from tthc_contracts.topics import Topics
from tthc_core.apology import apology_id_for

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "images" / "inbox-drafts.png"
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

AGENCY_A = Agency(code="000.00.12.H10", name="Sở Tư pháp tỉnh Lạng Sơn")
AGENCY_B = Agency(code="000.00.15.H10", name="Sở Xây dựng tỉnh Lạng Sơn")
KEY_A, KEY_B = f"officer-a-{uuid.uuid4().hex}", f"officer-b-{uuid.uuid4().hex}"
DURATION = Duration(value=5, unit="working_days")
ONE_STOP = "motcua-lang-son"


def vn(year: int, month: int, day: int, hour: int = 17, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=VN_TZ)


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
ISSUED = A_CASES[2]  # LS-TP-0002, overdue
ISSUE_REASON = "Chờ ý kiến của Sở Tài chính & UBND xã <Tân Lập>"
ISSUE_NEW_DUE = "2026-03-20T16:00"


# ---- what the other services publish ------------------------------------------------------------

def received(case: Case) -> dict[str, Any]:
    assert case.applicant is not None
    name = unicodedata.normalize("NFD", case.applicant) if case.send_nfd else case.applicant
    return {
        "event_id": str(uuid.uuid4()), "type": "dossier.received", "schema_version": 1,
        "occurred_at": (case.due - timedelta(days=7)).replace(hour=9).isoformat(), "source": ONE_STOP,
        "dossier_id": case.dossier_id,
        "data": {
            "procedure": {"code": "1.001234", "name": case.procedure, "field_code": "G13-TP01",
                          "field_name": "Lý lịch tư pháp"},
            "receiving_agency": case.agency.model_dump(), "handling_agency": case.agency.model_dump(),
            "channel": "in_person", "duration": DURATION.model_dump(),
            "applicant": {"kind": case.applicant_kind, "name": name, "phone": "0912345678"},
        },
    }


def deadline_event(case: Case) -> DeadlineAtRisk | DeadlineOverdue:
    if case.kind == "at_risk":
        return DeadlineAtRisk(
            event_id=derived_id("deadline.at_risk", case.dossier_id, case.due),
            occurred_at=case.due - timedelta(days=1),
            source="tthc-deadline", dossier_id=case.dossier_id,
            data=AtRiskData(due_at=case.due, handling_agency=case.agency, duration=DURATION))
    return DeadlineOverdue(
        event_id=derived_id("deadline.overdue", case.dossier_id, case.due), occurred_at=case.due,
        source="tthc-deadline", dossier_id=case.dossier_id,
        data=OverdueData(due_at=case.due, handling_agency=case.agency, duration=DURATION))


Message = tuple[str, str, bytes]  # topic, key (the dossier id), value


def receipts(topics: Topics, cases: list[Case]) -> list[Message]:
    return [(topics.dossier_events, c.dossier_id, json.dumps(received(c), ensure_ascii=False).encode())
            for c in cases if c.applicant is not None]


def deadline_events(topics: Topics, cases: list[Case]) -> list[Message]:
    return [(topics.deadline_events, c.dossier_id, deadline_event(c).model_dump_json().encode())
            for c in cases]


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

def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(message: str) -> NoReturn:
    if _in_ci():
        pytest.fail(f"CI is set and {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    wanted = os.environ.get("TTHC_CHROMIUM")  # a path or a name; else the first of CHROMIUM_CANDIDATES
    executable = next((p for p in map(shutil.which, [wanted] if wanted else CHROMIUM_CANDIDATES) if p), None)
    if executable is None:
        _unavailable(f"no Chromium ({wanted or ', '.join(CHROMIUM_CANDIDATES)}): run `make browser` "
                     "(Debian's chromium package)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is missing: uv sync --all-packages (dev group)")
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
    """GET /v1/apologies until every case has its draft, with the letter ready once its receipt is in."""
    want = {c.apology_id: c.applicant is not None for c in cases}
    end = time.monotonic() + timeout_s
    got: dict[str, Any] = {}
    while time.monotonic() < end:
        r = httpx.get(service.url + "/v1/apologies", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert r.status_code == 200, r.text
        got = {i["apology_id"]: i for i in r.json()["items"]}
        if {a: i["letter_ready"] for a, i in got.items()} == want:
            return got
        time.sleep(0.25)
    pytest.fail(f"drafts {sorted(got)} (ready: {[i['letter_ready'] for i in got.values()]}), "
                f"expected {want}\n{service.tail()}")


# ---- reading the page ----------------------------------------------------------------------------

def vn_text(rfc3339: str) -> str:
    return f"{parse_ts(rfc3339).astimezone(VN_TZ):%H:%M %d/%m/%Y}"


def draft_rows(page: Any) -> list[list[str]]:
    """The cells of the drafts table as the browser renders them (innerText, one list per row)."""
    rows = page.locator("table").nth(0).locator("tbody > tr")
    return [[cell.inner_text() for cell in row.locator("td").all()] for row in rows.all()]


def issued_rows(page: Any) -> list[list[str]]:
    rows = page.locator("table").nth(1).locator("tbody > tr")
    return [[cell.inner_text() for cell in row.locator("td").all()] for row in rows.all()]


def docx_text(content: bytes) -> str:
    document = docx.Document(io.BytesIO(content))
    parts = [p.text for p in document.paragraphs]
    parts += [cell.text for table in document.tables for row in table.rows for cell in row.cells]
    return "\n".join(parts)


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


# ---- the test ------------------------------------------------------------------------------------

def test_officer_reviews_downloads_and_issues_drafts_in_chromium(browser: Any,
                                                                 apology_service: Service) -> None:
    service = apology_service
    api_a = wait_for_drafts(service, KEY_A, A_CASES)
    api_b = wait_for_drafts(service, KEY_B, B_CASES)
    by_id = {c.dossier_id: c for c in A_CASES}

    context_a = browser.new_context(java_script_enabled=False, locale="vi-VN", accept_downloads=True,
                                    viewport={"width": 1280, "height": 900})
    try:
        page = context_a.new_page()
        login_with_form(page, service, KEY_A)
        assert page.url == service.url + "/inbox"  # the key never shows in the address bar
        (cookie,) = context_a.cookies()
        assert (cookie["name"], cookie["value"], cookie["httpOnly"], cookie["sameSite"]) == (
            "apology_key", KEY_A, True, "Strict")
        assert page.locator("html").get_attribute("lang") == "vi"
        assert page.title() == f"Phiếu xin lỗi – {AGENCY_A.code}"

        # Only agency A's drafts, past-due first, each with its due date and proposed new appointment.
        rows = draft_rows(page)
        assert [r[0].split("\n")[0] for r in rows] == A_ORDER
        assert page.get_by_text(f"Dự thảo cần ban hành ({len(A_CASES)}), quá hạn trước").is_visible()
        body_text = page.locator("body").inner_text()
        for case in B_CASES:
            assert case.dossier_id not in body_text and str(case.applicant) not in body_text
        for cells in rows:
            case = by_id[cells[0].split("\n")[0]]
            item = api_a[case.apology_id]
            assert cells[1] == {"at_risk": "Sắp trễ hạn", "overdue": "Đã quá hạn"}[case.kind]
            due = f"{case.due:%H:%M %d/%m/%Y}"
            assert cells[2] == (f"{due}\nĐã quá hạn" if case.due < datetime.now(VN_TZ) else due)
            assert cells[3] == vn_text(item["proposed_due_at"])
            if case.applicant is None:
                assert cells[0] == case.dossier_id
                assert cells[4] == "Chưa có thông tin tiếp nhận hồ sơ"
            else:
                # The name exactly as sent: `&` and `<` as text, not markup; the one sent in NFD shows
                # composed (case.applicant is NFC).
                assert cells[0].split("\n") == [case.dossier_id, case.applicant, case.procedure]
        past_due = page.locator("table").nth(0).locator("tbody > tr.past-due")
        assert past_due.count() == sum(c.due < datetime.now(VN_TZ) for c in A_CASES) == 3
        injected = page.locator(
            "xpath=//tbody//*[local-name()='việt' or local-name()='htx' or local-name()='đội']")
        assert injected.count() == 0  # `<Việt>` did not become an element

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        width, height = png_size(SCREENSHOT)
        assert width == 1280 and height >= 600
        assert SCREENSHOT.stat().st_size > 40_000, "the screenshot looks empty"

        # Download: the link of a row (its accessible name says which dossier) gives the DOCX letter.
        target = ISSUED
        link = page.get_by_role("link", name=f"Tải DOCX hồ sơ {target.dossier_id}")
        with page.expect_download() as download_info:
            link.click()
        download = download_info.value
        assert download.suggested_filename == f"phieu-xin-loi-{target.dossier_id}-{target.kind}.docx"
        content = Path(download.path()).read_bytes()
        assert content[:2] == b"PK"
        letter = docx_text(content)
        assert target.applicant in letter and target.dossier_id in letter and "01/PXL" not in letter
        fetched = context_a.request.get(service.url + str(link.get_attribute("href")))
        assert fetched.status == 200
        assert fetched.headers["content-type"] == (
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document")
        assert fetched.body() == content

        # Issue it through the form: reason and new appointment, the number taken by the service.
        row = page.locator("table").nth(0).locator("tbody > tr", has_text=target.dossier_id)
        row.locator("summary", has_text="Ban hành phiếu").click()
        row.get_by_label("Lý do chậm trễ").fill(ISSUE_REASON)
        assert row.get_by_label("Hẹn lại ngày trả kết quả").input_value() == (
            f"{parse_ts(api_a[target.apology_id]['proposed_due_at']).astimezone(VN_TZ):%Y-%m-%dT%H:%M}")
        row.get_by_label("Hẹn lại ngày trả kết quả").fill(ISSUE_NEW_DUE)
        with page.expect_navigation(url=f"{service.url}/inbox?issued={target.apology_id}") as navigation:
            row.get_by_role("button", name="Ban hành", exact=True).click()
        assert navigation.value.status == 200
        assert page.get_by_role("status").inner_text() == (
            f"Đã ban hành phiếu số 01/PXL (hồ sơ {target.dossier_id}).")
        still_drafts = [d for d in A_ORDER if d != target.dossier_id]
        assert [r[0].split("\n")[0] for r in draft_rows(page)] == still_drafts
        (issued,) = issued_rows(page)
        assert issued[0] == "01/PXL"
        assert issued[1].split("\n") == [target.dossier_id, target.applicant]
        assert issued[3] == "16:00 20/03/2026"

        state = httpx.get(f"{service.url}/v1/apologies/{target.apology_id}",
                          headers={"Authorization": f"Bearer {KEY_A}"}, timeout=10).json()
        assert (state["status"], state["number"], state["reason"], state["new_due_at"]) == (
            "issued", "01/PXL", ISSUE_REASON, "2026-03-20T16:00:00+07:00")
        issued_letter = docx_text(context_a.request.get(service.url + state["document_url"]).body())
        assert "01/PXL" in issued_letter and ISSUE_REASON in issued_letter
        assert "16 giờ 00 phút, ngày 20/03/2026" in issued_letter

        # Agency B's officer (logging in with ?key=) sees B's drafts only, and none of A's letters.
        context_b = browser.new_context(java_script_enabled=False, locale="vi-VN")
        try:
            page_b = context_b.new_page()
            response = page_b.goto(f"{service.url}/inbox?key={KEY_B}")
            assert response is not None and response.status == 200 and page_b.url == service.url + "/inbox"
            assert [r[0].split("\n")[0] for r in draft_rows(page_b)] == ["LS-XD-0001", "LS-XD-0002"]
            assert draft_rows(page_b)[0][0].split("\n")[1] == B_CASES[0].applicant
            assert issued_rows(page_b) == [["Chưa có phiếu nào được ban hành."]]
            text_b = page_b.locator("body").inner_text()
            for case in A_CASES:
                assert case.dossier_id not in text_b
                assert case.applicant is None or case.applicant not in text_b
            for case in A_CASES:
                letter_url = f"{service.url}/v1/apologies/{case.apology_id}.docx"
                assert context_b.request.get(letter_url).status == 403
            assert set(api_b) == {c.apology_id for c in B_CASES}
        finally:
            context_b.close()

        # Logging out drops the cookie: the inbox asks for the key again.
        page.get_by_role("button", name="Đăng xuất").click()
        page.wait_for_url(service.url + "/inbox")
        assert page.get_by_label("Khóa truy cập").is_visible()
        assert context_a.cookies() == []
    finally:
        context_a.close()

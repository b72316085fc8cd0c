#!/usr/bin/env python3
"""`make demo`: one simulated day of a provincial one-stop centre, through the real services.

    python deploy/local/demo.py [--day 2026-08-31] [--dossiers 300] [--seed 1] [--keep-running]

Needs Kafka (`deploy/local/kafka.sh start`; `make demo` starts it) at $KAFKA_BOOTSTRAP_SERVERS or
127.0.0.1:9092. Steps:

1. generate the day with `tthc_sim` (deterministic for the seed): by default Monday 31/08/2026, before the
   two days of Quốc khánh, a past day whose eight weeks of follow-up events all lie before today, as intake
   requires (events.md, Bounds); a --day whose events reach beyond today raises intake's lead to cover them,
   and says so;
2. start intake, deadline, apology and metrics (`stack.py`, SQLite under var/demo/, a fresh topic prefix);
3. post the events to intake (`POST /v1/events`, batches, bearer source key) in arrival order;
4. wait until deadline (`GET /v1/dossiers`) and metrics (`GET /v1/indices`) have processed every dossier
   and their figures no longer change;
5. print the index figures per agency, where the apology letters are (`GET /v1/apologies` per agency with
   that agency's officer key; the DOCX files in var/demo/apologies/), and check every figure and every
   due date against `tthc replay` of the same events;
6. stop the services (unless --keep-running). Exit 0 when everything matched, 1 otherwise.

The headings are Vietnamese, for the provincial officials who watch it (English in docs/README).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import sys
import time
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # stack.py sits next to this file

import httpx
from stack import ROOT, Stack, StackError, intake_lead_for, service_ports

DEMO_MARKER = ".tthc-demo"
# A past Monday before the Quốc khánh holidays (1-2/9): its dossiers' follow-up events, up to eight weeks on,
# lie before today, so intake takes them at its default lead (events.md, Bounds).
DEFAULT_DAY = date(2026, 8, 31)


# -- output helpers ---------------------------------------------------------------------------------
class Progress:
    """One status line, rewritten in place on a terminal; a line every few seconds in a log."""

    def __init__(self, stream: Any = sys.stdout):
        self.stream = stream
        self.tty = stream.isatty()
        self._last_print = 0.0
        self._last_text = ""

    def update(self, text: str, *, force: bool = False) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
        elif force or (text != self._last_text and time.monotonic() - self._last_print > 5):
            print(text, file=self.stream, flush=True)
            self._last_print = time.monotonic()
        self._last_text = text

    def done(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text + "\n")
            self.stream.flush()
        else:
            print(text, file=self.stream, flush=True)


def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def num(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def short_name(name: str) -> str:
    if name.startswith("Ủy ban nhân dân tỉnh"):
        return "UBND tỉnh"
    return name.removesuffix(" tỉnh Lạng Sơn")


def heading(text: str) -> None:
    print()
    print(text)
    print("─" * min(len(text), 100))


def table(headers: list[str], rows: list[list[str]], align: str) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(cells, widths, align))

    rule = "  ".join("─" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows[:-1]), rule, line(rows[-1])])


# -- the day ----------------------------------------------------------------------------------------
def agency_names(events: list[dict[str, Any]]) -> dict[str, str]:
    names: dict[str, str] = {}
    for e in events:
        d = e.get("data") or {}
        for agency in (d.get("receiving_agency"), d.get("handling_agency"), d.get("to_agency")):
            if agency:
                names.setdefault(agency["code"], agency["name"])
    return names


def kafka_answers(bootstrap: str) -> bool:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=3):
            return True
    except OSError:
        return False


def prepare_var(var: Path) -> None:
    """var/demo is the demo's own: wiped at each run (only when it carries our marker, or is new)."""
    if var.exists():
        if not (var / DEMO_MARKER).exists() and any(var.iterdir()):
            raise SystemExit(f"{var} exists and was not made by the demo (no {DEMO_MARKER}): choose another --var")
        shutil.rmtree(var)
    var.mkdir(parents=True)
    (var / DEMO_MARKER).touch()


def post_events(client: httpx.Client, stack: Stack, events: list[dict[str, Any]], batch: int,
                progress: Progress) -> tuple[int, int, float]:
    accepted = duplicates = 0
    t0 = time.monotonic()
    headers = {"Authorization": f"Bearer {stack.intake_key}"}
    for i in range(0, len(events), batch):
        chunk = events[i:i + batch]
        for attempt in range(5):
            r = client.post(stack.url("intake") + "/v1/events", json=chunk, headers=headers)
            if r.status_code != 503:
                break
            time.sleep(1 + attempt)  # Kafka busy: intake asks us to come back
        if r.status_code != 202:
            raise RuntimeError(f"intake refused batch {i // batch + 1}: HTTP {r.status_code} {r.text[:500]}")
        body = r.json()
        accepted += body.get("accepted", 0)
        duplicates += body.get("duplicates", 0)
        done = i + len(chunk)
        elapsed = time.monotonic() - t0
        progress.update(f"  Gửi sự kiện tới intake: {done}/{len(events)} ({100 * done / len(events):.0f}%), "
                        f"{done / max(elapsed, 1e-6):.0f} sự kiện/giây")
    elapsed = time.monotonic() - t0
    progress.done(f"  Đã gửi {len(events)} sự kiện trong {elapsed:.1f} s: intake nhận {accepted}, "
                  f"trùng lặp {duplicates} (gửi lại cùng event_id, được bỏ qua)")
    return accepted, duplicates, elapsed


def deadline_counts(client: httpx.Client, stack: Stack) -> tuple[int, int, str | None]:
    base = stack.url("deadline") + "/v1/dossiers"
    all_ = client.get(base, params={"page_size": 1}).json()
    closed = client.get(base, params={"page_size": 1, "state": "closed"}).json()
    return all_["total"], closed["total"], all_.get("watermark")


def indices(client: httpx.Client, stack: Stack, first: date, last: date, group_by: str = "agency") -> dict[str, Any]:
    r = client.get(stack.url("metrics") + "/v1/indices",
                   params={"from": first.isoformat(), "to": last.isoformat(), "group_by": group_by})
    r.raise_for_status()
    return r.json()


def wait_until_processed(client: httpx.Client, stack: Stack, first: date, last: date, expect_received: int,
                         expect_closed: int, last_event_at: str, timeout_s: float, progress: Progress) -> float:
    """Until deadline and metrics have every dossier, and their counts held still for a few polls."""
    t0 = time.monotonic()
    previous: tuple[Any, ...] | None = None
    stable = 0
    while True:
        try:
            total, closed, watermark = deadline_counts(client, stack)
            m = indices(client, stack, first, last)["total"]
            snapshot = (total, closed, watermark, m["received"], m["closed"], m["late"], m["open_overdue"])
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            snapshot = ("error", str(exc)[:80])
        elapsed = time.monotonic() - t0
        if snapshot[0] != "error":
            progress.update(
                f"  Đang xử lý ({elapsed:4.0f} s): deadline {total}/{expect_received} hồ sơ, "
                f"đã giải quyết {closed}/{expect_closed}, mốc thời gian {(watermark or '—')[:16]} · "
                f"metrics {m['received']}/{expect_received} hồ sơ, {m['closed']}/{expect_closed} đã giải quyết")
            complete = (total == expect_received and closed == expect_closed and m["received"] == expect_received
                        and m["closed"] == expect_closed)
            stable = stable + 1 if complete and snapshot == previous else 0
            if stable >= 2:
                progress.done(f"  Xử lý xong sau {elapsed:.0f} s: {total} hồ sơ, {closed} đã giải quyết, "
                              f"mốc thời gian của dịch vụ {watermark} (sự kiện cuối {last_event_at})")
                return elapsed
        previous = snapshot
        if elapsed > timeout_s:
            progress.done("")
            raise TimeoutError(f"the pipeline did not finish within {timeout_s:.0f}s (last: {snapshot})")
        time.sleep(1.0)


# -- the report ----------------------------------------------------------------------------------------
def print_indices(result: dict[str, Any], names: dict[str, str], first: date, last: date) -> None:
    heading(f"CHỈ SỐ GIẢI QUYẾT TTHC THEO CƠ QUAN  (kỳ {first:%d/%m/%Y} – {last:%d/%m/%Y}, "
            f"số liệu đến {str(result.get('cut', ''))[:16].replace('T', ' ')})")
    headers = ["Cơ quan (agency)", "Tiếp nhận", "Đã giải quyết", "Đúng hạn", "Điểm 766", "Một lần",
               "Xin lỗi", "Quá hạn đang mở"]
    rows = []
    by_agency = result["by_agency"]
    order = sorted(by_agency, key=lambda code: (-by_agency[code]["received"], code))
    for code in order:
        f = by_agency[code]
        rows.append([short_name(names.get(code, code)), str(f["received"]), str(f["closed"]), pct(f["on_time_rate"]),
                     num(f["i766_on_time_score"], 1), pct(f["single_visit_rate"]), pct(f["apology_coverage"]),
                     str(f["open_overdue"])])
    t = result["total"]
    rows.append(["TOÀN TỈNH", str(t["received"]), str(t["closed"]), pct(t["on_time_rate"]),
                 num(t["i766_on_time_score"], 1), pct(t["single_visit_rate"]), pct(t["apology_coverage"]),
                 str(t["open_overdue"])])
    print(table(headers, rows, "lrrrrrrr"))
    print(f"  Trước hạn {t['early']}, đúng hạn {t['on_time']}, quá hạn {t['late']}; còn trong hạn {t['open_within']}. "
          f"Điểm 766 = 20 × tỷ lệ đúng hạn theo tiêu chí 2.1 (QĐ 766/QĐ-TTg); «Một lần» = không phải bổ sung hồ sơ;")
    print("  «Xin lỗi» = hồ sơ quá hạn đã có văn bản xin lỗi (gia hạn hoặc phiếu xin lỗi đã ban hành) / hồ sơ quá hạn.")


def list_apologies(client: httpx.Client, stack: Stack, agency: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {stack.officer_key(agency)}"}
    items: list[dict[str, Any]] = []
    page, total = 1, 1
    while len(items) < total:
        r = client.get(stack.url("apology") + "/v1/apologies",
                       params={"agency": agency, "page": page, "page_size": 500}, headers=headers)
        r.raise_for_status()
        body = r.json()  # {items, page, page_size, total}
        if not body["items"]:
            break
        items.extend(body["items"])
        page, total = page + 1, body["total"]
    return items


def print_apologies(client: httpx.Client, stack: Stack, agencies: list[str], names: dict[str, str]) -> list[dict]:
    heading("VĂN BẢN XIN LỖI (Mẫu 04) — thư nháp chờ cán bộ ban hành")
    KIND = {"at_risk": "sắp quá hạn", "overdue": "đã quá hạn", "late_result": "trả kết quả trễ"}
    every: list[dict[str, Any]] = []
    rows = []
    for agency in agencies:
        if agency not in stack.keys.officer_keys:
            continue
        items = list_apologies(client, stack, agency)
        every.extend(items)
        drafts = [i for i in items if i["status"] == "draft"]
        if not items:
            continue
        kinds = Counter(i["kind"] for i in drafts)
        status = Counter(i["status"] for i in items)
        kinds_text = ", ".join(f"{KIND.get(k, k)} {n}" for k, n in sorted(kinds.items())) or "—"
        rows.append([short_name(names.get(agency, agency)), str(len(drafts)), kinds_text,
                     str(status.get("cancelled", 0)), str(status.get("issued", 0))])
    if not rows:
        print("  Không có văn bản xin lỗi nào.")
        return every
    total = Counter(i["status"] for i in every)
    rows.append(["TỔNG", str(total.get("draft", 0)), "", str(total.get("cancelled", 0)), str(total.get("issued", 0))])
    print(table(["Cơ quan (agency)", "Thư nháp", "Loại", "Đã hủy", "Đã ban hành"], rows, "lrlrr"))
    # Render every draft once (the service caches the DOCX in its documents dir).
    rendered = 0
    for item in every:
        if item["status"] != "draft":
            continue
        r = client.get(stack.url("apology") + item["document_url"],
                       headers={"Authorization": f"Bearer {stack.officer_key(item['agency'])}"})
        if r.status_code == 200 and r.content[:2] == b"PK":
            rendered += 1
    example = next((i for i in every if i["status"] == "draft"), None)
    print(f"  Danh sách: GET {stack.url('apology')}/v1/apologies?agency=<mã cơ quan> (khóa cán bộ của cơ quan, "
          f"trong {stack.run_dir / 'keys.json'})")
    if example:
        print(f"  Ví dụ:     GET {stack.url('apology')}{example['document_url']}  "
              f"(hồ sơ {example['dossier_id']})")
    print(f"  Tệp DOCX:  {rendered} thư nháp đã tạo tại {stack.documents_dir}")
    return every


# -- checking against tthc replay ------------------------------------------------------------------
def province_book(calendar_file: Path) -> Any:
    from tthc_adapters.calendar_file import load_calendar
    from tthc_core.calendar import CalendarBook

    return CalendarBook(load_calendar(calendar_file))


def replay_of(events: list[dict[str, Any]], until: datetime, first: date, last: date, book: Any = None):
    from tthc_contracts import parse_dossier_event
    from tthc_core.calendar import CalendarBook
    from tthc_core.indices import Period
    from tthc_core.replay import replay

    return replay([parse_dossier_event(e) for e in events], book or CalendarBook(), until, Period(first, last))


def check_against_replay(client: httpx.Client, stack: Stack, events: list[dict[str, Any]], result: dict[str, Any],
                         first: date, last: date, book: Any) -> list[str]:
    """Every dossier field, every apology letter and every figure of every group, next to `tthc replay` of
    the same events at the same cut (deploy/local/replay_check.py, as the end-to-end tests compare)."""
    from replay_check import differences, replay_view, service_view, tick
    from tthc_contracts import parse_ts

    heading("ĐỐI CHIẾU VỚI `tthc replay` (cùng dữ liệu, cùng thời điểm cắt)")
    # The services include the event at the cut instant itself; replay takes events strictly before --until.
    until = parse_ts(result["cut"]) + timedelta(microseconds=1)
    want = replay_view(events, until, first, last, book)
    tick(stack, until)  # the services' time at the cut, as replay's --until (the demo publishes no ticks)
    settle_by = time.monotonic() + 60
    while True:  # until the deadline service has let time pass to the cut and its letters are drafted
        problems = differences(service_view(client, stack, first, last, until), want)
        if not problems or time.monotonic() > settle_by:
            break
        time.sleep(1)
    groups = sum(len(want.indices.get(t, {})) for t in ("by_agency", "by_field", "by_procedure", "by_channel"))
    print(f"  {len(want.dossiers)} hồ sơ × {len(next(iter(want.dossiers.values()), {}))} trường, "
          f"{len(want.drafts)} thư xin lỗi, {len(want.indices.get('total', {}))} chỉ số × {groups + 1} nhóm "
          f"(toàn tỉnh, cơ quan, lĩnh vực, thủ tục, kênh): dịch vụ và replay "
          f"{'khớp' if not problems else 'LỆCH'}.")
    for p in problems:
        print("  ✗ " + p)
    if not problems:
        print("  ✓ Tất cả khớp.")
    return problems


# -- main -------------------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    from tthc_contracts import parse_ts
    from tthc_sim import generate_day, province_calendar

    progress = Progress()
    kafka = args.kafka or os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or "127.0.0.1:9092"
    if not kafka_answers(kafka):
        print(f"Kafka không trả lời tại {kafka}. Khởi động: deploy/local/kafka.sh start "
              f"(hoặc `make demo`), hoặc đặt KAFKA_BOOTSTRAP_SERVERS.", file=sys.stderr)
        return 2

    print(f"MÔ PHỎNG MỘT NGÀY TẠI BỘ PHẬN MỘT CỬA TỈNH LẠNG SƠN — ngày {args.day:%d/%m/%Y}")
    events = generate_day(args.day, args.dossiers, args.seed, resends=args.resends)
    received = {e["dossier_id"] for e in events if e["type"] == "dossier.received"}
    kinds = Counter(e["type"] for e in events)
    last_at = max(parse_ts(e["occurred_at"]) for e in events)
    first, last = args.day, last_at.date()
    names = agency_names(events)
    print(f"  {args.dossiers} hồ sơ (seed {args.seed}): {len(received)} được tiếp nhận, "
          f"{kinds['dossier.refused']} bị từ chối; {len(events)} sự kiện từ {args.day:%d/%m} đến {last:%d/%m/%Y} "
          f"(bổ sung {kinds['dossier.supplement_requested']}, tạm dừng NVTC {kinds['dossier.paused']}, "
          f"chuyển {kinds['dossier.transferred']}, gia hạn {kinds['dossier.extended']}, "
          f"rút {kinds['dossier.withdrawn']}, dừng {kinds['dossier.stopped']})")
    # The province's calendar file: its online public services (the online_* figures), for every service.
    var = Path(args.var).resolve()
    prepare_var(var)
    calendar_file = var / "calendar.yaml"
    calendar_file.write_text(province_calendar(), encoding="utf-8")
    book = province_book(calendar_file)
    expected = replay_of(events, last_at + timedelta(microseconds=1), first, last, book)
    expect_closed = sum(d.is_closed for d in expected.dossiers)

    ports = service_ports(args.port_base)
    agencies = sorted(set(names))
    lead = intake_lead_for(last_at)
    if lead:
        print(f"  (sự kiện đến {last:%d/%m/%Y}, sau hôm nay: intake nhận trước đồng hồ tới "
              f"{int(lead['INTAKE_MAX_EVENT_LEAD_S']) // 3600} giờ — INTAKE_MAX_EVENT_LEAD_S)")
    stack = Stack(kafka_bootstrap=kafka, topic_prefix=f"demo-{secrets.token_hex(4)}.", var_dir=var, ports=ports,
                  officer_agencies=agencies, extra_env={
                      "DEADLINE_PUBLISH_TICKS": "false", **lead, "DEADLINE_CALENDAR_FILE": str(calendar_file),
                      "APOLOGY_CALENDAR_FILE": str(calendar_file), "METRICS_CALENDAR_FILE": str(calendar_file)})
    heading("KHỞI ĐỘNG CÁC DỊCH VỤ")
    t0 = time.monotonic()
    try:
        stack.start()
    except StackError as exc:
        print(f"  Không khởi động được: {exc}", file=sys.stderr)
        return 1
    print(f"  intake {stack.url('intake')}, deadline {stack.url('deadline')}, apology {stack.url('apology')}, "
          f"metrics {stack.url('metrics')} — sẵn sàng sau {time.monotonic() - t0:.0f} s "
          f"(Kafka {kafka}, chủ đề {stack.topic_prefix}*, dữ liệu {var})")
    ok = False
    try:
        with httpx.Client(timeout=120) as client:
            heading("GỬI HỒ SƠ VÀ CHỜ XỬ LÝ")
            post_events(client, stack, events, args.batch, progress)
            wait_until_processed(client, stack, first, last, len(received), expect_closed,
                                 last_at.isoformat(), args.timeout, progress)
            result = indices(client, stack, first, last)
            print_indices(result, names, first, last)
            print_apologies(client, stack, sorted(result["by_agency"]) + sorted(
                set(agencies) - set(result["by_agency"])), names)
            problems = check_against_replay(client, stack, events, result, first, last, book)
            ok = not problems
    except (TimeoutError, RuntimeError, httpx.HTTPError) as exc:
        print(f"\n  LỖI: {exc}", file=sys.stderr)
        print(stack.log_tails(15), file=sys.stderr)
    finally:
        if args.keep_running and ok:
            print(f"\nCác dịch vụ vẫn chạy. Dừng bằng: python deploy/local/stack.py down --var {var}")
        else:
            stack.stop()
            print(f"\nĐã dừng các dịch vụ. Nhật ký: {stack.log_dir}/")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="deploy/local/demo.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--day", type=date.fromisoformat, default=DEFAULT_DAY,
                   help=f"the simulated day ({DEFAULT_DAY}); one whose events reach beyond today raises intake's lead")
    p.add_argument("--dossiers", type=int, default=300)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--resends", type=float, default=0.01, help="share of events the one-stop software posts twice")
    p.add_argument("--batch", type=int, default=250, help="events per POST (at most 1000)")
    p.add_argument("--kafka", help="bootstrap servers (default $KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092)")
    p.add_argument("--var", default=str(ROOT / "var" / "demo"), help="databases, logs, letters (var/demo)")
    p.add_argument("--port-base", type=int, default=None,
                   help="services on BASE+1..BASE+4 (default: four ports free right now)")
    p.add_argument("--timeout", type=float, default=900, help="seconds to wait for the pipeline")
    p.add_argument("--keep-running", action="store_true", help="leave the services running afterwards")
    args = p.parse_args(argv)
    if not 1 <= args.batch <= 1000:
        p.error("--batch must be 1..1000")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
